"""Checks of one stored event against what the log committed to (pure, no I/O).

Shared by ``VerifyEvent`` and ``aiaudit verify`` so both name problems the
same way.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping

from aiaudit.common import canonical
from aiaudit.common.v1 import event_pb2


def event_problems(
    log_id: str,
    event_id: str,
    leaf: bytes,
    committed: bytes | None,
    salt: bytes | None,
    content: Mapping[str, str] | None,
) -> list[str]:
    """What is wrong with a stored event given its log entry (event id, leaf hash)."""
    if committed is None:
        return ["the event row is missing (deleted?) but its log entry remains"]
    problems = []
    if canonical.leaf_hash(committed) != leaf:
        problems.append("canonical form does not match the log entry's leaf hash (changed)")
    try:
        node = json.loads(committed)
    except ValueError:
        return [*problems, "canonical form is not JSON"]
    if node.get("eventId") != event_id:
        problems.append(f"canonical eventId {node.get('eventId')!r} is not {event_id!r}")
    if node.get("tenantId") != log_id:
        problems.append(f"canonical tenantId {node.get('tenantId')!r} is not the log {log_id!r}")
    if salt is not None and content is not None:
        problems.extend(canonical.content_problems(committed, dict(content), salt))
    return problems


def search_columns(committed: bytes) -> dict[str, object]:
    """The ``events`` search columns as ingest derives them from the event's metadata."""
    e = canonical.restore(committed, None)
    return {
        "event_id": e.event_id,
        "event_type": event_pb2.EventType.Name(e.event_type),
        "occurred_time": e.occurred_time.ToDatetime(tzinfo=dt.UTC),
        "receive_time": e.receive_time.ToDatetime(tzinfo=dt.UTC),
        "user_id": e.actor.user_id or None,
        "application": e.actor.application or None,
        "environment": e.actor.environment or None,
        "model_provider": e.model.provider or None,
        "model_name": e.model.name or None,
        "session_id": e.correlation.session_id or None,
        "conversation_id": e.correlation.conversation_id or None,
        "correlation_id": e.correlation.correlation_id or None,
        "trace_id": e.correlation.trace_id or None,
    }


def column_problems(committed: bytes, stored: Mapping[str, object]) -> list[str]:
    """Search columns of the ``events`` row that disagree with the committed metadata."""
    try:
        expected = search_columns(committed)
    except ValueError:
        return []  # reported by event_problems
    problems = []
    for name, want in expected.items():
        have = stored.get(name)
        if isinstance(have, dt.datetime) and have.tzinfo is None:
            have = have.replace(tzinfo=dt.UTC)
        if have != want:
            problems.append(f"column {name} is {have!r} but the committed event says {want!r}")
    return problems
