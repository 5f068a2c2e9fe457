"""Turns a validated event into what the store writes: received, salted, committed.

Shared by ingest and by every service that records events of its own (access
records, rule changes).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from google.protobuf import timestamp_pb2

from aiaudit.common import canonical
from aiaudit.common.protowire import length_delimited, varint
from aiaudit.common.store.sql import NewEvent, search_values
from aiaudit.common.v1 import event_pb2

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def truncate_to_micros(ts: timestamp_pb2.Timestamp) -> None:
    """Drops sub-microsecond digits: the log keeps microsecond precision."""
    ts.nanos -= ts.nanos % 1000


_RECEIVE_TIME = event_pb2.Event.DESCRIPTOR.fields_by_name["receive_time"].number


@dataclass(frozen=True)
class _Stamp:
    """A receive time in every form ``prepare`` needs, computed once per batch."""

    at: dt.datetime
    seconds: int
    nanos: int
    field: bytes
    """``receive_time`` as wire bytes (:func:`receive_time_field`)."""


def timestamp_parts(at: dt.datetime) -> tuple[int, int]:
    """(seconds, nanos) of an aware datetime, by integer arithmetic.

    ``Timestamp.FromDatetime`` is slow Python, and these run for every event
    and every read's access record.
    """
    since = at - _EPOCH
    return since.days * 86_400 + since.seconds, since.microseconds * 1000


def set_timestamp(ts: timestamp_pb2.Timestamp, at: dt.datetime) -> None:
    """Sets a Timestamp to an aware datetime (see :func:`timestamp_parts`)."""
    ts.seconds, ts.nanos = timestamp_parts(at)


def _stamp(receive_time: dt.datetime) -> _Stamp:
    at = (
        receive_time.astimezone(dt.UTC)
        if receive_time.tzinfo
        else receive_time.replace(tzinfo=dt.UTC)
    )
    seconds, nanos = timestamp_parts(at)
    return _Stamp(at, seconds, nanos, receive_time_field(seconds, nanos))


def receive_time_field(seconds: int, nanos: int) -> bytes:
    """``receive_time`` as wire bytes to append to a serialised event, both members explicit.

    Protobuf parses a message field met twice on the wire as the merge of both,
    and the later value of each scalar wins: appended, these bytes replace
    whatever receive time the bytes before carry, down to a zero ``nanos``
    (which a serialiser would have left out). The native encoder reads the wire that way.
    """
    body = b"\x08" + varint(seconds & 0xFFFF_FFFF_FFFF_FFFF) + b"\x10" + varint(nanos)
    return length_delimited(_RECEIVE_TIME, body)


def prepare(
    event: event_pb2.Event,
    receive_time: dt.datetime,
    salt: bytes | None = None,
    wire: bytes | None = None,
) -> NewEvent:
    """Stamps the receive time (output only, so any client value is replaced) and commits.

    The event itself is stamped in place (and its ``occurred_time`` cut to
    microseconds): it becomes the event as stored. ``wire``: the event as
    the caller already serialised it (validation does), before the stamp;
    ``salt``: 32 random bytes, drawn here if not given.
    """
    if salt is None:
        salt = secrets.token_bytes(canonical.SALT_BYTES)
    return _prepare(event, _stamp(receive_time), salt, wire)


def _prepare(event: event_pb2.Event, stamp: _Stamp, salt: bytes, wire: bytes | None) -> NewEvent:
    occurred = event.occurred_time
    if wire is None or occurred.nanos % 1000:
        truncate_to_micros(occurred)
        wire = event.SerializeToString()  # (again, if serialised before the cut)
    # The canonical form comes from the wire plus the stamp: one serialisation
    # per event, shared with validation, instead of a copy serialised again.
    committed = canonical.commit_wire(wire + stamp.field, salt)
    event.receive_time.seconds = stamp.seconds
    event.receive_time.nanos = stamp.nanos
    return NewEvent(
        event=event,
        committed=committed,
        salt=salt,
        receive_time=stamp.at,
        search=search_values(event),
        stored_content=committed.content_json,
    )


def prepare_batch(
    events: list[event_pb2.Event], receive_time: dt.datetime, wires: list[bytes] | None = None
) -> list[NewEvent]:
    """:func:`prepare` for a batch: one stamp, every salt from one draw of the system CSPRNG."""
    n = canonical.SALT_BYTES
    pool = secrets.token_bytes(n * len(events))
    stamp = _stamp(receive_time)
    return [
        _prepare(e, stamp, pool[i * n : (i + 1) * n], wires[i] if wires else None)
        for i, e in enumerate(events)
    ]
