"""Stored events back to protobuf, 5-6x faster than ``canonical.restore``.

Every consumer turns stored events into messages on its hot path (search
pages and the indexer, the alerting engine, integrity checks), through
``StoredEvent.to_event()``. The exact :func:`aiaudit.common.canonical.restore`
walks the event descriptor to find the content slots, then parses with
``json_format.ParseDict`` (generic, pure Python, ``strptime`` for each
timestamp): about 0.45 ms for a small event, the largest single cost of those paths.

:func:`restore` gives the same message (tested field for field against
``canonical.restore``, and on damaged rows: the same result or the same
error) by rewriting the canonical JSON into the keyword arguments of the
message constructor (``Event(**kwargs)``, nested dicts and lists for
sub-messages), which builds the whole message in one native call: about a
quarter of the time of setting fields one by one from Python.

The rewrite is one loop per JSON object, driven by a plan compiled once per
message type that gives each JSON name its field name and a kind (see
:data:`_PLAIN`). Most values are passed as they are: the constructor refuses
exactly the strings, enum names, numbers for doubles and Struct objects that
``json_format`` refuses or would read differently, and a refusal falls back.
The rest is converted: 64-bit integers (JSON strings), booleans (the
constructor would take ``1``), repeated fields (it would take a string as a
list of characters), timestamps and durations (parsed by hand in the
canonical form ``YYYY-MM-DDTHH:MM:SS[.f{3,6,9}]Z``, ``-S[.f{3,6,9}]s``),
bytes, maps, and content: a content field takes its value from ``content``
at its JSON path, and paths are only built where content can be and there
is content to look up. Anything the plan does not expect (an unknown key or
a proto field name, two members of a oneof, a value of an unexpected type, a
float32 field) falls back to ``canonical.restore``, which parses it exactly
or raises the error a damaged row deserves.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import orjson
from google.protobuf import descriptor, json_format, message_factory

from aiaudit.common import canonical
from aiaudit.common.v1 import event_pb2, options_pb2

Content = dict[str, str] | None
Converter = Callable[[Any, str], Any]
"""A JSON value to its constructor argument (value, JSON path for errors)."""

FD = descriptor.FieldDescriptor
_EPOCH = dt.datetime(1970, 1, 1)
_SECOND = dt.timedelta(seconds=1)
_INTS = (FD.CPPTYPE_INT32, FD.CPPTYPE_INT64, FD.CPPTYPE_UINT32, FD.CPPTYPE_UINT64)
_MAX_DURATION_SECONDS = 315_576_000_000


class _UnexpectedError(Exception):
    """The fast path met something it does not handle; the exact parser takes over."""


class FastPathError(ValueError):
    """The fast path met something it does not handle (see :func:`restore`)."""


_PLAIN, _MESSAGE, _MESSAGES, _CONTENT, _CONVERT = range(5)
"""How a JSON value becomes a constructor argument (the kinds of :class:`_Field`):

- ``_PLAIN``: as it is (strings, enum names or numbers, numbers for doubles, Struct objects);
- ``_MESSAGE``, ``_MESSAGES``: one or a list of our messages, by their plan (``arg``);
- ``_CONTENT``: the content at the field's JSON path (``arg``: is it bytes), else unset;
- ``_CONVERT``: by a converter (``arg``: value, JSON path -> argument).
"""


class _Field(NamedTuple):
    """How one JSON key of a message becomes a constructor keyword."""

    kind: int
    name: str
    """The field's name: the constructor keyword."""
    arg: Any
    traced: bool
    """Content can sit at or below this field: its JSON path is built."""


class _Plan(NamedTuple):
    """The compiled rewrite of one message type."""

    fields: dict[str, _Field]
    """By JSON name (proto field names fall back: canonical JSON never uses them)."""
    oneofs: tuple[tuple[str, ...], ...]
    """Members of each real oneof: JSON with two of them set is refused by the exact parser."""


def restore_fast(canonical_bytes: bytes, content: Content) -> event_pb2.Event:
    """The fast path alone: raises FastPathError (or a parse error) where it would fall back."""
    node = orjson.loads(canonical_bytes)
    if type(node) is not dict:
        raise FastPathError("not a JSON object")
    try:
        kwargs = _kwargs(_plan(event_pb2.Event.DESCRIPTOR), node, "", content)
    except (_UnexpectedError, KeyError) as exc:
        raise FastPathError(f"unexpected at {exc}") from None
    return event_pb2.Event(**kwargs)


def restore(canonical_bytes: bytes, content: Content) -> event_pb2.Event:
    """The event from its canonical form and content (content fields empty when erased).

    Same result as :func:`aiaudit.common.canonical.restore`.
    """
    try:
        return restore_fast(canonical_bytes, content)
    except Exception:  # anything unusual: the exact (slower) parser decides, or raises
        return canonical.restore(canonical_bytes, content)


