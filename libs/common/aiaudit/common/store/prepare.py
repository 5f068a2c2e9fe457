"""Turns a validated event into what the store writes: received, salted, committed.

Shared by ingest and by every service that records events of its own (access
records, rule changes).
"""

from __future__ import annotations

import datetime as dt
import secrets

from google.protobuf import timestamp_pb2

from aiaudit.common import canonical
from aiaudit.common.store.sql import NewEvent, content_json, search_values
from aiaudit.common.v1 import event_pb2

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def truncate_to_micros(ts: timestamp_pb2.Timestamp) -> None:
    """Drops sub-microsecond digits: the log keeps microsecond precision."""
    ts.nanos -= ts.nanos % 1000


def prepare(
    event: event_pb2.Event, receive_time: dt.datetime, salt: bytes | None = None
) -> NewEvent:
    """Stamps the receive time (output only, so any client value is replaced) and commits.

    ``salt`` (32 random bytes) may be drawn by the caller for a whole batch at
    once: one system call instead of one per event.
    """
    received = event_pb2.Event()
    received.CopyFrom(event)
    # A datetime has microsecond precision: set the Timestamp from it directly
    # (Timestamp.FromDatetime and ToDatetime are slow Python on this hot path).
    at = (
        receive_time.astimezone(dt.UTC)
        if receive_time.tzinfo
        else receive_time.replace(tzinfo=dt.UTC)
    )
    since = at - _EPOCH
    received.receive_time.seconds = since.days * 86_400 + since.seconds
    received.receive_time.nanos = since.microseconds * 1000
    truncate_to_micros(received.occurred_time)
    if salt is None:
        salt = secrets.token_bytes(canonical.SALT_BYTES)
    committed = canonical.commit(received, salt)
    return NewEvent(
        event=received,
        committed=committed,
        salt=salt,
        receive_time=at,
        search=search_values(received),
        stored_content=content_json(committed.content),
    )


def prepare_batch(events: list[event_pb2.Event], receive_time: dt.datetime) -> list[NewEvent]:
    """:func:`prepare` for a batch, with every salt from one draw of the system CSPRNG."""
    n = canonical.SALT_BYTES
    pool = secrets.token_bytes(n * len(events))
    return [prepare(e, receive_time, pool[i * n : (i + 1) * n]) for i, e in enumerate(events)]
