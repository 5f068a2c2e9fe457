"""The group committer on both stores: who commits a batch, and how batches are grouped."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from concurrent.futures import Future

import pytest

from aiaudit.common.store.prepare import prepare
from aiaudit.common.store.sql import BatchOutcome, NewEvent, SqlEventStore
from aiaudit.ingest.committer import GroupCommitter
from tests.helpers import interaction


class WatchedStore:
    """The real store, noting which thread committed each group and holding commits on demand."""

    def __init__(self, store: SqlEventStore) -> None:
        self._store = store
        self.groups: list[tuple[str, int]] = []
        self.held = threading.Event()
        self.held.set()
        self.entered = threading.Event()
        self.interrupt: BaseException | None = None
        """Raised by the next commit instead of committing (a signal arriving mid-commit)."""

    def append_group(self, batches: Sequence[Sequence[NewEvent]]) -> list[BatchOutcome]:
        self.entered.set()
        self.held.wait()
        if self.interrupt is not None:
            interrupt, self.interrupt = self.interrupt, None
            raise interrupt
        out = self._store.append_group(batches)
        self.groups.append((threading.current_thread().name, len(batches)))
        return out


def batch(tenant: str, name: str, n: int = 1) -> list[NewEvent]:
    now = dt.datetime.now(dt.UTC)
    return [prepare(interaction(tenant, f"{name}-{i}"), now) for i in range(n)]


@pytest.fixture
def watched(store: SqlEventStore) -> WatchedStore:
    return WatchedStore(store)


def committer_over(watched: WatchedStore, max_group_events: int = 5000) -> GroupCommitter:
    return GroupCommitter(watched, max_group_events)  # type: ignore[arg-type]


def test_an_idle_committer_commits_a_unary_batch_on_the_callers_thread(
    watched: WatchedStore, tenant: str
) -> None:
    committer = committer_over(watched)
    try:
        future = committer.commit(batch(tenant, "a"))
        assert future.done()  # committed before commit() returned: no hand-off
        (receipt,) = future.result()  # type: ignore[misc]
        assert receipt.sequence == 0
        assert watched.groups == [(threading.current_thread().name, 1)]
    finally:
        committer.close()


def test_batches_arriving_during_a_transaction_go_to_the_writer_as_one_group(
    watched: WatchedStore, tenant: str
) -> None:
    committer = committer_over(watched)
    watched.held.clear()
    first: list[Future[BatchOutcome]] = []
    leader = threading.Thread(
        target=lambda: first.append(committer.commit(batch(tenant, "lead"))), name="leader"
    )
    leader.start()
    try:
        assert watched.entered.wait(20)
        # The leader's transaction is in flight: these queue, on commit() and submit() alike.
        waiting = [committer.commit(batch(tenant, f"w{i}")) for i in range(5)]
        waiting.append(committer.submit(batch(tenant, "streamed")))
        assert committer.backlog() == 6
        assert not any(f.done() for f in waiting)
    finally:
        watched.held.set()
    leader.join()
    sequences = sorted(r.sequence for f in [*first, *waiting] for r in f.result(20))  # type: ignore[union-attr]
    assert sequences == list(range(7))
    assert watched.groups == [("leader", 1), ("group-commit", 6)]
    committer.close()


def test_a_group_holds_at_most_max_group_events(watched: WatchedStore, tenant: str) -> None:
    committer = committer_over(watched, max_group_events=4)
    watched.held.clear()
    leader = threading.Thread(target=lambda: committer.commit(batch(tenant, "lead")), name="leader")
    leader.start()
    try:
        assert watched.entered.wait(20)
        futures = [committer.submit(batch(tenant, f"b{i}", 3)) for i in range(3)]
    finally:
        watched.held.set()
    leader.join()
    for f in futures:
        f.result(20)
    # 3 + 3 would exceed 4: each 3-event batch is a group of its own.
    assert [n for _, n in watched.groups] == [1, 1, 1, 1]


def test_close_waits_for_an_inline_transaction_and_commits_what_is_queued(
    watched: WatchedStore, tenant: str
) -> None:
    committer = committer_over(watched)
    watched.held.clear()
    leader = threading.Thread(target=lambda: committer.commit(batch(tenant, "lead")), name="leader")
    leader.start()
    assert watched.entered.wait(20)
    queued = committer.submit(batch(tenant, "queued"))
    closing = threading.Thread(target=committer.close)
    closing.start()
    watched.held.set()
    closing.join(20)
    leader.join(20)
    assert not closing.is_alive()
    assert [r.sequence for r in queued.result(0)] == [1]  # type: ignore[union-attr]


class Interrupted(BaseException):
    """Not an Exception: what a signal handler may raise in the middle of a commit."""


def test_an_interrupted_inline_commit_does_not_stall_the_next_one(
    watched: WatchedStore, tenant: str
) -> None:
    committer = committer_over(watched)
    try:
        watched.interrupt = Interrupted()
        with pytest.raises(Interrupted):
            committer.commit(batch(tenant, "interrupted"))
        future = committer.commit(batch(tenant, "next"))
        assert future.done()  # inline again: the committer did not stay busy
        assert [r.sequence for r in future.result()] == [0]  # type: ignore[union-attr]
    finally:
        committer.close()
