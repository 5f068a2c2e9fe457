"""Field paths over an Event, checked against the proto schema when a rule is compiled.

The native core reads the values (``aiaudit_native.field_values``, and the rule
engine); here a path is checked, with errors that name the bad part, and an
enum operand given by short name is expanded.

A path names fields by their proto names (``actor.user_id``, ``usage.input_tokens``,
``input.messages.parts.text``). Repeated fields fan out: the path yields every
value, and a condition holds when any value satisfies it. Values are normalised
so rule authors compare plain numbers and strings:

- enums by their full name (``EVENT_TYPE_INTERACTION``);
- durations in milliseconds (``timing.latency > 2000``);
- timestamps in seconds since the epoch;
- ``attributes.<key>`` gives the attribute's typed value (the key is all that
  follows, dots included: ``attributes.access.outcome``; empty parts too, so every key
  ingest takes is named as search names it: ``attributes.a..b``, ``attributes..x``,
  ``attributes.x.``), ``model.parameters.<key>`` the value inside the Struct (a
  nested path there, so no empty part);
- ``trust_signals.<name>`` gives the values of the signals of that name, as search names
  them (:mod:`aiaudit.alerting.signals`); the paths of TrustSignal's own fields
  (``trust_signals.name``, ``trust_signals.value.int_value``...) keep reading every
  signal's field, as rules stored before wrote them;
- ``usage.total_tokens`` is input plus output tokens, ``usage.cost`` the cost as a number.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor

from aiaudit.common import field_names, media
from aiaudit.common.v1 import event_pb2, options_pb2

Value = str | int | float | bool

_DURATION = "google.protobuf.Duration"
_TIMESTAMP = "google.protobuf.Timestamp"
_STRUCT = "google.protobuf.Struct"
_DERIVED = ("usage.total_tokens", "usage.cost")
_NUMERIC = (
    descriptor.FieldDescriptor.CPPTYPE_INT32,
    descriptor.FieldDescriptor.CPPTYPE_INT64,
    descriptor.FieldDescriptor.CPPTYPE_UINT32,
    descriptor.FieldDescriptor.CPPTYPE_UINT64,
    descriptor.FieldDescriptor.CPPTYPE_DOUBLE,
    descriptor.FieldDescriptor.CPPTYPE_FLOAT,
)


PERSONAL = frozenset({"actor.ip_address"})
"""Personal data: read only with ``pii.read`` (as search's ``catalogue.PII_FIELDS``), so never
copied into an alert (every ``alerts.read`` holder sees its summary and dedup key) and never
tested by a caller without the permission."""


class FieldError(ValueError):
    """A path that does not name a field of Event."""


@dataclass(frozen=True)
class Field:
    """A checked path and, for an enum leaf, the enum (to expand short names)."""

    path: str
    enum: descriptor.EnumDescriptor | None = None
    numeric: bool = False
    content: bool = False
    """A content field (``sensitive_content``): erasable, so never copied into an alert. So is
    a media part's ``sha256`` (:mod:`aiaudit.common.media`): unsalted, it confirms a guessed
    file, so it goes with the bytes (read with ``content.read``, gone once they are erased)."""
    scalar: bool = False
    """A plain proto value (string, bool, bytes, enum or number), not a map or Struct
    entry whose values may be of any kind: a text one never holds ``gt`` and the like."""
    signal: str | None = None
    """``trust_signals.<name>``: the name, whose signals' values the path reads."""
    whole: bool = False
    """A Struct itself (``model.parameters``): an object, no value of its own, so a condition
    on it never holds (``not_equals`` always does) and it renders and groups as empty."""

    @property
    def personal(self) -> bool:
        """Personal data (:data:`PERSONAL`): never copied into an alert, read with ``pii.read``."""
        return self.path in PERSONAL

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


SIGNALS = "trust_signals."
"""What a trust signal's name follows in a path, as in search's filters."""


@functools.lru_cache(maxsize=4096)
def compile_path(path: str) -> Field:
    """Checks a path against Event; FieldError names the bad part.

    A ``trust_signals.`` path that names none of TrustSignal's fields names a signal:
    such a path was refused before, so no stored rule changes meaning. A signal named
    like one of those fields (``name``, ``source``, ``value.int_value``...) cannot be named.
    """
    try:
        return _proto_path(path)
    except FieldError:
        if not path.startswith(SIGNALS):
            raise
    name = path.removeprefix(SIGNALS)
    if not field_names.valid_name(name):  # ingest takes no other, search names no other
        raise FieldError(
            f"{path!r} names no trust signal: a name is {field_names.NAME_RULE}"
        ) from None
    return Field(path, signal=name)


def _proto_path(path: str) -> Field:
    if path in _DERIVED:
        return Field(path, numeric=True, scalar=True)
    parts = path.split(".")
    desc: Any = event_pb2.Event.DESCRIPTOR
    steps: list[descriptor.FieldDescriptor] = []
    for i, part in enumerate(parts):
        if not part:
            raise FieldError(f"{path!r} is not a dotted field path")
        fd = desc.fields_by_name.get(part)
        if fd is None:
            known = ", ".join(sorted(desc.fields_by_name))
            where = ".".join(parts[:i]) or "the event"
            raise FieldError(f"unknown field {part!r} in {where} (known: {known})")
        steps.append(fd)
        rest = parts[i + 1 :]
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            # The key is the rest, dots and all, empty parts too, as search names it: the
            # suite's own access.outcome, and a..b, .x or x. (every key ingest takes).
            if not ".".join(rest):  # attributes. names no key (attributes.. names ".")
                raise FieldError(f"{'.'.join(parts[: i + 1])} is a map: name one key after it")
            return _field(path, steps)
        if any(not p for p in rest):  # a Struct's or a message's path is one of names
            raise FieldError(f"{path!r} is not a dotted field path")
        if fd.message_type is not None and fd.message_type.full_name == _STRUCT:
            return dataclasses.replace(_field(path, steps), whole=not rest)
        if fd.message_type is not None and fd.message_type.full_name in (_DURATION, _TIMESTAMP):
            if rest:
                raise FieldError(f"{'.'.join(parts[: i + 1])} is a time value: nothing after it")
            return _field(path, steps)
        if fd.message_type is None:
            if rest:
                raise FieldError(f"{'.'.join(parts[: i + 1])} is a value: nothing after it")
            return _field(path, steps)
        desc = fd.message_type
    raise FieldError(
        f"{path!r} names a message; name one of its fields: {sorted(desc.fields_by_name)}"
    )


def _content(field: Any) -> bool:  # descriptor stubs do not type custom options
    """``sensitive_content``, or the media hash, which search too shows only with the bytes.

    Until 2026-12-05 alerting took the hash for metadata: a developer rendered it in a
    TestRule summary, or confirmed a guessed file with ``equals``, even after the
    image's erasure, and read it in the alerts of an admin's rule (review).
    """
    return field.full_name == media.HASH_FIELD or bool(
        field.GetOptions().Extensions[options_pb2.sensitive_content]
    )


def _field(path: str, steps: list[descriptor.FieldDescriptor]) -> Field:
    leaf = steps[-1]
    enum = leaf.enum_type if leaf.type == descriptor.FieldDescriptor.TYPE_ENUM else None
    numeric = leaf.cpp_type in _NUMERIC or (
        leaf.message_type is not None and leaf.message_type.full_name in (_DURATION, _TIMESTAMP)
    )
    return Field(path, enum, numeric, _content(leaf), scalar=leaf.message_type is None)
