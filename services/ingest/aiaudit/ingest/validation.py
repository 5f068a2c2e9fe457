"""Validation of incoming events: every problem named by its field path.

Pure logic, no gRPC: the handler turns the violations into INVALID_ARGUMENT
with google.rpc.BadRequest details. The rules of the event as a whole (ids,
type, time, attributes) are here; the checks of every set field by its kind
(enums known, numbers finite and not negative, metadata within its limit,
timestamps, durations, Struct numbers, media and money) run in the native core
(``libs/native/src/validate.rs``) over the event's wire bytes, in declaration
order.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
import operator
import re
from collections.abc import Iterator
from dataclasses import dataclass

from aiaudit.common import canonical
from aiaudit.common.event_ids import EVENT_ID
from aiaudit.common.store.schema import TEXT_COLUMNS, events
from aiaudit.common.tenants import TENANT_ID
from aiaudit.common.v1 import event_pb2

_ATTRIBUTE_KEY = re.compile(r"[a-z0-9_.-]{1,128}")
_HEX = re.compile(r"[0-9a-f]+")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_STORED_TEXT = [
    (message, field, int(events.c[column].type.length))  # type: ignore[attr-defined]
    for column, (message, field) in TEXT_COLUMNS.items()
    if column != "trace_id"  # checked as 32 hex digits below
]
"""Fields the store also keeps in columns of their own (``varchar(n)`` on PostgreSQL):
longer values, or U+0000, which PostgreSQL text cannot hold, would fail the commit."""
_STORED_VALUES = operator.attrgetter(*(f"{message}.{field}" for message, field, _ in _STORED_TEXT))
_SHORTEST_COLUMN = min(limit for _, _, limit in _STORED_TEXT)


@dataclass(frozen=True)
class Limits:
    """Size limits, stated in every error that enforces them."""

    max_batch_events: int = 1000
    max_event_bytes: int = 4 * 1024 * 1024
    max_metadata_chars: int = 4096
    max_future_skew: dt.timedelta = dt.timedelta(hours=24)


@dataclass(frozen=True)
class Violation:
    """One bad field: its path (``events[3].model.name``) and what is wrong."""

    field: str
    description: str


def validate_batch(
    events: list[event_pb2.Event],
    limits: Limits,
    now: dt.datetime,
    prefix: str = "events",
    wires: list[bytes] | None = None,
) -> list[Violation]:
    """Every violation in a batch; an empty list means the batch is valid.

    ``wires``: the events serialised, if the caller has them (it commits the same bytes).
    """
    if not events:
        return [Violation(prefix, "must contain at least one event")]
    if len(events) > limits.max_batch_events:
        return [
            Violation(prefix, f"has {len(events)} events; the limit is {limits.max_batch_events}")
        ]
    out: list[Violation] = []
    first_index: dict[tuple[str, str], int] = {}
    horizon = _horizon(now, limits)
    for i, event in enumerate(events):
        path = f"{prefix}[{i}]"
        out.extend(_violations(event, limits, horizon, path, wires[i] if wires else None))
        key = (event.tenant_id, event.event_id)
        if event.event_id and key in first_index:
            out.append(
                Violation(f"{path}.event_id", f"duplicates {prefix}[{first_index[key]}].event_id")
            )
        first_index.setdefault(key, i)
    return out


def validate_event(
    event: event_pb2.Event,
    limits: Limits,
    now: dt.datetime,
    path: str,
    wire: bytes | None = None,
) -> list[Violation]:
    """Every violation in one event (``wire``: the event serialised, if the caller has it)."""
    return _violations(event, limits, _horizon(now, limits), path, wire)


def _horizon(now: dt.datetime, limits: Limits) -> float:
    """The latest ``occurred_time`` accepted, in seconds since the epoch (once per batch)."""
    return (now + limits.max_future_skew - _EPOCH).total_seconds()


def _violations(
    event: event_pb2.Event, limits: Limits, horizon: float, path: str, wire: bytes | None
) -> list[Violation]:
    out = list(_required(event, horizon, limits, path))
    if wire is None:
        wire = event.SerializeToString()
    if len(wire) > limits.max_event_bytes:
        out.append(Violation(path, f"is {len(wire)} bytes; the limit is {limits.max_event_bytes}"))
    checks = canonical.native_schema().check(wire, limits.max_metadata_chars)
    out.extend(Violation(f"{path}.{field}", problem) for field, problem in checks)
    return out


SERVER_WRITTEN = frozenset(
    {
        event_pb2.EVENT_TYPE_PRIVACY_ERASURE,
        event_pb2.EVENT_TYPE_RETENTION_APPLIED,
        event_pb2.EVENT_TYPE_AUDIT_ACCESS,
        event_pb2.EVENT_TYPE_RULE_CHANGE,
    }
)
"""Event types only the service's own code appends. Consumers act on them (an erasure
or retention record blanks the named events' content in the index and in alert evidence, and
``verify`` accepts it as cover for deleted content): a gateway key could forge them."""


def _required(e: event_pb2.Event, horizon: float, limits: Limits, path: str) -> Iterator[Violation]:
    if not EVENT_ID.fullmatch(e.event_id):
        yield Violation(f"{path}.event_id", "is required: 1-128 characters of [A-Za-z0-9._:-]")
    if not TENANT_ID.fullmatch(e.tenant_id):
        yield Violation(f"{path}.tenant_id", "is required: 1-64 characters of [a-z0-9_-]")
    if e.event_type == event_pb2.EVENT_TYPE_UNSPECIFIED:
        yield Violation(f"{path}.event_type", "is required")
    elif e.event_type in SERVER_WRITTEN:
        yield Violation(
            f"{path}.event_type",
            f"{event_pb2.EventType.Name(e.event_type)} is written by the service itself "
            "(erasure and retention records, access records, rule changes), never sent by a "
            "client",
        )
    if not e.HasField("occurred_time"):
        yield Violation(f"{path}.occurred_time", "is required")
    else:
        yield from _timestamp_range(e, horizon, limits, path)
    if e.event_type == event_pb2.EVENT_TYPE_INTERACTION and not e.model.name:
        yield Violation(f"{path}.model.name", "is required for EVENT_TYPE_INTERACTION events")
    values = _STORED_VALUES(e)  # one call; each value looked at only if some may be bad
    if max(map(len, values)) > _SHORTEST_COLUMN or "\x00" in "".join(values):
        for (message, field, limit), value in zip(_STORED_TEXT, values, strict=True):
            if limit < len(value) <= limits.max_metadata_chars:  # longer: the field checks say so
                yield Violation(
                    f"{path}.{message}.{field}", f"is {len(value)} characters; the limit is {limit}"
                )
            elif "\x00" in value:
                yield Violation(f"{path}.{message}.{field}", "must not contain U+0000 (NUL)")
    ids = e.correlation
    if ids.trace_id and not (len(ids.trace_id) == 32 and _HEX.fullmatch(ids.trace_id)):
        yield Violation(f"{path}.correlation.trace_id", "must be 32 lowercase hex digits")
    if ids.span_id and not (len(ids.span_id) == 16 and _HEX.fullmatch(ids.span_id)):
        yield Violation(f"{path}.correlation.span_id", "must be 16 lowercase hex digits")
    if e.actor.ip_address:
        try:
            ipaddress.ip_address(e.actor.ip_address)
        except ValueError:
            yield Violation(f"{path}.actor.ip_address", "is not an IPv4 or IPv6 address")
    for key, value in e.attributes.items():
        if not _ATTRIBUTE_KEY.fullmatch(key):
            yield Violation(
                f"{path}.attributes[{key!r}]", "key must be 1-128 characters of [a-z0-9_.-]"
            )
        which = value.WhichOneof("value")
        if which is None:
            yield Violation(f"{path}.attributes[{key!r}]", "must have a value")
        elif which == "double_value" and not math.isfinite(value.double_value):
            # The native field checks skip maps; the canonical form has no text for it.
            yield Violation(f"{path}.attributes[{key!r}].double_value", "must be a finite number")
        elif which == "string_value" and len(value.string_value) > limits.max_metadata_chars:
            size, limit = len(value.string_value), limits.max_metadata_chars
            yield Violation(
                f"{path}.attributes[{key!r}].string_value",
                f"is {size} characters; the limit is {limit}",
            )


def _timestamp_range(
    e: event_pb2.Event, horizon: float, limits: Limits, path: str
) -> Iterator[Violation]:
    ts = e.occurred_time
    if not (-62_135_596_800 <= ts.seconds <= 253_402_300_799 and 0 <= ts.nanos <= 999_999_999):
        return  # out of any timestamp's range: named by the field checks
    seconds = ts.seconds + ts.nanos / 1e9
    if seconds < 0:
        yield Violation(f"{path}.occurred_time", "is before 1970-01-01T00:00:00Z")
    elif seconds > horizon:
        yield Violation(
            f"{path}.occurred_time",
            f"is more than {limits.max_future_skew} ahead of the server clock",
        )
