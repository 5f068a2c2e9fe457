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

A stopping server gives the lanes until shortly before its grace ends
(:meth:`GroupCommitter.stop_lanes_by`): then their waits for heads are given
up (:class:`HeadWait`: the statement locking the head is cancelled, nothing of
its transaction written) and their batches answered :class:`StoppingError`,
while their calls can still be answered. Until 2026-12-05 ``close`` waited for
the lanes with no limit: a head held by an operator's open transaction held
SIGTERM until Kubernetes killed the process.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, InvalidStateError

from aiaudit.common.keys.kek import KekError
from aiaudit.common.keys.seal import SealError
from aiaudit.common.store.sql import (
    AppendInterruptedError,
    BatchOutcome,
    HeadWait,
    KeysNotPreparedError,
    LogBusyError,
    NewEvent,
    RowsRefusedError,
    SqlEventStore,
    StoredRetriesDamagedError,
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

ANSWER_SECONDS = 0.5
"""How long before the end of a stop's grace the lanes give up: their calls are answered
then, before gRPC cancels what is still in flight."""

GIVE_UP_SECONDS = 5.0
"""How long giving the lanes up may take: cancels of their waits, and a lane that had its
heads and is committing (the chart leaves 5 s after the grace to stop the components)."""

RESEND_SECONDS = 0.1
"""A cancel that reached a lane's session before its statement did is discarded there:
sent again after this, until the wait has ended."""

Item = tuple[Sequence[NewEvent], Future[BatchOutcome]]


class StoppingError(Exception):
    """The server stopped before the batch's log head was free: nothing of it was written."""

    def __init__(self) -> None:
        """The one reason there is."""
        super().__init__(
            "ingest is stopping and the batch's log head was held by another session: "
            "nothing of the batch was written"
        )


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
        self._lane_threads: dict[threading.Thread, HeadWait] = {}
        """The threads serving lanes (at most ``max_lanes``), with their waits for heads."""
        self._lanes_ended = threading.Condition(self.lanes_lock)
        """Notified when a lane thread ends."""
        self._give_up_at: float | None = None
        """When the lanes give up (``time.monotonic``), once a stop said so."""
        self._given_up = False
        """Lanes gave up: a batch that would wait in one is answered StoppingError."""
        self._give_up_timer: threading.Timer | None = None
        self.groups_committed = 0
        """Transactions attempted so far (a metric; tests use it to see grouping)."""
        self.in_flight = 0
        """Batches in the writer's transaction under way."""
        self._preparing: queue.SimpleQueue[object] = queue.SimpleQueue()
        """Batches whose data keys are made ready before they go to the writer."""
        self._preparer_stopped = False
        self._preparer_lock = threading.Lock()
        """No batch sent back to a stopped preparer; guards ``_unready``."""
        self._unready = 0
        """Batches handed to the key preparation, neither queued for the writer nor answered."""
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
            with self._preparer_lock:
                self._unready += 1
            self._preparing.put((batch, future))
        return future

    def backlog(self) -> int:
        """Batches waiting for the next transaction (or for their data keys first).

        Those whose keys are being made count too: until 2026-12-06 only the two
        queues were counted, and a batch the key preparation had taken from its
        queue but not yet handed to the writer's was in neither (a flaky test).
        """
        return sum(self.stages().values())

    def ready(self) -> int:
        """Batches whose data keys are ready, queued for the writer's next transaction."""
        return self.stages()["ready"]

    def stages(self) -> dict[str, int]:
        """Batches waiting, by stage: ``keys`` (their data keys being made) and ``ready``.

        One snapshot (a batch moves from one to the other under the lock): the
        ``aiaudit.ingest.commit.queue`` gauge. A queue growing in ``keys`` is
        Vault Transit slow or out of reach; in ``ready``, the store.
        """
        with self._preparer_lock:
            return {"keys": self._unready, "ready": self._queue.qsize()}

    def stop_lanes_by(self, deadline: float) -> None:
        """The server stops, cancelling the calls still in flight at ``deadline``.

        ``deadline`` is ``time.monotonic``. The lanes give up :data:`ANSWER_SECONDS`
        before it (at once if that is past), so that their calls are answered
        :class:`StoppingError` rather than cancelled.
        """
        at = deadline - ANSWER_SECONDS
        with self.lanes_lock:
            if self._give_up_at is not None and self._give_up_at <= at:
                return
            self._give_up_at = at
            if self._give_up_timer is not None:
                self._give_up_timer.cancel()
            timer = self._give_up_timer = threading.Timer(
                max(0.0, at - time.monotonic()), self._give_up
            )
        timer.name, timer.daemon = "group-commit-give-up", True
        timer.start()

    def close(self) -> None:
        """Commits what is queued and stops the writer; then ends the lanes, in bounded time.

        The lanes wait for their heads until the time :meth:`stop_lanes_by` set
        (none set: they give up at once); what is left in them then is answered
        :class:`StoppingError`, nothing of it written.
        """
        self._preparing.put(_STOP)
        self._preparer.join()
        self._queue.put(_STOP)
        self._thread.join()
        with self.lanes_lock:
            if self._give_up_at is not None:
                left = self._give_up_at - time.monotonic()
                self._lanes_ended.wait_for(lambda: not self._lane_threads, max(0.0, left))
            timer, self._give_up_timer = self._give_up_timer, None
        if timer is not None:
            timer.cancel()
        until = time.monotonic() + GIVE_UP_SECONDS
        self._give_up(until)
        with self.lanes_lock:
            left = max(0.0, until - time.monotonic())
            if not self._lanes_ended.wait_for(lambda: not self._lane_threads, left):
                # Their batches are answered by those threads, as their commits end: a
                # lane that had its heads commits, one that did not fails, never both.
                log.warning(
                    "ingest stopped with lanes still committing (logs %s)", sorted(self.lanes)
                )

    def _give_up(self, until: float | None = None) -> None:
        """Answers the batches waiting in lanes StoppingError and gives up the lanes' waits.

        ``until`` (``time.monotonic``; by default :data:`GIVE_UP_SECONDS` from now)
        bounds the cancels.

        A lane thread cut in its wait answers its batches StoppingError; one
        past its wait commits them, and answers them so. Either way, no lane
        commits after its batches were answered that nothing was written.
        """
        with self.lanes_lock:
            self._given_up = True
            left = [item for lane in self.lanes.values() for item in lane.queue]
            for lane in self.lanes.values():
                lane.queue = []
            waits = list(self._lane_threads.values())
        for _, future in left:
            _settle(future, StoppingError())
        if until is None:
            until = time.monotonic() + GIVE_UP_SECONDS
        while waits:
            waits = [w for w in waits if w.give_up(max(0.1, until - time.monotonic()))]
            for wait in waits:
                wait.ended.wait(max(0.0, min(RESEND_SECONDS, until - time.monotonic())))
            if time.monotonic() >= until:
                if waits:
                    log.warning("%d lanes' waits for log heads did not end", len(waits))
                return

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
            dropped = 0
            stopping = False
            while True:
                if item is _STOP:
                    stopping = True
                    break
                assert isinstance(item, tuple)
                if item[1].cancelled():
                    dropped += 1
                else:
                    items.append(item)
                try:
                    item = self._preparing.get_nowait()
                except queue.Empty:
                    break
            if dropped:
                with self._preparer_lock:
                    self._unready -= dropped
            if items:
                try:
                    self._store.prepare_keys([b for b, _ in items])
                except Exception as exc:  # KekError: Vault out of reach; or the store
                    log.warning("data keys of %d batches not made: %s", len(items), exc)
                    with self._preparer_lock:
                        self._unready -= len(items)
                    for _, future in items:
                        _settle(future, exc)
                else:
                    with self._preparer_lock:  # queued and uncounted at once: backlog() exact
                        for each in items:
                            self._queue.put(each)
                        self._unready -= len(items)
            if stopping:
                with self._preparer_lock:
                    self._preparer_stopped = True
                    left = []
                    while not self._preparing.empty():
                        left.append(self._preparing.get_nowait())
                    self._unready -= len(left)
                for item in left:  # sent back by the writer meanwhile
                    assert isinstance(item, tuple)
                    _settle(item[1], KekError("data keys not ready while ingest stops"))
                return

    def _to_lanes(self, group: list[Item], busy: str | None = None) -> list[Item]:
        """The batches left to the writer: those of a log with a lane (or ``busy``) go to it.

        Once the lanes gave up, those are answered StoppingError instead.
        """
        if not self.lanes and busy is None:
            return group
        kept: list[Item] = []
        stopped: list[Item] = []
        with self.lanes_lock:
            for item in group:
                logs = {e.log_id for e in item[0]}
                lane = next((self.lanes[x] for x in sorted(logs) if x in self.lanes), None)
                if self._given_up and (lane is not None or busy in logs):
                    stopped.append(item)
                    continue
                if lane is None and busy in logs:
                    assert busy is not None
                    lane = self.lanes[busy] = _Lane(busy)
                    self._turns.append(lane)
                    if len(self._lane_threads) < self._max_lanes:
                        wait = HeadWait()
                        thread = threading.Thread(
                            target=self._serve_lanes,
                            args=(wait,),
                            name="group-commit-lane",
                            daemon=True,
                        )
                        self._lane_threads[thread] = wait
                        thread.start()  # it takes the lock to find its lane: not before we do
                if lane is None:
                    kept.append(item)
                else:
                    lane.queue.append(item)
        for _, future in stopped:
            _settle(future, StoppingError())
        return kept

    def _serve_lanes(self, wait: HeadWait) -> None:
        """Drains lanes, one at a time, in their turn; exits when none is waiting.

        A lane waits for its head as long as it takes, or until the lanes give
        up (``wait``). A drained lane is closed: the log's next batches go to
        the writer again.
        """
        lane: _Lane | None = None
        while True:
            with self.lanes_lock:
                if lane is None:
                    if not self._turns:
                        del self._lane_threads[threading.current_thread()]
                        self._lanes_ended.notify_all()
                        return
                    lane = self._turns.popleft()
                group, lane.queue = lane.queue, []
                if not group:
                    del self.lanes[lane.log_id]
                    lane = None
                    continue
            self.commit(group, lock_timeout=None, head_wait=wait)

    def _keys_known(self, batch: Sequence[NewEvent]) -> bool:
        """Whether every data key the batch needs is one this process holds (no KEK call)."""
        keys = self._store.keys
        return keys is None or not keys.unknown((e.log_id, e.subject) for e in batch if e.sealed)

    def commit(
        self, group: list[Item], lock_timeout: float | None, head_wait: HeadWait | None = None
    ) -> None:
        """Commits a group, resolving each batch's future (the writer's and the lanes' way).

        ``head_wait``: a lane's, which a stop gives up (:meth:`stop_lanes_by`, :meth:`close`).
        """
        group = [item for item in group if not item[1].cancelled()]
        if not group:
            return
        try:
            outcomes = self._store.append_group(
                [b for b, _ in group],
                lock_timeout=lock_timeout,
                prepared_only=True,
                head_wait=head_wait,
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
                        self._unready += 1
                        self._preparing.put(item)
                        continue
                _settle(item[1], KekError("data keys not ready while ingest stops"))
            if rest:
                self.commit(rest, lock_timeout, head_wait)
            return
        except LogBusyError as busy:
            # A head held elsewhere: that log's batches wait in its lane, the rest go on now.
            log.info("log %r busy: its batches wait apart from the others", busy.log_id)
            rest = self._to_lanes(group, busy.log_id)
            if rest:
                self.commit(rest, lock_timeout, head_wait)
            return
        except AppendInterruptedError:  # a lane given up while it waited for its head
            log.info("%d batches waiting for a busy log head given up: stopping", len(group))
            for _, future in group:
                _settle(future, StoppingError())
            return
        except (RowsRefusedError, SealError, StoredRetriesDamagedError) as refused:
            # One batch's value, a damaged data key of one batch's subject, or a retry of
            # an event whose stored row does not read: commit each alone, only that one
            # fails (until 2026-12-06 the last failed the whole group, as an outage).
            if len(group) > 1:
                for each in group:
                    self.commit([each], lock_timeout, head_wait)
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
                self.commit(known, lock_timeout, head_wait)
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
