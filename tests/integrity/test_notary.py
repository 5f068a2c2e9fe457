"""The notary on SQLite and PostgreSQL: integrates, signs, resumes, and leads alone."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from aiaudit.common import leader
from aiaudit.common.store import SqlEventStore, open_store
from aiaudit.integrity import merkle, note, storage, worm
from aiaudit.integrity.notary import Notary
from aiaudit.integrity.signers import FileKeys
from tests.conftest import Postgres
from tests.helpers import wait_until
from tests.integrity.conftest import (
    ORIGIN_PREFIX,
    Notaries,
    append,
    leaf_hashes,
    notary_config,
    stepping,
)


def latest(url: str, tenant: str) -> storage.StoredCheckpoint | None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return storage.latest_checkpoint(conn, tenant)
    finally:
        engine.dispose()


def all_checkpoints(url: str, tenant: str) -> list[storage.StoredCheckpoint]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(storage.all_checkpoints(conn, tenant))
    finally:
        engine.dispose()


def covers(url: str, tenant: str, size: int) -> bool:
    cp = latest(url, tenant)
    return cp is not None and cp.tree_size >= size


def check_history(url: str, tenant: str, keys: list[note.VerifierKey]) -> None:
    """Every checkpoint is validly signed, commits to a prefix of the log, and extends the last."""
    leaves = leaf_hashes(url, tenant)
    previous: storage.StoredCheckpoint | None = None
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            reader = storage.NodeTable(conn, tenant)
            for cp in storage.all_checkpoints(conn, tenant):
                body = note.open_checkpoint(cp.signed_note, keys, f"{ORIGIN_PREFIX}/{tenant}")
                assert (body.size, body.root_hash) == (cp.tree_size, cp.root_hash)
                assert cp.root_hash == merkle.root(leaves[: cp.tree_size])
                if previous is not None:
                    proof = merkle.consistency_proof(previous.tree_size, cp.tree_size, reader)
                    merkle.verify_consistency(
                        previous.tree_size, cp.tree_size, previous.root_hash, cp.root_hash, proof
                    )
                previous = cp
    finally:
        engine.dispose()


def test_integrates_signs_exports_and_proves(
    store: SqlEventStore, notaries: Notaries, tenant: str, tmp_path: Path
) -> None:
    keys = FileKeys("test.aiaudit/log", tmp_path / "key.pem")
    append(store, tenant, 10)
    notaries.start(keys)
    wait_until(lambda: covers(notaries.url, tenant, 10))
    first = latest(notaries.url, tenant)
    assert first is not None and first.tree_size == 10
    receipts = append(store, tenant, 7)
    wait_until(lambda: covers(notaries.url, tenant, 17))
    check_history(notaries.url, tenant, keys.verifier_keys())

    cp = latest(notaries.url, tenant)
    assert cp is not None and cp.tree_size == 17
    # The exported copy is byte for byte the stored note, read-only.
    key_id = keys.verifier_keys()[0].key_id
    exported = worm.path_for(tmp_path / "checkpoints", tenant, 17, key_id)
    assert exported.read_text() == cp.signed_note
    assert exported.stat().st_mode & 0o222 == 0
    # Inclusion of a receipt's leaf against the checkpoint, from stored nodes.
    engine = sa.create_engine(notaries.url)
    with engine.connect() as conn:
        r = receipts[3]
        proof = merkle.inclusion_proof(r.sequence, 17, storage.NodeTable(conn, tenant))
    engine.dispose()
    merkle.verify_inclusion(r.sequence, 17, r.leaf_hash, proof, cp.root_hash)


def test_no_checkpoint_when_the_tree_did_not_grow(
    store: SqlEventStore, notaries: Notaries, tenant: str, tmp_path: Path
) -> None:
    keys = FileKeys("test.aiaudit/log", tmp_path / "key.pem")
    append(store, tenant, 3)
    notary = notaries.start(keys, interval=0.01)
    wait_until(lambda: covers(notaries.url, tenant, 3))
    other = f"{tenant}-other"
    append(store, other, 2)  # another log grows; the first one must not be re-signed
    wait_until(lambda: covers(notaries.url, other, 2))
    assert notary.leading
    assert [c.tree_size for c in all_checkpoints(notaries.url, tenant)] == [3]


def test_resumes_from_stored_nodes_after_a_restart(
    store: SqlEventStore, notaries: Notaries, tenant: str, tmp_path: Path
) -> None:
    keys = FileKeys("test.aiaudit/log", tmp_path / "key.pem")
    append(store, tenant, 5)
    first = notaries.start(keys)
    wait_until(lambda: covers(notaries.url, tenant, 5))
    first.stop()
    append(store, tenant, 6)  # integrated by a new process with nothing in memory
    notaries.start(keys)
    wait_until(lambda: covers(notaries.url, tenant, 11))
    check_history(notaries.url, tenant, keys.verifier_keys())


def test_two_notaries_never_diverge_and_the_follower_takes_over(
    store: SqlEventStore, notaries: Notaries, tenant: str, tmp_path: Path
) -> None:
    keys = FileKeys("test.aiaudit/log", tmp_path / "key.pem")
    a = notaries.start(keys, interval=0.01)
    b = notaries.start(keys, interval=0.01)
    stop = threading.Event()
    both_led: list[bool] = []

    def writer() -> None:
        while not stop.is_set():
            append(store, tenant, 3)
            both_led.append(a.leading and b.leading)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        wait_until(lambda: a.leading or b.leading)
        wait_until(lambda: len(all_checkpoints(notaries.url, tenant)) >= 3)
        leader, follower = (a, b) if a.leading else (b, a)
        assert not follower.leading
        leader.stop()  # the lock is released; the follower must take over
        wait_until(lambda: follower.leading)
        before = len(all_checkpoints(notaries.url, tenant))
        wait_until(lambda: len(all_checkpoints(notaries.url, tenant)) >= before + 3)
    finally:
        stop.set()
        thread.join()
    size = len(leaf_hashes(notaries.url, tenant))
    wait_until(lambda: covers(notaries.url, tenant, size))
    assert not any(both_led)
    check_history(notaries.url, tenant, keys.verifier_keys())


def test_the_notary_role_cannot_rewrite_history(
    postgres: Postgres, tmp_path: Path, tenant: str
) -> None:
    from tests.integrity.conftest import login

    store = open_store(postgres.app_url)
    append(store, tenant, 4)
    store.close()
    url = login(postgres, "aiaudit_notary")
    notaries = Notaries(url, tmp_path, [])
    notaries.start(FileKeys("test.aiaudit/log", tmp_path / "key.pem"))
    try:
        wait_until(lambda: covers(url, tenant, 4))
    finally:
        for n, s in notaries.started:
            n.stop()
            s.close()
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    for statement in (
        "UPDATE integrity_nodes SET hash = hash WHERE log_id = %s",
        "DELETE FROM integrity_nodes WHERE log_id = %s",
        "UPDATE integrity_checkpoints SET root_hash = root_hash WHERE log_id = %s",
        "DELETE FROM integrity_checkpoints WHERE log_id = %s",
        "UPDATE events SET model_name = 'x' WHERE log_id = %s",
    ):
        with psycopg.connect(dsn) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement, (tenant,))


def test_node_reads_of_a_fresh_log_look_up_each_node_once(postgres: Postgres) -> None:
    """No statistics yet on a new log's nodes: a proof's read must not scan the whole log."""
    import hashlib
    import json
    import uuid

    log_id = f"fresh-{uuid.uuid4().hex[:8]}"
    leaves = [(merkle.NodeID(0, i), hashlib.sha256(b"%d" % i).digest()) for i in range(300)]
    wanted = [merkle.NodeID(0, i) for i in (3, 150, 299)] + [merkle.NodeID(0, 300)]
    engine = sa.create_engine(postgres.admin_url)
    try:
        with engine.begin() as conn:
            storage.write_nodes(conn, log_id, leaves)
        with engine.connect() as conn:
            reader = storage.NodeTable(conn, log_id)
            assert reader.read_nodes(wanted[:3]) == [leaves[i][1] for i in (3, 150, 299)]
            with pytest.raises(merkle.MissingNodeError, match=r"NodeID\(level=0, index=300\)"):
                reader.read_nodes(wanted)
            raw = conn.connection.driver_connection
            assert raw is not None
            with raw.cursor() as cur:
                cur.execute(
                    "EXPLAIN (ANALYZE, FORMAT JSON) "
                    + str(storage._NODES_BY_ARRAYS)
                    .replace(":levels", "%(levels)s")
                    .replace(":idxs", "%(idxs)s")
                    .replace(":log_id", "%(log_id)s"),
                    {
                        "levels": [n.level for n in wanted],
                        "idxs": [n.index for n in wanted],
                        "log_id": log_id,
                    },
                )
                row = cur.fetchone()
            assert row is not None
            plan = row[0] if not isinstance(row[0], str) else json.loads(row[0])
    finally:
        engine.dispose()

    def visited(node: dict[str, object]) -> int:
        rows = 0
        if node.get("Relation Name") == "integrity_nodes":
            rows += int(node["Actual Rows"]) * int(node["Actual Loops"])  # type: ignore[call-overload]
        for child in node.get("Plans", []):  # type: ignore[attr-defined]
            rows += visited(child)
        return rows

    assert visited(plan[0]["Plan"]) <= len(wanted)  # one primary-key probe per wanted node


def test_a_round_reads_until_a_batch_comes_back_short(
    store: SqlEventStore,
    notary_url: str,
    tenant: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A backlog longer than a batch is integrated in one round, and a short batch ends
    the round: reading on until one comes back empty would, under a steady stream of
    small commits (every read's access record), integrate one leaf at a time forever."""
    keys = FileKeys("test.aiaudit/log", tmp_path / "key.pem")
    append(store, tenant, 70)  # a full batch (64) and 6 more
    reads: list[int] = []
    read_leaves = storage.leaves

    def counted(conn: sa.Connection, log_id: str, start: int, limit: int) -> object:
        rows = read_leaves(conn, log_id, start, limit)
        if log_id == tenant:  # logs other tests left behind in the database read too
            reads.append(len(rows))
        return rows

    monkeypatch.setattr(storage, "leaves", counted)
    with stepping(notary_url, keys, tmp_path) as notary:
        notary.step()  # the first round integrates everything waiting, then signs at once
        assert reads == [64, 6]
        cp = latest(notary_url, tenant)
        assert cp is not None and cp.tree_size == 70
        append(store, tenant, 2)
        notary.start()  # later rounds take the rest
        wait_until(lambda: covers(notary_url, tenant, 72))
    check_history(notary_url, tenant, keys.verifier_keys())


class _CountedLock:
    """The real leadership, with the time of every attempt to take it."""

    def __init__(self, inner: leader.Leadership) -> None:
        self.inner = inner
        self.attempts: list[float] = []

    def acquire(self) -> sa.Connection | None:
        self.attempts.append(time.monotonic())
        return self.inner.acquire()

    def release(self) -> None:
        self.inner.release()


def test_a_follower_tries_for_the_lock_once_a_poll_interval(
    notaries: Notaries, notary_url: str, tmp_path: Path
) -> None:
    keys = FileKeys("test.aiaudit/log", tmp_path / "key.pem")
    first = notaries.start(keys)
    wait_until(lambda: first.leading)
    store = open_store(notary_url)
    lock = _CountedLock(leader.for_engine(store.engine, leader.NOTARY))
    config = notary_config(tmp_path)
    follower = Notary(store.engine, keys, lock, config)
    follower.start()
    try:
        wait_until(lambda: len(lock.attempts) >= 4)
        assert not follower.leading
        # Three waits between four attempts (it used to ask again at once, ~1,000 times a second).
        assert lock.attempts[3] - lock.attempts[0] >= 3 * config.poll_interval * 0.9
    finally:
        follower.stop()
        store.close()
