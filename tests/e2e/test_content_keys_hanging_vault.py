"""A hanging Vault holds only the batches whose data keys need it (review, 2026-12-05).

The group committer's one writer made new subjects' data keys itself: every
group holding such a batch waited out ``content_vault_timeout`` on a Vault that
accepts connections and never answers, and so did every tenant's batches in it
or queued behind it, keys held or not.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest

from aiaudit.cli.server import start
from aiaudit.common import client, config
from aiaudit.ingest.v1 import ingest_service_pb2 as ingest_pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from tests.conftest import Postgres
from tests.e2e.test_content_encryption import content_key, suite_config
from tests.helpers import interaction, wait_until
from tests.integrity.conftest import Proxy, Vault, vault  # noqa: F401  (the session's OpenBao)

VAULT_TIMEOUT = 12.0
"""Vault's timeout here; B's append is given half of it (6 s), so that a loaded machine's
slow answer is not taken for B waiting behind A (at 3 s, B had 1.5 s; at 6 s, 3 s: a
shared machine stalls a process for that long)."""


def test_a_hanging_vault_holds_only_the_batches_whose_keys_need_it(
    tmp_path: Path,
    own_postgres: Postgres,
    vault: Vault,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tenant B's key is held; Vault then hangs. A batch of tenant A for a new subject
    (its key must be wrapped by Vault) and then one of B are sent: B is acknowledged at
    once, A is UNAVAILABLE KEYS_UNAVAILABLE after the Vault timeout. B waited out the
    timeout behind A (5 s by default; clients spooled)."""
    vault_key = content_key(tmp_path, vault, monkeypatch)
    proxy = Proxy(int(urlsplit(vault.addr).port or 8200))
    keys, cfg = suite_config(
        tmp_path,
        {
            "database_url": own_postgres.app_url,
            "services": ["ingest"],
            "content_keys": "vault",
            "content_vault_addr": f"http://127.0.0.1:{proxy.port}",
            "content_vault_timeout": VAULT_TIMEOUT,
            **vault_key,
        },
    )
    a, b = f"t-a{os.urandom(4).hex()}", f"t-b{os.urandom(4).hex()}"
    suite = start(config.load(cfg, env={}))
    try:
        channel = client.channel(f"127.0.0.1:{suite.port}", keys["admin"])
        stub = ingest_grpc.IngestServiceStub(channel)
        stub.Append(ingest_pb.AppendRequest(events=[interaction(b, "b-1", user="bob")]), timeout=30)
        proxy.hang()
        new_subject = stub.Append.future(
            ingest_pb.AppendRequest(events=[interaction(a, "a-1", user="alice")]), timeout=30
        )
        wait_until(lambda: proxy.held >= 1)  # A's key is being wrapped: no answer
        answer = stub.Append(
            ingest_pb.AppendRequest(events=[interaction(b, "b-2", user="bob")]),
            timeout=VAULT_TIMEOUT / 2,
        )
        assert [r.sequence for r in answer.receipts] == [1]
        with pytest.raises(grpc.RpcError) as refused:
            new_subject.result()
        channel.close()
    finally:
        suite.stop()
        proxy.close()
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "KEYS_UNAVAILABLE" in str(refused.value.trailing_metadata())
