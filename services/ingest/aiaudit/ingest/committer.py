"""Group commit: concurrent appends share one transaction.

Handlers hand their batch to a single writer thread and wait. While one
transaction is in flight, newly arriving batches queue up; the next
transaction takes all of them. No timer is involved: under light load each
batch commits alone at once, under heavy load groups grow by themselves.

A log whose head another session holds (an erasure of that tenant, a recorder
left in a transaction, another replica's long commit) must not hold the other
tenants' appends: the writer waits at most ``lock_timeout`` for a head, then
commits the group without that log's batches and hands them to a lane of the
log's own, a thread that waits for the head as long as it takes. Until that
lane has drained, the log's later batches go to it straight away. Until
2026-12-05 the one writer waited on the lock with no limit: every tenant's
appends stalled behind one tenant's erasure, then answered UNAVAILABLE after
30 s and were committed anyway (review).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future, InvalidStateError

from aiaudit.common.keys.kek import KekError
from aiaudit.common.keys.seal import SealError
from aiaudit.common.store.sql import (
    BatchOutcome,
    LogBusyError,
    NewEvent,
    RowsRefusedError,
    SqlEventStore,
)

log = logging.getLogger(__name__)

_STOP = object()

LOCK_TIMEOUT = 1.0
"""Seconds the writer waits for a log's head before setting that log's batches aside.

Longer than a group commit holds a head (tens of milliseconds; a 5,000-event
group about 0.3 s), so that replicas taking turns on one log stay on the writer."""

Item = tuple[Sequence[NewEvent], Future[BatchOutcome]]


def _settle(future: Future[BatchOutcome], outcome: BatchOutcome | BaseException) -> None:
    """Resolves a batch's future, unless its handler gave up on it (cancelled) meanwhile."""
    try:
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
    except InvalidStateError:
        pass


class _Lane:
    """The batches of one log whose head was busy, committed in their own thread."""

    def __init__(self, committer: GroupCommitter, log_id: str) -> None:
        self.log_id = log_id
        self.queue: list[Item] = []
        self._committer = committer
        self.thread = threading.Thread(target=self._run, name=f"group-commit-{log_id}", daemon=True)

    def _run(self) -> None:
        committer = self._committer
        while True:
            with committer.lanes_lock:
                group, self.queue = self.queue, []
                if not group:  # drained: the log's batches go to the writer again
                    del committer.lanes[self.log_id]
                    return
            committer.commit(group, lock_timeout=None)


class GroupCommitter:
    """Single writer thread that commits queued batches in groups (and lanes for busy logs)."""

    def __init__(
        self,
        store: SqlEventStore,
        max_group_events: int = 5000,
        lock_timeout: float | None = LOCK_TIMEOUT,
    ) -> None:
        """Starts the writer thread. ``lock_timeout``: see :data:`LOCK_TIMEOUT` (None: no limit)."""
        self._store = store
        self._max = max_group_events
        self._lock_timeout = lock_timeout
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.lanes: dict[str, _Lane] = {}
        """Logs whose head was busy, each with the lane its batches go to."""
        self.lanes_lock = threading.Lock()
        self.groups_committed = 0
        """Transactions attempted so far (a metric; tests use it to see grouping)."""
        self.in_flight = 0
        """Batches in the writer's transaction under way."""
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def submit(self, batch: Sequence[NewEvent]) -> Future[BatchOutcome]:
        """Queues a batch; the future resolves after its transaction commits (or fails).

        A future cancelled before its batch is taken drops the batch (a handler
        that gave up waiting); once taken, it commits whatever its handler does.
        """
        future: Future[BatchOutcome] = Future()
        self._queue.put((batch, future))
        return future

    def backlog(self) -> int:
        """Batches waiting for the next transaction."""
        return self._queue.qsize()

    def close(self) -> None:
        """Commits what is queued, then stops the writer and waits for the lanes."""
        self._queue.put(_STOP)
        self._thread.join()
        while True:
            with self.lanes_lock:
                lanes = list(self.lanes.values())
            if not lanes:
                return
            for lane in lanes:
                lane.thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            group: list[Item] = []
            size = 0
            item = self._queue.get()
            while True:
                if item is _STOP:
                    stopping = True
                    break
                assert isinstance(item, tuple)
                group.append(item)
                size += len(item[0])
                if size >= self._max:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            group = self._to_lanes(group)
            if group:
                self.in_flight = len(group)
                try:
                    self.commit(group, self._lock_timeout)
                finally:
                    self.in_flight = 0

    def _to_lanes(self, group: list[Item], busy: str | None = None) -> list[Item]:
        """The batches left to the writer: those of a log with a lane (or ``busy``) go to it."""
        if not self.lanes and busy is None:
            return group
        kept: list[Item] = []
        with self.lanes_lock:
            for item in group:
                logs = {e.log_id for e in item[0]}
                lane = next((self.lanes[x] for x in sorted(logs) if x in self.lanes), None)
                if lane is None and busy in logs:
                    assert busy is not None
                    lane = self.lanes[busy] = _Lane(self, busy)
                    lane.thread.start()  # it takes the lock to read its queue: not before we do
                if lane is None:
                    kept.append(item)
                else:
                    lane.queue.append(item)
        return kept

    def _keys_known(self, batch: Sequence[NewEvent]) -> bool:
        """Whether every data key the batch needs is one this process holds (no KEK call)."""
        keys = self._store.keys
        return keys is None or not keys.unknown((e.log_id, e.subject) for e in batch if e.sealed)

    def commit(self, group: list[Item], lock_timeout: float | None) -> None:
        """Commits a group, resolving each batch's future (the writer's and the lanes' way)."""
        group = [item for item in group if not item[1].cancelled()]
        if not group:
            return
        try:
            outcomes = self._store.append_group([b for b, _ in group], lock_timeout=lock_timeout)
        except LogBusyError as busy:
            # A head held elsewhere: that log's batches wait in its lane, the rest go on now.
            log.info("log %r busy: its batches wait apart from the others", busy.log_id)
            rest = self._to_lanes(group, busy.log_id)
            if rest:
                self.commit(rest, lock_timeout)
            return
        except (RowsRefusedError, SealError) as refused:
            # One batch's value, or a damaged data key of one batch's subject: commit
            # each alone, only that one fails.
            if len(group) > 1:
                for each in group:
                    self.commit([each], lock_timeout)
                return
            log.warning("the store refused a batch: %s", refused)
            _settle(group[0][1], refused)
            return
        except KekError as exc:  # Vault out of reach: batches whose keys are known go on
            known = [g for g in group if self._keys_known(g[0])]
            if known and len(known) < len(group):
                going_on = {id(future) for _, future in known}
                for _, future in group:
                    if id(future) not in going_on:
                        _settle(future, exc)
                self.commit(known, lock_timeout)
                return
            log.warning("group commit of %d batches failed: %s", len(group), exc)
            for _, future in group:
                _settle(future, exc)
            return
        except Exception as exc:  # the store is down or refused: not acknowledged
            log.warning("group commit of %d batches failed: %s", len(group), exc)
            for _, future in group:
                _settle(future, exc)
            return
        finally:
            self.groups_committed += 1
        for (_, future), outcome in zip(group, outcomes, strict=True):
            _settle(future, outcome)