def _kwargs(plan: _Plan, node: dict[str, Any], path: str, content: Content) -> dict[str, Any]:
    """The constructor keywords of one message from its JSON object (``path``: its JSON path).

    One loop with the kinds inline: a Python call per field was most of the cost.
    An unknown key is a KeyError (fall back). A null passes as None, which the
    constructor leaves unset as json_format does, except where canonical.restore
    reads it differently (messages: fall back). Paths are only built when there
    is content to look up.
    """
    kwargs: dict[str, Any] = {}
    fields = plan.fields
    for key, value in node.items():
        kind, name, arg, traced = fields[key]
        if kind is _PLAIN:
            kwargs[name] = value
        elif kind is _MESSAGE:
            if type(value) is not dict:
                raise _UnexpectedError(key)
            here = (f"{path}.{key}" if path else key) if traced and content else ""
            kwargs[name] = _kwargs(arg, value, here, content)
        elif kind is _MESSAGES:
            if type(value) is not list:
                raise _UnexpectedError(key)
            here = (f"{path}.{key}" if path else key) if traced and content else ""
            items = []
            for i, item in enumerate(value):
                if type(item) is not dict:
                    raise _UnexpectedError(key)
                items.append(_kwargs(arg, item, f"{here}[{i}]" if here else "", content))
            kwargs[name] = items
        elif kind is _CONTENT:
            if content:
                found = content.get(f"{path}.{key}" if path else key)
                kwargs[name] = _bytes(found, key) if arg and found is not None else found
        else:
            kwargs[name] = arg(value, key)
    if plan.oneofs and len(kwargs) > 1:
        for members in plan.oneofs:
            if sum(kwargs.get(m) is not None for m in members) > 1:
                raise _UnexpectedError(path)
    return kwargs


_PLANS: dict[Any, _Plan] = {}
"""Compiled plans by descriptor (identity-hashed: cheaper than its ``full_name``)."""


def _plan(desc: Any) -> _Plan:
    """The compiled plan of one message type (cached; registered first, for recursive types)."""
    found = _PLANS.get(desc)
    if found is not None:
        return found
    oneofs = tuple(tuple(f.name for f in o.fields) for o in desc.oneofs if len(o.fields) > 1)
    plan = _PLANS[desc] = _Plan({}, oneofs)
    if {o.name for o in desc.oneofs} & {f.json_name for f in desc.fields}:
        return plan  # json_format keeps oneof and JSON names in one list: every key falls back
    for field in desc.fields:
        kind, arg = _kind(field)
        plan.fields[field.json_name] = _Field(kind, field.name, arg, _holds_content(field))
    return plan


def _kind(field: Any) -> tuple[int, Any]:
    """The kind of one field and its ``arg`` (see :data:`_PLAIN`)."""
    mt = field.message_type
    if _sensitive(field):
        if field.is_repeated or mt is not None:
            return _CONVERT, _unexpected  # content in a shape only canonical.restore handles
        return _CONTENT, field.type == FD.TYPE_BYTES
    if mt is not None and mt.GetOptions().map_entry:
        return _CONVERT, _map(field)
    if mt is not None and mt.full_name.startswith("aiaudit."):
        return (_MESSAGES if field.is_repeated else _MESSAGE), _plan(mt)
    if mt is not None and mt.full_name == "google.protobuf.Struct" and not field.is_repeated:
        return _PLAIN, None  # the constructor reads a dict as the Struct's JSON (and only a dict)
    if mt is not None:
        one = _foreign(mt)
        return _CONVERT, _repeated(one) if field.is_repeated else one
    scalar = _scalar(field)
    if field.is_repeated:
        return _CONVERT, _repeated(scalar or _same)
    return (_PLAIN, None) if scalar is None else (_CONVERT, scalar)


def _sensitive(field: Any) -> bool:
    return bool(field.GetOptions().Extensions[options_pb2.sensitive_content])


def _holds_content(field: Any, seen: frozenset[str] = frozenset()) -> bool:
    """Whether content can sit at or below a field (then its JSON path is tracked).

    Maps and foreign types are never walked by ``canonical.restore``: no content there.
    """
    if _sensitive(field):
        return True
    mt = field.message_type
    if mt is None or not mt.full_name.startswith("aiaudit.") or mt.GetOptions().map_entry:
        return False
    if mt.full_name in seen:
        return False
    return any(_holds_content(f, seen | {mt.full_name}) for f in mt.fields)


def _unexpected(_value: Any, path: str) -> Any:
    raise _UnexpectedError(path)


def _same(value: Any, _path: str) -> Any:
    return value


def _repeated(one: Converter) -> Converter:
    """A repeated field: a list (the constructor would take a string as its characters)."""

    def convert(value: Any, path: str) -> Any:
        if type(value) is not list:
            raise _UnexpectedError(path)
        return [one(v, path) for v in value]

    return convert


