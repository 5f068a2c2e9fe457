"""Loss statements: the signed, operator-made record that a log lost exported history.

After the store is restored from a backup older than a checkpoint exported
to the append-only directory, the events past the restore are gone, and
signing new events at their sequences under the same origin would fork the
exported history. An operator who has found no later backup holding them
signs a loss statement (``aiaudit integrity accept-loss``); the log then
goes on under a new origin, epoch n (:mod:`origins`), whose tree is the
store's one tree: it shares leaves ``0..M-1`` with the epoch it continues.
The statement is a signed note (the checkpoint key) whose text is::

    aiaudit.loss/v1
    <new origin>
    continues <previous origin> <M> <base64 root of the store's tree at size M>
    lost <N> <base64 root of the previous origin's exported checkpoint of size N>
    time <RFC 3339 UTC, seconds>
    reason <one line: 1-500 characters, no control characters>

The first line names the format, so it can never be read as a checkpoint
(whose second line is a tree size). It is read strictly: one spelling only.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiaudit.integrity import origins, worm
from aiaudit.integrity.note import ROOT_HASH_SIZE, NoteError, VerifierKey, open_note

FORMAT = "aiaudit.loss/v1"
MAX_REASON = 500
_SIZE = re.compile(r"0|[1-9][0-9]*")
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

RootAt = Callable[[int], bytes | None]
"""The store's root at a size (None: the store has no tree there)."""


@dataclass(frozen=True)
class LossStatement:
    """What a loss statement says: where the new epoch begins, and what it leaves behind."""

    origin: str
    previous: str
    size: int
    """M: the new epoch shares leaves ``0..M-1`` with the previous one."""
    root: bytes
    """The store's root at size M."""
    lost_size: int
    """N: the previous origin's largest exported checkpoint; sequences M..N-1 are lost."""
    lost_root: bytes
    time: str
    reason: str


def reason_problem(reason: str) -> str | None:
    """Why ``reason`` cannot be a statement's reason line, or None."""
    if not 1 <= len(reason) <= MAX_REASON:
        return f"the reason must be 1-{MAX_REASON} characters, not {len(reason)}"
    if reason != reason.strip():
        return "the reason must not begin or end with white space"
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in reason):
        return "the reason must be one line without control characters"
    return None


def now() -> str:
    """The current time as a statement's ``time`` line holds it."""
    return dt.datetime.now(dt.UTC).strftime(_TIME_FORMAT)


def format_statement(s: LossStatement) -> str:
    """The statement's note text, final newline included; refuses what the parser refuses."""
    text = (
        f"{FORMAT}\n{s.origin}\n"
        f"continues {s.previous} {s.size} {_b64(s.root)}\n"
        f"lost {s.lost_size} {_b64(s.lost_root)}\n"
        f"time {s.time}\nreason {s.reason}\n"
    )
    if parse_statement(text) != s:
        raise NoteError(f"loss statement of {s.origin} does not read back as written")
    return text


def parse_statement(text: str) -> LossStatement:
    """Reads a statement's note text strictly; raises ``NoteError`` naming what is wrong."""
    lines = text.split("\n")
    if len(lines) != 7 or lines[-1] != "" or lines[0] != FORMAT:
        raise NoteError(f"not a {FORMAT} statement (format, origin, continues, lost, time, reason)")
    origin = _token(lines[1], "origin")
    kind, previous, size, root = _fields(lines[2], 4)
    if kind != "continues":
        raise NoteError("the third line must be 'continues <origin> <size> <root>'")
    kind, lost_size, lost_root = _fields(lines[3], 3)
    if kind != "lost":
        raise NoteError("the fourth line must be 'lost <size> <root>'")
    kind, _, when = lines[4].partition(" ")
    if kind != "time" or not _TIME.fullmatch(when):
        raise NoteError("the fifth line must be 'time <RFC 3339 UTC, seconds>'")
    try:
        dt.datetime.strptime(when, _TIME_FORMAT)
    except ValueError:
        raise NoteError(f"time {when!r} is no date") from None
    kind, _, reason = lines[5].partition(" ")
    if kind != "reason":
        raise NoteError("the sixth line must be 'reason <text>'")
    if why := reason_problem(reason):
        raise NoteError(why)
    statement = LossStatement(
        origin,
        _token(previous, "previous origin"),
        _size(size, "continues"),
        _root(root, "continues"),
        _size(lost_size, "lost"),
        _root(lost_root, "lost"),
        when,
        reason,
    )
    if statement.lost_size <= statement.size:
        raise NoteError(
            f"lost size {statement.lost_size} is not above the continued size {statement.size}: "
            "nothing lost"
        )
    return statement


