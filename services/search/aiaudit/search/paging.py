"""Opaque page tokens for keyset pagination (AIP-158).

A token holds the sort values of the last hit and a digest of the request
(tenant, filter, query, order): a token is refused with another request, and
a garbled token is INVALID_ARGUMENT, never a backend error. Tokens carry only
numbers, so they cannot smuggle anything into a query.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50


class TokenError(ValueError):
    """A page token that is malformed or belongs to another request."""


def digest(*parts: str) -> str:
    """What a token is bound to."""
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


def encode(bound: str, sort: tuple[int, ...]) -> str:
    """The token of the page after the hit with these sort values."""
    raw = json.dumps([1, bound, list(sort)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _is_int64(value: object) -> bool:
    """Every sort value is a 64-bit integer (times in microseconds, sequences)."""
    return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63


def decode(token: str, bound: str, keys: int) -> tuple[int, ...]:
    """The sort values in a token issued for the same request."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        version, got, values = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, RecursionError):
        raise TokenError("page_token is not a token this service issued") from None
    if version != 1 or not isinstance(values, list) or len(values) != keys:
        raise TokenError("page_token is not a token this service issued")
    if got != bound:
        raise TokenError("page_token belongs to a different tenant, filter, query or order_by")
    if not all(_is_int64(v) for v in values):
        raise TokenError("page_token is not a token this service issued")
    return tuple(values)


def page_size(requested: int) -> int:
    """The page size to use; raises ValueError outside 0..MAX_PAGE_SIZE."""
    if requested < 0 or requested > MAX_PAGE_SIZE:
        raise ValueError(f"must be between 0 and {MAX_PAGE_SIZE} (0 means {DEFAULT_PAGE_SIZE})")
    return requested or DEFAULT_PAGE_SIZE
