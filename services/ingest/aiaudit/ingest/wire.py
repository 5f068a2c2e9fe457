"""Parsing requests from raw bytes, so malformed input gets a named field.

gRPC's own deserialisation failure surfaces as INTERNAL with no detail. Ingest
registers its methods with raw bytes instead, parses here, and when the
message is malformed (invalid UTF-8 in a string, a truncated field) walks the
top-level wire format to name the event that is broken.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from aiaudit.common.v1 import event_pb2

_WIRE_SIZES = {1: 8, 5: 4}


@dataclass(frozen=True)
class MalformedError(Exception):
    """A request that is not valid protobuf; ``field`` names the broken part."""

    field: str
    description: str


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise MalformedError("", "truncated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def _chunks(raw: bytes, events_field: int) -> Iterator[bytes]:
    """The serialized events of a well-formed request, in order."""
    pos = 0
    while pos < len(raw):
        tag, pos = _varint(raw, pos)
        wire_type = tag & 7
        if wire_type == 0:
            _, pos = _varint(raw, pos)
        elif wire_type == 2:
            length, pos = _varint(raw, pos)
            if tag >> 3 == events_field:
                yield raw[pos : pos + length]
            pos += length
        else:
            pos += _WIRE_SIZES.get(wire_type, 0)


def events_with_unknown_fields(raw: bytes, events_field: int, prefix: str) -> list[str]:
    """Paths of the events that carry fields unknown to this server."""
    bad = []
    for i, chunk in enumerate(_chunks(raw, events_field)):
        event = event_pb2.Event.FromString(chunk)
        size = event.ByteSize()
        event.DiscardUnknownFields()
        if event.ByteSize() != size:
            bad.append(f"{prefix}[{i}]")
    return bad or [prefix]


def locate_bad_event(raw: bytes, events_field: int, prefix: str) -> MalformedError:
    """Names the first event of a request that does not parse."""
    pos, index = 0, 0
    try:
        while pos < len(raw):
            tag, pos = _varint(raw, pos)
            number, wire_type = tag >> 3, tag & 7
            if wire_type == 0:
                _, pos = _varint(raw, pos)
            elif wire_type == 2:
                length, pos = _varint(raw, pos)
                chunk = raw[pos : pos + length]
                if len(chunk) != length:
                    return MalformedError(prefix, "truncated message")
                pos += length
                if number == events_field:
                    try:
                        event_pb2.Event.FromString(chunk)
                    except DecodeError:
                        return MalformedError(
                            f"{prefix}[{index}]",
                            "is not a valid Event (invalid UTF-8 in a string field, or malformed)",
                        )
                    index += 1
            elif wire_type in _WIRE_SIZES:
                pos += _WIRE_SIZES[wire_type]
            else:
                return MalformedError(prefix, f"unsupported wire type {wire_type}")
    except MalformedError as exc:
        return MalformedError(prefix, exc.description)
    return MalformedError(prefix, "request is not valid protobuf")
