r"""Offline proof bundles: events an auditor can verify with nothing but the verifier key.

A bundle is a JSON Lines file (``.jsonl``), one object per event::

    {"log_id": "acme", "sequence": 41, "event_id": "e-1",
     "canonical": "<base64 of the canonical event bytes>",
     "tlog_proof": "c2sp.org/tlog-proof@v1\\nindex 41\\n<hash>...\\n\\n<signed checkpoint>",
     "salt": "<base64>", "content": {"input.messages[0].parts[0].text": "..."}}

``tlog_proof`` is a c2sp.org/tlog-proof: the leaf index, the RFC 6962
inclusion proof (base64 hashes, leaf first) and the signed checkpoint it
leads to. ``salt`` and ``content`` are optional but go together (both absent
once erased): each content value must match its commitment in ``canonical``,
which only the salt can show. Each event appears once.

To verify an event: leaf = SHA-256(0x00 || canonical); the checkpoint's
signature must verify with the published verifier key and its origin must be
``<origin_prefix>/<log_id>``, or ``<origin_prefix>/<log_id>/epoch-<n>`` after an
accepted loss (:mod:`origins`, :mod:`loss`; the summary names it); the proof
must lead from the leaf at ``index`` to the checkpoint's root. Any RFC 6962 /
C2SP implementation can do this.
A line holds exactly these keys, each once; base64 values are canonical
(standard alphabet, padded, nothing after the padding), the proof's hashes
and extra data too; numbers (``sequence``, the proof's ``index``) are ASCII
decimal in their one spelling (no ``-0``, no leading zero); the salt is 32
bytes: an edited line must not read one way to the verifier and another to
a person or another parser. Two checkpoints of one origin and size must
agree on the root, or the log was forked. Every line of one log in a bundle
leads to one checkpoint: both writers prove an export against one, so lines
of one log with two checkpoints are lines of two exports joined, a problem.

A bundle written since 2026-12-06 starts with one **scope line**,
``{"scope": {...}}``: what the export was made for (its ``action``,
``log_id``, the checkpoint's ``tree_size``, ``exported_at``,
``requested_by``, the event id of its ``access_record`` in the log, whether
``content`` was included, and the search's ``filter``, ``query``,
``order_by`` and ``up_to_sequence`` or the range ``start``..``end``). No
signature covers it: it is the exporter's claim. What the lines prove is
checked against it (their log, their checkpoint's size, their sequences,
and for a range every sequence of it), and the rest is printed as a claim,
to match with the access record the log holds (:class:`Scope`). Bundles
without one (older ones) verify as before.

A search export's last line may be its **seal**, ``{"seal": {...}}``: the
export's closing record in the log (an access record of action
``search.export.seal`` naming the export's access record, how many event
lines it wrote and the SHA-256 of their sequences and leaf hashes, in order),
with its tlog-proof against a checkpoint signed after it and the consistency
proof from the lines' checkpoint to that one. A seal that verifies proves
that the lines are the ones the export wrote, in its order, and only those;
one that does not names what differs (:class:`_Seals`). Since 2026-12-06 the
record also holds ``access.scope_sha256``, SHA-256 of the seal's ``scope_salt``
and the scope line's bytes: under a seal that verifies, the scope is proven the
export's, and an edited one is a problem. A seal written before (no digest)
proves the lines and leaves the scope the exporter's claim, which the summary says.
An export that matched no event is its scope and its seal: a seal that verifies, whose
record counts 0 and commits to the scope, proves it complete and empty (the only bundle
without event lines that verifies; its consistency proof is not checked, as no line
holds the checkpoint it starts from: :func:`_empty`).

Two writers produce this format: :func:`export` here (``aiaudit integrity
export-bundle``, straight from the store: a log's events in order, written
only once the command has committed the export's access record to the log)
and the search service's ``Export`` with ``include_proofs`` (``aiaudit
export --include-proofs``: the events matching a filter, proofs fetched over
gRPC with ``BatchGetInclusionProofs``). Search writes its lines from this
specification, not with :func:`event_line`, so the format is a contract and
not shared code; a change here must be made in the README and there too.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import re
from array import array
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import sqlalchemy as sa

from aiaudit.common import canonical, erasure
from aiaudit.common.store import SqlEventStore
from aiaudit.common.store.schema import logs
from aiaudit.common.store.sql import READ_BYTES
from aiaudit.integrity import merkle, origins, storage
from aiaudit.integrity.note import (
    Checkpoint,
    NoteError,
    VerifierKey,
    open_note,
    parse_checkpoint,
)

TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"

_Opened = tuple[str, int, bytes]
"""A verified checkpoint: origin, size, root hash."""


class BundleError(ValueError):
    """A bundle line or tlog-proof is malformed."""


def format_tlog_proof(index: int, hashes: Sequence[bytes], signed_checkpoint: str) -> str:
    """A c2sp.org/tlog-proof text."""
    lines = [TLOG_PROOF_HEADER, f"index {index}", *(base64.b64encode(h).decode() for h in hashes)]
    return "\n".join(lines) + "\n\n" + signed_checkpoint


@dataclass(frozen=True)
class TlogProof:
    """A parsed tlog-proof."""

    index: int
    hashes: list[bytes]
    signed_checkpoint: str
    extra: bytes | None = None


_DECIMAL = re.compile(r"0|[1-9][0-9]*")
"""A number as one text only: ASCII digits, no sign, no leading zero (``str.isdigit``
took ``٣``, which ``int`` reads as 3, and other parsers refuse)."""


_LAST_INDEX = 2**64 - 1
"""The largest leaf index and event line sequence: a tree size is 64 bits, so the Go
verifier (and any RFC 6962 library) reads both as uint64 and calls a larger one, or a
negative sequence, malformed. Until 2026-12-07 (review) aiaudit read any integer there:
the line was counted and named another way (``proof index 0 is not the event's sequence
-1``), and a seal's count differed by it, so the two verifiers printed different
problems."""


def parse_tlog_proof(text: str) -> TlogProof:
    """Reads a c2sp.org/tlog-proof (header, optional extra, index, hashes, blank, checkpoint).

    Each value has one spelling: the index in ASCII decimal without a leading
    zero, the extra data and the hashes in canonical base64 (as the line's
    other base64 fields), so no edit of the text reads as the same proof.
    """
    head, sep, note_text = text.partition("\n\n")
    if not sep:
        raise BundleError("tlog-proof has no blank line before its checkpoint")
    lines = head.split("\n")
    if lines[0] != TLOG_PROOF_HEADER:
        raise BundleError(f"tlog-proof must start with {TLOG_PROOF_HEADER!r}")
    rest = lines[1:]
    extra = None
    if rest and rest[0].startswith("extra "):
        extra = _proof_b64(rest.pop(0)[6:], "extra data")
    if not rest or not rest[0].startswith("index "):
        raise BundleError("tlog-proof lacks its index line")
    digits = rest.pop(0)[6:]
    if not _DECIMAL.fullmatch(digits):
        raise BundleError("tlog-proof index must be a decimal number (ASCII digits)")
    if int(digits) > _LAST_INDEX:
        raise BundleError(f"tlog-proof index {digits} is past {_LAST_INDEX}, the last leaf index")
    hashes = [_proof_b64(h, f"hash {i}") for i, h in enumerate(rest, start=1)]
    return TlogProof(int(digits), hashes, note_text, extra)


def _proof_b64(value: str, what: str) -> bytes:
    try:
        return canonical.b64decode_canonical(value)
    except ValueError:
        raise BundleError(f"tlog-proof {what} is not in canonical base64") from None


def event_line(
    stored_log_id: str,
    sequence: int,
    event_id: str,
    committed: bytes,
    proof: str,
    salt: bytes | None = None,
    content: Mapping[str, str] | None = None,
) -> str:
    """One bundle line (without its newline)."""
    line: dict[str, Any] = {
        "log_id": stored_log_id,
        "sequence": sequence,
        "event_id": event_id,
        "canonical": base64.b64encode(committed).decode(),
        "tlog_proof": proof,
    }
    if salt is not None and content is not None:
        line["salt"] = base64.b64encode(salt).decode()
        line["content"] = dict(content)
    return json.dumps(line, separators=(",", ":"), sort_keys=True)


SEARCH_EXPORT = "search.export"
EXPORT_BUNDLE = "integrity.export_bundle"
_SCOPE_COMMON: tuple[tuple[str, type], ...] = (
    ("action", str),
    ("log_id", str),
    ("tree_size", int),
    ("exported_at", str),
    ("requested_by", str),
    ("access_record", str),
    ("content", str),
)
_SCOPE_OWN: dict[str, tuple[tuple[str, type], ...]] = {
    SEARCH_EXPORT: (("filter", str), ("query", str), ("order_by", str), ("up_to_sequence", int)),
    EXPORT_BUNDLE: (("start", int), ("end", int)),
}
"""A scope's fields, by its action (the ``access.action`` of the export's record)."""
CONTENT_INCLUDED = "included"
CONTENT_LEFT_OUT = "left out: --no-content"
CONTENT_WITHHELD = "withheld: no content.read"
_CONTENT_SAID = {
    CONTENT_INCLUDED: "content included",
    CONTENT_LEFT_OUT: "content left out (--no-content)",
    CONTENT_WITHHELD: "content withheld (the exporter has no content.read)",
}
_MOST = 2**63 - 1


@dataclass(frozen=True)
class Scope:
    """A bundle's scope line: what its exporter says the export was made for.

    Nothing signs it. :func:`verify_bundle` checks what the proven lines can
    refute (their log, checkpoint size and sequences) and prints the rest as
    the exporter's claim, whose ``access_record`` names the export's own
    record in the log: the record is written after the export's checkpoint
    is taken, so that checkpoint never covers it.
    """

    line: int
    action: str
    log_id: str
    tree_size: int
    exported_at: str
    requested_by: str
    access_record: str
    content: str
    filter: str = ""
    query: str = ""
    order_by: str = ""
    up_to_sequence: int = 0
    start: int = 0
    end: int = 0

    def span(self) -> tuple[int, int]:
        """The sequences ``[a, b)`` every line must lie in."""
        if self.action == SEARCH_EXPORT:
            return 0, self.up_to_sequence
        return self.start, self.end

    def outside(self, sequence: int) -> str:
        """Why a line at ``sequence`` is not one of the scope's, or ''."""
        a, b = self.span()
        if a <= sequence < b:
            return ""
        if self.action == SEARCH_EXPORT:
            return (
                f"sequence {sequence} is not below the scope's up_to_sequence {b} "
                f"(line {self.line})"
            )
        return (
            f"sequence {sequence} is not within the scope's sequences {a}..{b - 1} "
            f"(line {self.line})"
        )

    def lines(self, sealed: str = "", proven: bool = False) -> list[str]:
        """The summary's scope lines (see ``verify --bundle`` in the README).

        ``sealed``: what a verified seal proves of a search export's lines (:class:`_Seals`),
        said instead of what is not proven without one; ``proven``: the seal's closing
        record commits to this scope line, byte for byte (``access.scope_sha256``).
        """
        head = (
            f"scope (line {self.line}): the exporter's claim, which no signature covers; "
            "checked against the proven lines: its log, checkpoint size and sequences"
        )
        if proven:
            head = (
                f"scope (line {self.line}): the export's, as its seal's closing record commits "
                "to it (access.scope_sha256); checked against the proven lines: its log, "
                "checkpoint size and sequences"
            )
        who = (
            f"scope: {self.action} of log {self.log_id!r} requested by {self.requested_by!r} "
            f"at {self.exported_at!r}; access record {self.access_record!r} (an event of the "
            "log written after this checkpoint: match it there)"
        )
        if self.action == SEARCH_EXPORT:
            what = (
                f"scope: filter {self.filter!r}; query {self.query!r}; order_by "
                f"{self.order_by!r}; events before sequence {self.up_to_sequence}"
            )
        else:
            what = f"scope: sequences {self.start}..{self.end - 1}"
        what += f"; checkpoint size {self.tree_size}; {_CONTENT_SAID[self.content]}"
        if self.action == SEARCH_EXPORT:
            return [head, who, what, sealed or unproven_selection(self.up_to_sequence)]
        return [head, who, what]


