"""Canonical form of an event and its RFC 6962 leaf hash.

The canonical form is what the Merkle log commits to, so an auditor in any
language must be able to recompute it. Construction (also in the README):

1. Take the event's proto3 JSON mapping (lowerCamelCase names, default values
   omitted, enums by name, 64-bit integers as strings, timestamps and
   durations with 0, 3, 6 or 9 fractional digits).
2. Replace the value of every field marked ``sensitive_content`` by the
   commitment ``"hmac-sha256:" + hex(HMAC-SHA256(salt, path || 0x00 || raw))``
   where ``salt`` is 32 random bytes kept per event beside the content,
   ``path`` is the field's JSON path in ASCII (``input.messages[0].parts[1].text``)
   and ``raw`` is the UTF-8 of a string or the bytes of a bytes field.
3. Serialise with RFC 8785 (JSON Canonicalization Scheme).

The leaf hash is ``SHA-256(0x00 || canonical)``. Erasing the content and salt
leaves the canonical form, hence every leaf and proof, unchanged.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import aiaudit_native
from google.protobuf import descriptor, json_format

from aiaudit.common.v1 import event_pb2, options_pb2

COMMITMENT_PREFIX = "hmac-sha256:"
SALT_BYTES = 32


def leaf_hash(canonical: bytes) -> bytes:
    """RFC 6962 leaf hash of a canonical event."""
    return hashlib.sha256(b"\x00" + canonical).digest()


def commitment(salt: bytes, path: str, raw: bytes) -> str:
    """Salted commitment to one content value at a JSON path."""
    mac = hmac.digest(salt, path.encode("ascii") + b"\x00" + raw, "sha256")  # one C call
    return COMMITMENT_PREFIX + mac.hex()


class Committed(NamedTuple):
    """An event split into what the log commits to and the erasable content.

    A named tuple: ingest makes one for every event (a frozen dataclass took twice as long).
    """

    canonical: bytes
    """RFC 8785 bytes of the event with content replaced by commitments."""
    content: dict[str, str]
    """Content values by JSON path, in their proto3 JSON form (base64 for bytes)."""
    leaf_hash: bytes
    """RFC 6962 leaf hash of :attr:`canonical`."""
    content_json: bytes
    """:attr:`content` as one compact JSON object (the stored ``event_content`` column)."""


def is_sensitive(field: Any) -> bool:  # descriptor stubs do not type custom options
    """Whether a field is content (``sensitive_content``): committed to, never in clear."""
    return bool(field.GetOptions().Extensions[options_pb2.sensitive_content])


def _own_message(field: Any) -> bool:
    """Whether a field holds one of our messages (never a map or well-known type)."""
    mt = field.message_type
    return mt is not None and mt.full_name.startswith("aiaudit.") and not mt.GetOptions().map_entry


@dataclass(frozen=True)
class _Slot:
    """Where one content value sits in the proto3 JSON of an event."""

    obj: dict[str, Any]
    key: str
    path: str
    is_bytes: bool


@functools.cache
def _walk_plan(desc: Any) -> tuple[tuple[str, Any, bool, bool], ...]:
    """The fields of a message that hold content or may hold some, once per message type.

    (JSON name, our message type or None for a sensitive field, repeated, bytes);
    other fields are left out. Reading descriptor options for every event was
    most of the time ``verify`` spent checking content.
    """
    plan = []
    for field in desc.fields:
        if _own_message(field):
            plan.append((field.json_name, field.message_type, field.is_repeated, False))
        elif is_sensitive(field):
            is_bytes = field.type == descriptor.FieldDescriptor.TYPE_BYTES
            plan.append((field.json_name, None, False, is_bytes))
    return tuple(plan)


def _content_slots(desc: Any, node: dict[str, Any], path: str) -> Iterator[_Slot]:
    """Yields a slot for every sensitive field present in a proto3 JSON object."""
    for key, message, repeated, is_bytes in _walk_plan(desc):
        if key not in node:
            continue
        here = f"{path}.{key}" if path else key
        if message is None:
            yield _Slot(node, key, here, is_bytes)
        elif repeated:
            for i, sub in enumerate(node[key]):
                yield from _content_slots(message, sub, f"{here}[{i}]")
        else:
            yield from _content_slots(message, node[key], here)


def _raw(slot: _Slot, value: str) -> bytes:
    """The bytes a content value commits to; ValueError for bytes not in canonical base64."""
    return b64decode_canonical(value) if slot.is_bytes else value.encode("utf-8")


def b64decode_canonical(value: str) -> bytes:
    """``value`` decoded if it is canonical base64 (padded, standard alphabet), else ValueError.

    Lenient base64 skips characters it does not know and what follows the
    padding: an edited value (``...=`` + more text) would decode to the
    committed bytes, and a reader of the file would see other ones (review).
    """
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error:
        raw = None
    if raw is None or base64.b64encode(raw).decode("ascii") != value:
        raise ValueError("not in canonical base64")
    return raw


def refuse_unsupported(desc: Any) -> None:
    """RuntimeError for a message type the native core would misread."""
    if {o.name for o in desc.oneofs} & {f.json_name for f in desc.fields}:
        # json_format reads such a name as either: the native restore cannot
        raise RuntimeError(f"{desc.full_name}: a oneof named like a field's JSON name")
    if any(f.enum_type is not None and f.enum_type.is_closed for f in desc.fields):
        # protobuf keeps a closed enum's unknown values as unknown fields: the native
        # walk that tells ingest an event has none (``maybe_unknown_fields``) would miss them
        raise RuntimeError(f"{desc.full_name}: a closed (proto2) enum")


NativeMessage = tuple[str, list[tuple[Any, ...]]]
"""One message type as the native core takes it: its full name and its fields' specs."""


