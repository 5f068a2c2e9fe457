"""Alerts and stored rules as plain data (no grpc, no SQL)."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

from aiaudit.alerting.detectors import Finding

FIRING, ACKNOWLEDGED, RESOLVED = "firing", "acknowledged", "resolved"
OPEN_STATES = (FIRING, ACKNOWLEDGED)


@dataclass(frozen=True)
class StoredRule:
    """A rule as the tenant sees it: source, enabled flag, whether it comes from the pack."""

    tenant: str
    rule_id: str
    source: str
    enabled: bool
    severity: int
    update_time: dt.datetime
    builtin: bool = False

    @property
    def etag(self) -> str:
        """The rule's version as stored (AIP-154): every update sets a new update time.

        Not a hash of the source: the etag is shown to callers the source is
        withheld from, and a hash of a rule naming one IP address is guessed by
        trying them all.
        """
        raw = "\0".join((self.rule_id, self.update_time.isoformat(), str(self.enabled)))
        return hashlib.sha256(raw.encode()).hexdigest()[:24]


@dataclass
class Alert:
    """An alert and its lifecycle."""

    tenant: str
    alert_id: str
    rule_id: str
    dedup_key: str
    state: str
    severity: int
    summary: str
    event_ids: list[str]
    evidence: list[Finding]
    labels: dict[str, str]
    occurrence_count: int
    create_time: dt.datetime
    last_seen_time: dt.datetime
    acknowledged_by: str = ""
    acknowledge_time: dt.datetime | None = None
    resolved_by: str = ""
    resolve_time: dt.datetime | None = None
    resolve_reason: str = ""
    change_seq: int = 0
    """Position among the tenant's alert changes (in commit order); WatchAlerts tails it."""
    extra: dict[str, str] = field(default_factory=dict)