def unproven_selection(up_to_sequence: int) -> str:
    """What a search export's summary says it cannot check: that its lines are the search's.

    A range export is checked whole (:meth:`_Scopes.incomplete`); a search's lines are
    whatever events its filter matched, which no line proves, so one removed (or an
    event of the log added with its proof against the same checkpoint) verified, and
    nothing in the output said the selection was unchecked (review, 2026-12-06).
    """
    return (
        "scope: not proven: that the lines are every event the filter and query matched "
        f"before sequence {up_to_sequence}, and only those (a line removed, or another event "
        "of the log added with its proof against this checkpoint, verifies alike); where the "
        f"log can be read, search it with 'sequence < {up_to_sequence}' added to the filter "
        "and compare"
    )


NO_SCOPE = (
    "scope: none in the bundle (written before bundles recorded their scope, or its first "
    "line removed): nothing says what the export was for"
)


def scope_line(**fields: str | int) -> str:
    """A scope line (without its newline): ``{"scope": fields}``, fields as :class:`Scope`'s."""
    return json.dumps({"scope": fields}, separators=(",", ":"), sort_keys=True)


def _only_object(obj: dict[str, Any], name: str) -> dict[str, Any]:
    """The object of a line holding ``name`` alone (a scope or a seal).

    ``BundleError`` if the line escapes a lone surrogate or holds another field.
    """
    if _surrogate(obj):
        raise BundleError("the line escapes a lone surrogate (read elsewhere as U+FFFD)")
    unknown = sorted(set(obj) - {name})
    if unknown:
        raise BundleError(f"unknown field {unknown[0]!r}: a {name} line holds only {name!r}")
    value: dict[str, Any] = _field(obj, name, dict)
    return value


def _parse_scope(obj: dict[str, Any], number: int) -> Scope:
    """A scope line's fields, each of its type, for its action; ``BundleError`` otherwise."""
    value = _only_object(obj, "scope")
    action = _field(value, "action", str)
    if action not in _SCOPE_OWN:
        raise BundleError(f"action {action!r} is not one of {', '.join(sorted(_SCOPE_OWN))}")
    kinds = _SCOPE_COMMON + _SCOPE_OWN[action]
    names = sorted(name for name, _ in kinds)
    unknown = sorted(set(value) - set(names))
    if unknown:
        raise BundleError(
            f"unknown field {unknown[0]!r}: a {action} scope holds {', '.join(names)}"
        )
    got: dict[str, Any] = {}
    for name, kind in kinds:
        got[name] = _field(value, name, kind)
        if kind is int and not 0 <= got[name] <= _MOST:
            raise BundleError(f"field {name!r} must be from 0 to {_MOST}, not {got[name]}")
    if got["content"] not in _CONTENT_SAID:
        said = ", ".join(repr(c) for c in sorted(_CONTENT_SAID))
        raise BundleError(f"content {got['content']!r} is not one of {said}")
    scope = Scope(number, **got)
    if action == SEARCH_EXPORT and scope.up_to_sequence > scope.tree_size:
        raise BundleError(
            f"up_to_sequence {scope.up_to_sequence} is past tree_size {scope.tree_size}"
        )
    if action == EXPORT_BUNDLE and not scope.start < scope.end <= scope.tree_size:
        raise BundleError(
            f"start {scope.start} and end {scope.end} are no range within tree_size "
            f"{scope.tree_size}"
        )
    return scope


def _surrogate(value: object) -> bool:
    """Whether a name or string anywhere in a parsed JSON value holds a lone surrogate.

    JSON reads a valid pair as one character, so any left was escaped alone: other
    readers (Go's encoding/json) read it as U+FFFD, and print another text.
    """
    left = [value]
    while left:
        item = left.pop()
        if isinstance(item, str):
            if any("\ud800" <= c <= "\udfff" for c in item):
                return True
        elif isinstance(item, dict):
            left += item.keys()
            left += item.values()
        elif isinstance(item, list):
            left += item
    return False


def covering_checkpoint(store: SqlEventStore, log_id: str) -> storage.StoredCheckpoint:
    """The log's latest checkpoint, which an export covers; ``BundleError`` if none yet.

    Separate from :func:`export` so that a caller can refuse before it creates its output.
    Its size and root must be those its signed note states (:func:`storage.as_noted`): a
    row forged by raw SQL under size 1000 had an export recorded for 1,000 events, then
    stopped by a traceback (review, 2026-12-07).
    """
    with store.engine.connect() as conn:
        cp = storage.latest_checkpoint(conn, log_id)
    if cp is None:
        raise BundleError(f"log {log_id!r} has no checkpoint yet")
    try:
        return storage.as_noted(cp)
    except storage.NoteMismatchError as exc:
        raise BundleError(
            f"{exc}; nothing was exported; run `aiaudit verify` on the store"
        ) from None


def log_size(store: SqlEventStore, log_id: str) -> int:
    """How many events the log holds now (0 for a log that does not exist)."""
    with store.engine.connect() as conn:
        size = conn.execute(sa.select(logs.c.size).where(logs.c.log_id == log_id)).scalar()
    return int(size or 0)


class NotYetCheckpointedError(BundleError):
    """Events asked for lie past the latest signed checkpoint: none of them can be proven."""

    def __init__(self, log_id: str, covered: int, first: int, end: int) -> None:
        self.log_id, self.covered, self.first, self.end = log_id, covered, first, end
        super().__init__(
            f"{end - first} event(s) of log {log_id!r} (sequences {first}..{end - 1}) are not "
            f"yet covered by a signed checkpoint (the latest has size {covered})"
        )


