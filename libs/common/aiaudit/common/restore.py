"""Stored events back to protobuf, about 4x faster than ``canonical.restore``.

Every consumer turns stored events into messages on its hot path (search
pages and the indexer, the alerting engine, integrity checks), through
``StoredEvent.to_event()``. The exact :func:`aiaudit.common.canonical.restore`
walks the event descriptor to find the content slots, then parses with
``json_format.ParseDict`` (generic, pure Python, ``strptime`` for each
timestamp): about 0.2-0.3 ms per event, the largest single cost of those paths.

:func:`restore` gives the same message (tested field for field against
``canonical.restore``) from one pass over the canonical JSON with a
conversion plan compiled once per message type: each JSON key maps to a
setter; content is put back at its JSON path while walking (paths are only
built inside messages that can hold content); timestamps and durations are
parsed by hand in the canonical form (``YYYY-MM-DDTHH:MM:SS[.f{3,6,9}]Z``,
``-S[.f{3,6,9}]s``). Anything the plan
does not expect (an unknown key, a value of an unexpected type, a float32
field, a non-string map key) falls back to ``canonical.restore``, which
parses it exactly or raises the error a damaged row deserves.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from typing import Any

import orjson
from google.protobuf import descriptor, json_format
from google.protobuf.message import Message

from aiaudit.common import canonical
from aiaudit.common.v1 import event_pb2, options_pb2

Content = dict[str, str] | None
Setter = Callable[[Message, Any, str, Content], None]
"""Sets one field of a message from its JSON value (message, value, JSON path, content)."""

FD = descriptor.FieldDescriptor
_EPOCH = dt.datetime(1970, 1, 1)
_SECOND = dt.timedelta(seconds=1)
_INTS = (FD.CPPTYPE_INT32, FD.CPPTYPE_INT64, FD.CPPTYPE_UINT32, FD.CPPTYPE_UINT64)


class _UnexpectedError(Exception):
    """The fast path met something it does not handle; the exact parser takes over."""


class FastPathError(ValueError):
    """The fast path met something it does not handle (see :func:`restore`)."""


def restore_fast(canonical_bytes: bytes, content: Content) -> event_pb2.Event:
    """The fast path alone: raises FastPathError (or a parse error) where it would fall back."""
    node = orjson.loads(canonical_bytes)
    if type(node) is not dict:
        raise FastPathError("not a JSON object")
    event = event_pb2.Event()
    try:
        _plan(event_pb2.Event.DESCRIPTOR)(event, node, "", content)
    except _UnexpectedError as exc:
        raise FastPathError(f"unexpected at {exc}") from None
    return event


def restore(canonical_bytes: bytes, content: Content) -> event_pb2.Event:
    """The event from its canonical form and content (content fields empty when erased).

    Same result as :func:`aiaudit.common.canonical.restore`.
    """
    try:
        return restore_fast(canonical_bytes, content)
    except Exception:  # anything unusual: the exact (slower) parser decides, or raises
        return canonical.restore(canonical_bytes, content)


_PLANS: dict[Any, Callable[[Message, dict[str, Any], str, Content], None]] = {}
"""Compiled converters by descriptor (identity-hashed: cheaper than its ``full_name``)."""


def _plan(desc: Any) -> Callable[[Message, dict[str, Any], str, Content], None]:
    """The compiled converter of one message type (cached)."""
    found = _PLANS.get(desc)
    if found is not None:
        return found
    setters: dict[str, Setter] = {}
    paths = _holds_content(desc)
    with_path: set[str] = set()
    """Keys whose value can hold content: only they need their JSON path built."""

    def convert(msg: Message, node: dict[str, Any], path: str, content: Content) -> None:
        for key, value in node.items():
            setter = setters.get(key)
            if setter is None:
                raise _UnexpectedError(key)
            if value is None:
                continue
            if key in with_path:
                setter(msg, value, f"{path}.{key}" if path else key, content)
            else:
                setter(msg, value, "", content)

    def convert_flat(msg: Message, node: dict[str, Any], _path: str, content: Content) -> None:
        for key, value in node.items():
            setter = setters.get(key)
            if setter is None:
                raise _UnexpectedError(key)
            if value is not None:
                setter(msg, value, "", content)

    chosen = convert if paths else convert_flat
    _PLANS[desc] = chosen
    for field in desc.fields:
        setter = _setter(field)
        setters[field.json_name] = setter
        setters[field.name] = setter
        mt = field.message_type
        own = mt is not None and mt.full_name.startswith("aiaudit.")
        if _sensitive(field) or (own and _holds_content(mt)):
            with_path.update((field.json_name, field.name))
    return chosen


def _holds_content(desc: Any, seen: frozenset[str] = frozenset()) -> bool:
    """Whether a message type has a content field anywhere below it (then paths are tracked)."""
    if desc.full_name in seen:
        return False
    for field in desc.fields:
        if _sensitive(field):
            return True
        mt = field.message_type
        own = mt is not None and mt.full_name.startswith("aiaudit.")
        if own and _holds_content(mt, seen | {desc.full_name}):
            return True
    return False


def _sensitive(field: Any) -> bool:
    return bool(field.GetOptions().Extensions[options_pb2.sensitive_content])


def _setter(field: Any) -> Setter:
    name = field.name
    mt = field.message_type
    if _sensitive(field):
        if field.is_repeated or mt is not None:
            return _unexpected_setter
        scalar = _scalar(field)

        def sensitive(msg: Message, _value: Any, path: str, content: Content) -> None:
            if content is not None and path in content:
                setattr(msg, name, scalar(content[path]))

        return sensitive
    if mt is not None and mt.GetOptions().map_entry:
        return _map_setter(field)
    if mt is not None:
        one = _message(mt)
        if field.is_repeated:

            def repeated_message(msg: Message, value: Any, path: str, content: Content) -> None:
                if type(value) is not list:
                    raise _UnexpectedError(path)
                container = getattr(msg, name)
                for i, item in enumerate(value):
                    one(container.add(), item, f"{path}[{i}]", content)

            return repeated_message

        def message(msg: Message, value: Any, path: str, content: Content) -> None:
            sub = getattr(msg, name)
            sub.SetInParent()
            one(sub, value, path, content)

        return message
    scalar = _scalar(field)
    if field.is_repeated:

        def repeated_scalar(msg: Message, value: Any, _path: str, _content: Content) -> None:
            if type(value) is not list:
                raise _UnexpectedError(name)
            getattr(msg, name).extend([scalar(v) for v in value])

        return repeated_scalar

    def single(msg: Message, value: Any, _path: str, _content: Content) -> None:
        setattr(msg, name, scalar(value))

    return single


def _unexpected_setter(_msg: Message, _value: Any, path: str, _content: Content) -> None:
    """Content in a shape only ``canonical.restore`` handles (a repeated or message slot)."""
    raise _UnexpectedError(path)


def _message(mt: Any) -> Callable[[Message, Any, str, Content], None]:
    """Fills a sub-message: our own types by plan, Timestamp by hand, others by json_format."""
    if mt.full_name == "google.protobuf.Timestamp":
        return _timestamp
    if mt.full_name == "google.protobuf.Duration":
        return _duration
    if mt.full_name.startswith("aiaudit."):

        def own(sub: Message, value: Any, path: str, content: Content) -> None:
            if type(value) is not dict:
                raise _UnexpectedError(path)
            _plan(mt)(sub, value, path, content)

        return own

    def other(sub: Message, value: Any, _path: str, _content: Content) -> None:
        json_format.ParseDict(value, sub)

    return other


def _timestamp(sub: Message, value: Any, path: str, _content: Content) -> None:
    """RFC 3339 in the canonical form (UTC, ``Z``, 0/3/6/9 fractional digits)."""
    if type(value) is not str or len(value) < 20 or value[-1] != "Z" or value[10] != "T":
        raise _UnexpectedError(path)
    when = dt.datetime(
        int(value[0:4]),
        int(value[5:7]),
        int(value[8:10]),
        int(value[11:13]),
        int(value[14:16]),
        int(value[17:19]),
    )
    if value[4] != "-" or value[7] != "-" or value[13] != ":" or value[16] != ":":
        raise _UnexpectedError(path)
    fraction = value[19:-1]
    nanos = 0
    if fraction:
        digits = fraction[1:]
        if fraction[0] != "." or len(digits) not in (3, 6, 9) or not digits.isdigit():
            raise _UnexpectedError(path)
        nanos = int(digits.ljust(9, "0"))
    sub.seconds = (when - _EPOCH) // _SECOND  # type: ignore[attr-defined]
    sub.nanos = nanos  # type: ignore[attr-defined]


_MAX_DURATION_SECONDS = 315_576_000_000


def _duration(sub: Message, value: Any, path: str, _content: Content) -> None:
    """The canonical duration text (``-1.500s``: 0/3/6/9 fractional digits)."""
    if type(value) is not str or len(value) < 2 or value[-1] != "s":
        raise _UnexpectedError(path)
    negative = value[0] == "-"
    whole, dot, digits = value[1 if negative else 0 : -1].partition(".")
    if not whole.isdigit() or (dot and (len(digits) not in (3, 6, 9) or not digits.isdigit())):
        raise _UnexpectedError(path)
    seconds, nanos = int(whole), int(digits.ljust(9, "0")) if dot else 0
    if seconds > _MAX_DURATION_SECONDS:
        raise _UnexpectedError(path)
    sub.seconds = -seconds if negative else seconds  # type: ignore[attr-defined]
    sub.nanos = -nanos if negative else nanos  # type: ignore[attr-defined]


def _map_setter(field: Any) -> Setter:
    name = field.name
    key_field = field.message_type.fields_by_name["key"]
    value_field = field.message_type.fields_by_name["value"]
    if key_field.type != FD.TYPE_STRING:
        raise _UnexpectedError(name)
    if value_field.message_type is not None:
        if _holds_content(value_field.message_type):
            return _unexpected_setter  # canonical.restore leaves map values as committed
        one = _message(value_field.message_type)

        def message_map(msg: Message, value: Any, path: str, content: Content) -> None:
            if type(value) is not dict:
                raise _UnexpectedError(path)
            target = getattr(msg, name)
            for k, v in value.items():
                one(target[k], v, f"{path}.{k}", content)

        return message_map
    scalar = _scalar(value_field)

    def scalar_map(msg: Message, value: Any, path: str, _content: Content) -> None:
        if type(value) is not dict:
            raise _UnexpectedError(path)
        target = getattr(msg, name)
        for k, v in value.items():
            target[k] = scalar(v)

    return scalar_map


def _scalar(field: Any) -> Callable[[Any], Any]:
    """The converter of one scalar JSON value (strict: anything unusual is _UnexpectedError)."""
    cpp = field.cpp_type
    if cpp in _INTS:

        def integer(v: Any) -> int:
            if type(v) is int:
                return v
            if type(v) is str and v.lstrip("-").isdigit():
                return int(v)
            raise _UnexpectedError(field.name)

        return integer
    if cpp == FD.CPPTYPE_DOUBLE:

        def double(v: Any) -> float:
            if type(v) is float or type(v) is int:
                return float(v)
            raise _UnexpectedError(field.name)

        return double
    if cpp == FD.CPPTYPE_BOOL:

        def boolean(v: Any) -> bool:
            if type(v) is bool:
                return v
            raise _UnexpectedError(field.name)

        return boolean
    if cpp == FD.CPPTYPE_ENUM:
        by_name: dict[str, int] = {v.name: v.number for v in field.enum_type.values}
        by_number: set[int] = {v.number for v in field.enum_type.values}

        def enum(v: Any) -> int:
            if type(v) is str and v in by_name:
                return by_name[v]
            if type(v) is int and v in by_number:
                return v
            raise _UnexpectedError(field.name)

        return enum
    if cpp == FD.CPPTYPE_STRING and field.type == FD.TYPE_BYTES:

        def raw(v: Any) -> bytes:
            if type(v) is not str:
                raise _UnexpectedError(field.name)
            encoded = v.encode("utf-8")
            return base64.urlsafe_b64decode(encoded + b"=" * (4 - len(encoded) % 4))

        return raw
    if cpp == FD.CPPTYPE_STRING:

        def text(v: Any) -> str:
            if type(v) is not str:
                raise _UnexpectedError(field.name)
            return v

        return text
    # float32 (range checks) and anything else: the exact parser.

    def unexpected(_v: Any) -> Any:
        raise _UnexpectedError(field.name)

    return unexpected
