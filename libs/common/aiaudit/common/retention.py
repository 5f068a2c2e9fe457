"""Content retention: content received more than ``days`` ago is erased, and that recorded.

The PRD asks for configurable retention with automated deletion. Only the
content goes (message text and parts, system instructions, RAG chunks, tool
arguments, reasoning: what the canonical form holds as salted commitments);
canonical forms, leaves, proofs and checkpoints stay, as after an erasure,
so the log verifies forever while what it committed to is gone. Each
deletion appends an ``EVENT_TYPE_RETENTION_APPLIED`` record naming its
events in the same transaction; ``verify``, ``VerifyEvent``, the search index
and the alerting engine read it as they read an erasure record
(:data:`aiaudit.common.erasure.RECORD_TYPES`). Age is the receive time, set by
the server: a client's ``occurred_time`` in the past cannot expire content early.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence

from aiaudit.common import erasure, leader
from aiaudit.common.store.prepare import prepare
from aiaudit.common.store.sql import NewEvent, SqlEventStore
from aiaudit.common.v1 import event_pb2
from aiaudit.common.worker import Worker

log = logging.getLogger(__name__)

REQUESTER = "aiaudit-retention"
"""Who the records name as having asked: the policy, not a person."""
CHUNK = 10_000
"""Events a record names at most (one transaction each)."""
MAX_DAYS = 36_500
"""Longest policy (a century; beyond, the cut-off passes the calendar's first year)."""
MAX_INTERVAL = 7 * 86_400
"""Longest wait between sweeps (a longer one overflowed the wait and ended the thread)."""


def sweep(
    store: SqlEventStore,
    days: int,
    now: dt.datetime,
    log_ids: Sequence[str] = (),
    chunk: int = CHUNK,
) -> dict[str, int]:
    """Erases the content received before ``now - days``, in every log or those named.

    Returns how many events' content went, per log.
    """
    cutoff = now - dt.timedelta(days=days)
    reason = (
        f"retention policy: content received more than {days} days ago "
        f"(before {cutoff.isoformat()})"
    )
    expired: dict[str, int] = {}
    for log_id in log_ids or sorted(store.log_sizes()):
        record_of = _recorder(log_id, reason, now)
        while done := store.expire_content(log_id, cutoff, chunk, record_of):
            ids, record_id = done
            expired[log_id] = expired.get(log_id, 0) + len(ids)
            log.info(
                "retention: content of %d events of log %s erased, recorded as %s",
                len(ids),
                log_id,
                record_id,
            )
            if len(ids) < chunk:
                break
    return expired


def _recorder(log_id: str, reason: str, now: dt.datetime) -> Callable[[list[str]], NewEvent]:
    def record_of(ids: list[str]) -> NewEvent:
        event = erasure.erasure_event(
            log_id, ids, reason, REQUESTER, "", now, event_pb2.EVENT_TYPE_RETENTION_APPLIED
        )
        return prepare(event, now)

    return record_of


class RetentionSweeper(Worker):
    """Sweeps at start and every ``interval`` seconds, on one replica at a time."""

    def __init__(
        self,
        store: SqlEventStore,
        days: int,
        interval: float,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        """``store`` must be allowed to delete content (the privacy login, or embedded)."""
        super().__init__("retention")
        self._store, self._days, self._interval, self._clock = store, days, interval, clock
        self._leadership = leader.for_engine(store.engine, leader.RETENTION)
        self.sweeps = 0
        """Sweeps completed by this replica (what tests wait for)."""

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._leadership.acquire() is not None:
                    sweep(self._store, self._days, self._clock())
                    self.sweeps += 1
            except Exception:  # the store down: the next interval retries, nothing lost
                log.exception("retention sweep failed; retrying in %gs", self._interval)
                self._leadership.release()
            self._wake.wait(self._interval)  # settings bound it (1 s to a week)
            self._wake.clear()

    def stop(self, timeout: float = 30.0) -> None:
        """Finishes the current sweep, stops, and gives up leadership."""
        super().stop(timeout)
        self._leadership.release()
