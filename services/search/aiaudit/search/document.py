"""An event as indexed: the catalogue's values, extracted once for every backend.

Values are normalised the same way the filter literals are: enums by full name,
timestamps in microseconds since the epoch, durations in seconds, money as a
number. A number is indexed only when its message is present (``usage`` on an
approval event is absent, not zero), so statistics are not skewed by zeros.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from google.protobuf import duration_pb2, timestamp_pb2

from aiaudit.common.v1 import event_pb2
from aiaudit.search.catalogue import FAMILIES

Scalar = str | int | float

MAX_ENTRIES = 10_000
"""Multi-valued values indexed per event at most (the rest are left out of the index).

OpenSearch indexes each entry as a nested document and refuses, for good, a
document with more than ``index.mapping.nested_objects.limit`` of them
(10,000 unless changed). Refused, the event would hold its log's indexing;
capped at that limit, the event stays findable by everything else: its ids,
actor, times, model, content and its first 10,000 values (safety flags,
finish reasons, tool-call names and trust signals first, then attributes in
key order). Both backends index the same. The store keeps the whole event,
and results (GetEvent, exports) come from there; the document records how
many values it left out (``omitted_entries``).
"""


@dataclass(frozen=True)
class Entry:
    """One value of a multi-valued field: text, number or boolean, exactly one set.

    An integer stays an ``int``: a float holds 53 bits, and exports print the
    value itself (``9007199254740993``, not ``9007199254740992.0``). A boolean
    is a kind of its own: as the text ``"true"`` it was the same entry as an
    attribute holding that text, found by both ``= true`` and ``= "true"`` and
    exported as a boolean either way.
    """

    field: str
    str_value: str | None = None
    num_value: int | float | None = None
    bool_value: bool | None = None


@dataclass
class Document:
    """What both backends store for one event."""

    tenant_id: str
    event_id: str
    sequence: int
    scalars: dict[str, Scalar] = field(default_factory=dict)
    """Catalogue name -> value (absent fields are not in the map)."""
    entries: list[Entry] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)
    """``input.text`` / ``output.text`` / ``tool_call.text`` -> content."""
    omitted_entries: int = 0
    """Values of the event past MAX_ENTRIES, not in ``entries`` (not indexed)."""
    revision: int = -1
    """The log sequence this document reflects: the event's own, or that of the last
    erasure record emptying it. A shared index keeps the highest it was sent (a late
    bulk from a deposed indexer never puts erased text back). -1: ``sequence``."""

    def __post_init__(self) -> None:
        if self.revision < 0:
            self.revision = self.sequence

    @property
    def doc_id(self) -> str:
        """Stable id: a retried index of the same event overwrites, never duplicates."""
        return f"{self.tenant_id}:{self.event_id}"


def micros(ts: timestamp_pb2.Timestamp) -> int:
    """Microseconds since the epoch."""
    return ts.seconds * 1_000_000 + ts.nanos // 1000


def iso(us: int) -> str:
    """RFC 3339 with microseconds, UTC.

    The date and hour as ``strftime`` writes them, once an hour (cached); the rest
    by arithmetic. A ``datetime`` and ``strftime`` for each time were a tenth of a
    CSV or XML export's time (until 2026-12-06).
    """
    hour, rest = divmod(us, 3_600_000_000)
    prefix = _HOURS.get(hour)
    if prefix is None:
        prefix = (_EPOCH + dt.timedelta(hours=hour)).strftime("%Y-%m-%dT%H")
        if len(_HOURS) >= 65536:
            _HOURS.clear()
        _HOURS[hour] = prefix
    minute, rest = divmod(rest, 60_000_000)
    second, micro = divmod(rest, 1_000_000)
    return f"{prefix}:{minute:02d}:{second:02d}.{micro:06d}Z"


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_HOURS: dict[int, str] = {}
"""``YYYY-MM-DDTHH`` of hours since the epoch (an export's events mostly share a few)."""


def seconds(d: duration_pb2.Duration) -> float:
    """A duration in seconds."""
    return d.seconds + d.nanos / 1e9


def money(units: int, nanos: int) -> float:
    """A ``google.type.Money`` amount as the double nearest its decimal value.

    ``units + nanos / 1e9`` rounded twice: $1.14 (1 unit, 140,000,000 nanos) was
    indexed as 1.1400000000000001, which neither ``usage.cost = 1.14`` nor
    ``<= 1.14`` matched (the literal is the double nearest 1.14), and which CSV,
    XML and ``Aggregate`` showed. Python divides integers correctly rounded, so
    one division of the whole amount in nanos gives what ``float("1.14")`` gives
    (units and nanos share their sign, as google.type.Money requires).
    """
    return (units * 1_000_000_000 + nanos) / 1_000_000_000


def _put(out: dict[str, Scalar], name: str, value: str) -> None:
    if value:
        out[name] = value


def build(event: event_pb2.Event, sequence: int) -> Document:
    """The indexed form of an event at its log sequence."""
    e = event
    doc = Document(e.tenant_id, e.event_id, sequence)
    s = doc.scalars
    s["event_id"] = e.event_id
    s["sequence"] = sequence
    s["event_type"] = event_pb2.EventType.Name(e.event_type)
    s["occurred_time"] = micros(e.occurred_time)
    s["receive_time"] = micros(e.receive_time)
    for msg, prefix in ((e.correlation, "correlation"), (e.actor, "actor")):
        for f, value in msg.ListFields():
            _put(s, f"{prefix}.{f.name}", value)
    for name in ("provider", "name", "version", "operation"):
        _put(s, f"model.{name}", getattr(e.model, name))
    for name in ("temperature", "top_p"):
        if e.model.HasField(name):
            s[f"model.{name}"] = float(getattr(e.model, name))
    if e.model.HasField("max_tokens"):
        s["model.max_tokens"] = e.model.max_tokens
    if e.HasField("usage"):
        u = e.usage
        for name in ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens"):
            s[f"usage.{name}"] = getattr(u, name)
        if u.HasField("cost"):
            s["usage.cost"] = money(u.cost.units, u.cost.nanos)
            _put(s, "usage.cost.currency_code", u.cost.currency_code)
    for name in ("latency", "time_to_first_token"):
        if e.timing.HasField(name):
            s[f"timing.{name}"] = seconds(getattr(e.timing, name))
    if e.HasField("tool_call"):
        _put(s, "tool_call.name", e.tool_call.name)
        s["tool_call.status"] = event_pb2.ToolCallStatus.Name(e.tool_call.status)
        if e.tool_call.HasField("duration"):
            s["tool_call.duration"] = seconds(e.tool_call.duration)
    _put(s, "agent_handoff.from_agent", e.agent_handoff.from_agent)
    _put(s, "agent_handoff.to_agent", e.agent_handoff.to_agent)
    for name in ("approval_id", "action", "requested_by", "approver_id", "approver_role"):
        _put(s, f"approval.{name}", getattr(e.approval, name))
    _put(s, "task.name", e.task.name)
    if e.HasField("budget"):
        _put(s, "budget.limit_name", e.budget.limit_name)
        s["budget.used"] = e.budget.used
        s["budget.limit"] = e.budget.limit
    _put(s, "privacy_action.subject_id", e.privacy_action.subject_id)
    _put(s, "error.type", e.error.type)
    s["data_classification"] = event_pb2.DataClassification.Name(e.data_classification)
    doc.entries, doc.omitted_entries = capped(_entries(e))
    doc.texts = {k: v for k, v in _texts(e).items() if v}
    return doc


def values(e: event_pb2.Event) -> list[Entry]:
    """Every value of the event's multi-valued fields, an empty text included, uncapped.

    What exports show: one value per safety flag in each ``safety_flags.*``
    column, one per finish reason and one per output tool call, in the event's
    order, so that the i-th value of each column belongs to the i-th item; and
    every attribute (and named trust signal), an empty text too. The index
    leaves the empty texts of the per-item fields out (:func:`build`), as it
    does an empty scalar: a flag without a category has none to find. Exports
    wrote what the index keeps until 2026-12-06: a flag without a category
    moved the next flag's category onto it (``["violence"]`` beside
    ``["SEVERITY_HIGH", "SEVERITY_LOW"]``), and an attribute holding ``""`` was
    not in the CSV or the XML columns.
    """
    out: list[Entry] = []
    for flag in e.safety_flags:
        out.append(Entry("safety_flags.severity", event_pb2.Severity.Name(flag.severity)))
        out.append(Entry("safety_flags.score", num_value=flag.score))
        out.append(Entry("safety_flags.blocked", bool_value=flag.blocked))
        out += [Entry(f"safety_flags.{n}", getattr(flag, n)) for n in ("category", "source")]
    out += [Entry("output.finish_reasons", r) for r in e.output.finish_reasons]
    out += [Entry("output.tool_calls.name", c.name) for c in e.output.tool_calls]
    out += [typed(f"trust_signals.{t.name}", t.value) for t in e.trust_signals if t.name]
    out += [typed(f"attributes.{k}", v) for k, v in sorted(e.attributes.items())]
    return out


def _entries(e: event_pb2.Event) -> list[Entry]:
    """The indexed values: :func:`values` without the per-item fields' empty texts."""
    return [x for x in values(e) if indexed(x)]


def indexed(entry: Entry) -> bool:
    """Whether the index keeps a value: all but an empty text of a per-item field.

    An attribute or a trust signal holding ``""`` (or no value) is there: its
    key or name was sent, and ``attributes.k:*`` finds it, ``attributes.k = ""``
    too. Until 2026-12-06 the index left it out, as it leaves out a flag's empty
    category (which is no category: proto3 cannot tell it from one unset).
    """
    return entry.str_value != "" or entry.field.partition(".")[0] in FAMILIES


def capped(entries: list[Entry]) -> tuple[list[Entry], int]:
    """The first MAX_ENTRIES entries, and how many were left out."""
    if len(entries) <= MAX_ENTRIES:
        return entries, 0
    return entries[:MAX_ENTRIES], len(entries) - MAX_ENTRIES


def typed(name: str, value: event_pb2.AttributeValue) -> Entry:
    """A typed value as an entry of its own type (an unset value is the empty text).

    The index drops the empty text; exports show it (a ``string`` ``""``).
    """
    which = value.WhichOneof("value")
    if which in ("int_value", "double_value"):
        return Entry(name, num_value=getattr(value, which))
    if which == "bool_value":
        return Entry(name, bool_value=value.bool_value)
    return Entry(name, value.string_value)


def _parts(parts: list[event_pb2.Part]) -> list[str]:
    return [p.text for p in parts if p.text]


def _texts(e: event_pb2.Event) -> dict[str, str]:
    sent = _parts(list(e.input.system_instructions))
    for m in e.input.messages:
        sent += _parts(list(m.parts))
    sent += [c.content for c in e.input.retrieved_context if c.content]
    received = [t for m in e.output.messages for t in _parts(list(m.parts))]
    if e.output.reasoning:
        received.append(e.output.reasoning)
    tools = [e.tool_call.arguments, e.tool_call.result]
    tools += [x for c in e.output.tool_calls for x in (c.arguments, c.result)]
    return {
        "input.text": "\n".join(sent),
        "output.text": "\n".join(received),
        "tool_call.text": "\n".join(t for t in tools if t),
    }
