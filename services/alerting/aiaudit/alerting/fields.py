"""Field paths over an Event, checked against the proto schema when a rule is compiled.

A path names fields by their proto names (``actor.user_id``, ``usage.input_tokens``,
``input.messages.parts.text``). Repeated fields fan out: the path yields every
value, and a condition holds when any value satisfies it. Values are normalised
so rule authors compare plain numbers and strings:

- enums by their full name (``EVENT_TYPE_INTERACTION``);
- durations in milliseconds (``timing.latency > 2000``);
- timestamps in seconds since the epoch;
- ``attributes.<key>`` gives the attribute's typed value, ``model.parameters.<key>``
  the value inside the Struct;
- ``usage.total_tokens`` is input plus output tokens, ``usage.cost`` the cost as a number.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor, json_format
from google.protobuf.message import Message

from aiaudit.common.v1 import event_pb2

Value = str | int | float | bool
Getter = Callable[[Message], list[Value]]

_DURATION = "google.protobuf.Duration"
_TIMESTAMP = "google.protobuf.Timestamp"
_STRUCT = "google.protobuf.Struct"

_DERIVED: dict[str, Getter] = {
    "usage.total_tokens": lambda e: [e.usage.input_tokens + e.usage.output_tokens],  # type: ignore[attr-defined]
    "usage.cost": lambda e: [e.usage.cost.units + e.usage.cost.nanos / 1e9],  # type: ignore[attr-defined]
}


class FieldError(ValueError):
    """A path that does not name a field of Event."""


@dataclass(frozen=True)
class Field:
    """A compiled path: its getter and, for an enum leaf, the enum (to expand short names)."""

    path: str
    get: Getter
    enum: descriptor.EnumDescriptor | None = None
    numeric: bool = False

    def expand(self, value: object) -> object:
        """An enum operand given by short name (``interaction``) becomes its full name."""
        if self.enum is None or not isinstance(value, str):
            return value
        names = {v.name for v in self.enum.values}
        if value in names:
            return value
        prefix = _enum_prefix(self.enum)
        full = prefix + value.upper()
        if full in names:
            return full
        raise FieldError(
            f"{value!r} is not a value of {self.enum.name} "
            f"(one of: {', '.join(sorted(n.removeprefix(prefix).lower() for n in names))})"
        )


def _enum_prefix(enum: descriptor.EnumDescriptor) -> str:
    first = enum.values[0].name
    return first[: first.rfind("_UNSPECIFIED") + 1] if "_UNSPECIFIED" in first else ""


def _scalar(fd: descriptor.FieldDescriptor, raw: Any) -> Value:
    if fd.type == descriptor.FieldDescriptor.TYPE_ENUM:
        assert fd.enum_type is not None
        value = fd.enum_type.values_by_number.get(raw)
        return value.name if value is not None else int(raw)
    if fd.type == descriptor.FieldDescriptor.TYPE_BYTES:
        return bytes(raw).hex()
    return raw  # type: ignore[no-any-return]


def _message_leaf(full_name: str, msg: Message) -> Value:
    if full_name == _DURATION:
        return msg.seconds * 1000 + msg.nanos / 1e6  # type: ignore[attr-defined,no-any-return]
    return msg.seconds + msg.nanos / 1e9  # type: ignore[attr-defined,no-any-return]


def _struct_value(raw: object, rest: list[str]) -> list[Value]:
    for key in rest:
        if not isinstance(raw, dict) or key not in raw:
            return []
        raw = raw[key]
    if isinstance(raw, list):
        return [v for v in raw if isinstance(v, str | int | float | bool)]
    return [raw] if isinstance(raw, str | int | float | bool) else []


@functools.lru_cache(maxsize=4096)
def compile_path(path: str) -> Field:
    """Checks a path against Event and returns its getter; FieldError names the bad part."""
    if path in _DERIVED:
        return Field(path, _DERIVED[path], numeric=True)
    parts = path.split(".")
    if not path or any(not p for p in parts):
        raise FieldError(f"{path!r} is not a dotted field path")
    desc: Any = event_pb2.Event.DESCRIPTOR
    steps: list[descriptor.FieldDescriptor] = []
    for i, part in enumerate(parts):
        fd = desc.fields_by_name.get(part)
        if fd is None:
            known = ", ".join(sorted(desc.fields_by_name))
            where = ".".join(parts[:i]) or "the event"
            raise FieldError(f"unknown field {part!r} in {where} (known: {known})")
        steps.append(fd)
        rest = parts[i + 1 :]
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            if len(rest) != 1:
                raise FieldError(f"{'.'.join(parts[: i + 1])} is a map: name one key after it")
            return _field(path, steps, rest)
        if fd.message_type is not None and fd.message_type.full_name == _STRUCT:
            return _field(path, steps, rest)
        if fd.message_type is not None and fd.message_type.full_name in (_DURATION, _TIMESTAMP):
            if rest:
                raise FieldError(f"{'.'.join(parts[: i + 1])} is a time value: nothing after it")
            return _field(path, steps, [])
        if fd.message_type is None:
            if rest:
                raise FieldError(f"{'.'.join(parts[: i + 1])} is a value: nothing after it")
            return _field(path, steps, [])
        desc = fd.message_type
    raise FieldError(
        f"{path!r} names a message; name one of its fields: {sorted(desc.fields_by_name)}"
    )


def _field(path: str, steps: list[descriptor.FieldDescriptor], rest: list[str]) -> Field:
    leaf = steps[-1]
    enum = leaf.enum_type if leaf.type == descriptor.FieldDescriptor.TYPE_ENUM else None
    numeric = leaf.cpp_type in (
        descriptor.FieldDescriptor.CPPTYPE_INT32,
        descriptor.FieldDescriptor.CPPTYPE_INT64,
        descriptor.FieldDescriptor.CPPTYPE_UINT32,
        descriptor.FieldDescriptor.CPPTYPE_UINT64,
        descriptor.FieldDescriptor.CPPTYPE_DOUBLE,
        descriptor.FieldDescriptor.CPPTYPE_FLOAT,
    ) or (leaf.message_type is not None and leaf.message_type.full_name in (_DURATION, _TIMESTAMP))

    read = _leaf_reader(leaf, rest)
    path_steps = tuple((fd.name, fd.is_repeated, fd.has_presence) for fd in steps[:-1])

    def get(event: Message) -> list[Value]:
        current: list[Message] = [event]
        for name, repeated, presence in path_steps:
            nxt: list[Message] = []
            for msg in current:
                if repeated:
                    nxt.extend(getattr(msg, name))
                elif not presence or msg.HasField(name):
                    nxt.append(getattr(msg, name))
            current = nxt
        out: list[Value] = []
        for msg in current:
            read(msg, out)
        return out

    return Field(path, get, enum, numeric)


def _leaf_reader(
    fd: descriptor.FieldDescriptor, rest: list[str]
) -> Callable[[Message, list[Value]], None]:
    """The leaf's values of one message, appended to a list; the field's kind is decided once."""
    name, repeated, presence = fd.name, fd.is_repeated, fd.has_presence
    mt = fd.message_type
    if mt is not None and mt.GetOptions().map_entry:
        key = rest[0]

        def map_value(msg: Message, out: list[Value]) -> None:
            entries = getattr(msg, name)
            if key in entries:
                item = entries[key]
                if isinstance(item, Message):
                    which = item.WhichOneof("value")
                    if which is not None:
                        out.append(getattr(item, which))
                else:
                    out.append(item)

        return map_value
    if mt is not None and mt.full_name == _STRUCT:

        def struct_value(msg: Message, out: list[Value]) -> None:
            if msg.HasField(name):
                out.extend(_struct_value(json_format.MessageToDict(getattr(msg, name)), rest))

        return struct_value
    if mt is not None:
        full = mt.full_name

        def time_value(msg: Message, out: list[Value]) -> None:
            if repeated:
                out.extend(_message_leaf(full, item) for item in getattr(msg, name))
            elif msg.HasField(name):
                out.append(_message_leaf(full, getattr(msg, name)))

        return time_value
    if fd.type in (descriptor.FieldDescriptor.TYPE_ENUM, descriptor.FieldDescriptor.TYPE_BYTES):

        def converted(msg: Message, out: list[Value]) -> None:
            if repeated:
                out.extend(_scalar(fd, v) for v in getattr(msg, name))
            elif not presence or msg.HasField(name):
                out.append(_scalar(fd, getattr(msg, name)))

        return converted

    def plain(msg: Message, out: list[Value]) -> None:
        if repeated:
            out.extend(getattr(msg, name))
        elif not presence or msg.HasField(name):
            out.append(getattr(msg, name))

    return plain


def is_set(value: Value) -> bool:
    """Whether a value differs from the proto3 default (what ``exists`` tests)."""
    if isinstance(value, str):
        return value != "" and not value.endswith("_UNSPECIFIED")
    return value not in (0, 0.0, False)
