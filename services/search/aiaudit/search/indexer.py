"""The indexer: tails every tenant's log into the search backend.

The log is the outbox. For each log with entries past the backend's position,
the indexer reads a batch from the store, builds the documents, and hands them
to the backend, which indexes them (idempotently, by document id) and only
then records the new position. A backend that is down is retried with
exponential backoff (health NOT_SERVING meanwhile); nothing is skipped, so on
recovery it catches up and every event is indexed exactly once. A stored event
that cannot be read back (a damaged row) holds only its own tenant's log, with
an error naming it, so one tenant's damage never stops the others.

Wake-ups: a commit on the store's engine in this process (an ingest batch,
an access record) wakes the indexer at once; otherwise it polls every
``poll_interval`` seconds (commits from other processes).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy import event as sa_event

from aiaudit.common.store import SqlEventStore
from aiaudit.search import document
from aiaudit.search.backends.base import SearchBackend

log = logging.getLogger(__name__)


class Indexer:
    """A background thread moving log entries into the search backend."""

    def __init__(
        self,
        store: SqlEventStore,
        backend: SearchBackend,
        batch_size: int,
        poll_interval: float,
        max_backoff: float,
        on_health: Callable[[bool], None],
    ) -> None:
        """Not started until :meth:`start`."""
        self._store = store
        self._backend = backend
        self._batch = batch_size
        self._poll = poll_interval
        self._max_backoff = max_backoff
        self._on_health = on_health
        self._stalled: dict[str, int] = {}
        """Logs held at a damaged event (log id -> its sequence); other logs go on."""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._progress = threading.Condition()
        self._positions: dict[str, int] = {}
        self._thread = threading.Thread(target=self._run, name="search-indexer", daemon=True)
        self._watched: list[sa.Engine] = []

    def watch(self, engine: sa.Engine) -> None:
        """Wakes up on every commit made through this engine in this process."""
        sa_event.listen(engine, "commit", self._on_commit)
        self._watched.append(engine)

    def _on_commit(self, _conn: object) -> None:
        self._wake.set()

    def start(self) -> None:
        """Starts tailing."""
        self._thread.start()

    def stop(self) -> None:
        """Stops after the batch in flight."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)
        for engine in self._watched:
            sa_event.remove(engine, "commit", self._on_commit)

    def wait_indexed(self, log_id: str, size: int, timeout: float) -> bool:
        """Waits until the first ``size`` entries of a log are indexed."""
        deadline = time.monotonic() + timeout
        with self._progress:
            while self._positions.get(log_id, 0) < size:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.set()
                self._progress.wait(min(left, 0.5))
        return True

    def _run(self) -> None:
        backoff = 0.0
        healthy = True
        while not self._stop.is_set():
            self._wake.clear()
            try:
                progressed = self.run_once()
            except Exception as exc:  # the backend or the store is down: retry, skip nothing
                backoff = min(max(backoff * 2, 0.2), self._max_backoff)
                if healthy:
                    log.warning("search indexer paused: %s", exc)
                    self._on_health(False)
                    healthy = False
                self._stop.wait(backoff)
                continue
            if not healthy:
                log.info("search indexer resumed")
                self._on_health(True)
                healthy = True
            backoff = 0.0
            if not progressed:
                self._wake.wait(self._poll)

    def run_once(self) -> bool:
        """Indexes one batch of every log that is behind; whether anything was indexed."""
        positions = self._backend.positions()
        with self._progress:
            self._positions.update(positions)
            self._progress.notify_all()
        progressed = False
        for log_id, size in sorted(self._store.log_sizes().items()):
            start = positions.get(log_id, 0)
            if size <= start or self._stop.is_set():
                continue
            entries = self._store.read_log(log_id, start, self._batch)
            if not entries:
                continue
            try:
                docs = [document.build(e.to_event(), e.sequence) for e in entries]
            except Exception as exc:  # a damaged row: hold this log, keep indexing the others
                if self._stalled.get(log_id) != start:
                    log.error(
                        "search indexer holds log %s at sequence %d: %s "
                        "(the stored event is damaged; `aiaudit verify` names it)",
                        log_id,
                        start,
                        exc,
                    )
                    self._stalled[log_id] = start
                continue
            self._stalled.pop(log_id, None)
            end = entries[-1].sequence + 1
            self._backend.write(log_id, docs, end)
            with self._progress:
                self._positions[log_id] = end
                self._progress.notify_all()
            progressed = True
        return progressed
