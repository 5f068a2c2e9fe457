"""Group commit: concurrent appends share one transaction.

No timer is involved: under light load each batch commits alone at once,
under heavy load groups grow by themselves. While one transaction is in
flight, newly arriving batches queue up and the next transaction takes all of
them.

A unary append that finds no transaction in flight commits on its own
handler thread (:meth:`GroupCommitter.commit`), taking along whatever queued
meanwhile: handing every batch to a writer thread and back cost two thread
wake-ups per call, each a wait for a core on a busy machine (single-event
p99). Batches that arrive while a transaction is in flight wait for the next
one, which the writer thread commits, so no handler commits more than one
group. Streams always go through the writer (their reader keeps reading).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future

from aiaudit.common.store.sql import BatchOutcome, NewEvent, SqlEventStore

log = logging.getLogger(__name__)

_Item = tuple[Sequence[NewEvent], Future[BatchOutcome]]


class GroupCommitter:
    """Commits queued batches in groups, one transaction at a time."""

    def __init__(self, store: SqlEventStore, max_group_events: int = 5000) -> None:
        """Starts the writer thread (idle until a group is handed to it)."""
        self._store = store
        self._max = max_group_events
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._queue: list[_Item] = []
        self._busy = False
        """A transaction is in flight, or the writer has been told to start one."""
        self._handed_over = False
        """The writer should commit the queue (its turn, not an inline committer's)."""
        self._stopping = False
        self.groups_committed = 0
        """Transactions attempted so far (a metric; tests use it to see grouping)."""
        self.in_flight = 0
        """Batches in the transaction under way."""
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def submit(self, batch: Sequence[NewEvent]) -> Future[BatchOutcome]:
        """Queues a batch for the writer; the future resolves after its transaction commits."""
        future: Future[BatchOutcome] = Future()
        with self._lock:
            self._queue.append((batch, future))
            if not self._busy:
                self._busy = True
                self._hand_over()
        return future

    def commit(self, batch: Sequence[NewEvent]) -> Future[BatchOutcome]:
        """Like :meth:`submit`, but commits on this thread when no transaction is in flight."""
        future: Future[BatchOutcome] = Future()
        with self._lock:
            self._queue.append((batch, future))
            if self._busy:
                return future
            self._busy = True
            group = self._take()
        try:
            self._commit(group)
        finally:  # whatever happened, the next group must not wait for this one forever
            self._finish()
        return future

    def backlog(self) -> int:
        """Batches waiting for the next transaction."""
        with self._lock:
            return len(self._queue)

    def close(self) -> None:
        """Commits what is queued, then stops the writer."""
        with self._lock:
            self._stopping = True
            self._wake.notify()
        self._thread.join()

    def _hand_over(self) -> None:
        """Gives the queue to the writer thread (the lock is held)."""
        self._handed_over = True
        self._wake.notify()

    def _take(self) -> list[_Item]:
        """The next group: queued batches up to the size limit (the lock is held)."""
        size, n = 0, 0
        for batch, _ in self._queue:
            if n and size + len(batch) > self._max:
                break
            size += len(batch)
            n += 1
        group, self._queue = self._queue[:n], self._queue[n:]
        return group

    def _finish(self) -> None:
        """After a transaction: the writer takes what queued meanwhile, or all is idle."""
        with self._lock:
            if self._queue:
                self._hand_over()
                return
            self._busy = False
            if self._stopping:  # the writer waits for the last transaction to end
                self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._handed_over:
                    if self._stopping and not self._busy:
                        return
                    self._wake.wait()
                self._handed_over = False
                group = self._take()
            try:
                self._commit(group)
            finally:
                self._finish()

    def _commit(self, group: list[_Item]) -> None:
        self.in_flight = len(group)
        try:
            outcomes = self._store.append_group([b for b, _ in group])
        except Exception as exc:  # the store is down or refused: nothing was acknowledged
            log.warning("group commit of %d batches failed: %s", len(group), exc)
            for _, future in group:
                future.set_exception(exc)
            return
        finally:
            self.groups_committed += 1
            self.in_flight = 0
        for (_, future), outcome in zip(group, outcomes, strict=True):
            future.set_result(outcome)
