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

Retention by classification: ``by_class`` keeps the content of some
``DataClassification``s for a number of days of their own (0: forever), the
others ``days``; UNSPECIFIED is kept as INTERNAL, as ``event.proto`` says.
Each group of classifications kept equally long is swept apart, found by the
``event_content.data_classification`` column ingest fills (revision ``0013``),
and gets records of its own naming the classifications in their reason.

Retention by tenant: a tenant's own :class:`Policy` (``days`` and ``by_class``,
as above) replaces the global one for its log alone; the others keep the global
one. Its records' reason starts "tenant retention policy:" where the global
policy's say "retention policy:", so an auditor reading the log can tell which
applied. Each log is swept with its policy's groups only, so a tenant of its own
policy costs what a tenant of the global one does, and one that keeps content
forever costs no query and is never swept by the global periods.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

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
CLASSES: dict[str, int] = {
    "public": event_pb2.DATA_CLASSIFICATION_PUBLIC,
    "internal": event_pb2.DATA_CLASSIFICATION_INTERNAL,
    "confidential": event_pb2.DATA_CLASSIFICATION_CONFIDENTIAL,
    "restricted": event_pb2.DATA_CLASSIFICATION_RESTRICTED,
}
"""The classifications a policy may name (UNSPECIFIED is kept as INTERNAL), by setting key."""
_NAMES: dict[int, str] = {number: name for name, number in CLASSES.items()} | {
    event_pb2.DATA_CLASSIFICATION_UNSPECIFIED: "unspecified"
}


@dataclass(frozen=True)
class Policy:
    """A tenant's own retention: ``days`` and ``by_class`` as the global settings say them."""

    days: int
    """Days content is kept after it was received; 0 keeps it forever."""
    by_class: Mapping[int, int] = field(default_factory=dict)
    """Days of the classifications kept otherwise, by ``DataClassification`` number."""

    def erases(self) -> bool:
        """Whether it expires any content (else the tenant keeps everything forever)."""
        return bool(groups(self.days, self.by_class))


GLOBAL = "retention policy"
"""How the global policy's records' reason begins."""
TENANT = "tenant retention policy"
"""How the reason of a record made under a tenant's own policy begins."""


def groups(days: int, by_class: Mapping[int, int]) -> list[tuple[int, frozenset[int] | None]]:
    """(days, the classifications kept that long) of each period that expires content.

    None stands for every classification (no ``by_class``: one query, as
    before classification); 0 days keeps content forever, so it sweeps nothing.
    """
    if not by_class:
        return [(days, None)] if days else []
    kept = {number: by_class.get(number, days) for number in CLASSES.values()}
    kept[event_pb2.DATA_CLASSIFICATION_UNSPECIFIED] = kept[event_pb2.DATA_CLASSIFICATION_INTERNAL]
    periods: dict[int, set[int]] = {}
    for number, period in kept.items():
        if period:
            periods.setdefault(period, set()).add(number)
    return sorted((period, frozenset(numbers)) for period, numbers in periods.items())


def sweep(
    store: SqlEventStore,
    days: int,
    now: dt.datetime,
    log_ids: Sequence[str] = (),
    chunk: int = CHUNK,
    by_class: Mapping[int, int] | None = None,
    by_tenant: Mapping[str, Policy] | None = None,
) -> dict[str, int]:
    """Erases the content received before ``now - days``, in every log or those named.

    ``by_class``: days of the classifications kept otherwise (by enum number).
    ``by_tenant``: the logs of a policy of their own, swept by it alone.
    Returns how many events' content went, per log.
    """
    expired: dict[str, int] = {}
    everyone = (GLOBAL, groups(days, by_class or {}))
    own = {t: (TENANT, groups(p.days, p.by_class)) for t, p in (by_tenant or {}).items()}
    for log_id in log_ids or sorted(store.log_sizes()):
        policy, periods = own.get(log_id, everyone)
        for period, classes in periods:
            cutoff = now - dt.timedelta(days=period)
            reason = _reason(policy, period, classes, cutoff)
            record_of = _recorder(log_id, reason, now)
            while done := store.expire_content(log_id, cutoff, chunk, record_of, classes):
                ids, record_id = done
                expired[log_id] = expired.get(log_id, 0) + len(ids)
                log.info(
                    "retention: content of %d events of log %s erased (%s), recorded as %s",
                    len(ids),
                    log_id,
                    policy,
                    record_id,
                )
                if len(ids) < chunk:
                    break
    return expired


def _reason(policy: str, days: int, classes: frozenset[int] | None, cutoff: dt.datetime) -> str:
    """What the record says: which policy, the classifications it covered, the cut-off."""
    which = ""
    if classes is not None:
        which = " classified " + ", ".join(_NAMES[n] for n in sorted(classes))
    return (
        f"{policy}: content{which} received more than {days} days ago (before {cutoff.isoformat()})"
    )


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
        by_class: Mapping[int, int] | None = None,
        by_tenant: Mapping[str, Policy] | None = None,
    ) -> None:
        """``store`` must be allowed to delete content (the privacy login, or embedded)."""
        super().__init__("retention")
        self._store, self._days, self._interval, self._clock = store, days, interval, clock
        self._by_class, self._by_tenant = by_class, by_tenant
        self._leadership = leader.for_engine(store.engine, leader.RETENTION)
        self.sweeps = 0
        """Sweeps completed by this replica (what tests wait for)."""

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._leadership.acquire() is not None:
                    sweep(
                        self._store,
                        self._days,
                        self._clock(),
                        by_class=self._by_class,
                        by_tenant=self._by_tenant,
                    )
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
