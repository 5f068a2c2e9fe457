"""Validation of incoming events: every problem named by its field path.

Pure logic, no gRPC: the handler turns the violations into INVALID_ARGUMENT
with google.rpc.BadRequest details.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor, struct_pb2
from google.protobuf.message import Message

from aiaudit.common.v1 import event_pb2, options_pb2

_EVENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_TENANT_ID = re.compile(r"[a-z0-9_-]{1,64}")
_ATTRIBUTE_KEY = re.compile(r"[a-z0-9_.-]{1,128}")
_HEX = re.compile(r"[0-9a-f]+")
_CURRENCY = re.compile(r"[A-Z]{3}")
_EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MAX_DURATION = 315_576_000_000
"""Seconds in 10,000 years: google.protobuf.Duration's own range."""
_TIMESTAMP_RANGE = "is not a valid timestamp: 0001-01-01 to 9999-12-31, nanos in [0, 999999999]"


def _valid_timestamp(ts: Any) -> bool:
    """Within google.protobuf.Timestamp's range: the canonical form has no text for others."""
    return bool(-62_135_596_800 <= ts.seconds <= 253_402_300_799 and 0 <= ts.nanos <= 999_999_999)


FD = descriptor.FieldDescriptor
_SIGNED = "aiaudit.common.v1.AttributeValue"  # the only place negative numbers make sense
_CONTENT_TYPES = (descriptor.FieldDescriptor.TYPE_STRING, descriptor.FieldDescriptor.TYPE_BYTES)


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
    events: list[event_pb2.Event], limits: Limits, now: dt.datetime, prefix: str = "events"
) -> list[Violation]:
    """Every violation in a batch; an empty list means the batch is valid."""
    if not events:
        return [Violation(prefix, "must contain at least one event")]
    if len(events) > limits.max_batch_events:
        return [
            Violation(prefix, f"has {len(events)} events; the limit is {limits.max_batch_events}")
        ]
    out: list[Violation] = []
    first_index: dict[tuple[str, str], int] = {}
    for i, event in enumerate(events):
        path = f"{prefix}[{i}]"
        out.extend(validate_event(event, limits, now, path))
        key = (event.tenant_id, event.event_id)
        if event.event_id and key in first_index:
            out.append(
                Violation(f"{path}.event_id", f"duplicates {prefix}[{first_index[key]}].event_id")
            )
        first_index.setdefault(key, i)
    return out


def validate_event(
    event: event_pb2.Event, limits: Limits, now: dt.datetime, path: str
) -> list[Violation]:
    """Every violation in one event."""
    out = list(_required(event, now, limits, path))
    size = event.ByteSize()
    if size > limits.max_event_bytes:
        out.append(Violation(path, f"is {size} bytes; the limit is {limits.max_event_bytes}"))
    _walk(event, limits, path, out)
    return out


def _required(
    e: event_pb2.Event, now: dt.datetime, limits: Limits, path: str
) -> Iterator[Violation]:
    if not _EVENT_ID.fullmatch(e.event_id):
        yield Violation(f"{path}.event_id", "is required: 1-128 characters of [A-Za-z0-9._:-]")
    if not _TENANT_ID.fullmatch(e.tenant_id):
        yield Violation(f"{path}.tenant_id", "is required: 1-64 characters of [a-z0-9_-]")
    if e.event_type == event_pb2.EVENT_TYPE_UNSPECIFIED:
        yield Violation(f"{path}.event_type", "is required")
    if not e.HasField("occurred_time"):
        yield Violation(f"{path}.occurred_time", "is required")
    else:
        yield from _timestamp_range(e, now, limits, path)
    if e.event_type == event_pb2.EVENT_TYPE_INTERACTION and not e.model.name:
        yield Violation(f"{path}.model.name", "is required for EVENT_TYPE_INTERACTION events")
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
        if value.WhichOneof("value") is None:
            yield Violation(f"{path}.attributes[{key!r}]", "must have a value")


def _timestamp_range(
    e: event_pb2.Event, now: dt.datetime, limits: Limits, path: str
) -> Iterator[Violation]:
    ts = e.occurred_time
    if not _valid_timestamp(ts):
        return  # named by the check of every timestamp (_check)
    when = ts.ToDatetime(tzinfo=dt.UTC)
    if when < _EARLIEST:
        yield Violation(f"{path}.occurred_time", "is before 1970-01-01T00:00:00Z")
    elif when > now + limits.max_future_skew:
        yield Violation(
            f"{path}.occurred_time",
            f"is more than {limits.max_future_skew} ahead of the server clock",
        )


_MESSAGE, _ENUM, _FLOAT, _INT, _TEXT = range(5)


@dataclass(frozen=True)
class _Rule:
    """What to check of one field, and how to tell it is set."""

    name: str
    kind: int
    presence: bool
    """Tested with HasField; else a field is set when its value is not the default."""
    repeated: bool
    signed: bool
    """A number that may be negative (only in AttributeValue)."""
    field: Any


_RULES: dict[Any, list[_Rule]] = {}


