"""One-dimensional PostgreSQL arrays in their binary wire form, built in one pass.

The small-group statement sends every column as an array parameter. psycopg
adapts a Python list element by element through its generic list dumper
(about 10 us per array here, 18 arrays per statement); building the binary
array directly and handing psycopg finished bytes costs a few microseconds.
The layout is PostgreSQL's ``array_send``: dimensions (1), a has-nulls flag,
the element type's OID, the length and lower bound (1), then each element as
a 4-byte length (-1 for NULL) and its binary value.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable, Sequence
from typing import Any

from psycopg.adapt import AdaptersMap, Dumper
from psycopg.pq import Format

_HEADER = struct.Struct(">iiIii")
_LENGTH = struct.Struct(">i")
_INT2 = struct.Struct(">h")
_INT8 = struct.Struct(">q")
_NULL = _LENGTH.pack(-1)
_INT2_ELEMENT = struct.Struct(">ih")
_INT8_ELEMENT = struct.Struct(">iq")
_PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


class EncodedArray:
    """A finished binary array; its dumper passes the bytes through unchanged."""

    __slots__ = ("data",)
    oid = 0

    def __init__(self, data: bytes) -> None:
        """Wraps bytes laid out by :func:`_array`."""
        self.data = data


class TextArray(EncodedArray):
    """``text[]``."""

    __slots__ = ()
    oid = 1009


class ByteaArray(EncodedArray):
    """``bytea[]``."""

    __slots__ = ()
    oid = 1001


class Int2Array(EncodedArray):
    """``smallint[]``."""

    __slots__ = ()
    oid = 1005


class Int8Array(EncodedArray):
    """``bigint[]``."""

    __slots__ = ()
    oid = 1016


class TimestamptzArray(EncodedArray):
    """``timestamptz[]``."""

    __slots__ = ()
    oid = 1185


def _array(element_oid: int, values: Sequence[bytes | None]) -> bytes:
    parts = []
    nulls = 0
    for value in values:
        if value is None:
            parts.append(_NULL)
            nulls = 1
        else:
            parts.append(_LENGTH.pack(len(value)))
            parts.append(value)
    return _HEADER.pack(1, nulls, element_oid, len(values), 1) + b"".join(parts)


def text_array(values: Sequence[str | None]) -> TextArray:
    """Strings as UTF-8 (the store's databases are UTF-8); None is NULL."""
    return TextArray(_array(25, [None if v is None else v.encode() for v in values]))


def bytea_array(values: Sequence[bytes | None]) -> ByteaArray:
    """Byte strings as they are; None is NULL."""
    return ByteaArray(_array(17, values))


def int2_array(values: Sequence[int | None]) -> Int2Array:
    """Integers in -32768..32767 (``struct.error`` otherwise, before anything is sent) or NULL."""
    if None in values:
        return Int2Array(_array(21, [None if v is None else _INT2.pack(v) for v in values]))
    body = b"".join([_INT2_ELEMENT.pack(2, v) for v in values])
    return Int2Array(_HEADER.pack(1, 0, 21, len(values), 1) + body)


def int8_array(values: Sequence[int]) -> Int8Array:
    """64-bit integers (``struct.error`` outside that range, before anything is sent)."""
    body = b"".join([_INT8_ELEMENT.pack(8, v) for v in values])
    return Int8Array(_HEADER.pack(1, 0, 20, len(values), 1) + body)


def timestamptz_array(values: Sequence[dt.datetime]) -> TimestamptzArray:
    """Aware datetimes as microseconds since 2000-01-01 UTC (exact integer arithmetic)."""
    return TimestamptzArray(
        _array(1184, [_INT8.pack((v - _PG_EPOCH) // _MICROSECOND) for v in values])
    )


ENCODERS: dict[str, Callable[[Sequence[Any]], EncodedArray]] = {
    "text": text_array,
    "bytea": bytea_array,
    "timestamptz": timestamptz_array,
    "int8": int8_array,
    "int2": int2_array,
}
"""The encoder of an array of each element type (by its PostgreSQL name)."""


def register(adapters: AdaptersMap) -> None:
    """Lets ``adapters`` send the :class:`EncodedArray` kinds as binary parameters."""
    for kind in (TextArray, ByteaArray, Int2Array, Int8Array, TimestamptzArray):

        class _Passthrough(Dumper):
            format = Format.BINARY
            oid = kind.oid

            def dump(self, obj: EncodedArray) -> bytes:
                return obj.data

        adapters.register_dumper(kind, _Passthrough)