def _foreign(mt: Any) -> Converter:
    """Well-known types: Timestamp and Duration by hand, others (Struct) by json_format."""
    if mt.full_name == "google.protobuf.Timestamp":
        return _timestamp
    if mt.full_name == "google.protobuf.Duration":
        return _duration
    cls = message_factory.GetMessageClass(mt)
    return lambda value, _path: json_format.ParseDict(value, cls())


_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?Z", re.A)
_DURATION = re.compile(r"-?\d+(\.\d{3}|\.\d{6}|\.\d{9})?s", re.A)
_NANOS_PER_UNIT = {0: 0, 4: 1_000_000, 7: 1_000, 10: 1}
"""By the length of the fraction with its dot: what one unit of its digits is in nanoseconds."""


def _timestamp(value: Any, path: str) -> Any:
    """RFC 3339 in the canonical form (UTC, ``Z``, 0/3/6/9 fractional digits)."""
    match = _TIMESTAMP.fullmatch(value) if type(value) is str else None
    if match is None:
        raise _UnexpectedError(path)
    when = dt.datetime.fromisoformat(value[:19])  # checks the ranges, as strptime does
    fraction = value[19:-1]
    nanos = int(fraction[1:]) * _NANOS_PER_UNIT[len(fraction)] if fraction else 0
    return {"seconds": (when - _EPOCH) // _SECOND, "nanos": nanos}


def _duration(value: Any, path: str) -> Any:
    """The canonical duration text (``-1.500s``: 0/3/6/9 fractional digits)."""
    match = _DURATION.fullmatch(value) if type(value) is str else None
    if match is None:
        raise _UnexpectedError(path)
    fraction = match.group(1) or ""
    seconds = int(value[: -1 - len(fraction)])  # int("-0") is 0: the sign is on the nanos too
    nanos = int(fraction[1:]) * _NANOS_PER_UNIT[len(fraction)] if fraction else 0
    if not -_MAX_DURATION_SECONDS <= seconds <= _MAX_DURATION_SECONDS:
        raise _UnexpectedError(path)
    return {"seconds": seconds, "nanos": -nanos if value[0] == "-" else nanos}


def _map(field: Any) -> Converter:
    """A string-keyed map: a dict of converted values (no content: canonical.restore skips maps)."""
    key_field = field.message_type.fields_by_name["key"]
    value_field = field.message_type.fields_by_name["value"]
    mt = value_field.message_type
    if key_field.type != FD.TYPE_STRING or (mt is not None and _holds_content(value_field)):
        return _unexpected  # (content in map values stays committed in canonical.restore)
    if mt is None:
        one = _scalar(value_field) or _same
    elif mt.full_name.startswith("aiaudit."):
        one = _own(_plan(mt))
    else:
        one = _foreign(mt)

    def convert(value: Any, path: str) -> Any:
        if type(value) is not dict or None in value.values():
            raise _UnexpectedError(path)
        return {k: one(v, path) for k, v in value.items()}

    return convert


def _own(plan: _Plan) -> Converter:
    """One of our messages without content (a map value)."""

    def convert(value: Any, path: str) -> Any:
        if type(value) is not dict:
            raise _UnexpectedError(path)
        return _kwargs(plan, value, "", None)

    return convert


def _scalar(field: Any) -> Converter | None:
    """The converter of a scalar JSON value (None: the constructor checks it as json_format does).

    Strings and enum names or numbers are refused by both alike; so are numbers
    for doubles, except infinities and NaN, which JSON (hence orjson) cannot hold.
    """
    cpp = field.cpp_type
    if cpp in _INTS:
        return _integer
    if cpp == FD.CPPTYPE_BOOL:
        return _boolean
    if cpp == FD.CPPTYPE_STRING and field.type == FD.TYPE_BYTES:
        return _bytes
    if cpp in (FD.CPPTYPE_STRING, FD.CPPTYPE_ENUM, FD.CPPTYPE_DOUBLE):
        return None
    return _unexpected  # float32 (range checks) and anything else: the exact parser


def _integer(value: Any, path: str) -> Any:
    """64-bit integers are JSON strings; json_format reads them with ``int`` (refusing spaces)."""
    if type(value) is str:
        if " " in value:
            raise _UnexpectedError(path)
        return int(value)
    return value  # the constructor refuses floats and booleans, as json_format may not: fallback


def _boolean(value: Any, path: str) -> Any:
    if type(value) is not bool:  # the constructor would take 1 for true
        raise _UnexpectedError(path)
    return value


def _bytes(value: Any, path: str) -> Any:
    """URL-safe or standard base64, padding optional (as json_format decodes it)."""
    if type(value) is not str:
        raise _UnexpectedError(path)
    encoded = value.encode("utf-8")
    return base64.urlsafe_b64decode(encoded + b"=" * (4 - len(encoded) % 4))
