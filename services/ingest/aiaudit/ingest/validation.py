"""Validation of incoming events: every problem named by its field path.

Pure logic, no gRPC: the handler turns the violations into INVALID_ARGUMENT
with google.rpc.BadRequest details. Both the rules of the event as a whole
(ids, type, time, the fields each type must hold (``REQUIRED``), stored columns,
trace ids, IP address:
``libs/native/src/event_rules.rs``: also how many entries each field the search index
nests holds, ``Limits.max_entries``) and the checks of every set field by its
kind (enums known, numbers finite and not negative, metadata within its limit,
timestamps, durations, Struct numbers and values, media and money:
``libs/native/src/validate.rs``) run in the native core over the event's wire
bytes; the attributes' keys and values, and the trust signals' names (each the last part
of a search field: ``aiaudit.common.field_names``), are checked here.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import math
from collections.abc import Iterator
from dataclasses import dataclass

import aiaudit_native

from aiaudit.common import canonical, field_names
from aiaudit.common.event_ids import EVENT_ID
from aiaudit.common.store.schema import TEXT_COLUMNS, events
from aiaudit.common.tenants import TENANT_ID
from aiaudit.common.v1 import event_pb2

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_STORED_TEXT = [
    (f"{message}.{field}", int(events.c[column].type.length))  # type: ignore[attr-defined]
    for column, (message, field) in TEXT_COLUMNS.items()
    if column != "trace_id"  # checked as 32 hex digits
]
"""Fields the store also keeps in columns of their own (``varchar(n)`` on PostgreSQL):
longer values, or U+0000, which PostgreSQL text cannot hold, would fail the commit."""


OPENSEARCH_NESTED_OBJECTS = 10_000
"""OpenSearch's ``index.mapping.nested_objects.limit`` (its default): a document with more
nested objects is refused by every bulk for ever. Each value of a multi-valued field is one
object of the nested field ``entries`` (``services/search/aiaudit/search/document.py``)."""

MAX_NESTED_ENTRIES = OPENSEARCH_NESTED_OBJECTS // 2
"""The most index entries the limits below let one event make: half of OpenSearch's limit,
so a field added later, or a limit raised, still leaves the document well under it."""

ENTRIES_PER_ITEM = {"safety_flags": 5}
"""Index entries one item makes (a safety flag: category, severity, score, blocked, source);
any other field's item makes at most one."""

MAX_ENTRIES = {
    "attributes": 1000,
    "trust_signals": 1000,
    "safety_flags": 200,
    "output.tool_calls": 1000,
    "output.finish_reasons": 1000,
}
"""Items each multi-valued field the search index nests may hold in one event: 1,000 index
entries per field (200 safety flags of 5 each), 5,000 for the five together. Counted by the
native rules over the wire (no Python walk: reading five lengths off the parsed event cost
~3 us an event, more than half of all validation), a map's entries as sent. Before these
limits an event with 10,001 attributes was stored and its document refused by OpenSearch
for ever (review, 2026-12-05)."""


@dataclass(frozen=True)
class Limits:
    """Size limits, stated in every error that enforces them."""

    max_batch_events: int = 1000
    max_event_bytes: int = 4 * 1024 * 1024
    max_message_bytes: int = 64 * 1024 * 1024
    """gRPC's message limit: with :data:`STORED_FACTOR`, what a batch may store."""
    max_metadata_chars: int = 4096
    max_future_skew: dt.timedelta = dt.timedelta(hours=24)
    max_entries: tuple[tuple[str, int], ...] = tuple(MAX_ENTRIES.items())
    """(field path, most items) of each multi-valued field the search index nests."""

    def __post_init__(self) -> None:
        made = sum(n * ENTRIES_PER_ITEM.get(f, 1) for f, n in self.max_entries)
        if made > MAX_NESTED_ENTRIES:
            raise ValueError(
                f"the entry limits let an event make {made} index entries; "
                f"at most {MAX_NESTED_ENTRIES}"
            )


STORED_FACTOR = 8
"""Bytes stored (canonical form plus content) an event may take for each byte of
``max_event_bytes``, and a batch for each byte of ``max_message_bytes``. Escaping keeps
ordinary events within 6 (a control character is ``\\u0001`` in JSON), but every content
value stores a 76-character commitment and its path however short it is: an event of
4 MiB made of 838,000 one-character parts stored 110 MB, and a request of 8 of them
(33 MB) was not committed within 30 s on PostgreSQL, answered UNAVAILABLE "retry", every
retry as slow (probed 2026-12-07)."""

