"""Content sealed at rest through the whole suite: embedded default, and Vault Transit.

The servers write; raw SQL shows what a copy of the database would give away;
the search API shows that readers still get the content.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import stat
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
import yaml

from aiaudit.cli.main import main
from aiaudit.cli.server import start
from aiaudit.common import client, config
from aiaudit.common.config import ConfigError
from aiaudit.common.keys import seal
from aiaudit.common.store import open_store
from aiaudit.common.store.prepare import prepare_batch
from aiaudit.common.store.schema import content_keys, event_content
from aiaudit.ingest.v1 import ingest_service_pb2 as ingest_pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from aiaudit.search.v1 import search_service_pb2 as search_pb
from aiaudit.search.v1 import search_service_pb2_grpc as search_grpc
from tests.conftest import Postgres, write_keys
from tests.helpers import interaction
from tests.integrity.conftest import Vault, vault  # noqa: F401  (the session's OpenBao)

SECRET = "my card is 4111 1111 1111 1111"


def suite_config(tmp_path: Path, settings: dict[str, object]) -> tuple[dict[str, str], Path]:
    """API keys and a config file for a suite on a free loopback port: (keys by role, file)."""
    keys = write_keys(tmp_path / "keys.yaml")
    cfg = tmp_path / "aiaudit.yaml"
    base = {
        "address": "127.0.0.1:0",
        "data_dir": str(tmp_path),
        "api_keys_file": str(tmp_path / "keys.yaml"),
    }
    cfg.write_text(yaml.safe_dump({**base, **settings}))
    return keys, cfg


def content_key(
    tmp_path: Path,
    vault: Vault,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """A Transit mount and key bootstrapped by the CLI, as an operator does, and a token file
    holding only its policy: the ``content_vault_*`` settings (but the address)."""
    mount = f"transit-{os.urandom(4).hex()}"
    monkeypatch.setenv("VAULT_TOKEN", vault.token)  # the administrator's, for the bootstrap only
    argv = ["content-keys", "bootstrap-vault", "--vault-addr", vault.addr, "--mount", mount]
    assert main([*argv, "--policy", f"{mount}-content"]) == 0
    monkeypatch.delenv("VAULT_TOKEN")
    token = vault.client().auth.token.create(policies=[f"{mount}-content"], ttl="1h")
    token_file = tmp_path / "vault-token"
    token_file.write_text(token["auth"]["client_token"])
    return {"content_vault_mount": mount, "content_vault_token_file": str(token_file)}


def serve_and_append(tmp_path: Path, settings: dict[str, object], tenant: str) -> str:
    """Starts the suite with ``settings``, appends one event, reads it back; its text."""
    keys, cfg = suite_config(tmp_path, settings)
    suite = start(config.load(cfg, env={}))
    try:
        channel = client.channel(f"127.0.0.1:{suite.port}", keys["admin"])
        ingest_grpc.IngestServiceStub(channel).Append(
            ingest_pb.AppendRequest(events=[interaction(tenant, "e-1", text=SECRET, user="alice")])
        )
        got = search_grpc.SearchServiceStub(channel).GetEvent(
            search_pb.GetEventRequest(tenant_id=tenant, event_id="e-1")
        )
        channel.close()
        return str(got.event.input.messages[0].parts[0].text)
    finally:
        suite.stop()


def stored(url: str, tenant: str) -> tuple[bytes, dict[str, tuple[str, bytes]]]:
    """(the first event's content column, subject -> (KEK name, wrapped key)).

    The log holds the search's access record too, sealed under its reader's key.
    """
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        content = conn.execute(
            sa.select(event_content.c.content).where(
                event_content.c.log_id == tenant, event_content.c.seq == 0
            )
        ).scalar_one()
        keys = conn.execute(
            sa.select(content_keys.c.subject, content_keys.c.kek, content_keys.c.wrapped).where(
                content_keys.c.log_id == tenant
            )
        ).all()
    engine.dispose()
    return bytes(content), {str(s): (str(k), bytes(w)) for s, k, w in keys}


def test_the_embedded_suite_seals_content_under_a_local_kek(tmp_path: Path) -> None:
    assert serve_and_append(tmp_path, {}, "acme") == SECRET
    content, keys = stored(f"sqlite:///{tmp_path / 'aiaudit.db'}", "acme")
    assert content[0] == seal.XAES_256_GCM and b"4111" not in content
    kek = tmp_path / "content.kek"
    assert stat.S_IMODE(kek.stat().st_mode) == 0o600 and kek.stat().st_size == 32
    (name, wrapped) = keys["alice"]
    assert name.startswith("file:") and len(wrapped) == 12 + 32 + 16


def test_the_suite_seals_content_under_vault_transit(
    tmp_path: Path,
    own_postgres: Postgres,
    vault: Vault,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The operator bootstraps the key with the CLI; the suite wraps through Transit.

    A database of its own: consumers of the session's one hold no token for this key.
    """
    vault_key = content_key(tmp_path, vault, monkeypatch)
    mount = vault_key["content_vault_mount"]
    tenant = f"t-{os.urandom(4).hex()}"
    text = serve_and_append(
        tmp_path,
        {
            "database_url": own_postgres.app_url,
            "services": ["ingest", "search"],
            "content_keys": "vault",
            "content_vault_addr": vault.addr,
            **vault_key,
        },
        tenant,
    )
    assert text == SECRET
    content, keys = stored(own_postgres.admin_url, tenant)
    assert content[0] == seal.XAES_256_GCM and b"4111" not in content
    (name, wrapped) = keys["alice"]
    assert name == f"vault:{mount}/aiaudit-content" and wrapped.startswith(b"vault:v1:")


def test_an_append_while_vault_is_out_of_reach_is_keys_unavailable(
    tmp_path: Path, postgres: Postgres
) -> None:
    """A new subject's key cannot be made without Vault: the append is UNAVAILABLE with
    KEYS_UNAVAILABLE and nothing is written. It said STORE_UNAVAILABLE, "the store did
    not commit the batch (... it may have been)", pointing operators at PostgreSQL
    (review, 2026-12-05)."""
    with socket.socket() as closed:  # a loopback port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    token_file = tmp_path / "vault-token"
    token_file.write_text("not-a-token")
    keys, cfg = suite_config(
        tmp_path,
        {
            "database_url": postgres.app_url,
            "services": ["ingest"],
            "content_keys": "vault",
            "content_vault_addr": f"http://127.0.0.1:{port}",
            "content_vault_token_file": str(token_file),
        },
    )
    tenant = f"t-{os.urandom(4).hex()}"
    suite = start(config.load(cfg, env={}))
    try:
        channel = client.channel(f"127.0.0.1:{suite.port}", keys["admin"])
        stub = ingest_grpc.IngestServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Append(ingest_pb.AppendRequest(events=[interaction(tenant, "e-1", user="bob")]))
        channel.close()
    finally:
        suite.stop()
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "KEYS_UNAVAILABLE" in str(refused.value.trailing_metadata())
    assert "nothing of this batch was written" in (refused.value.details() or "")
    store = open_store(postgres.admin_url, keys=None)
    try:
        assert store.read_log(tenant, 0, 10, content=False) == []
    finally:
        store.close()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"content_keys": "aes"}, "'content_keys': 'aes'; one of file, vault, none"),
        ({"content_keys": "vault"}, "'content_vault_addr': required"),
    ],
)
def test_content_key_settings_are_checked_at_start(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        config.load(None, env={}, overrides=overrides)


def test_an_append_for_a_subject_whose_key_is_damaged_is_data_loss(tmp_path: Path) -> None:
    """Nothing can be sealed for that subject until an operator mends the key; others go on."""
    url = f"sqlite:///{tmp_path / 'aiaudit.db'}"
    store = open_store(url, run_migrations=True)  # the embedded KEK beside the database
    store.append_group([prepare_batch([interaction("acme", "e-0")], dt.datetime.now(dt.UTC))])
    store.close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE content_keys SET wrapped = x'00' WHERE log_id = 'acme'"))
    engine.dispose()
    keys = write_keys(tmp_path / "keys.yaml")
    suite = start(
        config.load(
            None,
            env={},
            overrides={
                "address": "127.0.0.1:0",
                "data_dir": tmp_path,
                "api_keys_file": tmp_path / "keys.yaml",
                "services": ("ingest",),
            },
        )
    )
    try:
        channel = client.channel(f"127.0.0.1:{suite.port}", keys["admin"])
        stub = ingest_grpc.IngestServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Append(ingest_pb.AppendRequest(events=[interaction("acme", "e-1")]))
        assert refused.value.code() == grpc.StatusCode.DATA_LOSS
        assert "does not open" in (refused.value.details() or "")
        ok = stub.Append(ingest_pb.AppendRequest(events=[interaction("other", "o-1")]))
        assert ok.receipts[0].sequence == 0
        channel.close()
    finally:
        suite.stop()


def test_serving_on_postgresql_needs_content_keys_said(
    own_postgres: Postgres, tmp_path: Path, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Unset, content_keys meant ``none`` on PostgreSQL: every prompt and output stored in
    clear with only a WARNING (review, 2026-12-05). ``serve`` now refuses to start; ``none``
    said explicitly stores it in clear, and says so at each start."""
    keys = write_keys(tmp_path / "keys.yaml")
    settings = {
        "address": "127.0.0.1:0",
        "data_dir": tmp_path,
        "api_keys_file": tmp_path / "keys.yaml",
        "database_url": own_postgres.app_url,
        "services": ("ingest",),
    }
    try:
        suite = start(config.load(None, env={}, overrides=settings))
    except ConfigError as exc:
        assert str(exc).startswith("setting 'content_keys': unset on PostgreSQL")
        assert "content_keys=none" in str(exc)
    else:
        suite.stop(0)
        pytest.fail("served PostgreSQL with content_keys unset (content in clear)")
    with caplog.at_level(logging.WARNING, logger="aiaudit.common.keys.configured"):
        suite = start(config.load(None, env={}, overrides={**settings, "content_keys": "none"}))
    try:
        assert any("stored unencrypted" in r.getMessage() for r in caplog.records)
        channel = client.channel(f"127.0.0.1:{suite.port}", keys["gateway"])
        ingest_grpc.IngestServiceStub(channel).Append(
            ingest_pb.AppendRequest(events=[interaction(tenant, "e-1", text=SECRET)])
        )
        channel.close()
    finally:
        suite.stop()
    content, _ = stored(own_postgres.admin_url, tenant)
    assert b"4111" in content  # in clear, as asked
