"""Domain <-> proto for alerts and rules."""

from __future__ import annotations

from aiaudit.alerting.detectors import Finding
from aiaudit.alerting.model import ACKNOWLEDGED, FIRING, RESOLVED, Alert, StoredRule
from aiaudit.alerting.v1 import alerting_service_pb2 as pb

STATES = {
    FIRING: pb.ALERT_STATE_FIRING,
    ACKNOWLEDGED: pb.ALERT_STATE_ACKNOWLEDGED,
    RESOLVED: pb.ALERT_STATE_RESOLVED,
}


def evidence(x: Finding, content: bool) -> pb.Evidence:
    """A finding on the wire; its excerpt (quoted content) only with ``content``."""
    return pb.Evidence(
        detector=x.detector,
        score=x.score,
        field=x.field,
        start=x.start,
        end=x.end,
        excerpt=x.excerpt if content else "",
    )


def alert(a: Alert, *, content: bool) -> pb.Alert:
    """An alert on the wire; ``content``: the caller holds ``content.read`` on the tenant.

    Without it the evidence excerpts (the only part of an alert that quotes
    content: summaries and dedup keys cannot name a content field) are blank,
    as an erasure leaves them; detector, field, offsets and score stay.
    """
    out = pb.Alert(
        name=f"tenants/{a.tenant}/alerts/{a.alert_id}",
        rule=f"tenants/{a.tenant}/rules/{a.rule_id}",
        severity=a.severity,  # type: ignore[arg-type]
        state=STATES[a.state],
        summary=a.summary,
        dedup_key=a.dedup_key,
        event_ids=a.event_ids,
        evidence=[evidence(x, content) for x in a.evidence],
        labels=a.labels,
        occurrence_count=a.occurrence_count,
        acknowledged_by=a.acknowledged_by,
        resolved_by=a.resolved_by,
        resolve_reason=a.resolve_reason,
    )
    out.create_time.FromDatetime(a.create_time)
    out.last_seen_time.FromDatetime(a.last_seen_time)
    if a.acknowledge_time is not None:
        out.acknowledge_time.FromDatetime(a.acknowledge_time)
    if a.resolve_time is not None:
        out.resolve_time.FromDatetime(a.resolve_time)
    return out


def rule(r: StoredRule, *, source: bool) -> pb.Rule:
    """A rule on the wire; ``source``: the caller may see the rule's source.

    A source can quote what the rule looks for (an IP address, a phrase in
    messages): without the permissions the rule reads (``handlers``) it is
    withheld, empty; name, flag, severity and etag stay.
    """
    out = pb.Rule(
        name=f"tenants/{r.tenant}/rules/{r.rule_id}",
        source=r.source if source else "",
        enabled=r.enabled,
        severity=r.severity,  # type: ignore[arg-type]
        etag=r.etag,
    )
    out.update_time.FromDatetime(r.update_time)
    return out