def export_range(
    cp: storage.StoredCheckpoint,
    size: int,
    start: int = 0,
    count: int | None = None,
    up_to_checkpoint: bool = False,
) -> tuple[int, int]:
    """The sequences ``start .. end-1`` an export of ``cp``'s log writes, or why none.

    ``size`` is the log's size when the export started; without ``count`` the
    export runs to its end. Events past ``cp`` cannot be proven against it:
    asking for one raises :class:`NotYetCheckpointedError` (until 2026-12-05
    they were silently left out, and an export during a notary outage passed
    for the whole log), unless ``up_to_checkpoint`` caps the range at ``cp``.
    """
    size = max(size, cp.tree_size)  # the checkpoint may have been read after the size
    if start >= size:
        raise BundleError(
            f"--start {start} is past the end of log {cp.log_id!r} ({size} event(s)): "
            "nothing to export"
        )
    end = size if count is None else min(size, start + count)
    if end > cp.tree_size and (not up_to_checkpoint or start >= cp.tree_size):
        raise NotYetCheckpointedError(cp.log_id, cp.tree_size, max(start, cp.tree_size), end)
    return start, min(end, cp.tree_size)


def export(
    store: SqlEventStore,
    cp: storage.StoredCheckpoint,
    out: IO[str],
    start: int,
    end: int,
    include_content: bool = True,
) -> int:
    """Writes events ``start .. end-1`` of ``cp``'s log, each proven against ``cp``.

    The range must lie within ``cp`` (:func:`export_range`): a range past it
    raises, rather than being cut short. Returns how many were written.
    Without ``include_content`` no content is read, so no KEK is needed.
    """
    if not 0 <= start < end <= cp.tree_size:
        raise BundleError(
            f"sequences {start}..{end - 1} are not within checkpoint size {cp.tree_size}"
        )
    log_id = cp.log_id
    written = 0
    first = start
    while first < end:
        # At most 1,000 events and READ_BYTES stored a batch (one event may be megabytes).
        batch = store.read_log(
            log_id, first, min(1000, end - first), include_content, max_bytes=READ_BYTES
        )
        if not batch:
            break  # the rest is missing: named below
        first = batch[-1].sequence + 1
        with store.engine.connect() as conn:
            reader = storage.NodeTable(conn, log_id)
            for e in batch:
                hashes = merkle.inclusion_proof(e.sequence, cp.tree_size, reader)
                proof = format_tlog_proof(e.sequence, hashes, cp.signed_note)
                keep = include_content and e.salt is not None
                out.write(
                    event_line(
                        log_id,
                        e.sequence,
                        e.event_id,
                        e.canonical,
                        proof,
                        e.salt if keep else None,
                        e.content if keep else None,
                    )
                    + "\n"
                )
                written += 1
    if written != end - start:  # a log read short: the bundle would claim more than it holds
        raise BundleError(f"log {log_id!r}: read {written} of sequences {start}..{end - 1}")
    return written


@dataclass(frozen=True)
class BundleProblem:
    """A bundle line that does not verify."""

    line: int
    event_id: str
    what: str
    scope: bool = False
    """A problem of the scope line (``line N scope: what``), not of an event."""
    seal: bool = False
    """A problem of the seal line (``line N seal: what``)."""

    def __str__(self) -> str:
        """``line N event E: what``, with what the file chose escaped (see :func:`_shown`)."""
        if self.scope:
            return _shown(f"line {self.line} scope: {self.what}")
        if self.seal:
            return _shown(f"line {self.line} seal: {self.what}")
        return _shown(f"line {self.line} event {self.event_id or '?'}: {self.what}")


def _shown(text: str) -> str:
    r"""``text`` with every unprintable character escaped (``\x1b``, ``\ud800``).

    Ids and paths come from the file: a terminal control sequence in one could
    print a fake summary over the real one, and a lone surrogate could not be
    printed at all (review).
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


_JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}

T = TypeVar("T")


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _field(line: dict[str, Any], name: str, kind: type[T]) -> T:
    """``line[name]`` if it has the JSON type wanted (``True`` is no integer, ``0.9`` none)."""
    if name not in line:
        raise BundleError(f"field {name!r} is missing")
    value = line[name]
    if type(value) is not kind:
        raise BundleError(f"field {name!r} must be {_JSON_TYPES[kind]}, not {_json_type(value)}")
    return value


@dataclass(frozen=True)
class _Line:
    """A bundle line whose fields have the types the format says."""

    log_id: str
    sequence: int
    event_id: str
    committed: bytes
    proof: TlogProof
    salt: bytes | None
    content: dict[str, str] | None


_KEYS = frozenset({"log_id", "sequence", "event_id", "canonical", "tlog_proof", "salt", "content"})


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's members; a key twice is an error (parsers differ on which one wins)."""
    out = dict(pairs)
    if len(out) != len(pairs):
        twice = sorted({k for k, _ in pairs if sum(1 for j, _ in pairs if j == k) > 1})
        raise BundleError(f"key {twice[0]!r} appears twice in one object")
    return out


_MOST_DIGITS = 4300
"""The longest integer read (Python's default ``int_max_str_digits``), refused here in
words of ours, as the Go verifier refuses it."""


def _integer(text: str) -> int:
    """A JSON integer, if ``text`` is its one spelling: ``-0`` is refused (it read as 0)."""
    if len(text) - text.startswith("-") > _MOST_DIGITS:
        raise BundleError(f"an integer of more than {_MOST_DIGITS} digits")
    value = int(text)
    if str(value) != text:
        raise BundleError(f"integer {text} is not written as {value}")
    return value


_MOST_DEPTH = 500
"""The deepest arrays and objects nest in what is read, refused past it in words of ours,
as the Go verifier refuses it: Python's parser stops near its recursion limit (about
1,000 levels, less the caller's frames; ``RecursionError``), Go's at 10,000, so bytes
nested between the two were read by one verifier only. An event nests a few dozen levels
(protobuf reads 100 messages deep at most)."""

_NESTING = re.compile(rb'"(?:[^"\\]|\\.)*"?|[][{}]', re.DOTALL)
"""A string (to its end if unterminated) or a bracket: the brackets outside strings."""


def _nesting(raw: bytes) -> None:
    """Refuses ``raw`` if its brackets outside strings nest deeper than ``_MOST_DEPTH``.

    Counted on the bytes before they are parsed, as the Go verifier counts them, so that
    both name a line nested too deep whatever else is wrong with it.
    """
    if raw.count(b"[") + raw.count(b"{") <= _MOST_DEPTH:
        return
    depth = 0
    for token in _NESTING.finditer(raw):
        if token[0] in (b"[", b"{"):
            depth += 1
            if depth > _MOST_DEPTH:
                raise BundleError(f"arrays and objects nested more than {_MOST_DEPTH} deep")
        elif token[0] in (b"]", b"}"):
            depth -= 1


def _strict_json(raw: bytes) -> Any:
    """``raw`` read as JSON that every reader reads alike, or ``ValueError``/``RecursionError``.

    UTF-8, nested at most ``_MOST_DEPTH`` deep, each name once in an object, integers in
    their one spelling, no ``NaN`` or ``Infinity``. Bundle lines and the closing record's
    canonical bytes are read with it, as the Go verifier reads both.
    """
    text = raw.decode("utf-8")
    _nesting(raw)
    return json.loads(
        text,
        object_pairs_hook=_unique,
        parse_int=_integer,
        parse_constant=_no_constant,
    )


def _no_constant(name: str) -> object:
    """Refuses ``NaN``, ``Infinity`` and ``-Infinity``: Python's json reads them, JSON has none.

    Other readers stop at them: a scope line holding one read as a scope here only.
    """
    raise BundleError(f"{name} is not JSON")


def _b64(value: str, name: str) -> bytes:
    """``value`` decoded, if it is canonical base64."""
    try:
        return canonical.b64decode_canonical(value)
    except ValueError:
        raise BundleError(f"field {name!r} is not in canonical base64") from None


def _parse(line: object) -> _Line:
    """Checks the line's shape; ``salt`` and ``content`` come together or not at all."""
    if not isinstance(line, dict):
        raise BundleError(f"a line must be a JSON object, not {_json_type(line)}")
    unknown = sorted(set(line) - _KEYS)
    if unknown:
        raise BundleError(f"unknown field {unknown[0]!r}: a line holds {', '.join(sorted(_KEYS))}")
    if ("salt" in line) != ("content" in line):
        present, absent = ("content", "salt") if "content" in line else ("salt", "content")
        raise BundleError(f"{present} without {absent}: a line has both or neither")
    salt = content = None
    if "content" in line:
        salt = _b64(_field(line, "salt", str), "salt")
        if len(salt) != canonical.SALT_BYTES:
            raise BundleError(f"salt has {len(salt)} bytes, not {canonical.SALT_BYTES}")
        content = _field(line, "content", dict)
        for path, value in content.items():
            if type(value) is not str:
                raise BundleError(f"content {path!r} must be a string, not {_json_type(value)}")
    sequence = _field(line, "sequence", int)
    if not 0 <= sequence <= _LAST_INDEX:
        raise BundleError(
            f"field 'sequence' must be an integer from 0 to {_LAST_INDEX}, not {sequence}"
        )
    return _Line(
        _field(line, "log_id", str),
        sequence,
        _field(line, "event_id", str),
        _b64(_field(line, "canonical", str), "canonical"),
        parse_tlog_proof(_field(line, "tlog_proof", str)),
        salt,
        content,
    )