STORED_VALUE_MOST = 1_000_000_000
"""Stored bytes (canonical form plus content) one event may take whatever ``max_event_bytes``
allows: PostgreSQL holds no value, nor takes a message, past 1 GB. With ``max_event_bytes``
at 200 MiB, an event of 190 MB of control characters (1.14 GB of content as JSON) lost the
store's connection at every try, answered UNAVAILABLE "retry" for good (probed 2026-12-07)."""


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
    An event id met twice is no violation: whether the repeat is the same event
    (stored once) or another one (a conflict) is told once the policies have
    rewritten both (the handler's ``_fold_repeats``).
    """
    if not events:
        return [Violation(prefix, "must contain at least one event")]
    if len(events) > limits.max_batch_events:
        return [
            Violation(prefix, f"has {len(events)} events; the limit is {limits.max_batch_events}")
        ]
    out: list[Violation] = []
    horizon = _horizon(now, limits)
    checks = native_checks(limits)
    for i, event in enumerate(events):
        path = f"{prefix}[{i}]"
        out.extend(_violations(event, limits, checks, horizon, path, wires[i] if wires else None))
    return out


def validate_event(
    event: event_pb2.Event,
    limits: Limits,
    now: dt.datetime,
    path: str,
    wire: bytes | None = None,
) -> list[Violation]:
    """Every violation in one event (``wire``: the event serialised, if the caller has it)."""
    return _violations(event, limits, native_checks(limits), _horizon(now, limits), path, wire)


def _horizon(now: dt.datetime, limits: Limits) -> float:
    """The latest ``occurred_time`` accepted, in seconds since the epoch (once per batch)."""
    return (now + limits.max_future_skew - _EPOCH).total_seconds()


def _violations(
    event: event_pb2.Event,
    limits: Limits,
    checks: aiaudit_native.EventChecks,
    horizon: float,
    path: str,
    wire: bytes | None,
) -> list[Violation]:
    if wire is None:
        wire = event.SerializeToString()
    rules, fields = checks.check(wire, horizon, _is_ip)
    out = [Violation(f"{path}.{field}", problem) for field, problem in rules]
    # Too many attributes or trust signals: the count is the answer, not a check of each name.
    if event.trust_signals and not (rules and any(f == "trust_signals" for f, _ in rules)):
        out.extend(_trust_signal_names(event, path))
    if event.attributes and not (rules and any(f == "attributes" for f, _ in rules)):
        out.extend(_attributes(event, limits, path))
    if len(wire) > limits.max_event_bytes:
        out.append(Violation(path, f"is {len(wire)} bytes; the limit is {limits.max_event_bytes}"))
    out.extend(Violation(f"{path}.{field}", problem) for field, problem in fields)
    return out


def stored_violations(
    stored: list[tuple[int, int]], limits: Limits, prefix: str = "events"
) -> list[Violation]:
    """The events, or else the batch, stored past their limits (see :data:`STORED_FACTOR`).

    ``stored``: each event's stored bytes (canonical form plus content) and content values.
    """
    most = min(STORED_FACTOR * limits.max_event_bytes, STORED_VALUE_MOST)
    why = f"{STORED_FACTOR} x max_event_bytes" if most < STORED_VALUE_MOST else "PostgreSQL's 1 GB"
    out = [
        Violation(
            f"{prefix}[{i}]",
            f"is {size} bytes once stored (canonical form and content as JSON, {values} content "
            f"values with a 76-character commitment each); the limit is {most} ({why})",
        )
        for i, (size, values) in enumerate(stored)
        if size > most
    ]
    total, batch_most = sum(size for size, _ in stored), STORED_FACTOR * limits.max_message_bytes
    if not out and total > batch_most:
        out.append(
            Violation(
                prefix,
                f"are {total} bytes stored together (canonical forms and content); the limit "
                f"is {batch_most} ({STORED_FACTOR} x max_message_bytes): send fewer at once",
            )
        )
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

_APPROVAL = "approval.approval_id"
_DECISION = (_APPROVAL, "approval.approver_id")
REQUIRED: dict[int, tuple[str, ...]] = {
    event_pb2.EVENT_TYPE_INTERACTION: ("model.name",),
    event_pb2.EVENT_TYPE_TOOL_CALL: ("tool_call.name",),
    event_pb2.EVENT_TYPE_AGENT_HANDOFF: ("agent_handoff.to_agent",),
    event_pb2.EVENT_TYPE_APPROVAL_CREATED: (_APPROVAL,),
    event_pb2.EVENT_TYPE_APPROVAL_APPROVED: _DECISION,
    event_pb2.EVENT_TYPE_APPROVAL_REJECTED: _DECISION,
    event_pb2.EVENT_TYPE_APPROVAL_EXPIRED: (_APPROVAL,),
    event_pb2.EVENT_TYPE_TASK_QUEUED: ("task.task_id",),
    event_pb2.EVENT_TYPE_TASK_COMPLETED: ("task.task_id",),
    event_pb2.EVENT_TYPE_TASK_FAILED: ("task.task_id",),
    event_pb2.EVENT_TYPE_RATE_LIMITED: ("budget.limit_name",),
    event_pb2.EVENT_TYPE_BUDGET_EXCEEDED: ("budget.limit_name",),
    event_pb2.EVENT_TYPE_FEEDBACK: ("trust_signals",),
    event_pb2.EVENT_TYPE_MODEL_CHANGE: ("model_change.current.name",),
    event_pb2.EVENT_TYPE_PRIVACY_CONSENT_CHANGED: ("privacy_action.subject_id",),
    event_pb2.EVENT_TYPE_PRIVACY_ACCESS_REQUESTED: ("privacy_action.subject_id",),
}
"""The fields a client's event of each type must hold (a text not empty, a list with an
entry): without them the record is no evidence of what its type says happened: a decision
naming no approver or no approval, a tool call no tool, a rate limit or budget no limit,
feedback no signal, a privacy request no data subject. Only what the type means nothing
without; the rest of each payload stays optional. Until 2026-12-06 only an interaction's
``model.name`` was required, and an ``EVENT_TYPE_APPROVAL_APPROVED`` with no approval
at all was stored."""


@functools.cache
def native_checks(limits: Limits) -> aiaudit_native.EventChecks:
    """The native checks of an event under these limits (built once per limits)."""
    return aiaudit_native.EventChecks(
        canonical.native_schema(),
        EVENT_ID.pattern,
        TENANT_ID.pattern,
        {
            t: f"{event_pb2.EventType.Name(t)} is written by the service itself (erasure and "
            "retention records, access records, rule changes), never sent by a client"
            for t in SERVER_WRITTEN
        },
        [
            (t, path, f"is required for {event_pb2.EventType.Name(t)} events")
            for t, paths in REQUIRED.items()
            for path in paths
        ],
        _STORED_TEXT,
        limits.max_metadata_chars,
        f"is more than {limits.max_future_skew} ahead of the server clock",
        list(limits.max_entries),
    )


def _is_ip(address: str) -> bool:
    """Python's judge of an address the native parser does not take as canonically spelled."""
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def _trust_signal_names(e: event_pb2.Event, path: str) -> Iterator[Violation]:
    """Each trust signal's name, which search's filters name as ``trust_signals.<name>``."""
    for i, signal in enumerate(e.trust_signals):
        if not field_names.valid_name(signal.name):
            yield Violation(f"{path}.trust_signals[{i}].name", f"must be {field_names.NAME_RULE}")


def _attributes(e: event_pb2.Event, limits: Limits, path: str) -> Iterator[Violation]:
    """The attributes' keys and values (the native field checks skip maps)."""
    for key, value in e.attributes.items():
        if not field_names.valid_attribute_key(key):
            yield Violation(
                f"{path}.attributes[{key!r}]", f"key must be {field_names.ATTRIBUTE_KEY_RULE}"
            )
        which = value.WhichOneof("value")
        if which is None:
            yield Violation(f"{path}.attributes[{key!r}]", "must have a value")
        elif which == "double_value" and not math.isfinite(value.double_value):
            yield Violation(f"{path}.attributes[{key!r}].double_value", "must be a finite number")
        elif which == "string_value" and len(value.string_value) > limits.max_metadata_chars:
            size, limit = len(value.string_value), limits.max_metadata_chars
            yield Violation(
                f"{path}.attributes[{key!r}].string_value",
                f"is {size} characters; the limit is {limit}",
            )
