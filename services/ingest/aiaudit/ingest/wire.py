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


def _skip(buf: bytes, pos: int, tag: int) -> int:
    """Position after the value of the field whose ``tag`` ends at ``pos``."""
    wire_type = tag & 7
    if wire_type == 0:
        return _varint(buf, pos)[1]
    if wire_type == 2:
        length, pos = _varint(buf, pos)
        end = pos + length
    elif wire_type in _WIRE_SIZES:
        end = pos + _WIRE_SIZES[wire_type]
    elif wire_type == 3:
        return _skip_group(buf, pos, tag >> 3)
    elif wire_type == 4:
        raise MalformedError("", f"end-group tag of field {tag >> 3} without its start")
    else:
        raise MalformedError("", f"unsupported wire type {wire_type}")
    if end > len(buf):
        raise MalformedError("", "truncated field")
    return end


def _skip_group(buf: bytes, pos: int, number: int) -> int:
    """Position after the group of field ``number`` begun before ``pos``, nested groups too.

    A group's fields are not length-prefixed: only its end-group tag says where it ends.
    """
    open_groups = [number]
    while open_groups:
        if pos >= len(buf):
            raise MalformedError("", f"group of field {open_groups[-1]} has no end-group tag")
        tag, pos = _varint(buf, pos)
        if tag & 7 == 3:
            open_groups.append(tag >> 3)
        elif tag & 7 == 4:
            if tag >> 3 != (started := open_groups.pop()):
                raise MalformedError(
                    "", f"end-group tag of field {tag >> 3} closes the group of field {started}"
                )
        else:
            pos = _skip(buf, pos, tag)
    return pos


def _chunks(raw: bytes, events_field: int) -> Iterator[bytes]:
    """The serialized events of a well-formed request, in order."""
    pos = 0
    while pos < len(raw):
        tag, pos = _varint(raw, pos)
        if tag & 7 == 2 and tag >> 3 == events_field:
            length, pos = _varint(raw, pos)
            yield raw[pos : pos + length]
            pos += length
        else:
            pos = _skip(raw, pos, tag)


def events_with_unknown_fields(raw: bytes, events_field: int, prefix: str) -> list[str]:
    """Paths of the events that carry fields unknown to this server (``raw`` parsed).

    Raises the :func:`locate_bad_event` error should the walk find the wire corrupt after
    all: an answer naming the problem, never an exception out of the handler.
    """
    bad = []
    try:
        for i, chunk in enumerate(_chunks(raw, events_field)):
            event = event_pb2.Event.FromString(chunk)
            size = event.ByteSize()
            event.DiscardUnknownFields()
            if event.ByteSize() != size:
                bad.append(f"{prefix}[{i}]")
    except (DecodeError, MalformedError):
        raise locate_bad_event(raw, events_field, prefix) from None
    return bad or [prefix]


def locate_bad_event(raw: bytes, events_field: int, prefix: str) -> MalformedError:
    """Names the first event of a request that does not parse."""
    pos, index = 0, 0
    try:
        while pos < len(raw):
            tag, pos = _varint(raw, pos)
            if tag & 7 != 2 or tag >> 3 != events_field:
                pos = _skip(raw, pos, tag)
                continue
            length, pos = _varint(raw, pos)
            chunk = raw[pos : pos + length]
            if len(chunk) != length:
                return MalformedError(prefix, "truncated message")
            pos += length
            try:
                event_pb2.Event.FromString(chunk)
            except DecodeError:
                return MalformedError(
                    f"{prefix}[{index}]",
                    "is not a valid Event (invalid UTF-8 in a string field, or malformed)",
                )
            index += 1
    except MalformedError as exc:
        return MalformedError(prefix, exc.description)
    return MalformedError(prefix, "request is not valid protobuf")