def _no_surrogate(line: dict[str, Any]) -> None:
    """Refuses an event line escaping a lone surrogate, naming its first member that does.

    JSON reads a valid pair as one character, so any left was escaped alone: other
    readers (Go's encoding/json) read it as U+FFFD, the Go verifier calls the line
    malformed and counts it in no seal. Until 2026-12-07 (review) aiaudit read it as
    itself: an event id so edited was named ``canonical eventId/tenantId are not ...``, a
    content value ``bytes 'utf-8' codec can't encode ...``, and the line was counted in
    the seal's digest, so the two verifiers printed different problems. Worded as the Go
    verifier words it, member by member in the line's order.
    """
    for name, value in line.items():
        if _surrogate(name):
            raise BundleError(f"name {json.dumps(name)} {_LONE}")
        if _surrogate(value):
            raise BundleError(f"the value of {json.dumps(name)} {_LONE}")


_LONE = "escapes a lone surrogate (read elsewhere as U+FFFD)"


def _read_line(raw: bytes) -> _Line:
    """An event line's fields as :func:`verify_bundle` reads them, for its second reads."""
    obj = _strict_json(raw)
    if isinstance(obj, dict):
        _no_surrogate(obj)
    return _parse(obj)


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Raw lines: each is decoded on its own, so bad bytes spoil only their line."""
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            if raw.strip():
                yield number, raw


class _Ranges:
    """A set of sequences as sorted, disjoint ``[first, last]`` ranges (two uint64 arrays).

    A bundle written in order (both writers write ascending sequences) is a few
    ranges whatever its length: 16 bytes per range, not a Python int per event.
    Every sequence a line may hold fits (0 to 2**64 - 1, the last included): until
    2026-12-07 (review) the arrays were int64 and a sequence from 2**63 was not
    kept, so two lines at one such sequence were no duplicate here and one in Go.

    A sequence that would start a range between two others waits in :attr:`pending`
    until there are as many as ranges, then all are merged at once (:meth:`_merge`):
    inserting each into the arrays moved every range after it, so lines out of order
    took quadratic time (200,000 lines in descending order of every other sequence:
    40 s in this class alone, 400,000: 155 s; a bundle sorted as text, 200,000 lines:
    6.4 s), until 2026-12-07 (review).
    """

    def __init__(self) -> None:
        self.firsts = array("Q")
        self.lasts = array("Q")
        self.pending: set[int] = set()
        """Sequences not yet in the ranges, at most as many as ranges (or _PENDING)."""

    def add(self, seq: int) -> bool:
        """Adds ``seq``; whether it was there already."""
        if seq in self.pending:
            return True
        firsts, lasts = self.firsts, self.lasts
        i = bisect.bisect_right(firsts, seq) - 1
        if i >= 0 and seq <= lasts[i]:
            return True
        if i >= 0 and lasts[i] == seq - 1:
            lasts[i] = seq  # it may now touch the next range: joined by _merge
        elif i + 1 < len(firsts) and firsts[i + 1] == seq + 1:
            firsts[i + 1] = seq
        elif i + 1 == len(firsts):
            firsts.append(seq)
            lasts.append(seq)
        else:
            self.pending.add(seq)
            if len(self.pending) > max(_PENDING, len(firsts)):
                self._merge()
        return False

    def _merge(self) -> None:
        """Merges :attr:`pending` into the ranges and joins ranges that touch: O(n log n)."""
        firsts, lasts = array("Q"), array("Q")

        def put(a: int, b: int) -> None:
            if lasts and a <= lasts[-1] + 1:
                lasts[-1] = max(lasts[-1], b)
            else:
                firsts.append(a)
                lasts.append(b)

        items = sorted(self.pending)
        j = 0
        for a, b in zip(self.firsts, self.lasts, strict=True):
            while j < len(items) and items[j] < a:
                put(items[j], items[j])
                j += 1
            put(a, b)
        for seq in items[j:]:
            put(seq, seq)
        self.firsts, self.lasts, self.pending = firsts, lasts, set()

    def __len__(self) -> int:
        self._merge()
        return sum(e - s + 1 for s, e in zip(self.firsts, self.lasts, strict=True))

    def within(self, a: int, b: int) -> int:
        """How many of the sequences ``a .. b-1`` the set holds."""
        self._merge()
        return sum(
            max(0, min(e + 1, b) - max(s, a)) for s, e in zip(self.firsts, self.lasts, strict=True)
        )

    def shown(self, most: int = 20) -> str:
        """``0..6, 8, 10..40``: at most ``most`` ranges, then how many more."""
        self._merge()
        texts = [
            f"{s}" if e == s else f"{s}..{e}"
            for s, e in zip(self.firsts[:most], self.lasts[:most], strict=True)
        ]
        more = len(self.firsts) - most
        return ", ".join(texts) + (f", ... and {more} more range(s)" if more > 0 else "")


_PENDING = 4096
"""Out-of-order sequences :class:`_Ranges` holds before merging, whatever its ranges."""


@dataclass
class LogSummary:
    """What a bundle proves of one log: its checkpoint, sequences, and content."""

    log_id: str
    checkpoint: _Opened | None = None
    checkpoint_line: int = 0
    signed_by: tuple[str, ...] = ()
    sequences: _Ranges = field(default_factory=_Ranges)
    last: int = -1
    out_of_order: bool = False
    content_verified: int = 0
    without_content: int = 0
    no_content_fields: int = 0
    others: set[_Opened] = field(default_factory=set)
    """Further checkpoints of the log (each a problem, named once)."""
    contentless: bytearray = field(default_factory=bytearray)
    """The id digests (:func:`_digest`) and sequences of the lines without content, 24 bytes
    each (16 and 8, big-endian)."""
    named: dict[bytes, int] = field(default_factory=dict)
    """The id digests of the events the log's erasure and retention records in the bundle
    name, each with the latest sequence of a record naming it."""
    present: bytearray = field(default_factory=bytearray)
    """The id digests, sequences and line numbers of the lines whose content verified and is
    not ``{}``, 32 bytes each (16, 8 and 8, big-endian)."""

    def erased(self) -> int:
        """Lines without content whose event a proven erasure or retention record names.

        The record must come after the event: a record names every id asked for, one no
        event had yet too, and an event given that id later kept its content (review).
        """
        held, named = self.contentless, self.named
        return sum(
            1
            for i in range(0, len(held), 24)
            if named.get(bytes(held[i : i + 16]), -1) > int.from_bytes(held[i + 16 : i + 24])
        )

    def put_back(self) -> Iterator[tuple[int, int, int, bytes]]:
        """Each line with content that a proven record after its event names: put back.

        (Line, sequence, record's sequence, id digest.) The content was erased, then
        restored from a backup taken before: the store serves it again, and ``VerifyEvent``
        and ``verify`` name it there. A line read after the record is matched all the same,
        by the sequences.
        """
        held, named = self.present, self.named
        for i in range(0, len(held) if named else 0, 32):
            digest = bytes(held[i : i + 16])
            sequence = int.from_bytes(held[i + 16 : i + 24])
            record = named.get(digest, -1)
            if record > sequence:
                yield int.from_bytes(held[i + 24 : i + 32]), sequence, record, digest

    def lines(self, scope: Scope | None = None) -> list[str]:
        """The summary's three lines (see ``verify --bundle`` in the README).

        ``scope``: the bundle's, if it is of this log; it says why the lines
        that no record in the bundle explains have no content.
        """
        assert self.checkpoint is not None
        origin, size, root = self.checkpoint
        held = len(self.sequences)
        coverage = (
            f"all {size} of the checkpoint"
            if held == size
            else f"{size - held} of the checkpoint's {size} not in the bundle"
        )
        order = "; lines not in sequence order" if self.out_of_order else ""
        content = f"log {self.log_id}: content verified for {self.content_verified} event(s)"
        erased = self.erased()
        if erased:
            content += f"; {erased} erased (named by an erasure or retention record in the bundle)"
        if rest := self.without_content - erased:
            if scope is None:
                why = "without content (erased or withheld)"
            elif scope.content == CONTENT_INCLUDED:
                why = (
                    "without content though the scope says it was included, and no erasure "
                    "record in the bundle names them (erased by a record not in the bundle, "
                    "or their content removed from the line)"
                )
            else:
                why = f"without content ({scope.content}, the scope says)"
            content += f"; {rest} {why}: their content is not proven"
        if self.no_content_fields:
            content += f"; {self.no_content_fields} with no content fields"
        return [
            f"log {self.log_id}: checkpoint {origin} size {size} root "
            f"{base64.b64encode(root).decode()} signed by {', '.join(self.signed_by)}",
            f"log {self.log_id}: {held} event(s) at sequences {self.sequences.shown()}; "
            f"{coverage}{order}",
            content,
        ]


@dataclass
class BundleReport:
    """The outcome of :func:`verify_bundle`."""

    checked: int
    problems: list[BundleProblem]
    logs: dict[str, LogSummary]
    scope: Scope | None = None
    sealed: str = ""
    """What a verified seal proves (the scope's last line), or ''."""
    scope_proven: bool = False
    """Whether the verified seal's closing record commits to the scope line."""
    empty: list[str] = field(default_factory=list)
    """The per-log lines of a sealed export that matched no event (:attr:`_Seals.empty`):
    given exactly when the bundle holds no event line and proves that the export wrote
    none."""

    def summary(self, asked: Collection[str] = ()) -> list[str]:
        """Per log what was proven, the scope or that there is none, a warning for many logs.

        The warning is for several logs none of which was asked for.
        """
        scope = self.scope
        out = [
            line
            for log_id in sorted(self.logs)
            for line in self.logs[log_id].lines(
                scope if scope is not None and scope.log_id == log_id else None
            )
        ]
        out += self.empty
        out += scope.lines(self.sealed, self.scope_proven) if scope is not None else [NO_SCOPE]
        if len(self.logs) > 1 and not asked:
            out.append(
                f"warning: the bundle holds {len(self.logs)} logs "
                f"({', '.join(sorted(self.logs))}): an export is of one log; pass --log with "
                "the one you expect"
            )
        return [_shown(line) for line in out]


def verify_bundle(
    path: Path, keys: Sequence[VerifierKey], origin_prefix: str, logs: Collection[str] = ()
) -> BundleReport:
    """Verifies every event of a bundle offline: how many, the problems, and per log what held.

    ``logs``: if given, a line of any other log is a problem, not a pass.
    An event on two lines is a problem too: a bundle lists each event once;
    and so are two checkpoints of one log: an export proves every line against
    one, so lines of two exports were joined (:func:`_second_checkpoint`).
    Raises ``OSError`` if the file cannot be read.

    Content present though a proven erasure or retention record after the event
    in the bundle names it is a problem too (put back: :meth:`LogSummary.put_back`;
    not ``{}``, which holds nothing to erase); a record outside the bundle cannot be
    seen, nor one of a line with problems (another export's, joined).

    Memory is bounded by the bundle's shape, not a dict entry per line: each
    log's sequences as ranges (:class:`_Ranges`), a 16-byte digest per event
    id (:class:`_Seen`), and 24 bytes per line without content or 32 per line
    with content (to match with the records' ids); the earlier line a duplicate
    repeats, and the id of content put back, are found by reading the file
    again, only when there is one.
    """
    problems: list[BundleProblem] = []
    checked = 0
    opened: dict[str, _Opened] = {}
    signers: dict[str, tuple[str, ...]] = {}
    roots: dict[tuple[str, int], tuple[bytes, int]] = {}
    seen = _Seen()
    summaries: dict[str, LogSummary] = {}
    scopes = _Scopes()
    seals = _Seals()
    for number, raw in _lines(path):
        event_id = ""
        try:
            obj = _strict_json(raw)
        except (ValueError, RecursionError) as exc:
            obj = exc
        if isinstance(obj, dict) and "scope" in obj:  # not an event: the export's claim
            problems.extend(scopes.read(obj, number, raw))
            continue
        if isinstance(obj, dict) and "seal" in obj:  # not an event: the export's closing record
            scopes.after_first = True  # a scope after it is not first (an empty export's too)
            problems.extend(seals.read(obj, number))
            continue
        scopes.after_first = True
        seals.event_after = seals.event_after or bool(seals.first)
        checked += 1
        try:
            if isinstance(obj, Exception):
                raise obj
            if isinstance(obj, dict):
                _no_surrogate(obj)
                event_id = str(obj.get("event_id", ""))
            line = _parse(obj)
            seals.add(line)
            log = summaries.setdefault(line.log_id, LogSummary(line.log_id))
            if twice := seen.add(line, log.sequences):
                seen.pending.append((len(problems), twice, _key(line, twice)))
                problems.append(BundleProblem(number, event_id, ""))  # named after the pass
            whats = _check_line(line, keys, origin_prefix, logs, opened, signers)
            whats += _forked(line, number, opened, roots)
            whats += scopes.refuted_by(line)
            if not logs or line.log_id in logs:
                whats += _tally(
                    line, number, log, origin_prefix, opened, signers, whats, twice, scopes.scope
                )
            problems.extend(BundleProblem(number, event_id, what) for what in whats)
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            problems.append(BundleProblem(number, event_id, f"malformed line: {exc}"))
    problems += _put_back(path, summaries)
    problems += scopes.incomplete(summaries)
    problems += seals.check(scopes.scope, scopes.text, summaries, keys, origin_prefix, logs)
    if seen.pending:
        _name_duplicates(path, problems, seen.pending)
    asked = {log_id: s for log_id, s in summaries.items() if not logs or log_id in logs}
    empty = seals.empty if checked == 0 and not problems else []
    return BundleReport(
        checked, problems, asked, scopes.scope, seals.sealed, seals.scope_proven, empty
    )


class _Scopes:
    """The bundle's scope line, and what its lines refute of it.

    A scope line is the bundle's first (each export writes one, before its
    events); one elsewhere, or a second, is a problem: bundles were joined,
    or the file was edited. Its claims that the lines can refute are checked
    (:meth:`refuted_by`, :func:`_tally`, :meth:`incomplete`), each a problem.
    """

    def __init__(self) -> None:
        self.scope: Scope | None = None
        self.first = 0
        """The line of the bundle's first scope line (0: none)."""
        self.after_first = False
        """Whether an event or seal line was read already: until 2026-12-07 (review) only an
        event line counted, and an empty export's seal moved before its scope verified."""
        self.text = b""
        """The first scope line's bytes as written, without its line ending: what a seal's
        ``access.scope_sha256`` commits to."""

    def read(self, obj: dict[str, Any], number: int, raw: bytes) -> list[BundleProblem]:
        """Reads a scope line: the scope if it is the first line, else why it is a problem."""
        if self.first:
            what = (
                f"a second scope line (line {self.first} holds the first): an export writes "
                "one, so bundles were joined"
            )
        elif self.after_first:
            what = "a scope line must be the bundle's first line (an export writes it first)"
        else:
            self.first = number
            self.text = raw.removesuffix(b"\n").removesuffix(b"\r")
            try:
                self.scope = _parse_scope(obj, number)
                return []
            except (BundleError, ValueError) as exc:
                what = f"malformed scope: {exc}"
        return [BundleProblem(number, "", what, scope=True)]

    def refuted_by(self, line: _Line) -> list[str]:
        """What of the scope a line refutes: another log, a sequence outside its own, content.

        Content in a line refutes a scope saying it was left out or withheld: neither
        writer puts any in then. Unchecked, a scope edited to say so had lines stripped
        of their content said to be withheld, with the others' content verified (review).
        """
        scope = self.scope
        if scope is None:
            return []
        if line.log_id != scope.log_id:
            return [
                f"log {line.log_id!r} is not the scope's log {scope.log_id!r} (line {scope.line})"
            ]
        outside = scope.outside(line.sequence)
        whats = [outside] if outside else []
        if line.content is not None and scope.content != CONTENT_INCLUDED:
            whats.append(
                f"the line holds content, though the scope says {scope.content!r} "
                f"(line {scope.line})"
            )
        return whats

    def incomplete(self, summaries: Mapping[str, LogSummary]) -> list[BundleProblem]:
        """A range export (``start``..``end``) that lacks some of its range: lines removed."""
        scope = self.scope
        if scope is None or scope.action != EXPORT_BUNDLE:
            return []
        log = summaries.get(scope.log_id)
        held = 0 if log is None else log.sequences.within(scope.start, scope.end)
        want = scope.end - scope.start
        if held == want:
            return []
        what = (
            f"the scope's sequences {scope.start}..{scope.end - 1} are {want} event(s) of log "
            f"{scope.log_id!r}, and the bundle holds {held} of them: {want - held} missing"
        )
        return [BundleProblem(scope.line, "", what, scope=True)]


SEAL_ACTION = "search.export.seal"
"""``access.action`` of a search export's closing record."""
_SEAL_KEYS = (
    "canonical",
    "consistency_proof",
    "event_id",
    "log_id",
    "scope_salt",
    "sequence",
    "tlog_proof",
)
"""A seal's fields; ``scope_salt`` absent in seals written before closing records held
``access.scope_sha256``."""
_SCOPE_SALT_BYTES = 32
_SEAL_INTS = ("count", "tree_size", "up_to_sequence")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def sealed_item(sequence: int, committed: bytes) -> bytes:
    """What an event line adds to a seal's digest: its sequence and leaf hash.

    The sequence as 8 bytes, big-endian, then SHA-256(0x00 || canonical).
    """
    return sequence.to_bytes(8, "big") + canonical.leaf_hash(committed)


@dataclass(frozen=True)
class _SealLine:
    """A seal line whose fields have the types the format says."""

    log_id: str
    sequence: int
    event_id: str
    committed: bytes
    proof: TlogProof
    consistency: list[bytes]
    scope_salt: bytes | None


def _parse_seal(obj: dict[str, Any]) -> _SealLine:
    """A seal line's fields, each of its type; ``BundleError`` otherwise."""
    value = _only_object(obj, "seal")
    unknown = sorted(set(value) - set(_SEAL_KEYS))
    if unknown:
        raise BundleError(f"unknown field {unknown[0]!r}: a seal holds {', '.join(_SEAL_KEYS)}")
    sequence = _field(value, "sequence", int)
    if not 0 <= sequence <= _MOST:
        raise BundleError(f"field 'sequence' must be from 0 to {_MOST}, not {sequence}")
    hashes = []
    for item in _field(value, "consistency_proof", list):
        if type(item) is not str:
            raise BundleError("field 'consistency_proof' must hold strings")
        hashes.append(_b64(item, "consistency_proof"))
    salt = None
    if "scope_salt" in value:
        salt = _b64(_field(value, "scope_salt", str), "scope_salt")
        if len(salt) != _SCOPE_SALT_BYTES:
            raise BundleError(f"field 'scope_salt' must be {_SCOPE_SALT_BYTES} bytes")
    return _SealLine(
        _field(value, "log_id", str),
        sequence,
        _field(value, "event_id", str),
        _b64(_field(value, "canonical", str), "canonical"),
        parse_tlog_proof(_field(value, "tlog_proof", str)),
        hashes,
        salt,
    )


@dataclass(frozen=True)
class _Closing:
    """What a search export's closing record says, read from its canonical bytes."""

    export_record: str
    count: int
    digest: str
    up_to_sequence: int
    tree_size: int
    scope_digest: str | None
    """``access.scope_sha256``; None in a record written before closing records held it."""


def _closing(committed: bytes, seal: _SealLine) -> _Closing:
    """The closing record's fields, from its proven bytes; ``BundleError`` names what is wrong.

    Read as strictly as a line (UTF-8, each name once, no ``NaN`` or ``-0``, no lone
    surrogate): the Go verifier reads the bytes alike, or not at all.
    """
    try:
        node = _strict_json(committed)
    except (ValueError, RecursionError):
        node = None
    if not isinstance(node, dict) or _surrogate(node):
        raise BundleError("the record's canonical bytes are not a JSON object")
    if node.get("eventId") != seal.event_id or node.get("tenantId") != seal.log_id:
        raise BundleError("canonical eventId/tenantId are not the seal's event_id/log_id")
    attributes = node.get("attributes")
    attributes = attributes if isinstance(attributes, dict) else {}
    action = _attribute(attributes, "action", "stringValue")
    if node.get("eventType") != "EVENT_TYPE_AUDIT_ACCESS" or action != SEAL_ACTION:
        raise BundleError(
            f"the record is not a search export's closing record (an access record of action "
            f"{SEAL_ACTION!r})"
        )
    ints = {}
    for name in _SEAL_INTS:
        text = _attribute(attributes, name, "intValue")
        if text is None or not _DECIMAL.fullmatch(text) or int(text) > _MOST:
            raise BundleError(f"the record's access.{name} is not a count")
        ints[name] = int(text)
    export_record = _attribute(attributes, "export_record", "stringValue")
    digest = _attribute(attributes, "lines_sha256", "stringValue")
    if export_record is None or digest is None or not _HEX64.fullmatch(digest):
        raise BundleError("the record names no export record and digest of its lines")
    scope_digest = _attribute(attributes, "scope_sha256", "stringValue")
    if "access.scope_sha256" in attributes and (
        scope_digest is None or not _HEX64.fullmatch(scope_digest)
    ):
        raise BundleError("the record's access.scope_sha256 is not a SHA-256 in hex")
    return _Closing(
        export_record,
        ints["count"],
        digest,
        ints["up_to_sequence"],
        ints["tree_size"],
        scope_digest,
    )


def _attribute(attributes: dict[str, Any], name: str, kind: str) -> str | None:
    """The text of the record's ``access.<name>`` attribute of proto3 JSON ``kind``, or None."""
    slot = attributes.get(f"access.{name}")
    value = slot.get(kind) if isinstance(slot, dict) else None
    return value if isinstance(value, str) else None


class _Seals:
    """The bundle's seal line and what it proves of the event lines (README, "Offline bundle").

    A search export's last line, ``{"seal": {...}}``, is its closing record in the log with
    the record's tlog-proof against a checkpoint signed after it and the consistency proof
    from the lines' checkpoint to that one. The record counts the event lines the export
    wrote and holds the SHA-256 of their :func:`sealed_item`, in order: recomputed here
    from the lines (one update a line, constant memory), they must match it.
    """

    def __init__(self) -> None:
        self.first = 0
        """The line of the bundle's first seal line (0: none)."""
        self.obj: dict[str, Any] | None = None
        self.event_after = False
        """Whether an event line follows the first seal line."""
        self.count = 0
        self.digest = hashlib.sha256()
        self.sealed = ""
        """The scope's last line once the seal verified."""
        self.scope_proven = False
        """Whether the verified seal's closing record commits to the scope line."""
        self.empty: list[str] = []
        """The per-log lines said instead of a log's summary once a seal proved that the
        export wrote no event line (:meth:`_empty`); [] otherwise."""

    def read(self, obj: dict[str, Any], number: int) -> list[BundleProblem]:
        """Keeps the first seal line; a second is a problem."""
        if self.first:
            what = (
                f"a second seal line (line {self.first} holds the first): an export writes one, "
                "so bundles were joined"
            )
            return [BundleProblem(number, "", what, seal=True)]
        self.first, self.obj = number, obj
        return []

    def add(self, line: _Line) -> None:
        """Counts an event line (one read whole) into the digest."""
        self.count += 1
        self.digest.update(sealed_item(line.sequence, line.committed))

    def check(
        self,
        scope: Scope | None,
        scope_text: bytes,
        summaries: Mapping[str, LogSummary],
        keys: Sequence[VerifierKey],
        origin_prefix: str,
        logs: Collection[str] = (),
    ) -> list[BundleProblem]:
        """The seal's problems, each naming what differs; none sets :attr:`sealed`.

        ``scope_text``: the scope line's bytes, without its line ending; ``logs``: if
        given, a seal of any other log is a problem, as a line of one is.
        """
        if not self.first:
            return []
        assert self.obj is not None
        whats = self._checked(scope, scope_text, summaries, keys, origin_prefix, logs)
        return [BundleProblem(self.first, "", what, seal=True) for what in whats]

    def _checked(
        self,
        scope: Scope | None,
        scope_text: bytes,
        summaries: Mapping[str, LogSummary],
        keys: Sequence[VerifierKey],
        origin_prefix: str,
        logs: Collection[str],
    ) -> list[str]:
        assert self.obj is not None
        whats = []
        if self.event_after:
            whats.append(
                "a seal must be the bundle's last line (the export writes it after its last event)"
            )
        try:
            seal = _parse_seal(self.obj)
        except (BundleError, ValueError) as exc:
            return [*whats, f"malformed seal: {exc}"]
        if logs and seal.log_id not in logs:  # as a line's (_check_line): an empty bundle too
            return [
                *whats,
                f"log {seal.log_id!r} is not one of the logs to verify ({', '.join(sorted(logs))})",
            ]
        proof = seal.proof
        if proof.index != seal.sequence:
            return [
                *whats,
                f"proof index {proof.index} is not the record's sequence {seal.sequence}",
            ]
        try:
            verified = open_note(proof.signed_checkpoint, keys)
            cp = parse_checkpoint(verified.text)
        except NoteError:  # in words of ours: the note libraries word it differently
            return [
                *whats,
                "checkpoint: the seal's checkpoint does not verify with the trusted keys",
            ]
        if origins.epoch_of(cp.origin, origin_prefix, seal.log_id) is None:
            return [*whats, f"checkpoint origin {cp.origin!r} is not {origin_prefix}/{seal.log_id}"]
        try:
            merkle.verify_inclusion(
                proof.index,
                cp.size,
                canonical.leaf_hash(seal.committed),
                proof.hashes,
                cp.root_hash,
            )
        except merkle.ProofError:  # in words of ours: both verifiers say it alike
            return [
                *whats,
                "inclusion proof: the record is not in the log under the seal's checkpoint",
            ]
        try:
            closing = _closing(seal.committed, seal)
        except BundleError as exc:
            return [*whats, str(exc)]
        if scope is None:
            return [
                *whats,
                "a seal closes the export its scope line names, and the bundle has none",
            ]
        if scope.action != SEARCH_EXPORT:
            return [*whats, f"a seal closes a search export, and the scope is of {scope.action}"]
        if seal.log_id != scope.log_id:
            return [
                *whats,
                f"the seal's log {seal.log_id!r} is not the scope's log "
                f"{scope.log_id!r} (line {scope.line})",
            ]
        if closing.export_record != scope.access_record:
            return [
                *whats,
                f"the seal closes the export of access record {closing.export_record!r}, not "
                f"the scope's {scope.access_record!r} (line {scope.line}): a seal of another "
                "export",
            ]
        for name, said, claimed in (
            ("up_to_sequence", closing.up_to_sequence, scope.up_to_sequence),
            ("tree_size", closing.tree_size, scope.tree_size),
        ):
            if said != claimed:
                whats.append(
                    f"the closing record's {name} {said} is not the scope's {claimed} "
                    f"(line {scope.line})"
                )
        whats += _scope_sealed(closing, seal, scope, scope_text)
        lines = summaries.get(seal.log_id)
        first = lines.checkpoint if lines is not None else None
        if first is not None:
            try:
                merkle.verify_consistency(
                    first[1], cp.size, first[2], cp.root_hash, seal.consistency
                )
            except merkle.ProofError:
                whats.append(
                    f"consistency proof: the seal's checkpoint (size {cp.size}) does not extend "
                    f"the lines' (size {first[1]})"
                )
        if self.count < closing.count:
            whats.append(
                f"the closing record counts {closing.count} event line(s) and the bundle holds "
                f"{self.count}: {closing.count - self.count} missing (a line removed)"
            )
        elif self.count > closing.count:
            whats.append(
                f"the closing record counts {closing.count} event line(s) and the bundle holds "
                f"{self.count}: {self.count - closing.count} not written by the export (a line "
                "added)"
            )
        elif self.digest.hexdigest() != closing.digest:
            whats.append(
                "the event lines are not those the closing record's digest commits to: a line "
                "replaced, or the lines reordered"
            )
        if not whats and closing.count == 0 and closing.scope_digest is not None:
            signers = tuple(f"{k.name}+{k.key_id.hex()}" for k in keys if k in verified.verified_by)
            self.sealed, self.empty = _empty(seal, closing, cp, signers)
            self.scope_proven = True
        elif not whats:
            self.sealed = (
                f"scope: complete: the lines are every event the export wrote, in its order "
                f"({closing.count} event(s), sealed by its closing record {seal.event_id!r} at "
                f"sequence {seal.sequence}, proven under checkpoint size {cp.size})"
            )
            self.scope_proven = closing.scope_digest is not None
            if not self.scope_proven:
                self.sealed += UNSEALED_SCOPE
        return whats


def _empty(
    seal: _SealLine, closing: _Closing, cp: Checkpoint, signers: tuple[str, ...]
) -> tuple[str, list[str]]:
    """The scope's last line and the per-log lines of a sealed export that matched no event.

    Its bundle is the scope line and the seal: until 2026-12-06 (review) it failed as "the
    bundle holds no events" though its proven closing record (count 0, committing to the
    scope) says the search wrote none, which is evidence too. No event line means no
    checkpoint of the scope's size in the bundle: the seal's consistency proof from it is
    not checked, and nothing rests on it (it ties the lines' checkpoint to the seal's, and
    there are no lines); the record is proven under the seal's checkpoint, printed here in
    place of the lines'. The scope's log, snapshot, size and access record are checked
    against the record (:meth:`_Seals._checked`), and the scope's bytes against its digest.
    """
    log_id, root = seal.log_id, base64.b64encode(cp.root_hash).decode()
    lines = [
        f"log {log_id}: checkpoint {cp.origin} size {cp.size} root {root} signed by "
        f"{', '.join(signers)} (the seal's: the bundle holds no event line)",
        f"log {log_id}: 0 event(s); the seal's consistency proof from the scope's checkpoint "
        f"size {closing.tree_size} is not checked (no line of the bundle holds that checkpoint, "
        "and no line needs it)",
    ]
    sealed = (
        f"scope: complete: the export matched no event before sequence "
        f"{closing.up_to_sequence} (sealed by its closing record {seal.event_id!r} at sequence "
        f"{seal.sequence}, proven under checkpoint size {cp.size})"
    )
    return sealed, lines


UNSEALED_SCOPE = (
    "; its closing record commits to no scope line (a seal written before closing records "
    "held access.scope_sha256): the scope's filter, query, requester and time are the "
    "exporter's claim, printed as edited"
)
"""What the scope's last line adds under a seal whose record holds no scope digest."""


def _scope_sealed(closing: _Closing, seal: _SealLine, scope: Scope, scope_text: bytes) -> list[str]:
    """Whether the closing record commits to this scope line, byte for byte.

    Until 2026-12-06 nothing did: a sealed export of a narrow filter, its scope edited to
    claim a wider one (or another requester, time, content), verified "complete" and
    printed the edited scope (review).
    """
    if closing.scope_digest is None:
        if seal.scope_salt is not None:
            return [
                "the seal holds a scope_salt and its closing record commits to no scope line "
                "(no access.scope_sha256)"
            ]
        return []
    if seal.scope_salt is None:
        return [
            "the closing record commits to the scope line (access.scope_sha256) and the seal "
            "holds no scope_salt to check it with"
        ]
    if hashlib.sha256(seal.scope_salt + scope_text).hexdigest() != closing.scope_digest:
        return [
            f"the scope line (line {scope.line}) is not the one the closing record commits to "
            "(access.scope_sha256): the scope was edited"
        ]
    return []


class _Seen:
    """Which (log, sequence) and (log, event id) lines came before, in bounded memory."""

    def __init__(self) -> None:
        self.ids: set[bytes] = set()
        self.pending: list[tuple[int, str, tuple[str, object]]] = []
        """Duplicates found: (index in the problems, what they share, its value)."""

    def add(self, line: _Line, sequences: _Ranges) -> str:
        """Records the line; what it shares with an earlier one (``sequence`` first), or ''."""
        again = sequences.add(line.sequence)
        digest = _digest(line.log_id, line.event_id)
        twice = digest in self.ids
        self.ids.add(digest)
        return "sequence" if again else "event_id" if twice else ""


def _id_key(line: _Line) -> bytes:
    """The log and event id as one unambiguous byte string (a JSON string may hold NUL)."""
    return _key_of(line.log_id, line.event_id)


def _key_of(log_id: str, event_id: str) -> bytes:
    text = f"{len(log_id)}:{log_id}:{event_id}"
    return text.encode("utf-8", "surrogatepass")


def _digest(log_id: str, event_id: str) -> bytes:
    """16 bytes standing for an event of a log (as :class:`_Seen` keeps them)."""
    return hashlib.blake2b(_key_of(log_id, event_id), digest_size=16).digest()


def _key(line: _Line, what: str) -> tuple[str, object]:
    return (line.log_id, line.sequence if what == "sequence" else line.event_id)


def _name_duplicates(
    path: Path, problems: list[BundleProblem], pending: list[tuple[int, str, tuple[str, object]]]
) -> None:
    """Names in each duplicate's problem the first line it repeats, found by a second read.

    Only a regular file is read again (a FIFO would wait for another writer);
    otherwise, or if the file changed meanwhile, the line is "an earlier line".
    """
    wanted = {(what, key) for _, what, key in pending}
    first: dict[tuple[str, tuple[str, object]], int] = {}
    if path.is_file():
        for number, raw in _lines(path):
            try:
                line = _read_line(raw)
            except (ValueError, KeyError, TypeError, RecursionError):
                continue
            for what in ("sequence", "event_id"):
                if (what, key := _key(line, what)) in wanted:
                    first.setdefault((what, key), number)
            if len(first) == len(wanted):
                break
    for index, what, key in pending:
        p = problems[index]
        at = first.get((what, key))
        earlier = f"line {at}" if at is not None and at < p.line else "an earlier line"
        problems[index] = BundleProblem(
            p.line, p.event_id, f"duplicate: {earlier} has the same log and {what}"
        )


def put_back(sequence: int, record: int) -> str:
    """What a line says whose content is present though the record at ``record`` names it.

    As ``verify`` and ``VerifyEvent`` word it (:func:`checks.put_back`), with the event's
    sequence: the Go verifier prints the same text.
    """
    return (
        f"sequence {sequence}: content present although the erasure record at sequence "
        f"{record} in the bundle names the event (put back?)"
    )


def _put_back(path: Path, summaries: Mapping[str, LogSummary]) -> list[BundleProblem]:
    """A problem for each line whose content a later record in the bundle erased, by line.

    Only the lines found are read again, for their event ids (a line keeps 32 bytes in
    the pass, not its id): only a regular file, as :func:`_name_duplicates` reads one, and
    a line whose log and id no longer match its digest (the file changed meanwhile) is
    named without its id.
    """
    found = sorted(hit for log in summaries.values() for hit in log.put_back())
    if not found:
        return []
    ids: dict[int, str] = {}
    wanted = {number: digest for number, _, _, digest in found}
    if path.is_file():
        for number, raw in _lines(path):
            if number not in wanted:
                continue
            try:
                line = _read_line(raw)
            except (ValueError, KeyError, TypeError, RecursionError):
                continue
            if _digest(line.log_id, line.event_id) == wanted[number]:
                ids[number] = line.event_id
            if len(ids) == len(wanted):
                break
    return [
        BundleProblem(number, ids.get(number, ""), put_back(sequence, record))
        for number, sequence, record, _ in found
    ]


def _tally(
    line: _Line,
    number: int,
    log: LogSummary,
    origin_prefix: str,
    opened: dict[str, _Opened],
    signers: dict[str, tuple[str, ...]],
    whats: list[str],
    twice: str = "",
    scope: Scope | None = None,
) -> list[str]:
    """Counts the line in its log's summary; names a second checkpoint, or a wrong-sized one.

    The content of a line with problems (``whats``, a duplicate: ``twice``, or its
    checkpoint's) is not counted: no summary is printed then. A line without content is
    kept (a 16-byte digest of its id, and its sequence) to be matched with the events the
    log's later erasure and retention records in the bundle name (:meth:`LogSummary.erased`);
    a line with content too, with its line number (:meth:`LogSummary.put_back`). Nor are
    the ids a record with problems names: an old export's content joined with a newer
    export's record was named put back, and only by aiaudit (review, 2026-12-07).
    """
    log.out_of_order |= line.sequence < log.last
    log.last = line.sequence
    found = _checkpoint_problems(line, number, log, origin_prefix, opened, signers, scope)
    if whats or twice or found:
        return found
    if line.content is not None:
        log.content_verified += 1
        if line.content:  # ``{}`` holds nothing to erase: ``verify`` skips it too
            log.present += _digest(line.log_id, line.event_id)
            log.present += line.sequence.to_bytes(8) + number.to_bytes(8)
    elif _commitments(line.committed):
        log.without_content += 1
        log.contentless += _digest(line.log_id, line.event_id)
        log.contentless += line.sequence.to_bytes(8)
    else:
        log.no_content_fields += 1
    for e in erasure.erased_ids(line.committed):
        digest = _digest(line.log_id, e)
        log.named[digest] = max(log.named.get(digest, -1), line.sequence)
    return []


def _checkpoint_problems(
    line: _Line,
    number: int,
    log: LogSummary,
    origin_prefix: str,
    opened: dict[str, _Opened],
    signers: dict[str, tuple[str, ...]],
    scope: Scope | None,
) -> list[str]:
    """Takes the log's first checkpoint; names a second one, or a wrong-sized first one.

    A first checkpoint of the scope's log whose size is not the scope's is a problem.
    """
    cp = opened.get(line.proof.signed_checkpoint)
    if cp is None or origins.epoch_of(cp[0], origin_prefix, line.log_id) is None:
        return []  # named already: no checkpoint of this log
    if log.checkpoint is None:
        log.checkpoint, log.checkpoint_line = cp, number
        log.signed_by = signers[line.proof.signed_checkpoint]
        if scope is not None and scope.log_id == line.log_id and cp[1] != scope.tree_size:
            return [
                f"checkpoint size {cp[1]} is not the scope's tree_size {scope.tree_size} "
                f"(line {scope.line})"
            ]
        return []
    return _second_checkpoint(log, cp)


def _second_checkpoint(log: LogSummary, cp: _Opened) -> list[str]:
    """Names a checkpoint of the log other than its first, once.

    Both writers prove every line of an export against one checkpoint of its
    log, so a second one means lines of two exports were joined, and nothing
    in the bundle shows that the two checkpoints are of one history (a bundle
    of an old export's lines and a new one's passed). The same size with
    another root is a forked log, named by :func:`_forked` instead; the same
    size of another epoch's origin (:mod:`origins`) is a second checkpoint.
    """
    first = log.checkpoint
    assert first is not None
    if cp == first or cp[:2] == first[:2] or cp in log.others:
        return []
    log.others.add(cp)
    return [
        f"log {log.log_id!r} has a second checkpoint (size {cp[1]} root "
        f"{base64.b64encode(cp[2]).decode()}) besides line {log.checkpoint_line}'s (size "
        f"{first[1]} root {base64.b64encode(first[2]).decode()}): an export proves all its "
        "lines against one checkpoint, so lines of different exports were joined"
    ]


_NO_SALT = bytes(canonical.SALT_BYTES)


def _commitments(committed: bytes) -> int:
    """How many content commitments the canonical bytes hold (each named missing, no HMAC)."""
    return len(canonical.content_problems(committed, {}, _NO_SALT))


def _forked(
    line: _Line,
    number: int,
    opened: dict[str, _Opened],
    roots: dict[tuple[str, int], tuple[bytes, int]],
) -> list[str]:
    """Names an earlier line whose checkpoint has this one's origin and size, not its root.

    The log then shows two histories, and its key signed both.
    """
    if line.proof.signed_checkpoint not in opened:
        return []  # the checkpoint did not open: named already
    origin, size, root = opened[line.proof.signed_checkpoint]
    earlier, at = roots.setdefault((origin, size), (root, number))
    if earlier == root:
        return []
    return [f"checkpoint {origin} size {size} has another root than line {at}'s: a forked log"]


CANONICAL_UNREAD = (
    "canonical is not JSON that every reader reads alike (not UTF-8, a name twice, an "
    "integer spelt two ways, NaN, a lone surrogate, nesting past 500 or data after the object)"
)
"""A line's canonical bytes read as strictly as the line (:func:`_strict_json`), as the Go
verifier reads them. Until 2026-12-07 ``json.loads`` read them: bytes edited to no UTF-8 or no
JSON were named ``malformed line: 'utf-8' codec can't decode ...`` (the line itself was
well formed) and the inclusion proof's problem was lost, while the Go verifier read them
leniently (U+FFFD for bad bytes, the last of a name given twice) and named other problems."""


def _check_line(
    line: _Line,
    keys: Sequence[VerifierKey],
    origin_prefix: str,
    logs: Collection[str],
    opened: dict[str, _Opened],
    signers: dict[str, tuple[str, ...]],
) -> list[str]:
    log_id = line.log_id
    if logs and log_id not in logs:
        return [f"log {log_id!r} is not one of the logs to verify ({', '.join(sorted(logs))})"]
    proof = line.proof
    if proof.index != line.sequence:
        return [f"proof index {proof.index} is not the event's sequence {line.sequence}"]
    if proof.signed_checkpoint not in opened:
        try:
            verified = open_note(proof.signed_checkpoint, keys)
            cp = parse_checkpoint(verified.text)
        except NoteError as exc:
            return [f"checkpoint: {exc}"]
        opened[proof.signed_checkpoint] = (cp.origin, cp.size, cp.root_hash)
        signers[proof.signed_checkpoint] = tuple(
            f"{k.name}+{k.key_id.hex()}" for k in keys if k in verified.verified_by
        )
    origin, size, root = opened[proof.signed_checkpoint]
    if origins.epoch_of(origin, origin_prefix, log_id) is None:
        return [f"checkpoint origin {origin!r} is not {origin_prefix}/{log_id}"]
    problems = []
    try:
        merkle.verify_inclusion(
            proof.index, size, canonical.leaf_hash(line.committed), proof.hashes, root
        )
    except merkle.RootMismatchError as exc:  # the roots, as the Go verifier names them
        calculated, expected = (
            base64.b64encode(h).decode() for h in (exc.calculated, exc.expected)
        )
        problems.append(
            f"inclusion proof: the proof leads to root {calculated}, "
            f"not the checkpoint's {expected}"
        )
    except merkle.ProofError as exc:
        problems.append(f"inclusion proof: {exc}")
    try:
        node = _strict_json(line.committed)
    except (ValueError, RecursionError):
        return [*problems, CANONICAL_UNREAD]
    if not isinstance(node, dict):
        return [*problems, f"canonical is {_json_type(node)}, not a JSON object"]
    if _surrogate(node):
        return [*problems, CANONICAL_UNREAD]
    if node.get("eventId") != line.event_id or node.get("tenantId") != log_id:
        problems.append("canonical eventId/tenantId are not the line's event_id/log_id")
    if line.salt is not None and line.content is not None:
        problems.extend(canonical.content_problems(line.committed, line.content, line.salt, node))
    return problems
