"""The group committer on both stores: batches queued behind a transaction share the next one."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa

from aiaudit.common.store import open_store
from aiaudit.common.store.prepare import prepare
from aiaudit.common.store.sql import (
    BatchOutcome,
    HeadWait,
    NewEvent,
    RowsRefusedError,
    SqlEventStore,
    StoredRetriesDamagedError,
)
from aiaudit.ingest.committer import GroupCommitter
from tests.conftest import Postgres
from tests.helpers import interaction, wait_until


class HeldStore:
    """The real store, counting the batches of each group and holding commits (and the
    making of data keys) on demand."""

    def __init__(self, store: SqlEventStore) -> None:
        self._store = store
        self.keys = store.keys
        self.groups: list[int] = []
        self.held = threading.Event()
        self.held.set()
        self.entered = threading.Event()
        self.keys_held = threading.Event()
        self.keys_held.set()
        self.keys_entered = threading.Event()

    def append_group(
        self,
        batches: Sequence[Sequence[NewEvent]],
        lock_timeout: float | None = None,
        prepared_only: bool = False,
        head_wait: HeadWait | None = None,
    ) -> list[BatchOutcome]:
        self.entered.set()
        self.held.wait()
        out = self._store.append_group(batches, lock_timeout, prepared_only, head_wait)
        self.groups.append(len(batches))
        return out

    def prepare_keys(self, batches: Sequence[Sequence[NewEvent]]) -> None:
        self.keys_entered.set()
        self.keys_held.wait()
        self._store.prepare_keys(batches)


def batch(tenant: str, name: str) -> list[NewEvent]:
    return [prepare(interaction(tenant, name), dt.datetime.now(dt.UTC))]


@pytest.fixture
def held(store: SqlEventStore) -> HeldStore:
    return HeldStore(store)


def test_batches_queued_behind_a_transaction_share_the_next_one(
    held: HeldStore, tenant: str
) -> None:
    """On SQLite content is sealed: the subject's key, made for the first batch, is held
    once that commits, so the waiting batches have theirs made first (the key preparation
    thread), then queue for the writer. The transaction is let go once all six are queued:
    until 2026-12-06 it was at once, and the group could be cut by a batch still being
    prepared ([1, 1, 5] under load; backlog() did not count those either: "4 != 6")."""
    committer = GroupCommitter(held)  # type: ignore[arg-type]
    held.held.clear()
    first = committer.submit(batch(tenant, "first"))
    try:
        assert held.entered.wait(20)
        waiting = [committer.submit(batch(tenant, f"w{i}")) for i in range(6)]
        assert committer.backlog() == 6
        wait_until(lambda: committer.ready() == 6)
        assert committer.backlog() == 6
        assert not first.done() and not any(f.done() for f in waiting)
    finally:
        held.held.set()
    sequences = sorted(r.sequence for f in [first, *waiting] for r in f.result(20))  # type: ignore[union-attr]
    assert sequences == list(range(7))
    assert held.groups == [1, 6]
    committer.close()


def test_the_backlog_counts_batches_whose_keys_are_being_made(tmp_path: Path, tenant: str) -> None:
    """A batch the key preparation took from its queue is in neither queue until its key
    is ready: the backlog counted it as nothing until 2026-12-06. (A SQLite store seals
    its content with the file KEK beside it; on PostgreSQL the tests store it in clear,
    with no keys to make.)"""
    store = open_store(f"sqlite:///{tmp_path / 'aiaudit.db'}", run_migrations=True)
    held = HeldStore(store)
    committer = GroupCommitter(held)  # type: ignore[arg-type]
    try:
        held.keys_held.clear()
        new = committer.submit(batch(tenant, "new"))
        assert held.keys_entered.wait(20)
        assert (committer.backlog(), committer.ready()) == (1, 0)
        held.keys_held.set()
        assert [r.sequence for r in new.result(20)] == [0]  # type: ignore[union-attr]
        assert (committer.backlog(), committer.ready()) == (0, 0)
    finally:
        held.keys_held.set()
        committer.close()
        store.close()


def test_close_commits_what_is_queued(held: HeldStore, tenant: str) -> None:
    committer = GroupCommitter(held)  # type: ignore[arg-type]
    held.held.clear()
    first = committer.submit(batch(tenant, "first"))
    assert held.entered.wait(20)
    queued = committer.submit(batch(tenant, "queued"))
    closing = threading.Thread(target=committer.close)
    closing.start()
    held.held.set()
    closing.join(20)
    assert not closing.is_alive()
    assert [r.sequence for r in first.result(0)] == [0]  # type: ignore[union-attr]
    assert [r.sequence for r in queued.result(0)] == [1]  # type: ignore[union-attr]


def test_a_value_the_database_refuses_fails_its_own_batch_only(
    postgres: Postgres, tenant: str
) -> None:
    """Validation keeps such values out; should one pass it, its neighbours still commit."""
    store = open_store(postgres.app_url)
    held = HeldStore(store)
    committer = GroupCommitter(held)  # type: ignore[arg-type]
    try:
        held.held.clear()
        first = committer.submit(batch(tenant, "first"))
        assert held.entered.wait(20)
        bad = interaction(tenant, "bad")
        bad.actor.user_id = "u" * 300  # longer than the varchar(256) column
        group = [
            committer.submit(batch(tenant, "before")),
            committer.submit([prepare(bad, dt.datetime.now(dt.UTC))]),
            committer.submit(batch(tenant, "after")),
        ]
        held.held.set()
        with pytest.raises(RowsRefusedError, match="too long"):
            group[1].result(20)
        committed = [first, group[0], group[2]]
        assert sorted(r.sequence for f in committed for r in f.result(20)) == [0, 1, 2]  # type: ignore[union-attr]
        assert held.groups == [1, 1, 1]  # committed: the first, then the good two one by one
        assert store.log_sizes()[tenant] == 3
    finally:
        held.held.set()
        committer.close()
        store.close()


def test_a_retry_of_an_event_stored_as_text_fails_its_own_batch_only(
    tmp_path: Path, tenant: str
) -> None:
    """SQLite keeps any type in any column: a stored event whose canonical form raw SQL
    rewrote as text cannot be read by the idempotency check, so a retry of it cannot be
    compared. Its batch is refused naming it and the column; until 2026-12-06 the read's
    error failed every batch of the group commit, as a store outage ("retry"), for good."""
    url = f"sqlite:///{tmp_path / 'aiaudit.db'}"
    store = open_store(url, run_migrations=True)
    stored = interaction(tenant, "stored")
    store.append_group([[prepare(stored, dt.datetime.now(dt.UTC))]])
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE events SET canonical = CAST(canonical AS TEXT) WHERE log_id = :t"),
            {"t": tenant},
        )
    engine.dispose()
    held = HeldStore(store)
    committer = GroupCommitter(held)  # type: ignore[arg-type]
    other = f"{tenant}-z"
    try:
        held.held.clear()
        first = committer.submit(batch(tenant, "first"))
        assert held.entered.wait(20)
        group = [
            committer.submit(batch(tenant, "before")),
            committer.submit([prepare(stored, dt.datetime.now(dt.UTC))]),  # a retry
            committer.submit(batch(other, "after")),  # a new log: its key is made first
        ]
        wait_until(lambda: committer.ready() == 3)  # the three are one group
        held.held.set()
        with pytest.raises(StoredRetriesDamagedError, match=r"events\.canonical is stored as text"):
            group[1].result(20)
        assert [r.sequence for r in first.result(20)] == [1]  # type: ignore[union-attr]
        assert [r.sequence for r in group[0].result(20)] == [2]  # type: ignore[union-attr]
        assert [r.sequence for r in group[2].result(20)] == [0]  # type: ignore[union-attr]
        assert held.groups == [1, 1, 1]  # the first, then the group's other two one by one
        assert store.log_sizes() == {tenant: 3, other: 1}
    finally:
        held.held.set()
        committer.close()
        store.close()