def native_messages() -> tuple[list[NativeMessage], dict[str, int]]:
    """The event's message types as the native core walks them, and each one's index.

    A new list each call: alerting appends a field of its own to Event's (its
    trust signal views) without changing :func:`native_schema`.
    """
    types: list[Any] = []
    index: dict[str, int] = {}

    def visit(desc: Any) -> None:
        if desc.full_name in index:
            return
        index[desc.full_name] = len(types)
        types.append(desc)
        for f in desc.fields:
            if f.message_type is not None:
                visit(f.message_type)

    visit(event_pb2.Event.DESCRIPTOR)
    for desc in types:
        refuse_unsupported(desc)
    messages: list[NativeMessage] = [
        (
            desc.full_name,
            [
                (
                    f.number,
                    (f.name, f.json_name),
                    f.type,
                    f.is_repeated,
                    f.has_presence,
                    is_sensitive(f),
                    index[f.message_type.full_name] if f.message_type is not None else -1,
                    (f.enum_type.name, {v.number: v.name for v in f.enum_type.values})
                    if f.enum_type
                    else None,
                    f.containing_oneof.index if f.containing_oneof is not None else -1,
                    f.message_type is not None and f.message_type.GetOptions().map_entry,
                )
                for f in desc.fields
            ],
        )
        for desc in types
    ]
    return messages, index


@functools.cache
def native_schema() -> aiaudit_native.Schema:
    """The event's message types as the native core walks them (built once)."""
    return aiaudit_native.Schema(native_messages()[0], 0)


def commit(event: event_pb2.Event, salt: bytes) -> Committed:
    """Splits an event into its canonical, committed form and its content.

    Written by the native encoder (``libs/native``) from the event's wire bytes;
    the tests hold it to the reference construction above on random events.
    """
    return commit_wire(event.SerializeToString(), salt)


def commit_wire(wire: bytes, salt: bytes) -> Committed:
    """:func:`commit` of an event already serialised (protobuf wire bytes)."""
    text, leaf, content, content_json = native_schema().commit(wire, salt)
    return Committed(canonical=text, content=content, leaf_hash=leaf, content_json=content_json)


def proto_json(event: event_pb2.Event) -> bytes:
    """The event's proto3 JSON mapping as RFC 8785 text, content as it is (exports).

    Written by the native encoder: ``json_format.MessageToDict`` and
    ``json.dumps`` cost 8-15 times as much.
    """
    return native_schema().json(event.SerializeToString())


def content_problems(
    canonical: bytes, content: dict[str, str], salt: bytes, parsed: Any = None
) -> list[str]:
    """Names every content value that does not match its commitment.

    ``parsed``: ``canonical`` already parsed by the caller, else parsed here.
    """
    node = json.loads(canonical) if parsed is None else parsed
    slots = {s.path: s for s in _content_slots(event_pb2.Event.DESCRIPTOR, node, "")}
    problems = [f"{p}: content without a commitment" for p in content if p not in slots]
    for path, slot in slots.items():
        if path not in content:
            problems.append(f"{path}: commitment without content")
            continue
        try:
            expected = commitment(salt, path, _raw(slot, content[path]))
        except ValueError as exc:
            problems.append(f"{path}: bytes {exc}")
            continue
        if not hmac.compare_digest(slot.obj[slot.key], expected):
            problems.append(f"{path}: content does not match its commitment")
    return problems


def restore(canonical: bytes, content: dict[str, str] | None) -> event_pb2.Event:
    """Rebuilds the full event from its canonical form and its content.

    Without content (erased), content fields come back empty. Content that is
    not an object (``[1]``) raises TypeError: it is damage, not erased content.
    """
    if content is not None and type(content) is not dict:
        raise TypeError("content is not a JSON object")
    node = json.loads(canonical)
    for slot in list(_content_slots(event_pb2.Event.DESCRIPTOR, node, "")):
        if content is not None and slot.path in content:
            slot.obj[slot.key] = content[slot.path]
        else:
            del slot.obj[slot.key]
    event = event_pb2.Event()
    json_format.ParseDict(node, event)
    return event
