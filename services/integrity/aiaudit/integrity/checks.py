"""Checks of one stored event against what the log committed to (pure, no I/O).

Shared by ``VerifyEvent`` and ``aiaudit verify`` so both name problems the
same way.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from aiaudit.common import canonical
from aiaudit.common.store.schema import TEXT_COLUMNS
from aiaudit.common.v1 import event_pb2

MISSING_EVENT = "the event row is missing (deleted?) but its log entry remains"
CHANGED_EVENT = "canonical form does not match the log entry's leaf hash (changed)"


def event_problems(
    log_id: str,
    event_id: str,
    leaf: bytes,
    committed: bytes | None,
    salt: bytes | None,
    content: Mapping[str, str] | None,
    parsed: Any = None,
) -> list[str]:
    """What is wrong with a stored event given its log entry (event id, leaf hash).

    ``parsed``: ``committed`` already parsed by the caller (``verify`` parses
    it once for all its checks), else parsed here.
    """
    if committed is None:
        return [MISSING_EVENT]
    problems = []
    if canonical.leaf_hash(committed) != leaf:
        problems.append(CHANGED_EVENT)
    try:
        node = json.loads(committed) if parsed is None else parsed
    except ValueError:
        return [*problems, "canonical form is not JSON"]
    if not isinstance(node, dict):
        return [*problems, "canonical form is not a JSON object"]
    if node.get("eventId") != event_id:
        problems.append(f"canonical eventId {node.get('eventId')!r} is not {event_id!r}")
    if node.get("tenantId") != log_id:
        problems.append(f"canonical tenantId {node.get('tenantId')!r} is not the log {log_id!r}")
    if salt is not None and content is not None:
        problems.extend(canonical.content_problems(committed, dict(content), salt, node))
    return problems


def _time(value: object) -> dt.datetime | None:
    """An RFC 3339 timestamp of the proto3 JSON mapping (0-9 fractional digits, ``Z``)."""
    if not isinstance(value, str):
        return None
    head, dot, frac = value.removesuffix("Z").partition(".")
    micros = int((frac + "000000")[:6]) if dot else 0
    return dt.datetime.fromisoformat(head).replace(microsecond=micros, tzinfo=dt.UTC)


def search_columns(node: Mapping[str, Any]) -> dict[str, object]:
    """The ``events`` search columns as ingest derives them, from the canonical JSON.

    Read from the parsed JSON rather than a protobuf round trip: ``verify``
    runs this for every event, and the JSON names are those of the proto3
    JSON mapping (defaults omitted, enums by name).
    """
    columns: dict[str, object] = {
        "event_id": node.get("eventId", ""),
        "event_type": node.get("eventType", "EVENT_TYPE_UNSPECIFIED"),
        "occurred_time": _time(node.get("occurredTime", "1970-01-01T00:00:00Z")),
        "receive_time": _time(node.get("receiveTime", "1970-01-01T00:00:00Z")),
    }
    for column, message, name in _TEXT_JSON:
        columns[column] = node.get(message, {}).get(name) or None
    return columns


def _json_name(field: str) -> str:
    """The proto3 JSON name of a snake_case field (``user_id`` -> ``userId``)."""
    head, *rest = field.split("_")
    return head + "".join(word.capitalize() for word in rest)


_TEXT_JSON = [
    (column, message, _json_name(field)) for column, (message, field) in TEXT_COLUMNS.items()
]
"""``TEXT_COLUMNS`` with the JSON names of their fields (named once, not per event)."""


def column_problems(node: Mapping[str, Any], stored: Mapping[str, object]) -> list[str]:
    """Search columns of the ``events`` row that disagree with the committed metadata."""
    try:
        expected = search_columns(node)
    except (ValueError, AttributeError):
        return ["committed metadata is malformed (bad timestamp or structure)"]
    problems = []
    for name, want in expected.items():
        have = stored.get(name)
        if isinstance(have, dt.datetime) and have.tzinfo is None:
            have = have.replace(tzinfo=dt.UTC)
        if have != want:
            problems.append(f"column {name} is {have!r} but the committed event says {want!r}")
    return problems


_CLASSES: dict[str, int | None] = {
    name: number or None for name, number in event_pb2.DataClassification.items()
}
"""The column ingest writes for each classification the canonical form names (JSON name)."""


def _class_name(number: object) -> str:
    """A classification number as named in problems (``DATA_CLASSIFICATION_RESTRICTED (4)``)."""
    try:
        return f"{event_pb2.DataClassification.Name(number)} ({number})"  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return f"{number!r} (no classification)"


def classification_problem(
    node: Mapping[str, Any], column: object, empty: bool
) -> tuple[str, bool] | None:
    """What is wrong with a content row's ``data_classification``, and whether only a warning.

    Ingest writes the committed classification's number, NULL for UNSPECIFIED
    (revision 0013); the retention sweep finds content by this column alone,
    so a changed one erases content early or keeps it past its deadline.
    NULL where the event is classified is also what a replica of the previous
    version writes during a rolling upgrade (the migration fills only the rows
    before it), so that is a warning: named, no damage. ``empty``: content
    ``{}``, which no sweep erases (and the migration leaves NULL).
    """
    value = node.get("dataClassification")
    want = _CLASSES.get(value) if isinstance(value, str) else value
    if want is not None and (isinstance(want, bool) or not isinstance(want, int)):
        want = None  # not a classification: not proto3 JSON (the leaf check names a change)
    if column == want or (column is None and empty):
        return None
    committed = _class_name(want) if want else "DATA_CLASSIFICATION_UNSPECIFIED (held as NULL)"
    if column is None:
        return (
            f"column event_content.data_classification is NULL but the committed event is "
            f"{committed}: content retention keeps it as INTERNAL (written by a replica "
            "older than revision 0013 during a rolling upgrade, or set to NULL?)",
            True,
        )
    return (
        f"column event_content.data_classification is {_class_name(column)} but the "
        f"committed event is {committed}: content retention goes by the column (changed?)",
        False,
    )
