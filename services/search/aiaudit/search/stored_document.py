"""Documents straight from the stored canonical JSON, the indexer's hot path.

:func:`aiaudit.search.document.build` needs a protobuf message, so every
indexed event would be parsed into one and then read field by field: about
three quarters of the indexer's Python time. :func:`from_stored` reads the
values :func:`~aiaudit.search.document.build` extracts directly from the
canonical JSON (lowerCamelCase names, 64-bit integers as strings, enums by
name, timestamps and durations in their canonical text) and the content
beside it, and gives the same :class:`~aiaudit.search.document.Document`
(tested field for field on events with every field set). Anything it does
not expect (a key it does not know where ``build`` would index every key, a
value of another type, an enum by number, a non-canonical time) falls back to
``build`` on the restored message, which indexes it exactly or raises the
error a damaged row deserves.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson

from aiaudit.common.store.sql import StoredEvent
from aiaudit.common.v1 import event_pb2
from aiaudit.search import document
from aiaudit.search.document import Document, Entry, Scalar

Content = dict[str, str] | None

_EPOCH = dt.datetime(1970, 1, 1)
_SECOND = dt.timedelta(seconds=1)
_STRINGS: dict[str, tuple[dict[str, str], bool]] = {
    "correlation": (
        {
            "correlationId": "correlation.correlation_id",
            "traceId": "correlation.trace_id",
            "spanId": "correlation.span_id",
            "sessionId": "correlation.session_id",
            "conversationId": "correlation.conversation_id",
            "parentEventId": "correlation.parent_event_id",
        },
        True,
    ),
    "actor": (
        {
            "userId": "actor.user_id",
            "userRole": "actor.user_role",
            "ipAddress": "actor.ip_address",
            "apiKeyId": "actor.api_key_id",
            "application": "actor.application",
            "environment": "actor.environment",
            "agentName": "actor.agent_name",
            "agentId": "actor.agent_id",
        },
        True,
    ),
    "model": (
        {
            "provider": "model.provider",
            "name": "model.name",
            "version": "model.version",
            "operation": "model.operation",
        },
        False,
    ),
    "agentHandoff": (
        {"fromAgent": "agent_handoff.from_agent", "toAgent": "agent_handoff.to_agent"},
        False,
    ),
    "approval": (
        {
            "approvalId": "approval.approval_id",
            "action": "approval.action",
            "requestedBy": "approval.requested_by",
            "approverId": "approval.approver_id",
            "approverRole": "approval.approver_role",
        },
        False,
    ),
    "task": ({"name": "task.name"}, False),
    "privacyAction": ({"subjectId": "privacy_action.subject_id"}, False),
    "error": ({"type": "error.type"}, False),
}
"""String fields indexed when non-empty, per message: JSON name -> catalogue name, and
whether every key is one (``build`` indexes actor and correlation whole, so a key it
does not know is for the exact path)."""

_TOKENS = (
    ("inputTokens", "usage.input_tokens"),
    ("outputTokens", "usage.output_tokens"),
    ("cachedInputTokens", "usage.cached_input_tokens"),
    ("reasoningTokens", "usage.reasoning_tokens"),
)
_EVENT_TYPES = frozenset(event_pb2.EventType.keys())
_STATUSES = frozenset(event_pb2.ToolCallStatus.keys())
_CLASSIFICATIONS = frozenset(event_pb2.DataClassification.keys())
_SEVERITIES = frozenset(event_pb2.Severity.keys())
_DURATIONS = (("latency", "timing.latency"), ("timeToFirstToken", "timing.time_to_first_token"))


class FastPathError(ValueError):
    """Something only the protobuf path handles (see :func:`from_stored`)."""


def from_stored(entry: StoredEvent) -> Document:
    """The indexed form of a stored event: ``document.build(entry.to_event(), entry.sequence)``."""
    try:
        return from_canonical(entry.canonical, entry.content, entry.sequence)
    except Exception:  # anything unusual: the exact path decides, or raises
        return document.build(entry.to_event(), entry.sequence)


def from_canonical(canonical: bytes, content: Content, sequence: int) -> Document:
    """The fast path alone: raises FastPathError where it would fall back."""
    try:
        node = parse(canonical)
        tenant = _str(node.get("tenantId", ""))
        doc = Document(tenant, _str(node.get("eventId", "")), sequence, scalars(node, sequence))
        indexed = [x for x in values(node) if document.indexed(x)]
        doc.entries, doc.omitted_entries = document.capped(indexed)
        doc.texts = texts(node, content)
        return doc
    except UNEXPECTED as exc:
        raise FastPathError(f"unexpected: {exc!r}") from None


UNEXPECTED = (KeyError, TypeError, ValueError, AttributeError)
"""What reading an unexpected stored form raises (FastPathError among them): the
exact path decides. :func:`scalars`, :func:`values` and :func:`texts` raise them."""


def parse(canonical: bytes) -> dict[str, Any]:
    """The canonical JSON as an object (FastPathError, or orjson's ValueError, if it is not)."""
    node = orjson.loads(canonical)
    if type(node) is not dict:
        raise FastPathError("not an object")
    return node


def scalars(node: dict[str, Any], sequence: int) -> dict[str, Scalar]:
    """``document.build(event, sequence).scalars`` of the event parsed into ``node``."""
    s: dict[str, Scalar] = {}
    s["event_id"] = _str(node.get("eventId", ""))
    s["sequence"] = sequence
    s["event_type"] = _enum(_EVENT_TYPES, node.get("eventType", "EVENT_TYPE_UNSPECIFIED"))
    s["occurred_time"] = _micros(node.get("occurredTime"))
    s["receive_time"] = _micros(node.get("receiveTime"))
    for message, (names, whole) in _STRINGS.items():
        found = node.get(message)
        if found is None:
            continue
        for key, value in _object(found).items():
            name = names.get(key)
            if name is not None:
                if value != "":
                    s[name] = _str(value)
            elif whole:
                raise FastPathError(f"unknown key {key}")
    model = _object(node.get("model"))
    for key, name in (("temperature", "model.temperature"), ("topP", "model.top_p")):
        if key in model:
            s[name] = _float(model[key])
    if "maxTokens" in model:
        s["model.max_tokens"] = _int(model["maxTokens"])
    if "usage" in node:
        usage = _object(node["usage"])
        for key, name in _TOKENS:
            s[name] = _int(usage.get(key, 0))
        if "cost" in usage:
            cost = _object(usage["cost"])
            s["usage.cost"] = document.money(_int(cost.get("units", 0)), _int(cost.get("nanos", 0)))
            _put(s, "usage.cost.currency_code", cost.get("currencyCode", ""))
    timing = _object(node.get("timing"))
    for key, name in _DURATIONS:
        if key in timing:
            s[name] = _seconds(timing[key])
    if "toolCall" in node:
        call = _object(node["toolCall"])
        _put(s, "tool_call.name", call.get("name", ""))
        s["tool_call.status"] = _enum(_STATUSES, call.get("status", "TOOL_CALL_STATUS_UNSPECIFIED"))
        if "duration" in call:
            s["tool_call.duration"] = _seconds(call["duration"])
    if "budget" in node:
        budget = _object(node["budget"])
        _put(s, "budget.limit_name", budget.get("limitName", ""))
        s["budget.used"] = _float(budget.get("used", 0.0))
        s["budget.limit"] = _float(budget.get("limit", 0.0))
    s["data_classification"] = _enum(
        _CLASSIFICATIONS, node.get("dataClassification", "DATA_CLASSIFICATION_UNSPECIFIED")
    )
    return s


def _object(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if type(value) is not dict:
        raise FastPathError("not an object")
    return value


def _str(value: Any) -> str:
    if type(value) is not str:
        raise FastPathError("not a string")
    return value


def _put(s: dict[str, Scalar], name: str, value: Any) -> None:
    if value != "":
        s[name] = _str(value)


def _enum(names: frozenset[str], value: Any) -> str:
    """An enum value by name (a number or an unknown name is for the exact path)."""
    if value not in names:
        raise FastPathError("not an enum name")
    return _str(value)


def _int(value: Any) -> int:
    if type(value) is int:
        return value
    if type(value) is str and value.lstrip("-").isdigit():
        return int(value)
    raise FastPathError("not an integer")


def _float(value: Any) -> float:
    if type(value) is float or type(value) is int:
        return float(value)
    raise FastPathError("not a number")


def _micros(value: Any) -> int:
    """A canonical RFC 3339 timestamp (UTC, ``Z``, 0/3/6/9 fraction digits) in microseconds."""
    if value is None:
        return 0
    if (
        type(value) is not str
        or len(value) < 20
        or value[-1] != "Z"
        or value[4] != "-"
        or value[7] != "-"
        or value[10] != "T"
        or value[13] != ":"
        or value[16] != ":"
    ):
        raise FastPathError("not a canonical timestamp")
    hour = value[:13]
    start = _HOURS.get(hour)
    if start is None:
        when = dt.datetime(int(value[0:4]), int(value[5:7]), int(value[8:10]), int(value[11:13]))
        start = (when - _EPOCH) // _SECOND
        if len(_HOURS) >= 65536:
            _HOURS.clear()
        _HOURS[hour] = start
    minute, second = int(value[14:16]), int(value[17:19])
    if not (0 <= minute < 60 and 0 <= second < 60):
        raise FastPathError("not a canonical timestamp")
    return (start + minute * 60 + second) * 1_000_000 + _fraction(value[19:-1]) // 1000


_HOURS: dict[str, int] = {}
"""Epoch seconds of ``YYYY-MM-DDTHH`` (events of a batch mostly share a few hours)."""


def _fraction(text: str) -> int:
    """Nanoseconds of a ``.ddd``/``.dddddd``/``.ddddddddd`` fraction ("" is 0)."""
    if not text:
        return 0
    digits = text[1:]
    if text[0] != "." or len(digits) not in (3, 6, 9) or not digits.isdigit():
        raise FastPathError("not a canonical fraction")
    return int(digits.ljust(9, "0"))


def _seconds(value: Any) -> float:
    """A canonical duration (``-1.500s``) in seconds, as ``document.seconds`` computes it."""
    if type(value) is not str or len(value) < 2 or value[-1] != "s":
        raise FastPathError("not a canonical duration")
    negative = value[0] == "-"
    whole, dot, fraction = value[1 if negative else 0 : -1].partition(".")
    if not whole.isdigit():
        raise FastPathError("not a canonical duration")
    seconds = int(whole) + _fraction(dot + fraction) / 1e9
    return -seconds if negative else seconds


def _typed(name: str, value: Any) -> Entry:
    """``document.typed`` on an AttributeValue's JSON."""
    found = _object(value)
    if not found:
        return Entry(name, "")
    if len(found) != 1:
        raise FastPathError("not one value")
    ((which, v),) = found.items()
    if which == "intValue":
        return Entry(name, num_value=_int(v))
    if which == "doubleValue":
        return Entry(name, num_value=_float(v))
    if which == "boolValue":
        if type(v) is not bool:
            raise FastPathError("not a bool")
        return Entry(name, bool_value=v)
    if which == "stringValue":
        return Entry(name, _str(v))
    raise FastPathError("unknown value")


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if type(value) is not list:
        raise FastPathError("not a list")
    return value


def values(node: dict[str, Any]) -> list[Entry]:
    """``document.values(event)`` (every value, an empty text included) of the event in ``node``."""
    out: list[Entry] = []
    for flag in _list(node.get("safetyFlags")):
        flag = _object(flag)
        out.append(
            Entry(
                "safety_flags.severity",
                _enum(_SEVERITIES, flag.get("severity", "SEVERITY_UNSPECIFIED")),
            )
        )
        out.append(Entry("safety_flags.score", num_value=_float(flag.get("score", 0.0))))
        blocked = flag.get("blocked", False)
        if type(blocked) is not bool:
            raise FastPathError("not a bool")
        out.append(Entry("safety_flags.blocked", bool_value=blocked))
        out.append(Entry("safety_flags.category", _str(flag.get("category", ""))))
        out.append(Entry("safety_flags.source", _str(flag.get("source", ""))))
    output = _object(node.get("output"))
    out += [Entry("output.finish_reasons", _str(r)) for r in _list(output.get("finishReasons"))]
    out += [
        Entry("output.tool_calls.name", _str(_object(c).get("name", "")))
        for c in _list(output.get("toolCalls"))
    ]
    for signal in _list(node.get("trustSignals")):
        signal = _object(signal)
        name = _str(signal.get("name", ""))
        if name:
            out.append(_typed(f"trust_signals.{name}", signal.get("value")))
    attributes = _object(node.get("attributes"))
    out += [_typed(f"attributes.{k}", attributes[k]) for k in sorted(attributes)]
    return out


def texts(node: dict[str, Any], content: Content) -> dict[str, str]:
    """``Document.texts``: content by JSON path, in ``document``'s order (none when erased)."""
    if content is None:
        return {}
    sent: list[str] = []
    received: list[str] = []
    tools: list[str] = []
    given = _object(node.get("input"))
    _parts(sent, given.get("systemInstructions"), "input.systemInstructions", content)
    for i, m in enumerate(_list(given.get("messages"))):
        _parts(sent, _object(m).get("parts"), f"input.messages[{i}].parts", content)
    for i, c in enumerate(_list(given.get("retrievedContext"))):
        _text(sent, _object(c), "content", f"input.retrievedContext[{i}].content", content)
    output = _object(node.get("output"))
    for i, m in enumerate(_list(output.get("messages"))):
        _parts(received, _object(m).get("parts"), f"output.messages[{i}].parts", content)
    _text(received, output, "reasoning", "output.reasoning", content)
    call = _object(node.get("toolCall"))
    _text(tools, call, "arguments", "toolCall.arguments", content)
    _text(tools, call, "result", "toolCall.result", content)
    for i, c in enumerate(_list(output.get("toolCalls"))):
        c = _object(c)
        _text(tools, c, "arguments", f"output.toolCalls[{i}].arguments", content)
        _text(tools, c, "result", f"output.toolCalls[{i}].result", content)
    texts = {}
    for name, values in (
        ("input.text", sent),
        ("output.text", received),
        ("tool_call.text", tools),
    ):
        if values:
            texts[name] = "\n".join(values)
    return texts


def _text(
    out: list[str], node: dict[str, Any], key: str, path: str, content: dict[str, str]
) -> None:
    """Appends the content committed at ``key`` of ``node`` (its JSON path) if non-empty."""
    if key in node:
        value = _str(content.get(path, ""))
        if value:
            out.append(value)


def _parts(out: list[str], parts: Any, path: str, content: dict[str, str]) -> None:
    for i, part in enumerate(_list(parts)):
        _text(out, _object(part), "text", f"{path}[{i}].text", content)