def open_statement(note: str | bytes, keys: Iterable[VerifierKey]) -> LossStatement:
    """A signed statement verified with the trusted keys (``open_note``), then parsed."""
    return parse_statement(open_note(note, keys).text)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _fields(line: str, count: int) -> list[str]:
    fields = line.split(" ")
    if len(fields) != count or not all(fields):
        raise NoteError(f"line {line!r} must be {count} fields separated by single spaces")
    return fields


def _token(text: str, what: str) -> str:
    if not text or any(ch.isspace() for ch in text):
        raise NoteError(f"{what} must be one non-empty word")
    return text


def _size(text: str, what: str) -> int:
    if not _SIZE.fullmatch(text) or int(text) >= 2**63:
        raise NoteError(f"{what} size {text!r} is not a decimal size without leading zeroes")
    return int(text)


def _root(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise NoteError(f"{what} root is not base64") from None
    if _b64(raw) != text or len(raw) != ROOT_HASH_SIZE:
        raise NoteError(f"{what} root is not {ROOT_HASH_SIZE} bytes in canonical base64")
    return raw


@dataclass(frozen=True)
class Found:
    """One statement file of a log: opened, or why it does not count."""

    epoch: int
    path: Path
    statement: LossStatement | None
    error: str | None = None


def found(directory: Path, prefix: str, log_id: str, keys: Sequence[VerifierKey]) -> list[Found]:
    """Every statement file of a log (epoch order), each opened and checked for its place."""
    return opened(list(worm.statements(directory, log_id)), prefix, log_id, keys)


def opened(
    files: Sequence[tuple[int, Path, bytes]],
    prefix: str,
    log_id: str,
    keys: Sequence[VerifierKey],
) -> list[Found]:
    """The statement files read (:func:`worm.statements`), each opened and checked for its place.

    A statement counts for epoch n only if it opens with ``keys`` and names
    epoch n's origin as the new one and epoch n-1's as the one it continues.
    """
    out = []
    for epoch, path, data in files:
        try:
            statement = open_statement(data, keys)
        except NoteError as exc:
            out.append(Found(epoch, path, None, f"loss statement {path}: {exc}"))
            continue
        want = (origins.origin(prefix, log_id, epoch), origins.origin(prefix, log_id, epoch - 1))
        if (statement.origin, statement.previous) != want:
            out.append(
                Found(
                    epoch,
                    path,
                    None,
                    f"loss statement {path}: it begins {statement.origin!r} continuing "
                    f"{statement.previous!r}, not {want[0]!r} continuing {want[1]!r}",
                )
            )
            continue
        out.append(Found(epoch, path, statement))
    return out


@dataclass(frozen=True)
class Chain:
    """A log's valid statements, epoch 1 first: the log's current epoch is their number."""

    losses: tuple[LossStatement, ...] = ()

    @property
    def epoch(self) -> int:
        """The current epoch (0: no loss accepted)."""
        return len(self.losses)

    def later_loss(self, epoch: int, size: int) -> LossStatement | None:
        """The statement that a checkpoint of ``epoch`` at ``size`` is judged by, if any.

        None: it is checked against the store (``size`` is within every later
        epoch's shared prefix). Otherwise the first later statement whose M is
        below ``size``: the checkpoint is lost if that statement covers it
        (``size <= lost_size``), and damage if not.
        """
        return next((s for s in self.losses[epoch:] if s.size < size), None)

    def parting(self, a: int, b: int, size: int) -> int | None:
        """The epoch whose statement parts the trees of epochs ``a`` and ``b`` at ``size``.

        Epoch n's tree shares leaves ``0..M-1`` with epoch n-1's (its
        statement's M), so two epochs sign the same tree at ``size`` unless a
        statement between them has its M below ``size``; the first such one is
        where their histories part. None: the same tree there.
        """
        low, high = sorted((a, b))
        return next(
            (
                n
                for n in range(low + 1, min(high, self.epoch) + 1)
                if self.losses[n - 1].size < size
            ),
            None,
        )

    def shared(self, a: int, b: int) -> int:
        """The largest size at which two different epochs sign the same tree.

        The least M of the statements between them.
        """
        low, high = sorted((a, b))
        return min(s.size for s in self.losses[low:high])

    def last_lost(self, epoch: int, size: int) -> int | None:
        """The latest epoch up to ``epoch`` whose statement names ``size`` lost, or None.

        Lost: among the sizes ``M+1..N`` its previous epoch signed and lost.
        """
        return next(
            (
                n
                for n in range(min(epoch, self.epoch), 0, -1)
                if self.losses[n - 1].size < size <= self.losses[n - 1].lost_size
            ),
            None,
        )

    def unchecked(self, root_at: RootAt) -> tuple[int, str] | None:
        """The first statement that does not fit the store's tree, and why.

        Only statements whose M is still within the store's shared prefix
        (:meth:`later_loss` of its own epoch is None) are compared; ``root_at``
        gives the store's root at a size. None: the store has no tree there,
        taken back past M again (the log is then held behind the epoch's own
        checkpoints until the next statement), so nothing to compare.
        A statement whose lost checkpoint is the store's own tree at that size
        was signed on another copy of the database (an older one, a restore
        drill): nothing was lost here. It continues the same tree at M, and a
        notary on the store that held the history took the log into the new
        epoch (review, 2026-12-07).
        """
        found = self._unfit(root_at)
        return None if found is None else (found[0], found[1])

    def held(self, root_at: RootAt) -> list[tuple[int, str]]:
        """The statements whose lost checkpoint's tree the store holds, epoch order, and why.

        Such a statement was signed on another copy of the database and does
        not count here, nor do the ones after it. They are found as
        :func:`chain` drops them for the notary, one :meth:`unchecked` at a
        time: dropping one compares an earlier statement that its M had left
        out. Verify took only the first found (a statement below another's M
        was counted while the notary went on in epoch 0), and took for one
        that does not count a statement whose ``continues`` root is not the
        store's, which the notary ignores for that and verify names as damage
        (review, 2026-12-07). Such a statement ends the search.
        """
        out: list[tuple[int, str]] = []
        rest = self
        while (found := rest._unfit(root_at)) is not None and found[2]:
            out.append((found[0], found[1]))
            rest = Chain(rest.losses[: found[0] - 1])
        return sorted(out)

    def _unfit(self, root_at: RootAt) -> tuple[int, str, bool] | None:
        """:meth:`unchecked`'s answer, and whether the store holds the lost checkpoint's tree."""
        for epoch, statement in self._compared():
            root = root_at(statement.size)
            if root is not None and root != statement.root:
                return (
                    epoch,
                    f"it continues at size {statement.size} with root {_b64(statement.root)}, "
                    f"and the store's tree has root {_b64(root)} there",
                    False,
                )
            if root_at(statement.lost_size) == statement.lost_root:
                return epoch, _held(statement), True
        return None

    def _compared(self) -> Iterator[tuple[int, LossStatement]]:
        """The statements whose M is within the store's shared prefix, with their epochs."""
        for epoch, statement in enumerate(self.losses, start=1):
            if self.later_loss(epoch, statement.size) is None:
                yield epoch, statement


def _held(statement: LossStatement) -> str:
    return (
        f"it names as lost the checkpoint of size {statement.lost_size}, and the store holds "
        "its tree (signed on another copy of the database?)"
    )


def chain(
    statements: Sequence[Found], root_at: RootAt | None
) -> tuple[Chain, list[str], list[Path]]:
    """The longest valid chain from epoch 1 on, why it stops where it does, and its paths.

    Statements must follow each other from epoch 1 without a gap; one that
    does not open, or whose ``continues`` root is not the store's
    (``root_at``; None: not compared here, the caller compares), ends the
    chain: the ones after it do not count, and each is named for that, as
    verify names those after a drill's statement. They were dropped unnamed:
    the notary, which logs each error once, said nothing of them, and verify
    named none after one that does not open (review, 2026-12-07).
    """
    losses: list[LossStatement] = []
    errors = []
    paths: list[Path] = []
    for at, item in enumerate(statements):
        if item.epoch != len(losses) + 1:
            errors.append(
                f"loss statement {item.path}: epoch {item.epoch} follows no statement of epoch "
                f"{item.epoch - 1}"
            )
        elif item.statement is None:
            errors.append(str(item.error))
        else:
            losses.append(item.statement)
            paths.append(item.path)
            continue
        errors += _following(item.path, [later.path for later in statements[at + 1 :]])
        break
    while root_at is not None and (wrong := Chain(tuple(losses)).unchecked(root_at)):
        epoch, why = wrong
        errors.append(f"loss statement {paths[epoch - 1]}: {why}")
        errors += _following(paths[epoch - 1], paths[epoch:])
        del losses[epoch - 1 :]
        del paths[epoch - 1 :]
    return Chain(tuple(losses)), errors, paths


def _following(ignored: Path, later: Sequence[Path]) -> list[str]:
    """Why each statement after one that does not count does not count either."""
    return [f"loss statement {path}: it follows {ignored}, which does not count" for path in later]
