"""Group commit: concurrent appends share one transaction.

Handlers hand their batch to a single writer thread and wait. While one
transaction is in flight, newly arriving batches queue up; the next
transaction takes all of them. No timer is involved: under light load each
batch commits alone at once, under heavy load groups grow by themselves.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future

from aiaudit.common.keys.kek import KekError
from aiaudit.common.keys.seal import SealError
from aiaudit.common.store.sql import BatchOutcome, NewEvent, RowsRefusedError, SqlEventStore

log = logging.getLogger(__name__)

_STOP = object()


class GroupCommitter:
    """Single writer thread that commits queued batches in groups."""

    def __init__(self, store: SqlEventStore, max_group_events: int = 5000) -> None:
        """Starts the writer thread."""
        self._store = store
        self._max = max_group_events
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.groups_committed = 0
        """Transactions attempted so far (a metric; tests use it to see grouping)."""
        self.in_flight = 0
        """Batches in the transaction under way."""
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def submit(self, batch: Sequence[NewEvent]) -> Future[BatchOutcome]:
        """Queues a batch; the future resolves after its transaction commits (or fails)."""
        future: Future[BatchOutcome] = Future()
        self._queue.put((batch, future))
        return future

    def backlog(self) -> int:
        """Batches waiting for the next transaction."""
        return self._queue.qsize()

    def close(self) -> None:
        """Commits what is queued, then stops the writer."""
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            group: list[tuple[Sequence[NewEvent], Future[BatchOutcome]]] = []
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
            if group:
                self._commit(group)

    def _keys_known(self, batch: Sequence[NewEvent]) -> bool:
        """Whether every data key the batch needs is one this process holds (no KEK call)."""
        keys = self._store.keys
        return keys is None or not keys.unknown((e.log_id, e.subject) for e in batch if e.sealed)

    def _commit(self, group: list[tuple[Sequence[NewEvent], Future[BatchOutcome]]]) -> None:
        self.in_flight = len(group)
        try:
            outcomes = self._store.append_group([b for b, _ in group])
        except (RowsRefusedError, SealError) as refused:
            # One batch's value, or a damaged data key of one batch's subject: commit
            # each alone, only that one fails.
            if len(group) > 1:
                for each in group:
                    self._commit([each])
                return
            log.warning("the store refused a batch: %s", refused)
            group[0][1].set_exception(refused)
            return
        except KekError as exc:  # Vault out of reach: batches whose keys are known go on
            known = [g for g in group if self._keys_known(g[0])]
            if known and len(known) < len(group):
                going_on = {id(future) for _, future in known}
                for _, future in group:
                    if id(future) not in going_on:
                        future.set_exception(exc)
                self._commit(known)
                return
            log.warning("group commit of %d batches failed: %s", len(group), exc)
            for _, future in group:
                future.set_exception(exc)
            return
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
