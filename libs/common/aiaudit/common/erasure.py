"""Erasure of a data subject's content (ARCHITECTURE promise 3), recorded in the subject's log.

The content and salt of the named events (or of every event of a subject)
are deleted from ``event_content``; the leaves commit to that content only
through salted HMACs, so every leaf, proof and checkpoint still verifies,
and ``VerifyEvent`` answers ``VERIFIED_ERASED``. In the same transaction an
``EVENT_TYPE_PRIVACY_ERASURE`` event is appended to the log naming the erased
events, the reason and who asked: the erasure is itself audited and
tamper-evident. The search indexer re-indexes the named events when it
reaches that record, so their text leaves the index too, and the alerting
engine blanks the evidence excerpts of the alerts naming them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import orjson

from aiaudit.common.store import schema
from aiaudit.common.store.prepare import prepare, set_timestamp
from aiaudit.common.store.schema import events
from aiaudit.common.store.sql import NewEvent, SqlEventStore
from aiaudit.common.v1 import event_pb2

USER_ID_CHARS = int(events.c.user_id.type.length)  # type: ignore[attr-defined]
"""``varchar(n)`` of the column a subject is looked up in, and the record's requester kept in."""


REASON_CHARS = 1024
"""Longest reason: it is committed in the record, which every reader of the log fetches
(a 10 MB reason was taken, and the record then exceeded what clients receive)."""


def unstorable(value: str) -> str:
    """Why no record can store ``value``'s characters (U+0000, a lone surrogate); else ''.

    PostgreSQL text holds no U+0000, and UTF-8 no lone surrogate: a JSON or YAML
    escape may spell one, and a command-line argument whose bytes are not UTF-8 holds
    one in place of each such byte (surrogateescape).
    """
    for c in value:
        if c == "\x00" or "\ud800" <= c <= "\udfff":
            return f"holds U+{ord(c):04X}, which no record can store"
    return ""


def problems(requested_by: str, subject_id: str, reason: str = "") -> list[tuple[str, str]]:
    """(field, problem) for values the store cannot hold, checked up front.

    The first two go in ``actor.user_id``'s column (or are compared with it): on
    PostgreSQL a longer value or U+0000 fails the transaction, which no retry mends;
    SQLite takes them. The reason goes in the record, refused past :data:`REASON_CHARS`.
    A lone surrogate (``aiaudit erase``'s argument not in UTF-8) made the record
    unencodable: the command said only "'utf-8' codec can't encode" (review, 2026-12-07).
    """
    out = []
    for field, value, most in (
        ("requested_by", requested_by, USER_ID_CHARS),
        ("subject_id", subject_id, USER_ID_CHARS),
        ("reason", reason, REASON_CHARS),
    ):
        if len(value) > most:
            out.append((field, f"is {len(value)} characters; the limit is {most}"))
        elif "\x00" in value:
            out.append((field, "must not contain U+0000 (NUL)"))
        elif why := unstorable(value):
            out.append((field, why))
    return out


RECORD_TYPES = schema.RECORD_TYPES
"""Records that delete content: a data subject's erasure, and the retention policy's
(see :mod:`aiaudit.common.retention`). Consumers treat both alike."""
RECORD_TYPE, RETENTION_TYPE = RECORD_TYPES


PART, PARTS = "erasure.part", "erasure.parts"
"""The attributes of an erasure recorded in several records: this record's part (from 1),
and how many the erasure has (its records are consecutive entries of the log)."""


@dataclass(frozen=True)
class Record:
    """An erasure or retention record, as read from its canonical form."""

    event_id: str
    ids: list[str]
    """The event ids it names ([] if damaged: ``verify`` names that)."""
    part: int | None
    parts: int | None
    """Its :data:`PART` of :data:`PARTS` (1 of 1 without them: retention records, erasures
    before 2026-12-06); None if they are no part of a count (``verify`` names that)."""
    request: tuple[object, ...]
    """What every part of one erasure shares: its time, subject, reason and requester."""


def read_record(canonical: bytes) -> Record | None:
    """The record a canonical form holds; None for any other event or one that is no JSON."""
    if not any(t.encode() in canonical for t in RECORD_TYPES):  # a cheap look before parsing
        return None
    try:
        node = orjson.loads(canonical)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(node, dict) or node.get("eventType") not in RECORD_TYPES:
        return None
    action = node.get("privacyAction")
    action = action if isinstance(action, dict) else {}
    named = action.get("eventIds")
    ids = [str(n) for n in named] if isinstance(named, list) else []
    attributes = node.get("attributes")
    attributes = attributes if isinstance(attributes, dict) else {}
    part, parts = (_count(attributes, name) for name in (PART, PARTS))
    if not 1 <= (part or 0) <= (parts or 0):
        part = parts = None
    request = tuple(action.get(k) for k in ("subjectId", "reason", "requestedBy"))
    record_id = str(node.get("eventId", ""))
    return Record(record_id, ids, part, parts, (node.get("occurredTime"), *request))