def _rules(desc: Any) -> list[_Rule]:
    """The fields of a message type that have something to check (computed once per type)."""
    found = _RULES.get(desc)
    if found is None:
        found = []
        signed = desc.full_name == _SIGNED
        for f in desc.fields:
            kind = f.type
            if f.message_type is not None:
                if f.message_type.GetOptions().map_entry:
                    continue
                rule = _MESSAGE
            elif kind == FD.TYPE_ENUM:
                rule = _ENUM
            elif kind in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
                rule = _FLOAT
            elif kind == FD.TYPE_INT64 and not signed:
                rule = _INT
            elif (
                kind in _CONTENT_TYPES
                and not f.GetOptions().Extensions[options_pb2.sensitive_content]
            ):
                rule = _TEXT
            else:
                continue
            found.append(_Rule(f.name, rule, f.has_presence, f.is_repeated, signed, f))
        _RULES[desc] = found
    return found


def _walk(msg: Message, limits: Limits, path: str, out: list[Violation]) -> None:
    """Checks every set field by kind: enums known, numbers finite and >= 0, sizes.

    Paths are only formatted for violations and nested messages: this runs for
    every field of every event. A field at its default is skipped: every check
    passes on it (0 is a known enum value, finite and not negative; "" is short).
    """
    for rule in _rules(msg.DESCRIPTOR):
        if rule.presence and not msg.HasField(rule.name):
            continue
        value = getattr(msg, rule.name)
        if not rule.presence and not value and rule.kind != _FLOAT:
            continue
        if rule.repeated:
            for i, v in enumerate(value):
                _check(
                    rule.field, rule.kind, rule.signed, v, limits, path, f"{rule.name}[{i}]", out
                )
        else:
            _check(rule.field, rule.kind, rule.signed, value, limits, path, rule.name, out)


def _check(
    field: Any,
    rule: int,
    signed: bool,
    v: Any,
    limits: Limits,
    path: str,
    name: str,
    out: list[Violation],
) -> None:
    if rule == _MESSAGE:
        at = f"{path}.{name}"
        full = field.message_type.full_name
        if full == "aiaudit.common.v1.Media":
            out.extend(_media(v, at))
        elif full == "aiaudit.common.v1.Money":
            out.extend(_money(v, at))
        elif full == "google.protobuf.Timestamp" and not _valid_timestamp(v):
            out.append(Violation(at, _TIMESTAMP_RANGE))
        elif full == "google.protobuf.Duration" and not (
            0 <= v.seconds <= _MAX_DURATION and 0 <= v.nanos <= 999_999_999
        ):
            out.append(Violation(at, f"must be 0 to {_MAX_DURATION} s, nanos in [0, 999999999]"))
        elif full == "google.protobuf.Struct":
            out.extend(_struct_numbers(v, at))
        if full.startswith("aiaudit."):
            _walk(v, limits, at, out)
    elif rule == _ENUM:
        if field.enum_type.values_by_number.get(v) is None:
            out.append(Violation(f"{path}.{name}", f"unknown {field.enum_type.name} value {v}"))
    elif rule == _FLOAT:
        if not math.isfinite(v):
            out.append(Violation(f"{path}.{name}", "must be a finite number"))
        elif v < 0 and not signed:
            out.append(Violation(f"{path}.{name}", "must not be negative"))
    elif rule == _INT:
        if v < 0:
            out.append(Violation(f"{path}.{name}", "must not be negative"))
    elif len(v) > limits.max_metadata_chars:
        out.append(
            Violation(
                f"{path}.{name}",
                f"is {len(v)} characters; the limit is {limits.max_metadata_chars}",
            )
        )


def _struct_numbers(s: struct_pb2.Struct, at: str) -> Iterator[Violation]:
    """JSON has no NaN or infinity: a Struct must not hold them."""
    stack: list[Any] = list(s.fields.values())
    while stack:
        value = stack.pop()
        kind = value.WhichOneof("kind")
        if kind == "number_value" and not math.isfinite(value.number_value):
            yield Violation(at, "holds a number that is not finite")
            return
        if kind == "struct_value":
            stack.extend(value.struct_value.fields.values())
        elif kind == "list_value":
            stack.extend(value.list_value.values)


def _media(m: event_pb2.Media, at: str) -> Iterator[Violation]:
    if not m.mime_type:
        yield Violation(f"{at}.mime_type", "is required")
    if not (len(m.sha256) == 64 and _HEX.fullmatch(m.sha256)):
        yield Violation(f"{at}.sha256", "is required: 64 lowercase hex digits")
    source = m.WhichOneof("source")
    if source is None:
        yield Violation(at, "needs inline data or a uri")
    elif source == "data":
        if hashlib.sha256(m.data).hexdigest() != m.sha256:
            yield Violation(f"{at}.sha256", "does not match the SHA-256 of data")
        if m.size_bytes != len(m.data):
            yield Violation(
                f"{at}.size_bytes", f"is {m.size_bytes} but data has {len(m.data)} bytes"
            )


def _money(m: event_pb2.Money, at: str) -> Iterator[Violation]:
    if not _CURRENCY.fullmatch(m.currency_code):
        yield Violation(f"{at}.currency_code", "must be an ISO 4217 code such as USD")
    if (
        not -999_999_999 <= m.nanos <= 999_999_999
        or (m.units > 0 > m.nanos)
        or (m.units < 0 < m.nanos)
    ):
        yield Violation(f"{at}.nanos", "must be in [-999999999, 999999999] with the sign of units")
