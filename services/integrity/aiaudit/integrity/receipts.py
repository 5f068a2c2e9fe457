"""Signed receipts: the notary's signed promise that acknowledged events will be leaves.

A receipt note is a C2SP signed note (the checkpoint key signs it) whose text is::

    aiaudit.receipt/v1
    <origin>                                  the log's checkpoint origin
    <sequence> <base64 leaf hash> <receive time, RFC 3339 UTC, microseconds>
    ...                                       one line per receipt of that log

The first line names the format and its version, so a receipt can never be
read as a checkpoint (whose first line is an origin and second a tree size).
One note covers every receipt of one log in an acknowledged batch: one
signature per batch, not per event (a Vault Transit signature is an HTTP round
trip). A client keeps the note and later proves inclusion of each receipted
leaf against a checkpoint (``GetInclusionProof`` by sequence, then RFC 9162
verification); a log that lost or changed the leaf is caught by its own
signature.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aiaudit.common.receipts import ReceiptSigningUnavailableError
from aiaudit.common.store.sql import Receipt
from aiaudit.integrity import origins
from aiaudit.integrity.note import NoteError, VerifierKey, open_note, sign_note
from aiaudit.integrity.signers import ActiveKey, KeySource, SignerUnavailableError

FORMAT = "aiaudit.receipt/v1"
"""First line of every receipt note: format and version."""

LEAF_HASH_SIZE = 32
_SEQUENCE = re.compile(r"0|[1-9][0-9]*")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@dataclass(frozen=True)
class ReceiptLine:
    """One receipted event: where it is in the log, its leaf hash, when it was received."""

    sequence: int
    leaf_hash: bytes
    receive_time: dt.datetime


@dataclass(frozen=True)
class ReceiptNote:
    """The verified contents of a receipt note."""

    origin: str
    log_id: str
    receipts: tuple[ReceiptLine, ...]


def format_time(when: dt.datetime) -> str:
    """RFC 3339 in UTC with exactly six fractional digits (the store keeps microseconds)."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_receipts(origin: str, receipts: Sequence[ReceiptLine]) -> str:
    """The note text of one log's receipts."""
    if not origin or any(ch.isspace() for ch in origin):
        raise NoteError("origin must be one non-empty line without spaces")
    if not receipts:
        raise NoteError("a receipt note covers at least one receipt")
    lines = [FORMAT, origin]
    for r in receipts:
        if r.sequence < 0 or len(r.leaf_hash) != LEAF_HASH_SIZE:
            raise NoteError("receipt needs a non-negative sequence and a 32-byte leaf hash")
        encoded = base64.b64encode(r.leaf_hash).decode("ascii")
        lines.append(f"{r.sequence} {encoded} {format_time(r.receive_time)}")
    return "\n".join(lines) + "\n"


def parse_receipts(text: str) -> tuple[str, tuple[ReceiptLine, ...]]:
    """Reads a receipt note text strictly; returns (origin, receipts)."""
    if not text.endswith("\n"):
        raise NoteError("receipt text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3 or lines[0] != FORMAT:
        raise NoteError(f"not a {FORMAT} receipt (format line, origin, receipts)")
    origin = lines[1]
    if not origin or any(ch.isspace() for ch in origin):
        raise NoteError("receipt origin must be one non-empty line without spaces")
    out = []
    for n, line in enumerate(lines[2:], start=3):
        fields = line.split(" ")
        if len(fields) != 3 or not _SEQUENCE.fullmatch(fields[0]) or not _TIME.fullmatch(fields[2]):
            raise NoteError(f"receipt line {n}: want '<sequence> <base64 leaf hash> <time>'")
        try:
            leaf = base64.b64decode(fields[1], validate=True)
        except binascii.Error:
            raise NoteError(f"receipt line {n}: leaf hash is not base64") from None
        if len(leaf) != LEAF_HASH_SIZE or base64.b64encode(leaf).decode("ascii") != fields[1]:
            raise NoteError(f"receipt line {n}: leaf hash is not 32 bytes in canonical base64")
        when = dt.datetime.strptime(fields[2], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
        out.append(ReceiptLine(int(fields[0]), leaf, when))
    return origin, tuple(out)


def open_receipts(
    note: str | bytes, keys: Iterable[VerifierKey], origin_prefix: str
) -> ReceiptNote:
    """Verifies a receipt note's signature and origin (``<prefix>/<log id>``); returns it.

    Receipts keep the log's epoch-0 origin after an accepted loss (:mod:`loss`): a
    receipt of a lost event is caught by its leaf hash against the new leaf there.
    """
    origin, lines = parse_receipts(open_note(note, keys).text)
    prefix = origin_prefix.rstrip("/")
    parsed = origins.parse(origin, prefix)
    if parsed is None or parsed[1] != 0:
        raise NoteError(f"receipt origin {origin!r} is not {prefix}/<log id>")
    return ReceiptNote(origin, parsed[0], lines)


class ReceiptNotary:
    """``aiaudit.common.receipts.ReceiptSigner`` over the checkpoint key.

    The active key version is re-read at most every ``key_ttl`` seconds: with
    Vault that read is a round trip of its own, and a receipt signed by the
    previous version for a few seconds after a rotation still verifies.
    """

    def __init__(self, keys: KeySource, origin_prefix: str, key_ttl: float = 5.0) -> None:
        """Signs with ``keys``; origins are ``<origin_prefix>/<log id>``."""
        self._keys = keys
        self._prefix = origin_prefix
        self._ttl = key_ttl
        self._lock = threading.Lock()
        self._active: tuple[ActiveKey, float] | None = None

    def _key(self) -> ActiveKey:
        with self._lock:
            if self._active is not None and time.monotonic() - self._active[1] < self._ttl:
                return self._active[0]
        key = self._keys.active()
        with self._lock:
            self._active = (key, time.monotonic())
        return key

    def sign(self, receipts: Sequence[Receipt]) -> list[str]:
        """One signed note per log, logs in order of first appearance."""
        by_log: dict[str, list[ReceiptLine]] = {}
        for r in receipts:
            by_log.setdefault(r.log_id, []).append(
                ReceiptLine(r.sequence, r.leaf_hash, r.receive_time)
            )
        try:
            signer = self._key().signer
            return [
                sign_note(format_receipts(origins.origin(self._prefix, log_id), lines), [signer])
                for log_id, lines in by_log.items()
            ]
        except (SignerUnavailableError, NoteError) as exc:
            with self._lock:
                self._active = None  # a rotated or revoked version: read it again next time
            raise ReceiptSigningUnavailableError(str(exc)) from exc
