"""The operator commands check the database and Vault they are given as ``serve`` does.

They forced ``allow_insecure`` on (to skip the OIDC check, which serves no purpose off
a server), and that waived the backends' checks too; their own URL flags were never
checked. ``aiaudit verify --database-url postgresql://auditor:pw@db.prod/...`` sent the
read login's password in clear and trusted whichever server answered. Now a PostgreSQL
URL off loopback without ``sslmode=verify-full`` (or ``verify-ca``) and an ``http://``
Vault are refused, exit 2 naming the flag or setting, before any connection: the hosts
here (``.invalid``) resolve nowhere, so a command that tried to connect would exit 1.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from aiaudit.cli.main import main
from aiaudit.common.store import SqlEventStore, open_store
from aiaudit.integrity.signers import FileKeys
from tests.conftest import Postgres
from tests.helpers import wait_until
from tests.integrity.conftest import ORIGIN_PREFIX, Notaries, Vault, append, login
from tests.integrity.test_cli import said
from tests.integrity.test_notary import covers

REMOTE = "postgresql+psycopg://auditor:read-pw@db.invalid/aiaudit"
"""Another host, no sslmode: libpq's 'prefer' falls back to plaintext and checks no one."""

PLAIN_VAULT = "http://vault.invalid:8200"


def _refused(argv: list[str], named: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``argv`` exits 2 naming ``named``, without having tried to connect."""
    capsys.readouterr()
    assert main(argv) == 2
    err = "\n".join(said(capsys))
    assert f"setting {named!r}" in err, err
    assert "another host" in err or "plain HTTP" in err, err
    assert "read-pw" not in err  # the refusal shows no password either


def _aliased(url: str) -> str:
    """``url`` (on loopback) under a name of another host, reaching the same server:
    ``hostaddr`` tells libpq where to connect without looking the name up."""
    parsed = sa.make_url(url)
    return parsed.set(host="db.invalid", query={"hostaddr": parsed.host or ""}).render_as_string(
        hide_password=False
    )


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["verify", "--database-url", REMOTE, "--verifier-key", "k"], "--database-url"),
        (
            ["integrity", "export-bundle", "--database-url", REMOTE, "--log", "t", "out.jsonl"],
            "--database-url",
        ),
        (
            ["alerting", "redeliver", "--database-url", REMOTE, "--sink", "webhook"],
            "--database-url",
        ),
        (["db", "migrate", "--database-url", REMOTE], "--database-url"),
        (
            ["erase", "--database-url", REMOTE, "--tenant", "t", "--subject", "s", "--reason", "r"],
            "--database-url",
        ),
        (["integrity", "bootstrap-vault", "--vault-addr", PLAIN_VAULT], "--vault-addr"),
        (["content-keys", "rewrap", "--database-url", REMOTE], "--database-url"),
        (["content-keys", "bootstrap-vault", "--vault-addr", PLAIN_VAULT], "--vault-addr"),
    ],
    ids=[
        "verify",
        "export-bundle",
        "redeliver",
        "migrate",
        "erase",
        "bootstrap-vault",
        "content-keys-rewrap",
        "content-keys-bootstrap-vault",
    ],
)
def test_a_plaintext_backend_flag_is_refused_before_connecting(
    argv: list[str],
    named: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "root-token")  # bootstrap-vault's other need
    monkeypatch.setenv("USER", "dpo")
    monkeypatch.chdir(tmp_path)
    _refused([*argv, "--data-dir", str(tmp_path)], named, capsys)


def test_the_record_database_url_is_checked_before_the_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The export's record login is checked before the store is read, nothing written."""
    read = f"sqlite:///{tmp_path / 'read.db'}"
    open_store(read, run_migrations=True).close()
    out = tmp_path / "out.jsonl"
    argv = ["integrity", "export-bundle", "--database-url", read, "--record-database-url", REMOTE]
    _refused(
        [*argv, "--requested-by", "dpo", "--log", "t", str(out)], "--record-database-url", capsys
    )
    assert not out.exists()


@pytest.mark.parametrize(
    ("variable", "value", "argv", "named"),
    [
        ("AIAUDIT_DATABASE_URL", REMOTE, ["verify", "--verifier-key", "k"], "database_url"),
        (
            "AIAUDIT_INTEGRITY_DATABASE_URL",
            REMOTE,
            ["integrity", "export-bundle", "--requested-by", "dpo", "--log", "t", "out.jsonl"],
            "integrity.database_url",
        ),
        (
            "AIAUDIT_ALERTING_DATABASE_URL",
            REMOTE,
            ["alerting", "redeliver", "--sink", "webhook"],
            "alerting.database_url",
        ),
        (
            "AIAUDIT_INTEGRITY_VAULT_ADDR",
            PLAIN_VAULT,
            ["integrity", "verifier-key", "--local"],
            "integrity.vault_addr",
        ),
        ("VAULT_ADDR", PLAIN_VAULT, ["integrity", "bootstrap-vault"], "VAULT_ADDR"),
    ],
    ids=["verify", "export-bundle", "redeliver", "verifier-key", "bootstrap-vault"],
)
def test_the_settings_are_no_longer_waived(
    variable: str,
    value: str,
    argv: list[str],
    named: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What ``serve`` refuses in the configuration, these commands refuse too."""
    monkeypatch.setenv(variable, value)
    monkeypatch.setenv("VAULT_TOKEN", "root-token")
    monkeypatch.chdir(tmp_path)
    _refused([*argv, "--data-dir", str(tmp_path)], named, capsys)


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_each_command_works_on_loopback_and_another_host_takes_the_opt_out(
    store_url: str,
    store: SqlEventStore,
    notaries: Notaries,
    postgres: Postgres,
    vault: Vault,
    tenant: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The test database on 127.0.0.1 needs no TLS; the same server under another name
    does, unless ``allow_insecure`` (a network encrypted below the suite)."""
    monkeypatch.chdir(tmp_path)
    data = ["--data-dir", str(tmp_path)]
    receipts = append(store, tenant, 3)
    keys = FileKeys(ORIGIN_PREFIX, tmp_path / "key.pem")
    notaries.start(keys)
    wait_until(lambda: covers(notaries.url, tenant, 3))
    key = keys.verifier_keys()[0].encode()

    assert main(["db", "migrate", "--database-url", postgres.admin_url, *data]) == 0
    verify = ["verify", "--log", tenant, "--verifier-key", key, "--origin-prefix", ORIGIN_PREFIX]
    assert main([*verify, "--database-url", notaries.url, *data]) == 0
    out = tmp_path / "out.jsonl"
    export = ["integrity", "export-bundle", "--database-url", notaries.url, "--log", tenant]
    export += ["--record-database-url", store_url, "--requested-by", "dpo", *data, str(out)]
    assert main(export) == 0
    assert len(out.read_text().splitlines()) >= 3
    alerting = login(postgres, "aiaudit_alerting")
    redeliver = ["alerting", "redeliver", "--sink", "webhook", "--tenant", tenant, "--dry-run"]
    assert main([*redeliver, "--database-url", alerting, *data]) == 0
    erase = ["erase", "--database-url", postgres.privacy_url, "--tenant", tenant, *data]
    erase += ["--event-id", receipts[0].event_id, "--reason", "r", "--requested-by", "dpo"]
    assert main(erase) == 0
    monkeypatch.setenv("VAULT_TOKEN", vault.token)
    name = f"cli-{uuid.uuid4().hex[:8]}"
    boot = ["integrity", "bootstrap-vault", "--vault-addr", vault.addr, "--key", name]
    assert main([*boot, "--policy", name, *data]) == 0

    # The notary's server under a name of another host: refused; with the opt-out, verified.
    aliased = [*verify, "--database-url", _aliased(notaries.url), *data]
    _refused(aliased, "--database-url", capsys)
    monkeypatch.setenv("AIAUDIT_ALLOW_INSECURE", "true")
    assert main(aliased) == 0
