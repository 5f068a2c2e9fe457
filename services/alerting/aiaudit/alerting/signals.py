"""Trust signals by name (``trust_signals.<name>``) for the native core, as search reads them.

The native core reads a path's values field by field: ``trust_signals.name`` and
``trust_signals.value.*`` each give every signal's value apart, so no condition could tie
a value to the signal of a name (search's ``trust_signals.user_rating < 2`` could). So an
event that rules naming signals are evaluated on is given, after its own fields, one
``TrustSignalViews`` element per signal of a name they use (:func:`views`): maps keyed by
the signal's name, one per kind of value (:data:`VIEWS`). The core reads
``<FIELD>.<view>.<name>`` as it reads ``attributes.<key>``, one value per element, so
each of several signals of one name counts: a condition holds when any of them does, as
in search.

The views keep search's types: numbers are compared with numbers only (exactly, an
``int_value`` as that integer), booleans with booleans (``true`` is not 1 as it is to
Python, nor the text "true"), text with text; a signal without a value holds the empty
text, as in search (present, and ``equals: ""``).
"""

from __future__ import annotations

import functools
from typing import Any

import aiaudit_native
from google.protobuf import descriptor

from aiaudit.common import canonical
from aiaudit.common.protowire import length_delimited
from aiaudit.common.v1 import event_pb2

FIELD = "trust_signals_by_name"
"""The views' field in :func:`schema`; not a field of Event, so no rule can name it."""
NUMBER = 65_535
"""Its number: far past Event's own, and the largest the native schema takes (it indexes
a type's fields by number in a table)."""

VIEWS = ("value", "number", "boolean", "text", "present")
"""Every value (placeholders and ``group_by`` read the first), the values of each kind,
and ``true`` for every value (``exists`` reads it: the native core's ``exists`` asks
whether a value differs from its default, and a signal of 0 or false is there)."""

_KIND = {
    "int_value": "number",
    "double_value": "number",
    "bool_value": "boolean",
    "string_value": "text",
}
_TRUE = event_pb2.AttributeValue(bool_value=True).SerializeToString()
_EMPTY = event_pb2.AttributeValue(string_value="").SerializeToString()
_ORDERED = ("gt", "gte", "lt", "lte")


def path(name: str, view: str) -> str:
    """The native path of one view of the signals named ``name``."""
    return f"{FIELD}.{view}.{name}"


def kind(value: object) -> str:
    """The view a rule's operand is compared in: by the type YAML read it as."""
    if isinstance(value, bool):
        return "boolean"
    return "number" if isinstance(value, int | float) else "text"


def condition(name: str, op: str, operand: Any) -> tuple[Any, ...]:
    """A field condition on ``trust_signals.<name>`` as the native core takes it.

    ``in`` and ``not_in`` take (view, value) pairs: as plain values a set keeps one of
    ``1`` and ``true`` (equal to Python), which search tells apart. Their values of each
    view are one condition, held by any (``in``) or by all (``not_in``: no value of the
    name is in the list).
    """
    if op in ("in", "not_in"):
        by_view: dict[str, list[object]] = {}
        for view, value in sorted(operand, key=repr):
            by_view.setdefault(view, []).append(value)
        items = [("field", path(name, v), op, values) for v, values in sorted(by_view.items())]
        return items[0] if len(items) == 1 else ("any" if op == "in" else "all", items)
    if op == "exists":
        view = "present"
    elif op in ("contains", "regex"):
        view = "text"
    elif op in _ORDERED:
        view = "number"
    else:
        view = kind(operand)
    return ("field", path(name, view), op, operand)


def views(wire: bytes, names: frozenset[str]) -> bytes:
    """A serialised event with the views of its signals of these names (fields merge).

    An event without such a signal comes back as it is, found by the native core
    without parsing it here.
    """
    if names.isdisjoint(
        aiaudit_native.field_values(canonical.native_schema(), wire, "trust_signals.name")
    ):
        return wire
    extra = []
    for signal in event_pb2.Event.FromString(wire).trust_signals:
        if signal.name not in names:
            continue
        which = signal.value.WhichOneof("value")
        typed = signal.value.SerializeToString() if which is not None else _EMPTY
        key = length_delimited(1, signal.name.encode())
        entry = key + length_delimited(2, typed)
        element = (
            length_delimited(1 + VIEWS.index("value"), entry)
            + length_delimited(1 + VIEWS.index(_KIND[which or "string_value"]), entry)
            + length_delimited(1 + VIEWS.index("present"), key + length_delimited(2, _TRUE))
        )
        extra.append(length_delimited(NUMBER, element))
    return wire + b"".join(extra)


@functools.cache
def schema() -> aiaudit_native.Schema:
    """Event's types as :func:`canonical.native_schema` gives them, and the views' field."""
    messages, index = canonical.native_messages()
    assert NUMBER not in event_pb2.Event.DESCRIPTOR.fields_by_number
    message, string = (
        descriptor.FieldDescriptor.TYPE_MESSAGE,
        descriptor.FieldDescriptor.TYPE_STRING,
    )
    held, entry = len(messages), len(messages) + 1
    value = index[event_pb2.AttributeValue.DESCRIPTOR.full_name]
    messages[0][1].append(
        (NUMBER, (FIELD, FIELD), message, True, False, False, held, None, -1, False)
    )
    messages.append(
        (
            "aiaudit.alerting.TrustSignalViews",
            [
                (i, (v, v), message, True, False, False, entry, None, -1, True)
                for i, v in enumerate(VIEWS, 1)
            ],
        )
    )
    messages.append(
        (
            "aiaudit.alerting.TrustSignalViews.Entry",
            [
                (1, ("key", "key"), string, False, False, False, -1, None, -1, False),
                (2, ("value", "value"), message, False, True, False, value, None, -1, False),
            ],
        )
    )
    return aiaudit_native.Schema(messages, 0)
