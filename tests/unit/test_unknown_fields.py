"""The native walk that tells ingest an event surely has no unknown field.

Ingest trusts its "no" and skips asking the parsed request, so it must never
say "no" where protobuf's parser kept an unknown field, at any depth.
"""

from __future__ import annotations

import pytest
from google.protobuf import descriptor, descriptor_pb2, descriptor_pool
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from aiaudit.common import canonical
from aiaudit.common.v1 import event_pb2 as ev
from tests.unit.test_native_canonical import any_events

_PAYLOAD = {0: b"\x01", 1: bytes(8), 2: b"\x00", 5: bytes(4)}
_WIRE = {
    descriptor.FieldDescriptor.TYPE_DOUBLE: 1,
    descriptor.FieldDescriptor.TYPE_FIXED64: 1,
    descriptor.FieldDescriptor.TYPE_SFIXED64: 1,
    descriptor.FieldDescriptor.TYPE_FLOAT: 5,
    descriptor.FieldDescriptor.TYPE_FIXED32: 5,
    descriptor.FieldDescriptor.TYPE_SFIXED32: 5,
    descriptor.FieldDescriptor.TYPE_STRING: 2,
    descriptor.FieldDescriptor.TYPE_BYTES: 2,
    descriptor.FieldDescriptor.TYPE_MESSAGE: 2,
}


def _key(number: int, wire_type: int) -> bytes:
    n, out = number << 3 | wire_type, bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _messages(m: Message) -> list[Message]:
    """``m`` and every message set inside it."""
    out = [m]
    for f, value in m.ListFields():
        if f.message_type is None:
            continue
        if f.message_type.GetOptions().map_entry:
            inner = f.message_type.fields_by_name["value"]
            items = list(value.values()) if inner.message_type is not None else []
        else:
            items = list(value) if f.is_repeated else [value]
        for item in items:
            out.extend(_messages(item))
    return out


@st.composite
def unknown_field(draw: st.DrawFn, m: Message) -> bytes:
    """Bytes protobuf keeps as an unknown field of ``m``: a number it does not declare
    (a group among them), or a declared number with a wire type it does not take."""
    fields = list(m.DESCRIPTOR.fields)
    if fields and draw(st.booleans()):
        f = draw(st.sampled_from(fields))
        expected = _WIRE.get(f.type, 0)
        taken = {expected} | ({2} if f.is_repeated else set())
        wire_type = draw(st.sampled_from(sorted({0, 1, 2, 5} - taken)))
        return _key(f.number, wire_type) + _PAYLOAD[wire_type]
    declared = {f.number for f in fields}
    number = draw(st.integers(1, 5000).filter(lambda n: n not in declared))
    if draw(st.booleans()):
        return _key(number, 3) + _key(number, 4)  # an empty group
    wire_type = draw(st.sampled_from(sorted(_PAYLOAD)))
    return _key(number, wire_type) + _PAYLOAD[wire_type]


def _kept_unknown(e: ev.Event) -> bool:
    """protobuf's own answer: discarding unknown fields changes the size."""
    copy = ev.Event()
    copy.CopyFrom(e)
    size = copy.ByteSize()
    copy.DiscardUnknownFields()
    return copy.ByteSize() != size


@settings(max_examples=400)
@given(any_events(), st.data())
def test_an_unknown_field_at_any_depth_is_never_missed(e: ev.Event, data: st.DataObject) -> None:
    target = data.draw(st.sampled_from(_messages(e)))
    target.MergeFromString(data.draw(unknown_field(target)))
    assert _kept_unknown(e)
    assert canonical.native_schema().maybe_unknown_fields(e.SerializeToString())


@settings(max_examples=300)
@given(any_events())
def test_events_of_known_fields_only_are_told_so(e: ev.Event) -> None:
    assert not _kept_unknown(e)
    assert not canonical.native_schema().maybe_unknown_fields(e.SerializeToString())


def _proto2_message_with_enum() -> descriptor.Descriptor:
    pool = descriptor_pool.DescriptorPool()
    file = descriptor_pb2.FileDescriptorProto(name="closed.proto", package="t", syntax="proto2")
    file.enum_type.add(name="Kind").value.add(name="KIND_A", number=0)
    message = file.message_type.add(name="Holder")
    message.field.add(
        name="kind",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_ENUM,
        type_name=".t.Kind",
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    pool.Add(file)
    return pool.FindMessageTypeByName("t.Holder")


def test_a_closed_enum_is_refused_before_the_walk_could_miss_its_values() -> None:
    """A closed enum's unknown values are unknown fields: the walk does not read enums."""
    with pytest.raises(RuntimeError, match="closed"):
        canonical.refuse_unsupported(_proto2_message_with_enum())
    for desc in (ev.Event.DESCRIPTOR, ev.Actor.DESCRIPTOR):
        canonical.refuse_unsupported(desc)  # the event's own types: open enums
