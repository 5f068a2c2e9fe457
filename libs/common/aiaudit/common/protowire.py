"""Protobuf wire encoding of the few fields the suite writes into serialised events itself.

Appending a field's bytes to a serialised message merges it into the message, without
parsing and serialising it again: ingest stamps the receive time that way, and alerting
appends its trust signal views (:mod:`aiaudit.alerting.signals`).
"""

from __future__ import annotations


def varint(n: int) -> bytes:
    """A non-negative integer as a base-128 varint."""
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def length_delimited(number: int, payload: bytes) -> bytes:
    """Field ``number`` holding ``payload`` (a message, string or bytes)."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload
