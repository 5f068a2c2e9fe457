"""The searchable fields of an event: names, types, and how each is stored.

One catalogue drives the filter parser (which names and literals are valid),
the document builder (what is indexed), both query translators (SQLite
columns, OpenSearch fields), aggregations and the CSV/XML export columns, so
a field is filterable everywhere or nowhere.

Three shapes of field:
- *scalar*: one value per event; a column in SQLite, a top-level field in
  OpenSearch (dots replaced by ``__`` so ``usage.cost`` and
  ``usage.cost.currency_code`` never collide as objects).
- *multi*: repeated values (``safety_flags.category``) and the open-ended
  families ``trust_signals.<name>`` and ``attributes.<key>``; rows of a
  side table in SQLite, entries of one nested field in OpenSearch. A
  comparison holds when any value satisfies it.
- *text*: content, analysed for full-text search and highlighting.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from aiaudit.common import field_names
from aiaudit.common.v1 import event_pb2


class Kind(enum.Enum):
    """Value type of a field, which decides the operators and literals it takes."""

    KEYWORD = "keyword"
    ENUM = "enum"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    TIMESTAMP = "timestamp"
    DURATION = "duration"
    TEXT = "text"
    DYNAMIC = "dynamic"
    """A typed attribute value: the literal's type decides (number, string, bool)."""


@dataclass(frozen=True)
class Field:
    """One searchable field."""

    name: str
    kind: Kind
    multi: bool = False
    enum_prefix: str = ""
    """For ENUM: the value-name prefix (``EVENT_TYPE_``), so the short form works too."""
    enum_values: tuple[str, ...] = ()
    sortable: bool = False

    @property
    def column(self) -> str:
        """Its SQLite column and OpenSearch field name."""
        return self.name.replace(".", "__")

    @property
    def numeric(self) -> bool:
        """Whether stats and ranges apply."""
        return self.kind in (Kind.INT, Kind.FLOAT, Kind.DURATION, Kind.TIMESTAMP)


def _enum(name: str, enum_type: object, prefix: str, multi: bool = False) -> Field:
    values = tuple(enum_type.keys())  # type: ignore[attr-defined]
    return Field(name, Kind.ENUM, multi=multi, enum_prefix=prefix, enum_values=values)


_K, _I, _F, _D = Kind.KEYWORD, Kind.INT, Kind.FLOAT, Kind.DURATION

SCALARS: tuple[Field, ...] = (
    Field("event_id", _K),
    Field("sequence", _I, sortable=True),
    _enum("event_type", event_pb2.EventType, "EVENT_TYPE_"),
    Field("occurred_time", Kind.TIMESTAMP, sortable=True),
    Field("receive_time", Kind.TIMESTAMP, sortable=True),
    *(
        Field(f"correlation.{n}", _K)
        for n in (
            "correlation_id",
            "trace_id",
            "span_id",
            "session_id",
            "conversation_id",
            "parent_event_id",
        )
    ),
    *(
        Field(f"actor.{n}", _K)
        for n in (
            "user_id",
            "user_role",
            "ip_address",
            "api_key_id",
            "application",
            "environment",
            "agent_name",
            "agent_id",
        )
    ),
    *(Field(f"model.{n}", _K) for n in ("provider", "name", "version", "operation")),
    Field("model.temperature", _F),
    Field("model.top_p", _F),
    Field("model.max_tokens", _I),
    *(
        Field(f"usage.{n}", _I)
        for n in ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens")
    ),
    Field("usage.cost", _F),
    Field("usage.cost.currency_code", _K),
    Field("timing.latency", _D),
    Field("timing.time_to_first_token", _D),
    Field("tool_call.name", _K),
    _enum("tool_call.status", event_pb2.ToolCallStatus, "TOOL_CALL_STATUS_"),
    Field("tool_call.duration", _D),
    Field("agent_handoff.from_agent", _K),
    Field("agent_handoff.to_agent", _K),
    *(
        Field(f"approval.{n}", _K)
        for n in ("approval_id", "action", "requested_by", "approver_id", "approver_role")
    ),
    Field("task.name", _K),
    Field("budget.limit_name", _K),
    Field("budget.used", _F),
    Field("budget.limit", _F),
    Field("privacy_action.subject_id", _K),
    Field("error.type", _K),
    _enum("data_classification", event_pb2.DataClassification, "DATA_CLASSIFICATION_"),
)

MULTIS: tuple[Field, ...] = (
    Field("safety_flags.category", _K, multi=True),
    _enum("safety_flags.severity", event_pb2.Severity, "SEVERITY_", multi=True),
    Field("safety_flags.score", _F, multi=True),
    Field("safety_flags.blocked", Kind.BOOL, multi=True),
    Field("safety_flags.source", _K, multi=True),
    Field("output.finish_reasons", _K, multi=True),
    Field("output.tool_calls.name", _K, multi=True),
)

FAMILIES = ("trust_signals", "attributes")
"""Open-ended families: ``trust_signals.<name>`` and ``attributes.<key>`` (typed values)."""

TEXTS: tuple[Field, ...] = (
    Field("input.text", Kind.TEXT),
    Field("output.text", Kind.TEXT),
    Field("tool_call.text", Kind.TEXT),
)
"""Content searched by ``query``: what was sent (system instructions, messages,
retrieved chunks), what came back (messages, reasoning), tool arguments and results."""

_BY_NAME = {f.name: f for f in (*SCALARS, *MULTIS, *TEXTS)}

PII_FIELDS = frozenset({"actor.ip_address"})
"""Returned, filtered and grouped on only with the ``pii.read`` permission."""


def lookup(name: str) -> Field | None:
    """The field of that name (families yield a DYNAMIC multi field), or None."""
    found = _BY_NAME.get(name)
    if found is not None:
        return found
    family, dot, key = name.partition(".")
    if dot and family in FAMILIES and field_names.valid_name(key):
        return Field(name, Kind.DYNAMIC, multi=True)
    return None


def scalar(name: str) -> Field:
    """A scalar field known to exist (for code paths with fixed names)."""
    field = _BY_NAME[name]
    assert not field.multi and field.kind is not Kind.TEXT, name
    return field
