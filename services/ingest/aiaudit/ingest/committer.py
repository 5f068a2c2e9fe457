"""Group commit: concurrent appends share one transaction.

Handlers hand their batch to a single writer thread and wait. While one
transaction is in flight, newly arriving batches queue up; the next
transaction takes all of them. No timer is involved: under light load each
batch commits alone at once, under heavy load groups grow by themselves.

A log whose head another session holds (an erasure of that tenant, a recorder
left in a transaction, another replica's long commit) must not hold the other
tenants' appends: the writer waits at most ``lock_timeout`` for a head, then
commits the group without that log's batches and hands them to a lane of the
log's own, which waits for the head as long as it takes. Until that lane has
drained, the log's later batches go to it straight away. At most
``max_lanes`` lanes commit at once (a thread and a connection each, waiting);
the lanes of further busy logs wait their turn, first come first served. Until
2026-12-05 the one writer waited on the lock with no limit: every tenant's
appends stalled behind one tenant's erasure, then answered UNAVAILABLE after
30 s and were committed anyway (review); until the lanes were capped, as many
busy logs took as many connections.

The writer never calls the KEK (Vault): a batch with a subject whose data key
this process does not hold goes first to a key-preparation thread, which
unwraps its stored key or wraps a new one (:meth:`SqlEventStore.prepare_keys`,
one KEK call for the batches waiting) and then hands it to the writer; if the
KEK is out of reach, those batches alone fail (:class:`KekError`). The writer
appends with ``prepared_only``: a key found not ready after all (taken by a
batch that rolled back, evicted) sends its batches back to be prepared, with
no KEK call. Until 2026-12-05 the writer made the keys itself: a hanging Vault
held every tenant's group for ``content_vault_timeout`` (5 s), keys held or not
(review).
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future, InvalidStateError

from aiaudit.common.keys.kek import KekError
from aiaudit.common.keys.seal import SealError
from aiaudit.common.store.sql import (
    BatchOutcome,
    KeysNotPreparedError,
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

MAX_LANES = 4
"""Lanes committing at once, each holding a server connection while it waits for its
busy log's head (the store's pool holds 10, and 10 more, by default): many busy tenants
leave connections, and the database's, to the writer and the reads. A busy log beyond
them waits, first come first served, for a lane to drain, holding none; the writer, and
every other tenant, go on meanwhile (as the access records' lanes,
:data:`aiaudit.common.access.MAX_LANES`)."""

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
    """The batches of one log whose head was busy, set aside until a lane thread commits them."""

    def __init__(self, log_id: str) -> None:
        self.log_id = log_id
        self.queue: list[Item] = []


class GroupCommitter:
    """Single writer thread that commits queued batches in groups (and lanes for busy logs)."""

    def __init__(
        self,
        store: SqlEventStore,
        max_group_events: int = 5000,
        lock_timeout: float | None = LOCK_TIMEOUT,
        max_lanes: int = MAX_LANES,
    ) -> None:
        """Starts the writer thread.

        ``lock_timeout``: see :data:`LOCK_TIMEOUT` (None: no limit); ``max_lanes``:
        see :data:`MAX_LANES`.
        """
        self._store = store
        self._max = max_group_events
        self._lock_timeout = lock_timeout
        self._max_lanes = max(1, max_lanes)
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.lanes: dict[str, _Lane] = {}
        """Logs whose head was busy, each with the lane its batches go to."""
        self.lanes_lock = threading.Lock()
        self._turns: collections.deque[_Lane] = collections.deque()
        """Lanes no thread serves yet, in the order their logs were found busy."""
        self._lane_threads: set[threading.Thread] = set()
        """The threads serving lanes (at most ``max_lanes``)."""
        self.groups_committed = 0
        """Transactions attempted so far (a metric; tests use it to see grouping)."""
        self.in_flight = 0
        """Batches in the writer's transaction under way."""
        self._preparing: queue.SimpleQueue[object] = queue.SimpleQueue()
        """Batches whose data keys are made ready before they go to the writer."""
        self._preparer_stopped = False
        self._preparer_lock = threading.Lock()  # no batch sent back to a stopped preparer
        self._preparer = threading.Thread(
            target=self._prepare, name="group-commit-keys", daemon=True
        )
        self._preparer.start()
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def submit(self, batch: Sequence[NewEvent]) -> Future[BatchOutcome]:
        """Queues a batch; the future resolves after its transaction commits (or fails).

        A future cancelled before its batch is taken drops the batch (a handler
        that gave up waiting); once taken, it commits whatever its handler does.
        """
        future: Future[BatchOutcome] = Future()
        if self._keys_known(batch):
            self._queue.put((batch, future))
        else:
            self._preparing.put((batch, future))
        return future

    def backlog(self) -> int:
        """Batches waiting for the next transaction (or for their data keys first)."""
        return self._queue.qsize() + self._preparing.qsize()

    def close(self) -> None:
        """Commits what is queued, then stops the writer and waits for the lanes."""
        self._preparing.put(_STOP)
        self._preparer.join()
        self._queue.put(_STOP)
        self._thread.join()
        while True:
            with self.lanes_lock:
                threads = list(self._lane_threads)
            if not threads:
                return
            for thread in threads:
                thread.join()

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

    def _prepare(self) -> None:
        """Makes the data keys of the batches waiting ready (one KEK call), then queues them.

        A KEK out of reach fails these batches alone: the writer, and the
        batches whose keys are held, go on meanwhile.
        """
        while True:
            item = self._preparing.get()
            items: list[Item] = []
            stopping = False
            while True:
                if item is _STOP:
                    stopping = True
                    break
                assert isinstance(item, tuple)
                if not item[1].cancelled():
                    items.append(item)
                try:
                    item = self._preparing.get_nowait()
                except queue.Empty:
                    break
            if items:
                try:
                    self._store.prepare_keys([b for b, _ in items])
                except Exception as exc:  # KekError: Vault out of reach; or the store
                    log.warning("data keys of %d batches not made: %s", len(items), exc)
                    for _, future in items:
                        _settle(future, exc)
                else:
                    for each in items:
                        self._queue.put(each)
            if stopping:
                with self._preparer_lock:
                    self._preparer_stopped = True
                    left = []
                    while not self._preparing.empty():
                        left.append(self._preparing.get_nowait())
                for item in left:  # sent back by the writer meanwhile
                    assert isinstance(item, tuple)
                    _settle(item[1], KekError("data keys not ready while ingest stops"))
                return

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
                    lane = self.lanes[busy] = _Lane(busy)
                    self._turns.append(lane)
                    if len(self._lane_threads) < self._max_lanes:
                        thread = threading.Thread(
                            target=self._serve_lanes, name="group-commit-lane", daemon=True
                        )
                        self._lane_threads.add(thread)
                        thread.start()  # it takes the lock to find its lane: not before we do
                if lane is None:
                    kept.append(item)
                else:
                    lane.queue.append(item)
        return kept

    def _serve_lanes(self) -> None:
        """Drains lanes, one at a time, in their turn; exits when none is waiting.

        A lane waits for its head as long as it takes. A drained lane is closed:
        the log's next batches go to the writer again.
        """
        lane: _Lane | None = None
        while True:
            with self.lanes_lock:
                if lane is None:
                    if not self._turns:
                        self._lane_threads.discard(threading.current_thread())
                        return
                    lane = self._turns.popleft()
                group, lane.queue = lane.queue, []
                if not group:
                    del self.lanes[lane.log_id]
                    lane = None
                    continue
            self.commit(group, lock_timeout=None)

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
            outcomes = self._store.append_group(
                [b for b, _ in group], lock_timeout=lock_timeout, prepared_only=True
            )
        except KeysNotPreparedError as unready:
            # A key not ready after all (no KEK call made): those batches are prepared
            # again, apart; the others go on now.
            later = [g for g in group if any((e.log_id, e.subject) in unready.pairs for e in g[0])]
            later = later or group
            rest = [g for g in group if all(g is not x for x in later)]
            for item in later:
                with self._preparer_lock:
                    if not self._preparer_stopped:
                        self._preparing.put(item)
                        continue
                _settle(item[1], KekError("data keys not ready while ingest stops"))
            if rest:
                self.commit(rest, lock_timeout)
            return
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
