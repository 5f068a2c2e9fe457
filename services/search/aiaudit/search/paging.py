"""Opaque page tokens for keyset pagination (AIP-158): search pages and aggregate groups.

A token holds the sort values of the last hit and a digest of the request
(tenant, filter, query, order): a token is refused with another request, and
a garbled token is INVALID_ARGUMENT, never a backend error. A search's tokens
carry only numbers; an aggregate's carry its snapshot and the last group's keys
(strings), which reach the backend as bound values: nothing is smuggled into a
query.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from aiaudit.search.backends.base import MAX_BUCKETS, GroupKey

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


def encode_groups(bound: str, snapshot: int, after: GroupKey) -> str:
    """The token of an aggregate's page after the group ``after``, over the log below ``snapshot``.

    The same form as a search's (base64 JSON, bound by :func:`digest`), version 2,
    so neither is taken for the other.
    """
    raw = json.dumps(
        [2, bound, snapshot, list(after)], separators=(",", ":"), ensure_ascii=False
    ).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def groups_token_room(keys: tuple[str, ...]) -> int:
    """Bytes an aggregate's token after a group with these keys takes, at most.

    A character is at most 6 bytes of its JSON (a control character escaped; UTF-8 is
    at most 4), base64 makes 3 bytes 4; the rest (version, binding, snapshot, nulls)
    is under 256.
    """
    return 8 * sum(map(len, keys)) + 256


def decode_groups(token: str, bound: str, keys: int) -> tuple[int, GroupKey]:
    """The snapshot and the last group's keys in a token issued for the same request.

    The keys are strings (or None) only: they reach the backend as bound values.
    """
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        version, got, snapshot, values = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, RecursionError):
        raise TokenError("page_token is not a token this service issued") from None
    if version != 2 or not isinstance(values, list) or not keys or len(values) != keys:
        raise TokenError("page_token is not a token this service issued")
    if got != bound:
        raise TokenError(
            "page_token belongs to a different tenant, caller, filter, query, group_by, "
            "histogram, metrics or percentiles"
        )
    if not _is_int64(snapshot) or snapshot < 0:
        raise TokenError("page_token is not a token this service issued")
    if not all(v is None or _is_text(v) for v in values):
        raise TokenError("page_token is not a token this service issued")
    return snapshot, tuple(values)


def _is_text(value: object) -> bool:
    r"""A string a group's key can be: Unicode scalar values only.

    JSON takes a lone surrogate (``"\ud800"``), which no event holds: a token forged
    with one reached the page's access record, which could not be written, and was
    answered UNAVAILABLE "retry" for good (review, 2026-12-07).
    """
    if not isinstance(value, str):
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def groups_page_size(requested: int) -> int:
    """Groups per page; 0 for one answer of every group; ValueError outside 0..10,000."""
    if requested < 0 or requested > MAX_BUCKETS:
        raise ValueError(
            f"must be between 0 and {MAX_BUCKETS} (0 answers every group in one message)"
        )
    return requested
