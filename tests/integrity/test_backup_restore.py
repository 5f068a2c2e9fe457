"""Backup and restore of a PostgreSQL store: what the operator runs, and what verify then says.

A whole-database ``pg_dump --format=custom`` of a live store, restored with
``pg_restore`` into a new database of the same cluster (the roles are the
cluster's), then ``aiaudit db migrate`` and ``aiaudit verify`` against the
notary's append-only checkpoint directory, as the README's "Backup and
restore" says. The latest backup verifies clean. An older one (events
appended, checkpoints signed and exported, a subject erased after it) does
not: verify names the sequences the exported checkpoints cover and the store
lacks, and a notary started on it refuses to sign that log rather than fork
the exported history. The erased subject's content is back in the old
backup, readable with the KEK that wrapped its data key: the erasure is
applied again by subject with ``aiaudit erase``, which takes it out.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
import yaml

from aiaudit.cli.main import main
from aiaudit.common import leader
from aiaudit.common.erasure import erase
from aiaudit.common.keys.kek import FileKek
from aiaudit.common.keys.keyring import Keyring
from aiaudit.common.store import SqlEventStore, open_store
from aiaudit.common.store.prepare import prepare
from aiaudit.integrity import storage, worm
from aiaudit.integrity.notary import Notary
from aiaudit.integrity.signers import FileKeys
from tests.conftest import Postgres
from tests.helpers import interaction
from tests.integrity.conftest import ORIGIN_PREFIX, login, notary_config

REPO = Path(__file__).resolve().parents[2]


def pg_tool(name: str) -> str:
    """``pg_dump`` or ``pg_restore`` of the newest Debian PostgreSQL installed (the server's)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3])
    )
    assert found, f"{name} not found under /usr/lib/postgresql/*/bin"
    return str(found[-1])


def backup(pg: Postgres, out: Path) -> None:
    """What scripts/backup.sh runs: the whole database, custom format, checked readable."""
    subprocess.run(
        ["bash", str(REPO / "scripts" / "backup.sh"), str(out), pg.admin_dsn],
        check=True,
        capture_output=True,
        text=True,
        env={"PATH": f"{Path(pg_tool('pg_dump')).parent}:/usr/bin:/bin"},
    )


@dataclasses.dataclass
class Restored:
    """A database restored from a dump, as its owner (an admin URL) and its notary's login."""

    admin_url: str
    notary_url: str


@pytest.fixture
def restore(own_postgres: Postgres) -> Iterator[Callable[[Path], Restored]]:
    """Restores dumps into new databases of the same cluster; drops them after."""
    made: list[str] = []
    base = own_postgres.admin_dsn.rsplit("/", 1)[0]

    def into_new(dump: Path) -> Restored:
        db = f"aiaudit_restored_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(own_postgres.admin_dsn, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {db}")
        made.append(db)
        subprocess.run(
            [pg_tool("pg_restore"), "--exit-on-error", f"--dbname={base}/{db}", str(dump)],
            check=True,
            capture_output=True,
            text=True,
        )
        admin = f"{base}/{db}".replace("postgresql://", "postgresql+psycopg://", 1)
        notary = login(own_postgres, "aiaudit_notary").rsplit("/", 1)[0] + f"/{db}"
        return Restored(admin, notary)

    yield into_new
    with psycopg.connect(own_postgres.admin_dsn, autocommit=True) as conn:
        for db in made:
            conn.execute(f"DROP DATABASE {db} WITH (FORCE)")


def sign(url: str, keys: FileKeys, tmp_path: Path) -> list[bool]:
    """One notary round (integrate and sign every log), exporting to ``tmp_path/checkpoints``,
    then the notary stops; the health it reported."""
    store = open_store(url)
    config = dataclasses.replace(notary_config(tmp_path, interval=0.0), poll_interval=0.0)
    health: list[bool] = []
    running = Notary(
        store.engine, keys, leader.for_engine(store.engine, leader.NOTARY), config, health.append
    )
    try:
        running.step()
        return health
    finally:
        running.stop()
        store.close()


def append(store: SqlEventStore, tenant: str, n: int, user: str) -> list[str]:
    """Commits ``n`` interactions of ``user`` in one batch; their event ids."""
    now = dt.datetime.now(dt.UTC)
    events = [interaction(tenant, text=f"{user} said {i}", user=user) for i in range(n)]
    out = store.append_group([[prepare(e, now) for e in events]])
    assert isinstance(out[0], list)
    return [e.event_id for e in events]