def _count(attributes: dict[str, object], name: str) -> int | None:
    """An int attribute's value (proto3 JSON spells an int64 as a string); 1 if absent.

    None for anything else, a number of more digits than an int64 has included:
    past 4,300 ``int()`` raises, and every reader of records raised with it.
    """
    if name not in attributes:
        return 1
    value = attributes[name]
    number = value.get("intValue") if isinstance(value, dict) else None
    if not isinstance(number, str) or len(number) > 19:
        return None
    return int(number) if number.isascii() and number.isdigit() else None


def erased_ids(canonical: bytes) -> list[str]:
    """The event ids an erasure (or retention) record names, read from its canonical form.

    [] for any other event or a damaged one (``verify`` names that). Every
    consumer reads records this way: the index drops the named events' text,
    ``verify`` and ``VerifyEvent`` accept their missing content.
    """
    record = read_record(canonical)
    return [] if record is None else record.ids


RECORD_IDS = 10_000
"""Event ids one erasure record names at most; a larger erasure is recorded as several.

One record naming every event of a heavy subject grew ~48 bytes an id (2.9 MB at
60,000 events, tens of MB past a million): past ``max_event_bytes`` (4 MiB) and the
64 MiB a gRPC message may carry, so no reader could fetch it whole. 10,000 ids of
at most 128 characters keep a record under 1.4 MB, as retention's records are.
"""
LISTED_IDS = 1_000
"""Ids an answer lists at most in each of its lists (as many as a request may name):
the full lists are in the records. Naming every id, the answer to a subject of
~50,000 events exceeded the 4 MB a gRPC client receives by default, after the
erasure had committed."""


@dataclass(frozen=True)
class Erased:
    """What one erasure did."""

    record_ids: list[str]
    """The ``EVENT_TYPE_PRIVACY_ERASURE`` events appended to the log, in log order
    (consecutive: one transaction under the log's head lock)."""
    erased: list[str]
    """Events whose content this erasure deleted (unknown or already erased ones are not)."""
    named: list[str]
    """Every event the records name."""

    @property
    def record_id(self) -> str:
        """The first record (``EraseEventsResponse.record_event_id``)."""
        return self.record_ids[0]


def erasure_event(
    tenant: str,
    event_ids: Sequence[str],
    reason: str,
    requested_by: str,
    subject_id: str,
    when: dt.datetime,
    event_type: event_pb2.EventType = event_pb2.EVENT_TYPE_PRIVACY_ERASURE,
    key_id: str = "",
    roles: Collection[str] = (),
) -> event_pb2.Event:
    """The record of an erasure (or, with ``EVENT_TYPE_RETENTION_APPLIED``, of a retention).

    ``key_id`` and ``roles``: the requester's API key (or token) and roles, named
    as an access record names its reader's (``EraseEvents``; none from the command
    line, whose requester is ``--requested-by``).
    """
    prefix = "erasure" if event_type == event_pb2.EVENT_TYPE_PRIVACY_ERASURE else "retention"
    event = event_pb2.Event(
        event_id=f"{prefix}-{uuid.uuid4()}",
        tenant_id=tenant,
        event_type=event_type,
        actor=event_pb2.Actor(
            user_id=requested_by, api_key_id=key_id, user_role=",".join(sorted(roles))
        ),
        privacy_action=event_pb2.PrivacyAction(
            subject_id=subject_id,
            event_ids=list(event_ids),
            reason=reason,
            requested_by=requested_by,
        ),
    )
    set_timestamp(event.occurred_time, when)
    return event


def erase(
    store: SqlEventStore,
    tenant: str,
    reason: str,
    requested_by: str,
    event_ids: Sequence[str] = (),
    subject_id: str = "",
    per_record: int = RECORD_IDS,
    key_id: str = "",
    roles: Collection[str] = (),
) -> Erased:
    """Erases the content of ``event_ids`` and/or of every event of ``subject_id``.

    ``key_id``, ``roles``: the requester's key and roles, named in each record
    (:func:`erasure_event`).

    Recorded as one record per ``per_record`` ids named, in request then log
    order, each with the attributes ``erasure.part`` (from 1) and
    ``erasure.parts``, so a reader of the log can tell it holds them all.
    Raises ValueError when nothing is named, when no reason or requester is given, or
    for a value the store cannot hold (see :func:`problems`).
    """
    if not reason.strip() or not requested_by.strip():
        raise ValueError("an erasure needs a reason and who requested it")
    if bad := problems(requested_by, subject_id, reason):
        raise ValueError("; ".join(f"{field} {problem}" for field, problem in bad))
    now = dt.datetime.now(dt.UTC)

    def records_of(named: list[str]) -> list[NewEvent]:
        parts = [named[i : i + per_record] for i in range(0, len(named), per_record)]
        records = []
        for part, ids in enumerate(parts, 1):
            event = erasure_event(
                tenant, ids, reason, requested_by, subject_id, now, key_id=key_id, roles=roles
            )
            event.attributes[PART].int_value = part
            event.attributes[PARTS].int_value = len(parts)
            records.append(prepare(event, now))
        return records

    named, erased, record_ids = store.erase(tenant, event_ids, subject_id, records_of)
    return Erased(record_ids, erased, named)
