"""Ingest's wire walk: naming the broken or unknown part of a request it is handed."""

from __future__ import annotations

import pytest
from google.protobuf import empty_pb2, wrappers_pb2
from google.protobuf.unknown_fields import UnknownFieldSet

from aiaudit.common import protowire
from aiaudit.ingest.wire import MalformedError, events_with_unknown_fields
from tests.helpers import interaction


def _frame(event: bytes) -> bytes:
    """``event`` as field 1 (events) of an AppendRequest."""
    out, n = bytearray(b"\x0a"), len(event)
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes(out) + bytes([n]) + event


def test_groups_are_skipped_to_their_end_nested_ones_too() -> None:
    """Groups were skipped by 0 bytes: the field-1 blob inside was parsed as an event."""
    event = interaction("t", "e1").SerializeToString()
    group = b"\x9b\x06" + b"\x93\x06" + b"\x0a\x02\xff\xff" + b"\x94\x06" + b"\x9c\x06"
    raw = _frame(event) + group + _frame(event + b"\xf8\x3e\x01")  # field 999 in events[1]
    assert events_with_unknown_fields(raw, 1, "events") == ["events[1]"]


def test_corrupt_wire_is_named_not_raised_as_a_decode_error() -> None:
    """Should the walk find corrupt wire after all, the caller still gets the part named."""
    with pytest.raises(MalformedError) as err:
        events_with_unknown_fields(_frame(b"\x0a\x05ab"), 1, "events")
    assert err.value.field == "events[0]"


def test_fields_the_suite_writes_itself_read_back_as_protobuf_reads_them() -> None:
    """Ingest appends the receive time, alerting its trust signal views, with these bytes."""
    shortest = {0: b"\x00", 127: b"\x7f", 128: b"\x80\x01", 300: b"\xac\x02"}
    assert {n: protowire.varint(n) for n in shortest} == shortest  # as protobuf writes them
    for n in (0, 1, 127, 128, 300, 16383, 16384, 2**32, 2**64 - 1):
        assert wrappers_pb2.UInt64Value.FromString(b"\x08" + protowire.varint(n)).value == n
    for size in (0, 1, 127, 128, 300):
        payload = (bytes(range(256)) * 2)[:size]
        wrapped = protowire.length_delimited(1, payload)
        assert wrappers_pb2.BytesValue.FromString(wrapped).value == payload
    for number in (15, 16, 1000, 2**29 - 1):  # tags of one to five bytes
        [field] = UnknownFieldSet(
            empty_pb2.Empty.FromString(protowire.length_delimited(number, b"x"))
        )
        assert (field.field_number, field.wire_type, field.data) == (number, 2, b"x")