def verify_cli(url: str, keys: FileKeys, tmp_path: Path, tenant: str) -> int:
    return main(
        [
            "verify",
            "--config",
            str(tmp_path / "verify.yaml"),
            "--database-url",
            url,
            "--log",
            tenant,
            "--verifier-key",
            keys.verifier_keys()[0].encode(),
            "--origin-prefix",
            ORIGIN_PREFIX,
            "--checkpoint-dir",
            str(tmp_path / "checkpoints"),
        ]
    )


def _behind_26(tenant: str, tmp_path: Path) -> str:
    """The notary's error for a store restored to 10 leaves under an exported checkpoint of 26."""
    return (
        f"log {tenant} not integrated nor signed: its 10 integrated leaves are behind its "
        f"checkpoint of size 26, signed and exported to {tmp_path / 'checkpoints'} (the store "
        "restored from an older backup? sequences 10..25 are missing, and signing new events "
        "at them would fork the exported history); run aiaudit verify, and once no later "
        f"backup holds them, aiaudit integrity accept-loss --log {tenant}"
    )


def test_a_restored_backup_verifies_clean_if_latest_and_names_the_rollback_if_older(
    own_postgres: Postgres,
    restore: Callable[[Path], Restored],
    tmp_path: Path,
    tenant: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    kek = tmp_path / "content.kek"
    keyring = Keyring(FileKek(kek))
    (tmp_path / "verify.yaml").write_text(
        yaml.safe_dump({"content_keys": "file", "content_key_file": str(kek)})
    )
    keys = FileKeys(ORIGIN_PREFIX, tmp_path / "notary.pem")
    notary_url = login(own_postgres, "aiaudit_notary")
    store = open_store(own_postgres.app_url, keys=keyring)
    privacy = open_store(own_postgres.privacy_url, keys=keyring)
    try:
        carol = append(store, tenant, 4, "carol")
        append(store, tenant, 6, "dave")
        assert sign(notary_url, keys, tmp_path)[-1] is True
        backup(own_postgres, tmp_path / "older.dump")
        append(store, tenant, 15, "dave")
        assert sign(notary_url, keys, tmp_path)[-1] is True  # checkpoint 25, exported
        erase(privacy, tenant, "data subject request", "dpo", subject_id="carol")
        assert sign(notary_url, keys, tmp_path)[-1] is True  # 26: the erasure record
        backup(own_postgres, tmp_path / "latest.dump")
    finally:
        store.close()
        privacy.close()
    assert [s for s, _ in worm.read_all(tmp_path / "checkpoints", tenant)] == [10, 25, 26]

    latest = restore(tmp_path / "latest.dump")
    assert main(["db", "migrate", "--database-url", latest.admin_url]) == 0
    capsys.readouterr()
    assert verify_cli(latest.admin_url, keys, tmp_path, tenant) == 0
    assert capsys.readouterr().err.splitlines()[-1] == (
        "1 log(s), 26 event(s), 6 checkpoint(s) checked: 0 problem(s)"
    )

    older = restore(tmp_path / "older.dump")
    assert main(["db", "migrate", "--database-url", older.admin_url]) == 0
    capsys.readouterr()
    assert verify_cli(older.admin_url, keys, tmp_path, tenant) == 1
    behind = (
        "which are missing: the log is behind a checkpoint that was signed and exported "
        "(tail truncated, or the store restored from a backup older than the checkpoint?)"
    )
    out = capsys.readouterr()
    assert out.err.splitlines() == ["1 log(s), 10 event(s), 4 checkpoint(s) checked: 2 problem(s)"]
    assert out.out.splitlines() == [
        f"log {tenant}: exported checkpoint at size 25 covers sequences 10..24, {behind}",
        f"log {tenant}: exported checkpoint at size 26 covers sequences 10..25, {behind}",
    ]

    # The erasure came after the backup: carol's content is back, and her data key
    # (stored wrapped in content_keys) opens with the KEK that still exists.
    old_store = open_store(older.admin_url, keys=keyring)
    try:
        back = old_store.get_event(tenant, carol[0])
        assert back is not None and back.content is not None
        assert "carol said 0" in next(iter(back.content.values()))
        # A notary on the old backup, with the same export directory, while the log takes
        # new events at the lost sequences: signing them forked the exported history.
        append(old_store, tenant, 3, "erin")
    finally:
        old_store.close()
    # Erasures made after the backup are applied again, by subject, from outside the store.
    privacy_url = own_postgres.privacy_url.rsplit("/", 1)[0] + "/" + older.admin_url.rsplit("/")[-1]
    again = ["erase", "--config", str(tmp_path / "verify.yaml"), "--database-url", privacy_url]
    again += ["--tenant", tenant, "--subject", "carol", "--requested-by", "dpo"]
    capsys.readouterr()
    assert main([*again, "--reason", "data subject request (re-applied after a restore)"]) == 0
    assert sorted(json.loads(capsys.readouterr().out)["erased"]) == sorted(carol)
    old_store = open_store(older.admin_url, keys=keyring)
    try:
        erased = old_store.get_event(tenant, carol[0])
        assert erased is not None and erased.content is None
    finally:
        old_store.close()
    with caplog.at_level(logging.ERROR, "aiaudit.integrity.notary"):
        assert sign(older.notary_url, keys, tmp_path)[-1] is False  # NOT_SERVING
    # Only the errors: an earlier test's logging set-up may let other records through.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        _behind_26(tenant, tmp_path)
    ]
    assert [s for s, _ in worm.read_all(tmp_path / "checkpoints", tenant)] == [10, 25, 26]
    engine = sa.create_engine(older.admin_url)
    try:
        with engine.connect() as conn:
            assert [c.tree_size for c in storage.all_checkpoints(conn, tenant)] == [10]
    finally:
        engine.dispose()

    # No later backup holds sequences 10..25: the loss is accepted, and the log signs on
    # under its epoch-1 origin (tests/integrity/test_loss_acceptance.py for the rest).
    accept = ["integrity", "accept-loss", "--data-dir", str(tmp_path), "--log", tenant]
    accept += ["--config", str(tmp_path / "verify.yaml"), "--database-url", older.notary_url]
    (tmp_path / "verify.yaml").write_text(
        yaml.safe_dump(
            {
                "integrity": {
                    "origin_prefix": ORIGIN_PREFIX,
                    "key_file": str(kek.parent / "notary.pem"),
                },
                "content_keys": "file",
                "content_key_file": str(kek),
            }
        )
    )
    assert main([*accept, "--reason", "no later backup holds the events"]) == 0
    assert sign(older.notary_url, keys, tmp_path)[-1] is True
    assert [s for s, _ in worm.read_all(tmp_path / "checkpoints", tenant, 1)] == [14]
    capsys.readouterr()
    assert verify_cli(older.admin_url, keys, tmp_path, tenant) == 0
    assert "sequences 10..25 of epoch 0 (its checkpoint of size 26) are lost" in (
        capsys.readouterr().out
    )


