"""The notary when its session dies, a crash interrupts it, or the export directory fails.

Steps are driven one at a time (``Notary.step``, and what ``Notary._run``
does after a failed step), so each interleaving is exact. What must hold:
a checkpoint is exported only once stored, through the leader's session;
a new leader repairs a stored checkpoint that a crash left unexported; one
log's export failure neither stops the others nor hides from health; and a
replica whose lock session died starts over instead of trusting what it
knew, so entries another leader integrated meanwhile get signed.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from aiaudit.common import leader
from aiaudit.common.store import SqlEventStore, open_store
from aiaudit.integrity import storage, worm
from aiaudit.integrity.notary import Notary
from aiaudit.integrity.note import NoteSigner
from aiaudit.integrity.signers import ActiveKey, FileKeys, SignerUnavailableError
from aiaudit.integrity.verify import Report, verify_store
from tests.conftest import Postgres
from tests.helpers import this_thread_only, wait_until
from tests.integrity.conftest import (
    ORIGIN_PREFIX,
    append,
    exported_files,
    login,
    notary_config,
)


class Keys:
    """Local-file keys that can be 'down' (as Vault unreachable) or run a hook while signing."""

    def __init__(self, path: Path) -> None:
        self.inner = FileKeys("test.aiaudit/log", path)
        self.down = False
        self.while_signing: Callable[[], None] | None = None
        self.sign_with: FileKeys | None = None
        """Another key that signs in its place: a remote signer pointed at the wrong key."""

    def active(self) -> ActiveKey:
        if self.down:
            raise SignerUnavailableError("the key store is unreachable")
        key = self.inner.active()

        def sign(message: bytes) -> bytes:
            hook, self.while_signing = self.while_signing, None
            if hook is not None:
                hook()
            if self.sign_with is not None:
                return self.sign_with.active().signer.sign(message)
            return key.signer.sign(message)

        return ActiveKey(NoteSigner(key.signer.name, key.signer.public_key, sign), key.version)

    def verifier_keys(self) -> list:  # type: ignore[type-arg]
        return self.inner.verifier_keys()


class Replica:
    """One notary driven step by step (each integrates and signs), failing as ``_run`` fails."""

    def __init__(self, url: str, keys: Keys, tmp_path: Path) -> None:
        self.store = open_store(url)
        self.health: list[bool] = []
        self.notary = Notary(
            self.store.engine,
            keys,
            leader.for_engine(self.store.engine, leader.NOTARY),
            dataclasses.replace(notary_config(tmp_path, interval=0.0), poll_interval=0.0),
            self.health.append,
        )

    def step(self) -> None:
        try:
            self.notary.step()
        except sa.exc.DBAPIError:  # what _run does: give up leadership, retry later
            self.notary._leadership.release()
            self.notary._leading = False
            self.notary._ranges.clear()
            raise

    def close(self) -> None:
        self.notary.stop()
        self.store.close()


@pytest.fixture
def replicas(notary_url: str, tmp_path: Path) -> Iterator[Callable[[Keys], Replica]]:
    made: list[Replica] = []

    def make(keys: Keys) -> Replica:
        made.append(Replica(notary_url, keys, tmp_path))
        return made[-1]

    yield make
    for r in made:
        r.close()


def stored_sizes(admin_url: str, tenant: str) -> list[int]:
    engine = sa.create_engine(admin_url)
    try:
        with engine.connect() as conn:
            return [cp.tree_size for cp in storage.all_checkpoints(conn, tenant)]
    finally:
        engine.dispose()


def exported_sizes(tmp_path: Path, tenant: str) -> list[int]:
    return [size for size, _ in worm.read_all(tmp_path / "checkpoints", tenant)]


def verify_report(
    admin_url: str, keys: Keys, tmp_path: Path, tenant: str, mode: str = "full"
) -> Report:
    engine = sa.create_engine(admin_url)
    try:
        return verify_store(
            engine,
            keys.verifier_keys(),
            ORIGIN_PREFIX,
            tmp_path / "checkpoints",
            [tenant],
            mode=mode,
        )
    finally:
        engine.dispose()


def verify_problems(
    admin_url: str, keys: Keys, tmp_path: Path, tenant: str, mode: str = "full"
) -> list[str]:
    return [str(p) for p in verify_report(admin_url, keys, tmp_path, tenant, mode).problems]


def terminate(pg: Postgres, conn: sa.Connection) -> None:
    """Kills a connection's server session (a database restart, a failover, an idle timeout)."""
    pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    conn.rollback()
    with psycopg.connect(pg.admin_dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        gone = "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = %s"
        wait_until(lambda: admin.execute(gone, (pid,)).fetchone()[0])  # type: ignore[index]


@pytest.fixture
def pg_notary(postgres: Postgres) -> str:
    return login(postgres, "aiaudit_notary")


def test_a_session_lost_while_signing_leaves_an_exported_checkpoint_verify_accepts(
    postgres: Postgres, pg_notary: str, tmp_path: Path, tenant: str
) -> None:
    """The database went away while Vault signed: the export stays, the row never comes
    (the log grew since), and the copy is one of this log's checkpoints all the same."""
    store = open_store(postgres.app_url)
    keys = Keys(tmp_path / "key.pem")
    replica = Replica(pg_notary, keys, tmp_path)
    try:
        append(store, tenant, 5)
        replica.step()
        append(store, tenant, 3)
        lock = replica.notary._leadership.acquire()
        assert lock is not None
        keys.while_signing = lambda: terminate(postgres, lock)
        with pytest.raises(sa.exc.DBAPIError):
            replica.step()  # signed and exported 8, could not store it
        append(store, tenant, 2)
        replica.step()  # the session died: not the leader this round
        replica.step()
        assert stored_sizes(postgres.admin_url, tenant) == [5, 10]
        assert exported_sizes(tmp_path, tenant) == [5, 8, 10]
    finally:
        replica.close()
        store.close()
    report = verify_report(postgres.admin_url, keys, tmp_path, tenant)
    assert (report.problems, report.exported_only) == ([], 1)


def test_one_log_that_cannot_be_exported_stops_no_other_and_shows_in_health(
    store: SqlEventStore,
    replicas: Callable[[Keys], Replica],
    admin_url: str,
    tmp_path: Path,
    tenant: str,
) -> None:
    blocked, other = f"{tenant}-a", f"{tenant}-b"  # the blocked log is signed first
    keys = Keys(tmp_path / "key.pem")
    append(store, blocked, 3)
    append(store, other, 2)
    key_id = keys.inner.active().signer.verifier_key.key_id
    obstacle = worm.path_for(tmp_path / "checkpoints", blocked, 3, key_id)
    obstacle.mkdir(parents=True)  # the export target cannot be written
    replica = replicas(keys)
    replica.step()
    assert replica.health[-1] is False
    assert exported_sizes(tmp_path, other) == stored_sizes(admin_url, other) == [2]
    assert stored_sizes(admin_url, blocked) == []  # never stored without its copy
    obstacle.rmdir()
    replica.step()  # retried every interval until it is exported
    assert replica.health[-1] is True
    assert exported_sizes(tmp_path, blocked) == stored_sizes(admin_url, blocked) == [3]


def test_one_log_whose_tree_cannot_be_read_stops_no_other_and_shows_in_health(
    store: SqlEventStore,
    replicas: Callable[[Keys], Replica],
    admin_url: str,
    tmp_path: Path,
    tenant: str,
) -> None:
    """A restarted notary loads each log's edge from its node rows: one log with a node row
    deleted raised out of the round, and no log was integrated or signed again (review,
    2026-12-05)."""
    damaged, other = f"{tenant}-a", f"{tenant}-b"  # the damaged log is loaded first
    keys = Keys(tmp_path / "key.pem")
    append(store, damaged, 3)
    append(store, other, 2)
    first = replicas(keys)
    first.step()
    first.close()
    assert stored_sizes(admin_url, damaged) == [3] and stored_sizes(admin_url, other) == [2]
    node = {"t": damaged, "l": 0, "i": 2}  # a leaf node of the damaged log's right edge
    where = "FROM integrity_nodes WHERE log_id = :t AND level = :l AND idx = :i"
    engine = sa.create_engine(admin_url)
    try:
        with engine.begin() as conn:
            digest = conn.execute(sa.text(f"SELECT hash {where}"), node).scalar_one()
            conn.execute(sa.text(f"DELETE {where}"), node)
        try:
            append(store, damaged, 1)
            append(store, other, 2)
            restarted = replicas(keys)  # loads every edge from the rows
            restarted.step()
            assert exported_sizes(tmp_path, other) == stored_sizes(admin_url, other) == [2, 4]
            assert stored_sizes(admin_url, damaged) == [3]  # neither integrated nor signed
            assert restarted.health[-1] is False  # said, not hidden
        finally:  # repaired: a broken log in the shared database keeps every later notary down
            with engine.begin() as conn:
                conn.execute(
                    sa.text(
                        "INSERT INTO integrity_nodes (log_id, level, idx, hash)"
                        " VALUES (:t, :l, :i, :h)"
                    ),
                    {**node, "h": digest},
                )
    finally:
        engine.dispose()


def test_a_signer_answering_with_another_key_is_a_signing_outage(
    store: SqlEventStore,
    replicas: Callable[[Keys], Replica],
    admin_url: str,
    tmp_path: Path,
    tenant: str,
) -> None:
    """Its signatures do not verify under the checkpoint key: nothing is exported or stored,
    health says so, and the replica keeps leading and signs once the key is right (the
    error escaped the round: leadership was dropped and taken again every interval, health
    still SERVING)."""
    keys = Keys(tmp_path / "key.pem")
    keys.sign_with = FileKeys("test.aiaudit/log", tmp_path / "other.pem")
    append(store, tenant, 3)
    replica = replicas(keys)
    replica.step()
    assert replica.health[-1] is False and replica.notary.leading
    assert stored_sizes(admin_url, tenant) == exported_sizes(tmp_path, tenant) == []
    keys.sign_with = None
    replica.step()
    assert replica.health[-1] is True
    assert stored_sizes(admin_url, tenant) == exported_sizes(tmp_path, tenant) == [3]


def test_a_failing_round_shows_in_health_until_one_works(
    postgres: Postgres, pg_notary: str, tmp_path: Path, tenant: str
) -> None:
    """A round that fails (here the database refuses the notary's writes) integrates and
    signs nothing: health says so (it stayed SERVING while no log was signed), and comes
    back with the first round that works, which signs what waited."""
    store = open_store(postgres.app_url)
    notary_store = open_store(pg_notary)
    health: list[bool] = []
    notary = Notary(
        notary_store.engine,
        FileKeys("test.aiaudit/log", tmp_path / "key.pem"),
        leader.for_engine(notary_store.engine, leader.NOTARY),
        notary_config(tmp_path),
        health.append,
    )
    try:
        with psycopg.connect(postgres.admin_dsn, autocommit=True) as admin:
            admin.execute("REVOKE INSERT ON integrity_nodes FROM aiaudit_notary")
            try:
                append(store, tenant, 3)
                notary.start()
                wait_until(lambda: health and health[-1] is False)
            finally:
                admin.execute("GRANT INSERT ON integrity_nodes TO aiaudit_notary")
        wait_until(lambda: health[-1] is True and stored_sizes(postgres.admin_url, tenant) == [3])
    finally:
        notary.stop()
        notary_store.close()
        store.close()


def test_the_due_logs_are_read_whatever_their_number(
    store: SqlEventStore,
    replicas: Callable[[Keys], Replica],
    notary_url: str,
    tmp_path: Path,
    tenant: str,
) -> None:
    """PostgreSQL binds at most 65,535 parameters: with more logs behind (a long Vault
    outage on a large deployment) the one query for all of them failed every round, and
    no log was signed again."""
    append(store, tenant, 3)
    replicas(Keys(tmp_path / "key.pem")).step()
    engine = sa.create_engine(notary_url)
    try:
        with engine.connect() as conn:
            many = [f"{tenant}-{i}" for i in range(70_000)] + [tenant]
            assert storage.positions_and_latest(conn, "integrity", many) == [(tenant, 3, 3)]
    finally:
        engine.dispose()


def test_a_replica_whose_lock_session_died_starts_over_and_signs_what_another_integrated(
    postgres: Postgres, pg_notary: str, tmp_path: Path, tenant: str
) -> None:
    store = open_store(postgres.app_url)
    keys, keys_down = Keys(tmp_path / "key.pem"), Keys(tmp_path / "key.pem")
    a = Replica(pg_notary, keys, tmp_path)
    b = Replica(pg_notary, keys_down, tmp_path)
    try:
        append(store, tenant, 5)
        a.step()
        lock = a.notary._leadership.acquire()
        assert lock is not None
        terminate(postgres, lock)
        append(store, tenant, 3)
        keys_down.down = True
        b.step()  # b leads, integrates to 8, cannot sign
        assert b.notary.leading and b.health[-1] is False
        b.close()
        a.step()  # a notices its session died: not leading this round
        assert not a.notary.leading
        a.step()
        assert a.notary.leading
        assert stored_sizes(postgres.admin_url, tenant) == [5, 8]
    finally:
        a.close()
        store.close()


def test_an_export_interrupted_mid_write_leaves_no_torn_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "checkpoints"

    def disk_full(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(worm.os, "write", this_thread_only(disk_full, os.write))
        with pytest.raises(OSError, match="No space"):
            worm.export(directory, "acme", 7, b"\x01\x02\x03\x04", "note\n")
    assert list(worm.read_all(directory, "acme")) == []
    worm.export(directory, "acme", 7, b"\x01\x02\x03\x04", "note\n")
    worm.export(directory, "acme", 7, b"\x01\x02\x03\x04", "note\n")  # a retry: accepted
    assert list(worm.read_all(directory, "acme")) == [(7, "note\n")]
    with pytest.raises(FileExistsError, match="different checkpoint"):
        worm.export(directory, "acme", 7, b"\x01\x02\x03\x04", "other\n")
    assert [p.name for p in exported_files(directory / "acme")] == [
        "00000000000000000007-01020304.checkpoint"
    ]


@pytest.mark.parametrize("mode", ["full", "leaves"])
@pytest.mark.parametrize("during", ["_checkpoints", "_walk_pages"])
def test_verify_on_a_running_system_reports_nothing_the_system_did_meanwhile(
    store: SqlEventStore,
    replicas: Callable[[Keys], Replica],
    admin_url: str,
    tmp_path: Path,
    tenant: str,
    monkeypatch: pytest.MonkeyPatch,
    during: str,
    mode: str,
) -> None:
    """Ingest and the notary go on while ``verify`` reads (before the checkpoints are read,
    or after the pages are walked): growth is no truncation."""
    from aiaudit.integrity import verify

    keys = Keys(tmp_path / "key.pem")
    notary = replicas(keys)
    append(store, tenant, 20)
    notary.step()
    step = getattr(verify, during)

    def meanwhile(*args: object, **kwargs: object) -> object:
        append(store, tenant, 5)  # appended, integrated and signed after the head was read
        notary.step()
        return step(*args, **kwargs)

    monkeypatch.setattr(verify, during, meanwhile)
    assert verify_problems(admin_url, keys, tmp_path, tenant, mode) == []
    assert stored_sizes(admin_url, tenant) == [20, 25]


@pytest.mark.parametrize("bad", ["a\tb", "../escape"])
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_log_id_no_tenant_could_have_stops_no_other_log(
    backend: str, bad: str, tmp_path: Path, tenant: str, request: pytest.FixtureRequest
) -> None:
    """An access record once made such a log (the read RPCs took any log_id): its note could
    not be written, and every tenant's signing stopped for good; `../escape` was exported
    outside the checkpoint directory. The store takes what it is given; the notary now
    signs every other log and writes nothing outside its directory. (A database of its
    own: that log stays unsignable, and would keep any later notary unhealthy.)"""
    if backend == "sqlite":
        app_url = admin_url = notary_url = f"sqlite:///{tmp_path / 'own.db'}"
        open_store(app_url, run_migrations=True).close()
    else:
        pg: Postgres = request.getfixturevalue("own_postgres")
        app_url, admin_url, notary_url = pg.app_url, pg.admin_url, login(pg, "aiaudit_notary")
    store = open_store(app_url)
    replica = Replica(notary_url, Keys(tmp_path / "key.pem"), tmp_path)
    try:
        append(store, bad, 1)
        append(store, tenant, 2)
        replica.step()
    finally:
        replica.close()
        store.close()
    assert exported_sizes(tmp_path, tenant) == stored_sizes(admin_url, tenant) == [2]
    assert stored_sizes(admin_url, bad) == []
    assert replica.health[-1] is False  # said, not hidden
    assert not (tmp_path / "escape").exists()


def test_a_long_backlog_holds_no_other_tenant_s_checkpoint(
    store: SqlEventStore, notary_url: str, admin_url: str, tmp_path: Path, tenant: str
) -> None:
    """The notary integrated every backlog whole before signing anything: one log a million
    entries behind kept every tenant's first checkpoint waiting 33 s, against a 1 s
    interval. Now a round stops integrating once an interval is spent, and signs."""
    big, small = f"{tenant}-big", f"{tenant}-small"
    for _ in range(10):
        append(store, big, 2000)
    append(store, small, 2)
    config = dataclasses.replace(notary_config(tmp_path, interval=0.02), poll_interval=0.0)
    notary_store = open_store(notary_url)
    notary = Notary(
        notary_store.engine,
        FileKeys(ORIGIN_PREFIX, tmp_path / "key.pem"),
        leader.for_engine(notary_store.engine, leader.NOTARY),
        config,
        lambda ok: None,
    )
    try:
        notary.step()  # one round: 313 batches of 64 take far longer than 20 ms
    finally:
        notary.stop()
        notary_store.close()
    assert stored_sizes(admin_url, small) == [2]
    (first,) = stored_sizes(admin_url, big)
    assert 0 < first < 20_000  # a checkpoint of its own on the way


def test_a_checkpoint_copied_under_a_larger_size_holds_no_log(
    store: SqlEventStore,
    replicas: Callable[[Keys], Replica],
    admin_url: str,
    tmp_path: Path,
    tenant: str,
) -> None:
    """The notary holds a log behind a checkpoint it exported by the size the note is signed
    for: it took the file's name, so one of the log's own checkpoints copied to a larger name
    (anyone who may add files to the append-only directory can) stopped the log's
    checkpoints for good, with an error about a restore that never happened (review,
    2026-12-06). Such a copy is no checkpoint of that size (verify names it)."""
    keys = Keys(tmp_path / "key.pem")
    append(store, tenant, 3)
    first = replicas(keys)
    first.step()
    first.close()
    key_id = keys.inner.active().signer.verifier_key.key_id
    genuine = worm.path_for(tmp_path / "checkpoints", tenant, 3, key_id)
    worm.path_for(tmp_path / "checkpoints", tenant, 99, key_id).write_bytes(genuine.read_bytes())
    append(store, tenant, 2)
    restarted = replicas(keys)  # loads the log's edge, and looks past it in the directory
    restarted.step()
    assert stored_sizes(admin_url, tenant) == [3, 5]
    assert restarted.health[-1] is True
    assert (
        "exported checkpoint at size 99 is signed for size 3"
        in verify_problems(admin_url, keys, tmp_path, tenant)[0]
    )


def _signed_with_a_listing_refused(
    store: SqlEventStore,
    replicas: Callable[[Keys], Replica],
    tmp_path: Path,
    tenant: str,
    monkeypatch: pytest.MonkeyPatch,
    refused_path: Path,
) -> None:
    """3 events signed, then a notary restarted while listing ``refused_path`` is refused
    (root lists any folder, so the refusal is injected) signs 2 and 1 more, healthy."""
    keys = Keys(tmp_path / "key.pem")
    append(store, tenant, 3)
    first = replicas(keys)
    first.step()
    first.close()
    listed = worm.os.scandir

    def refused(path: object) -> object:
        if Path(str(path)) == refused_path:
            raise PermissionError(13, "Permission denied", str(path))
        return listed(path)  # type: ignore[call-overload]

    monkeypatch.setattr(worm.os, "scandir", refused)
    append(store, tenant, 2)
    restarted = replicas(keys)
    restarted.step()
    append(store, tenant, 1)
    restarted.step()
    assert restarted.health[-1] is True


def test_a_log_whose_exports_cannot_be_listed_is_signed_with_a_warning(
    store: SqlEventStore,
    replicas: Callable[[Keys], Replica],
    admin_url: str,
    tmp_path: Path,
    tenant: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A checkpoint folder the notary may write but not list (a write-only drop box; an I/O
    error of a mount): the restore check cannot run for that log, which is integrated and
    signed as before the check, with one warning. Its error escaped the round and held every
    log (review, 2026-12-06). Root lists any folder, so the listing's refusal is injected."""
    _signed_with_a_listing_refused(
        store, replicas, tmp_path, tenant, monkeypatch, tmp_path / "checkpoints" / tenant
    )
    assert stored_sizes(admin_url, tenant) == [3, 5, 6]
    warned = [r.getMessage() for r in caplog.records if "cannot be listed" in r.getMessage()]
    assert len(warned) == 1 and tenant in warned[0]


def test_a_checkpoint_directory_that_cannot_be_listed_is_one_warning_at_the_takeover(
    store: SqlEventStore,
    replicas: Callable[[Keys], Replica],
    admin_url: str,
    tmp_path: Path,
    tenant: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The leader compares every log with a folder there at its takeover, quiet ones too
    (2026-12-07); a directory it may write but not list cannot name them: one warning, and
    the logs with events are integrated, checked and signed as before. Root lists any
    folder, so the listing's refusal is injected."""
    directory = tmp_path / "checkpoints"
    _signed_with_a_listing_refused(store, replicas, tmp_path, tenant, monkeypatch, directory)
    assert stored_sizes(admin_url, tenant) == [3, 5, 6]
    assert [r.getMessage() for r in caplog.records if "cannot be listed" in r.getMessage()] == [
        f"the checkpoint directory cannot be listed ([Errno 13] Permission denied: "
        f"'{directory}'): a log restored from an older backup is noticed only at its next "
        f"event; give the notary read access to {directory}"
    ]