def test_a_notary_started_on_an_older_backup_of_a_quiet_log_reports_it_at_once(
    own_postgres: Postgres,
    restore: Callable[[Path], Restored],
    tmp_path: Path,
    tenant: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The backup taken when the log's latest checkpoint covered all its events, restored
    after more were signed and exported, and no event since: a notary started on it had
    nothing to integrate or sign there and said nothing, SERVING until the log's next event
    (2026-12-07). Its first round holds the log, NOT_SERVING, naming the missing sequences."""
    keys = FileKeys(ORIGIN_PREFIX, tmp_path / "notary.pem")
    notary_url = login(own_postgres, "aiaudit_notary")
    store = open_store(own_postgres.app_url, keys=Keyring(FileKek(tmp_path / "content.kek")))
    try:
        append(store, tenant, 10, "carol")
        assert sign(notary_url, keys, tmp_path)[-1] is True
        backup(own_postgres, tmp_path / "older.dump")
        append(store, tenant, 16, "dave")
        assert sign(notary_url, keys, tmp_path)[-1] is True
    finally:
        store.close()
    assert [s for s, _ in worm.read_all(tmp_path / "checkpoints", tenant)] == [10, 26]

    older = restore(tmp_path / "older.dump")
    with caplog.at_level(logging.ERROR, "aiaudit.integrity.notary"):
        assert sign(older.notary_url, keys, tmp_path) == [False]  # NOT_SERVING
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        _behind_26(tenant, tmp_path)
    ]
    assert [s for s, _ in worm.read_all(tmp_path / "checkpoints", tenant)] == [10, 26]
