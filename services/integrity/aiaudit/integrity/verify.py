"""``aiaudit verify``: walks the store and checks everything the log promises.

For every log, in sequence order (one streaming pass, O(log n) memory):

* each log entry has its event row, the event's canonical form hashes to the
  entry's leaf hash, its eventId/tenantId are the entry's, the search columns
  agree with the committed metadata, and stored content matches its salted
  commitments;
* sequences run 0 .. head-1 with no gap; no entry lies beyond the head; no
  event row and no content row lacks its log entry (inserted rows, or rows
  left when their entry was deleted), and no row of any table lies at a
  negative sequence;
* each recomputed leaf equals the leaf the notary integrated at that position
  (level-0 node), which names the exact event that changed, moved or was
  forged after integration (the node, when a checkpoint covering it has the
  rebuilt root);
* every stored node above the leaves equals the rebuilt tree's node at its
  place (level, index), compared level by level as each page completes them;
  every node the notary must have stored (those of the leaves its stored
  nodes, its checkpoints and its cursor cover) is there; none lies beyond
  the log head. The
  proofs and the notary's restart read these rows, so a changed one fails
  them (``DATA_LOSS``, a notary that will not sign) while the leaves are fine;
* the tree rebuilt from the recomputed leaves has, at every stored and every
  exported (WORM) checkpoint's size, that checkpoint's root. Every checkpoint
  must carry a valid signature from a trusted key for the log's origin. All
  roots coming from one rebuilt leaf sequence is what makes each checkpoint
  consistent with the next. Every stored checkpoint has its exported copy
  (the notary writes it first), and a missing directory while checkpoints
  are stored is an error, not "no copies": only the copies tell a history
  rolled back past its last checkpoint;
* after an accepted loss (:mod:`loss`), each signed statement in the
  directory begins an epoch with its own origin: a checkpoint of an earlier
  epoch past a later statement's M is lost (a warning) if that statement
  covers it and damage if not (a stored row of one is damage: the store
  holds the later epoch's tree there), and a statement that does not open,
  does not continue the store's tree or names another lost checkpoint is
  damage;
* no checkpoint, integrated leaf or consumer's cursor lies past the end of
  the log (a truncated tail; a consumer would skip the sequences between);
* (``full``) the data key sealing each event's content is stored for the
  event's log and subject (an erasure destroys that row);
* (``full``) every event whose content is gone (it has commitments but no
  content row) is named by a later privacy-erasure record of its log: the
  privacy role may delete content, and a deletion without its record is
  exactly what the record exists to rule out. This keeps the ids of erased
  events and of events named by records, so memory grows with erasures;
* (``full``) each content row's ``data_classification`` is the committed
  classification's (NULL for UNSPECIFIED), which the retention sweep goes by;
  NULL for a classified event is a warning (``Report.warnings``), as replicas
  of the version before revision 0013 write it during a rolling upgrade,
  unless ``integrity.classification_required_since`` says they were all
  upgraded before the event was received or appended (then it is a problem);
* every erasure recorded in parts has its parts 1..n, consecutive entries
  of one request, each once (:class:`checks.Parts`): past the last checkpoint
  nothing else tells that a part was deleted.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import datetime as dt
import functools
import itertools
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any, Literal, NamedTuple, cast

import sqlalchemy as sa

from aiaudit.common import erasure, restore
from aiaudit.common.keys import seal
from aiaudit.common.keys.keyring import Keyring
from aiaudit.common.keys.seal import DataKey
from aiaudit.common.store import cursors, embedded_keys
from aiaudit.common.store.schema import (
    consumer_cursors,
    content_keys,
    event_content,
    events,
    log_entries,
    logs,
)
from aiaudit.common.store.sql import READ_BYTES, data_keys
from aiaudit.integrity import checks, loss, origins, storage, worm
from aiaudit.integrity.integrated import roots as integrated_roots
from aiaudit.integrity.merkle import HASH_SIZE, CompactRange
from aiaudit.integrity.notary import CONSUMER
from aiaudit.integrity.note import Checkpoint, NoteError, VerifierKey, open_checkpoint
from aiaudit.integrity.tables import checkpoints, nodes
from aiaudit.integrity.verify_erasures import erasure_problems
from aiaudit.integrity.verify_pages import Page, PageChecks, StoredLevel, stored_levels

PAGE = 4096
"""Entries per page; a power of two, so every page starts at a perfect subtree's
boundary and its leaves join the rebuilt tree as whole subtrees."""

MODES = ("full", "leaves")
"""``full``: every check below. ``leaves``: the cryptographic chain only (stored
canonical bytes -> log entry leaf -> integrated leaf -> rebuilt tree -> signed
checkpoints), without the JSON checks of ids, search columns and content."""

SEARCH_ERASURES = "#erasures"
"""How the search indexer's cursor of erasures applied past a held log ends
(``aiaudit.search.backends.opensearch.ERASURES``): its position is the sequence
after an erasure or retention record, every record below it applied to the index."""
SEARCH_BUILDING = "#building"
"""How the search indexer's build plan ends (``opensearch.BUILDING``): its
position is the log's size when the build began."""
SEARCH_HELD = "#held"
"""How the search indexer's record of holds ends (``opensearch.HELD``): its
position is the held sequence + 1."""
SEARCH_MENDED = "#mended"
"""How the search indexer's record of repaired holds ends (``opensearch.MENDED``): its
position is the repaired hold's sequence + 1. None of the four lies past the head."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong, and where."""

    log_id: str
    what: str
    sequence: int | None = None
    event_id: str | None = None
    warning: bool = False
    """Named, but no damage (``Report.warnings``; the exit code stays 0)."""

    def __str__(self) -> str:
        """``log L sequence N event E: what``."""
        where = f"log {self.log_id}"
        if self.sequence is not None:
            where += f" sequence {self.sequence}"
        if self.event_id:
            where += f" event {self.event_id}"
        return f"{where}: {self.what}"


@dataclass
class Report:
    """What a verification found."""

    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    """What is named but no damage: a classified event's ``data_classification`` column
    NULL, as replicas of the previous version write it during a rolling upgrade."""
    logs: int = 0
    events: int = 0
    checkpoints: int = 0
    pages_in_database: int = 0
    """Pages of the hash chain found intact by the database-side check (PostgreSQL, leaves)."""
    exported_only: int = 0
    """Exported checkpoints the database lacks (their leader stopped before storing them);
    each is checked against the rebuilt tree like the stored ones."""

    @property
    def ok(self) -> bool:
        """Whether nothing is wrong."""
        return not self.problems

    def add(self, found: Iterable[Problem]) -> None:
        """Files each finding among the problems or the warnings."""
        for p in found:
            (self.warnings if p.warning else self.problems).append(p)


Progress = Callable[[str, int, int], None]
"""Called now and then with (log id, events checked, log size)."""


@dataclass
class _Target:
    """A checkpoint the rebuilt tree must match at its size."""

    size: int
    root: bytes
    source: str
    unstored: bool = False
    """An exported copy the database lacks (counted in ``Report.exported_only``)."""


def _checkpoints(
    conn: sa.Connection,
    log_id: str,
    keys: Sequence[VerifierKey],
    origin_prefix: str,
    checkpoint_dir: Path | None,
    report: Report,
) -> dict[int, list[_Target]]:
    """Verified checkpoints by size (database and exported copies); bad ones are problems.

    The notary writes and fsyncs a checkpoint's copy before it stores the row
    (``Notary._sign_all``), so a stored checkpoint whose text has no copy lost
    it; only the copies tell a history rolled back past its last checkpoint
    (rows, nodes, checkpoints, cursor and head cut back together). Without
    ``checkpoint_dir`` no copy is read.

    A checkpoint may be of any epoch of the log that a valid loss statement
    begins (:mod:`loss`, read once per log): one the statements leave within
    the store's shared prefix is checked against the store; one a later
    statement covers is lost (that statement's warning says so); any other is
    damage, and so is a statement that does not fit (each named by its path).
    """
    targets: dict[int, list[_Target]] = {}
    stored: dict[int, bytes | None] = {}  # verified roots; None: the row is a problem named
    texts: dict[int, str] = {}
    opened: dict[str, Checkpoint | NoteError] = {}  # an exported copy is the stored text
    chain = loss.Chain()
    if checkpoint_dir is not None:
        chain = _losses(conn, log_id, keys, origin_prefix, checkpoint_dir, targets, report)

    def add(size: int, signed: str, source: str, epoch: int | None = None) -> bytes | None:
        """The root if the checkpoint is checked against the store; None if not (named)."""
        report.checkpoints += 1
        body = opened.get(signed)
        if body is None:  # identical texts have identical signatures: check each text once
            try:
                body = open_checkpoint(signed, keys)
            except NoteError as exc:
                body = exc
            opened[signed] = body
        if isinstance(body, NoteError):
            report.problems.append(Problem(log_id, f"{source} at size {size}: {body}"))
            return None
        found = origins.epoch_of(body.origin, origin_prefix, log_id)
        if found is None or epoch not in (None, found):
            want = origins.origin(origin_prefix, log_id, epoch or 0)
            report.problems.append(
                Problem(
                    log_id,
                    f"{source} at size {size}: checkpoint origin {body.origin!r} is not {want!r}",
                )
            )
            return None
        if body.size != size:
            report.problems.append(
                Problem(log_id, f"{source} at size {size} is signed for size {body.size}")
            )
            return None
        if found > chain.epoch:
            report.problems.append(
                Problem(
                    log_id,
                    f"{source} at size {size} is of {body.origin}, which no valid loss statement "
                    "begins (signed without one, or copied in?)",
                )
            )
            return None
        covering = chain.later_loss(found, size)
        if covering is not None:
            if size > covering.lost_size:
                report.problems.append(
                    Problem(
                        log_id,
                        f"{source} at size {size} of {body.origin} is past the loss statement of "
                        f"{covering.origin}, which covers sizes up to {covering.lost_size} only "
                        "(signed after the loss was accepted, or copied in?)",
                    )
                )
            elif epoch is None:  # a row: the store holds the later epoch's tree there
                report.problems.append(
                    Problem(
                        log_id,
                        f"{source} at size {size} of {body.origin} is lost (the loss statement "
                        f"of {covering.origin} says so): the store holds no such history (a row "
                        "inserted, or the store restored from a backup newer than the statement?)",
                    )
                )
            return None  # lost: the statement's warning names it
        targets.setdefault(size, []).append(_Target(size, body.root_hash, source))
        return body.root_hash

    for cp in storage.all_checkpoints(conn, log_id):
        if cp.root_as_text:  # read as its bytes, checked as any row's
            root_column = storage.text_column("integrity_checkpoints.root_hash")
            report.problems.append(
                Problem(log_id, f"stored checkpoint at size {cp.tree_size}: {root_column}")
            )
        root = add(cp.tree_size, cp.signed_note, "stored checkpoint")
        if root is not None and root != cp.root_hash:
            report.problems.append(
                Problem(
                    log_id,
                    f"stored checkpoint at size {cp.tree_size}: root_hash column is not the note's",
                )
            )
        stored[cp.tree_size] = root
        texts[cp.tree_size] = cp.signed_note
    if checkpoint_dir is None:
        return targets
    copies: dict[int, set[str]] = {}
    # The chain's epochs and the folders there, not every number up to the largest folder's:
    # one named epoch-1000000000000 kept verify at work for days (review, 2026-12-07).
    for epoch in sorted({*range(chain.epoch + 1), *worm.epochs(checkpoint_dir, log_id)}):
        source = "exported checkpoint" + (f" of epoch {epoch}" if epoch else "")
        for name, why in worm.strays(checkpoint_dir, log_id, epoch):
            report.problems.append(
                Problem(log_id, f"{source.replace('checkpoint', 'file')} {name!r} {why}")
            )
        for size, signed in worm.read_all(checkpoint_dir, log_id, epoch):
            copies.setdefault(size, set()).add(signed)
            root = add(size, signed, source, epoch)
            if root is None:
                continue
            if size not in stored:
                # Signed and exported by a leader that stopped before storing it: one
                # of this tree's checkpoints all the same, checked against it like any.
                report.exported_only += 1
                targets[size][-1].unstored = True
            elif stored[size] not in (None, root):
                stored[size] = None  # named once
                report.problems.append(
                    Problem(
                        log_id, f"stored checkpoint at size {size} differs from its exported copy"
                    )
                )
    for size, root in stored.items():
        if root is not None and texts[size] not in copies.get(size, ()):
            report.problems.append(
                Problem(
                    log_id,
                    f"stored checkpoint at size {size} has no exported copy (the notary exports"
                    " each before storing it: copy deleted, or not the notary's directory?)",
                )
            )
    return targets


def _losses(
    conn: sa.Connection,
    log_id: str,
    keys: Sequence[VerifierKey],
    origin_prefix: str,
    checkpoint_dir: Path,
    targets: dict[int, list[_Target]],
    report: Report,
) -> loss.Chain:
    """The log's valid loss statements; each is checked, and its loss named as a warning.

    A statement's ``continues`` root joins ``targets`` (the rebuilt tree must
    have it at M) while M is within the store's shared prefix; its ``lost``
    size and root must be the previous epoch's largest exported checkpoint.
    One whose lost checkpoint's tree the store holds does not count, as for
    the notary (:meth:`loss.Chain.held`), nor do the ones after it.
    """
    found = loss.found(checkpoint_dir, origin_prefix, log_id, keys)
    chain, errors, paths = loss.chain(found, None)
    report.problems += [Problem(log_id, error) for error in errors]
    if held := chain.held(integrated_roots(conn, log_id)):
        chain, paths = _uncounted(log_id, chain, paths, held, report)
    for epoch, (statement, path) in enumerate(zip(chain.losses, paths, strict=True), start=1):
        previous = {}  # only from N up: the earlier ones are read once, by the caller
        for size, signed in worm.beyond(checkpoint_dir, log_id, statement.lost_size - 1, epoch - 1):
            with contextlib.suppress(NoteError):  # named as the checkpoint is read again
                cp = open_checkpoint(signed, keys, statement.previous)
                if cp.size == size:
                    previous[size] = cp.root_hash
        if previous.get(statement.lost_size) != statement.lost_root:
            report.problems.append(
                Problem(
                    log_id,
                    f"loss statement {path}: no exported checkpoint of {statement.previous} at "
                    f"size {statement.lost_size} has its lost root",
                )
            )
        elif statement.lost_size != max(previous):
            report.problems.append(
                Problem(
                    log_id,
                    f"loss statement {path}: lost size {statement.lost_size} is not the largest "
                    f"exported checkpoint of {statement.previous} ({max(previous)})",
                )
            )
        if chain.later_loss(epoch, statement.size) is None:
            target = _Target(statement.size, statement.root, f"loss statement {path}")
            targets.setdefault(statement.size, []).append(target)
        report.warnings.append(
            Problem(
                log_id,
                f"epoch {epoch} began at size {statement.size} after a loss accepted at "
                f"{statement.time} (reason: {statement.reason}): sequences "
                f"{statement.size}..{statement.lost_size - 1} of epoch {epoch - 1} (its "
                f"checkpoint of size {statement.lost_size}) are lost",
                warning=True,
            )
        )
    return chain


def _uncounted(
    log_id: str,
    chain: loss.Chain,
    paths: list[Path],
    held: list[tuple[int, str]],
    report: Report,
) -> tuple[loss.Chain, list[Path]]:
    """The chain before the statements that do not count; each named for what it is.

    Signed on another copy of the database (a restore drill's) while this
    store kept the history it calls lost: no loss here, and no damage to the
    log, which goes on in the epoch before the first; verify named it as a
    loss (a warning) beside the damage that followed from counting it
    (review, 2026-12-07). Its number stays taken: accept-loss refuses the
    log's next loss. Every such statement is named (:meth:`loss.Chain.held`,
    as the notary drops them); another statement after the first is a problem.
    """
    first = held[0][0]
    for epoch, why in held:
        report.warnings.append(
            Problem(
                log_id,
                f"loss statement {paths[epoch - 1]} does not count: {why}: nothing was lost, "
                f"and the log goes on in epoch {first - 1}; epoch {epoch} stays taken, so a "
                "later loss of this log cannot be accepted",
                warning=True,
            )
        )
    named = {epoch for epoch, _ in held}
    report.problems += [
        Problem(
            log_id, f"loss statement {later}: it follows {paths[first - 1]}, which does not count"
        )
        for epoch, later in enumerate(paths[first:], start=first + 1)
        if epoch not in named
    ]
    return loss.Chain(chain.losses[: first - 1]), paths[: first - 1]


@dataclass(slots=True)
class _Row:
    """One log entry with what the other tables hold at its sequence."""

    seq: int
    entry_event_id: str
    leaf_hash: bytes
    receive_time: Any
    canonical: bytes | None
    integrated: bytes | None
    columns: dict[str, object] | None = None
    salt: bytes | None = None
    content: bytes | None = None
    sealing: str | None = None
    """Why the row's sealed content did not open (it is then treated as present, unchecked)."""
    key_owner: str | None = None
    """Why the row's data key is not its subject's in its log (content checked all the same)."""
    classification: tuple[object, bool] | None = None
    """Its content row's ``data_classification`` and whether the content is ``{}`` (full)."""
    misspelt: list[str] = field(default_factory=list)
    """Columns not stored in the store's form (SQLite): timestamps not in its one text form,
    with their text; binary columns stored as text."""
    as_text: frozenset[str] = frozenset()
    """The row's binary columns stored as text (SQLite), read as their bytes."""
    integrated_as_text: bool = False
    """The integrated leaf (level-0 node) is stored as text (SQLite), read as its bytes."""


_EVENT_COLUMNS = [
    c for c in events.c if c.name not in ("log_id", "seq", "receive_time", "canonical")
]
_EVENT_NAMES = [c.name for c in _EVENT_COLUMNS]


def _last_seq(conn: sa.Connection, log_id: str) -> int | None:
    le = log_entries
    last = conn.execute(sa.select(sa.func.max(le.c.seq)).where(le.c.log_id == log_id)).scalar()
    return None if last is None else int(last)


_SQLITE_TIME = (
    "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]"
    ".[0-9][0-9][0-9][0-9][0-9][0-9]"
)
"""A timestamp as the store writes it on SQLite (SQLAlchemy's form, always 6 digits)."""
_SQLITE_SHAPE = "????-??-?? ??:??:??.[0-9][0-9][0-9][0-9][0-9][0-9]"
"""Its shape, a third of the GLOB's cost: ``fromisoformat`` (SQLAlchemy's parse) takes only
ASCII digits and a real date and time in the other places, and raises on anything else."""
_TIME_FORM = "YYYY-MM-DD HH:MM:SS.ffffff"


def _in_shape(column: sa.Column[Any]) -> Any:
    """Whether a timestamp has the shape of the store's form (see :data:`_SQLITE_SHAPE`)."""
    text = sa.type_coerce(column, sa.String)
    return sa.and_(
        sa.func.typeof(text) == "text", text.op("GLOB")(sa.literal(_SQLITE_SHAPE, sa.String))
    )


def _in_form(column: sa.Column[Any]) -> Any:
    """Whether a timestamp is stored as the store writes it on SQLite.

    SQLite keeps timestamps as text and compares them as text (the joins on
    ``receive_time``, time ranges), while SQLAlchemy reads any ISO form: a
    value rewritten as ``...T...`` or ``...+00:00`` was the same instant to
    verify and another row to every query. Checked in the page's own read,
    in SQLite (a GLOB on the shape, ``strftime`` for a real date and time),
    rather than by formatting each value again in Python.
    """
    text = sa.type_coerce(column, sa.String)
    return sa.and_(
        sa.func.typeof(text) == "text",
        text.op("GLOB")(sa.literal(_SQLITE_TIME, sa.String)),
        # '+0 days' makes SQLite normalise (else it echoes 02-30 or 24:00 as given)
        sa.func.strftime("%Y-%m-%d %H:%M:%S", text, "+0 days") == sa.func.substr(text, 1, 19),
    )


def _misspelt_time(table: str, column: str, quoted: str) -> tuple[str, Any]:
    """A timestamp's problem, and the instant it spells if any (its row still meets the others)."""
    problem = f"column {table}.{column} is {quoted}, not the form the store writes ({_TIME_FORM})"
    try:
        return problem, _utc(dt.datetime.fromisoformat(quoted[1:-1]))
    except ValueError:
        return problem, quoted


def _as_text(t: sa.Table, binary: list[sa.Column[Any]]) -> Any:
    """The names of a row's binary columns stored as text (SQLite), each followed by a space.

    SQLite keeps any type in any column: a value rewritten as text by raw SQL
    (``CAST(canonical AS TEXT)``) read as a ``str`` and its ``bytes()`` aborted
    verify (TypeError; one that is no UTF-8 did not even read). The columns are
    read ``CAST(... AS BLOB)``, their stored bytes, and the text ones named.
    """
    named: sa.ColumnElement[str] = sa.literal("")
    for c in binary:
        named = named + sa.case((sa.func.typeof(c) == "text", f"{t.name}.{c.name} "), else_="")
    return named.label("as_text")


_text_column = storage.text_column
_NODE_HASH = f"{nodes.name}.{nodes.c.hash.name}"


def _page_rows(
    conn: sa.Connection,
    log_id: str,
    full: bool,
    lo: int,
    hi: int,
    keys: Keyring | None,
    head: int,
) -> tuple[list[_Row], list[tuple[int, Any]]]:
    """Entries ``lo .. hi-1`` with their event (and content) and integrated leaf, in order.

    Each table is read on its own by sequence range (one index range scan each,
    merged here) rather than joined: a join's plan depends on statistics that a
    freshly written log lacks, and a nested loop over a large page was the cost
    of the whole walk. ``full`` also reads the search columns and the content,
    sealed content opened with ``keys``; ``leaves`` only the content rows' keys.

    Also returns (sequence, receive time) of the content rows below ``head``
    that no entry read has (an entry below the head was committed before the
    head was read, so before this page's reads): content inserted, or left
    when its entry was deleted, which no read joins with any event.
    """
    le, ev, ct = log_entries, events, event_content
    event_cols = [ev.c.seq, ev.c.receive_time, ev.c.canonical]
    if full:
        event_cols += _EVENT_COLUMNS
    sqlite = conn.dialect.name == "sqlite"
    misspelt: dict[int, list[str]] = {}

    def span(t: sa.Table, *cols: Any) -> Any:
        """The rows; on SQLite a timestamp not in the store's form is named, read as it spells.

        One flag a row (the columns' shape checked in SQL, once each); only a
        page with a row flagged, or a text SQLAlchemy cannot read as a time
        (its ValueError used to abort verify), is read again with the texts,
        checked in full (:func:`_in_form`). On SQLite binary columns are read as
        their bytes, those stored as text named (:func:`_as_text`).
        """
        where = (t.c.log_id == log_id, t.c.seq >= lo, t.c.seq < hi)
        times = [c for c in cols if sqlite and isinstance(c.type, sa.DateTime)]
        binary = [c for c in cols if sqlite and isinstance(c.type, sa.LargeBinary)]
        if binary:  # read as their bytes whatever they are stored as; the text ones named
            as_blob = {c.name: sa.cast(c, sa.LargeBinary).label(c.name) for c in binary}
            cols = (*(as_blob.get(c.name, c) for c in cols), _as_text(t, binary))
        if not times:  # one fetch, not a round of fetchone calls per row
            return conn.execute(sa.select(*cols).where(*where)).all()
        flag = sa.not_(sa.and_(*map(_in_shape, times))).label("misspelt")
        try:
            rows = conn.execute(sa.select(*cols, flag).where(*where)).all()
            if not any(r[-1] for r in rows):
                return rows
        except ValueError:
            pass
        guarded = {c.name: sa.case((_in_form(c), c), else_=sa.null()) for c in times}
        texts = [
            sa.case((_in_form(c), sa.null()), else_=sa.func.quote(c)).label(f"{c.name}_text")
            for c in times
        ]
        read = [guarded[c.name].label(c.name) if c.name in guarded else c for c in cols]
        out: list[Any] = []
        for r in conn.execute(sa.select(*read, *texts).where(*where)).all():
            values = r._asdict()
            for column, quoted in zip(times, r[len(read) :], strict=True):
                if quoted is not None:
                    problem, values[column.name] = _misspelt_time(t.name, column.name, quoted)
                    misspelt.setdefault(int(r.seq), []).append(problem)
            out.append(collections.namedtuple("Read", r._fields)(**values))
        return out

    # Entries first: one transaction writes an entry, its event and its content, so a batch
    # committed during these reads has its event and content read with it; the rows of a
    # later batch are passed over (the walk follows the entries). Read last, the entries of
    # a batch committed meanwhile had no event rows read: "the event row is missing
    # (deleted?)" on a live store (review, 2026-12-05).
    entries = span(le, le.c.seq, le.c.event_id, le.c.leaf_hash, le.c.receive_time)
    found: dict[tuple[int, Any], Any] = {}
    for r in span(ev, *event_cols):
        found[(int(r.seq), _utc(r.receive_time))] = r
    content: dict[tuple[int, Any], Any] = {}
    content_cols = [ct.c.seq, ct.c.receive_time]
    if full:
        content_cols += [ct.c.salt, ct.c.content, ct.c.data_classification]
    for r in span(ct, *content_cols):
        content[(int(r.seq), _utc(r.receive_time))] = r
    as_text: dict[int, set[str]] = collections.defaultdict(set)
    for table_rows in (entries, found.values(), content.values()):
        for r in table_rows:
            if "as_text" not in r._fields:  # one read, one shape: none of its rows has it
                break  # (getattr's default cost an exception a row: ~8% of SQLite's walk)
            for column in (r.as_text or "").split():
                as_text[int(r.seq)].add(column)
    integrated_as_text: set[int] = set()
    integrated = _integrated(conn, log_id, lo, hi, integrated_as_text)
    if full:
        sealed = {seal.key_id_of(bytes(r.content)) for r in content.values() if _sealed(r.content)}
        opened = data_keys(keys, conn, sealed)
        owners = _key_owners(conn, sealed)
        if sealed - opened.keys():
            _drop_erased_meanwhile(conn, log_id, content, opened)
    placed = [(int(e.seq), _utc(e.receive_time)) for e in entries]  # once, for both uses
    keyed = set(placed)
    orphans = sorted(
        (at for at in content if at[0] < head and at not in keyed), key=lambda at: at[0]
    )
    out = []
    for key, e in sorted(zip(placed, entries, strict=True), key=lambda k_e: k_e[0][0]):
        seq = key[0]
        event = found.get(key)
        row = _Row(
            seq,
            str(e.event_id),
            bytes(e.leaf_hash),
            e.receive_time,
            bytes(event.canonical) if event is not None else None,
            integrated.get(seq),
        )
        row.misspelt = misspelt.get(seq, row.misspelt)
        row.integrated_as_text = seq in integrated_as_text
        if seq in as_text:
            row.as_text = frozenset(as_text[seq])
            row.misspelt = row.misspelt + [_text_column(c) for c in sorted(row.as_text)]
        if full and event is not None:
            row.columns = dict(zip(_EVENT_NAMES, event[3 : 3 + len(_EVENT_NAMES)], strict=True))
            row.columns["receive_time"] = e.receive_time
            stored = content.get(key)
            if stored is not None and _sealed(stored.content):
                _open_into(row, log_id, bytes(stored.content), opened)
                row.key_owner = _foreign_key(log_id, row.columns, bytes(stored.content), owners)
            elif stored is not None:
                row.salt, row.content = bytes(stored.salt), bytes(stored.content)
            if stored is not None:
                row.classification = (stored.data_classification, row.content == b"{}")
        out.append(row)
    return out, orphans


def _spans(conn: sa.Connection, log_id: str, full: bool, lo: int, hi: int) -> list[tuple[int, int]]:
    """Sequence ranges covering ``lo .. hi-1``, each read with at most READ_BYTES stored but one.

    A page is 4,096 entries and an event may be 4 MiB: read whole, a page of
    large events was gigabytes (and verify was killed for its memory). The
    sizes are read first, in the database (canonical forms; in ``full`` mode
    content too), without the values; a page within the budget is one range.
    """
    octets = sa.func.octet_length if conn.dialect.name == "postgresql" else sa.func.length
    sizes: dict[int, int] = collections.defaultdict(int)
    tables = [(events, events.c.canonical)]
    if full:
        tables.append((event_content, event_content.c.content))
    for t, column in tables:
        rows = conn.execute(
            sa.select(t.c.seq, octets(column)).where(
                t.c.log_id == log_id, t.c.seq >= lo, t.c.seq < hi
            )
        )
        for seq, size in rows:
            sizes[int(seq)] += int(size or 0)
    if sum(sizes.values()) <= READ_BYTES:
        return [(lo, hi)]
    spans, start, total = [], lo, 0
    for seq in sorted(sizes):
        if total and total + sizes[seq] > READ_BYTES and seq > start:
            spans.append((start, seq))
            start, total = seq, 0
        total += sizes[seq]
    spans.append((start, hi))
    return spans


def _drop_erased_meanwhile(
    conn: sa.Connection,
    log_id: str,
    content: dict[tuple[int, Any], Any],
    keys: dict[int, DataKey | None],
) -> None:
    """Forgets content rows whose key is gone because an erasure committed after they were read.

    The content and the keys are two statements: an erasure between them
    deletes both, and its content rows would look kept while their key went.
    Read again, such rows are gone, and the walk checks them as erased content.
    """
    keyless = [
        seq
        for (seq, _), r in content.items()
        if _sealed(r.content) and seal.key_id_of(bytes(r.content)) not in keys
    ]
    ct = event_content.c
    still = set(
        conn.execute(sa.select(ct.seq).where(ct.log_id == log_id, ct.seq.in_(keyless))).scalars()
    )
    for at in [at for at in content if at[0] in keyless and at[0] not in still]:
        del content[at]


def _key_owners(conn: sa.Connection, key_ids: set[int]) -> dict[int, tuple[str, str]]:
    """(log, subject) of the stored data keys with these ids: one query a page.

    Content opens by key id alone, while an erasure destroys the key row of
    its log and subject: a row moved to another log or subject kept the
    content readable after its subject's erasure (review, 2026-12-05).
    """
    if not key_ids:
        return {}
    ck = content_keys.c
    rows = conn.execute(
        sa.select(ck.key_id, ck.log_id, ck.subject).where(ck.key_id.in_(sorted(key_ids)))
    )
    return {int(key_id): (str(log), str(subject)) for key_id, log, subject in rows}


def _foreign_key(
    log_id: str,
    columns: dict[str, object],
    sealed: bytes,
    owners: dict[int, tuple[str, str]],
) -> str | None:
    """Why the data key sealing a row is not stored for its event's log and subject, if so.

    The subject is the event's ``user_id`` column (``""`` without one), as
    the store seals; the column is checked against the canonical form apart.
    """
    key_id = seal.key_id_of(sealed)
    owner = owners.get(key_id)
    mine = (log_id, str(columns.get("user_id") or ""))
    if owner is None or owner == mine:  # a key gone is named by _open_into
        return None
    return (
        f"content is sealed under data key {key_id}, which is stored for log {owner[0]!r} "
        f"subject {owner[1]!r}, not for this event's log and subject ({mine[0]!r}, "
        f"{mine[1]!r}): erasing the subject would leave the key (key row altered?)"
    )


def _sealed(content: Any) -> bool:
    return content is not None and seal.is_sealed(bytes(content))


def _open_into(row: _Row, log_id: str, sealed: bytes, keys: dict[int, DataKey | None]) -> None:
    """Sets the row's salt and content from its sealed form, or says why they do not open."""
    key_id = seal.key_id_of(sealed)
    key = keys.get(key_id)
    if key_id not in keys:
        row.sealing = (
            f"content is sealed under data key {key_id}, which the store no "
            "longer has (a key deleted without its content being erased)"
        )
        return
    if key is None:
        row.sealing = f"content is sealed under data key {key_id}, which does not open: altered"
        return
    try:
        row.salt, row.content = seal.open_sealed(key, log_id, row.entry_event_id, sealed)
    except seal.SealError as exc:
        row.sealing = f"sealed content does not open: {exc}"


DATABASE_READERS = min(8, (os.cpu_count() or 2) + 1)
"""Connections checking pages in the database at once (each page is one backend's work).

One more than the cores: a backend is then still hashing while another
page's result travels and this process rebuilds the tree from it (on 2
shared cores, 3 readers were as fast as 2 to ~20% faster, with the load).
"""


def _utc(when: Any) -> Any:
    """A timestamp comparable across backends (SQLite returns naive UTC)."""
    if isinstance(when, dt.datetime) and when.tzinfo is None:
        return when.replace(tzinfo=dt.UTC)
    return when


def _instant(when: Any) -> str:
    """A receive time as problems name it (``2026-12-05 10:00:00.000000+00:00``).

    On SQLite a time read as text is parsed, and named quoted if it is none.
    """
    if isinstance(when, str):
        try:
            when = dt.datetime.fromisoformat(when)
        except ValueError:  # quoted already by the page's read (see _misspelt_time)
            return when if when.startswith("'") else repr(when)
    if isinstance(when, dt.datetime):
        return str(_utc(when).astimezone(dt.UTC).isoformat(sep=" ", timespec="microseconds"))
    return repr(when)


class _LogWalk:
    """The streaming check of one log."""

    def __init__(
        self,
        log_id: str,
        head: int,
        targets: dict[int, list[_Target]],
        report: Report,
        conn: sa.Connection | None = None,
        must_store: int = 0,
    ) -> None:
        """Starts the walk of a log whose head is ``head``.

        ``conn`` reads the stored nodes (without one they are not compared);
        every node of leaves ``0 .. must_store - 1`` must be stored.
        """
        self.log_id = log_id
        self.head = head
        self.conn = conn
        self.must_store = must_store
        self.targets = targets
        self.sizes = sorted(targets)
        self.report = report
        self.tree = CompactRange()
        self.broken_at: int | None = None
        self.last_good = 0
        self.beyond: list[tuple[int, str]] = []
        """Entries read at or past ``head``: inserted, unless the log has grown to them."""
        self.unrecorded: dict[str, list[int]] = {}
        """Event id -> sequences of its events with commitments and no content row that no
        record after them names (so far: an erasure's record follows the events it erases,
        which leave here as it is read, rather than every id named kept to the end)."""
        self.integrated_differs: list[tuple[int, str]] = []
        """(sequence, event id) whose leaf is not the one integrated: judged in ``finish``."""

    def erasure_facts(
        self, seq: int, event_id: str, canonical: bytes, gone: bool, record: bool
    ) -> None:
        """Notes a content-less event, or the ids an erasure record names.

        ``record``: whether the row, if a record, counts as one (that of an
        intact entry within the head; see ``storage.erasure_records``).
        """
        if gone and storage.has_content_commitments(canonical):
            self.unrecorded.setdefault(event_id, []).append(seq)
        if record:
            for named in erasure.erased_ids(canonical):
                if (before := self.unrecorded.get(named)) is not None:
                    if after := [s for s in before if s > seq]:
                        self.unrecorded[named] = after
                    else:
                        del self.unrecorded[named]

    def unrecorded_erasures(self) -> None:
        """Reports content deleted with no erasure record after it naming the event."""
        found = sorted((s, e) for e, seqs in self.unrecorded.items() for s in seqs)
        for seq, event_id in found:
            self.problem(
                "content deleted without a privacy-erasure record naming the event", seq, event_id
            )

    def problem(self, what: str, sequence: int | None = None, event_id: str | None = None) -> None:
        self.report.problems.append(Problem(self.log_id, what, sequence, event_id))

    def add_leaves(self, leaves: Sequence[bytes | None]) -> None:
        """Extends the rebuilt tree by a run of leaves; in one block when all are known."""
        if self.broken_at is not None or None in leaves:
            start = self.tree.size
            completed: dict[int, list[bytes]] = {}
            for leaf in leaves:
                self.add_leaf(leaf, completed)
            self.check_nodes(start, completed)
            return
        known = cast(Sequence[bytes], leaves)
        if set(map(len, known)) - {HASH_SIZE}:  # joined, a 31- and a 33-byte hash read as two
            at, size = next((i, len(x)) for i, x in enumerate(known) if len(x) != HASH_SIZE)
            at += self.tree.size
            raise ValueError(f"leaf hash {at} must be {HASH_SIZE} bytes, got {size}")
        self.add_known(b"".join(known))

    def add_known(self, leaves: bytes, stored: dict[int, StoredLevel] | None = None) -> None:
        """Extends the rebuilt tree by known leaf hashes, concatenated (a page found intact).

        ``stored``: the stored nodes these leaves complete, if already read.
        """
        if self.broken_at is not None:  # past a gap no rebuilt root can be right
            return
        start = self.tree.size
        end = start + len(leaves) // HASH_SIZE
        asked = self.sizes[
            bisect.bisect_right(self.sizes, start) : bisect.bisect_right(self.sizes, end)
        ]
        completed: dict[int, list[bytes]] = {}
        roots = self.tree.append_block(leaves, asked, completed)
        for size in sorted(roots):
            self.check_targets(size, roots[size])
        self.check_nodes(start, completed, stored)

    def check_nodes(
        self,
        start: int,
        completed: dict[int, list[bytes]],
        stored: dict[int, StoredLevel] | None = None,
    ) -> None:
        """Compares the nodes the leaves from ``start`` on completed with the stored ones.

        One comparison per level when the stored nodes are where they belong
        (the notary may lag: a prefix of them); otherwise that level is read
        row by row, which names each node.
        """
        if self.conn is None or self.tree.size == start:
            return
        if stored is None:
            stored = _stored_levels(self.conn, self.log_id, start, self.tree.size)
        for level, parts in completed.items():
            rebuilt = b"".join(parts)
            first = start >> level
            have = len(rebuilt) // HASH_SIZE
            need = min(have, max(0, (self.must_store >> level) - first))
            got = stored.get(level)
            if got is None or not got.rows:
                if need:
                    self.node_rows(level, first, rebuilt, need)
                continue
            if (
                not got.as_text
                and got.first == first
                and got.last == first + got.rows - 1
                and need <= got.rows <= have
                and (level == 0 or got.hashes == rebuilt[: HASH_SIZE * got.rows])
            ):
                continue
            self.node_rows(level, first, rebuilt, need)

    def node_rows(self, level: int, first: int, rebuilt: bytes, need: int) -> None:
        """Names each stored node of ``level`` from index ``first`` that is missing or differs.

        ``rebuilt``: the rebuilt nodes from ``first`` on; the first ``need`` of
        them must be stored. Level 0 (the integrated leaves) is compared with
        the events leaf by leaf already, so only its rows' presence is checked.
        Above it a node stored as text (SQLite) is named, and its bytes compared.
        """
        assert self.conn is not None
        n = nodes.c
        rows = self.conn.execute(
            sa.select(n.idx, *_node_hash(self.conn)).where(
                n.log_id == self.log_id,
                n.level == level,
                n.idx >= first,
                n.idx < first + len(rebuilt) // HASH_SIZE,
            )
        )
        found: dict[int, bytes] = {}
        for r in rows:
            idx = int(r[0])
            found[idx] = bytes(r[1])
            if len(r) > 2 and r[2] and level:  # read as its bytes, compared below as any
                self.problem(f"node level {level} index {idx}: {_text_column(_NODE_HASH)}")
        for a, b in _runs(i for i in range(first, first + need) if i not in found):
            self.problem(f"node level {level} index {_span(a, b)} is missing (deleted?)")
        for idx in sorted(found) if level else ():
            at = HASH_SIZE * (idx - first)
            if found[idx] != rebuilt[at : at + HASH_SIZE]:
                self.problem(
                    f"node level {level} index {idx} (leaves {idx << level}.."
                    f"{((idx + 1) << level) - 1}) differs from the tree rebuilt from the "
                    "stored events"
                )

    def nodes_beyond(self, found: list[tuple[int, int]], head_now: int, cursor: int = 0) -> None:
        """Names stored nodes past the log head, or at no place of a tree.

        ``found``: (level, index) of nodes read before ``head_now``, sorted, that
        were not all within the head when the walk began; those the log has
        grown to since are the notary's. ``cursor``: how many leaves the notary
        says it integrated, read before ``head_now`` too.
        """
        leaves = [idx + 1 for level, idx in found if level == 0 and idx >= head_now]
        integrated = max([cursor, *leaves])
        if integrated > head_now:
            self.problem(
                f"the notary integrated {integrated} leaves but the log head says "
                f"{head_now} (tail truncated?)"
            )
        past = [(lv, i) for lv, i in found if lv >= 0 and i >= 0 and (i + 1) << lv > head_now]
        for level, group in itertools.groupby(past, key=lambda node: node[0]):
            for a, b in _runs(i for _, i in group):
                self.problem(
                    f"node level {level} index {_span(a, b)} lies beyond the log head "
                    f"(size {head_now}): inserted, or the log truncated?"
                )
        for level, idx in found:
            if level < 0 or idx < 0:
                self.problem(f"node level {level} index {idx} is no place in a tree (inserted?)")

    def cursors_ahead(self, found: list[tuple[str, int, bool]], head_now: int) -> None:
        """Names the consumers' cursors past the head (``found``: read before ``head_now``).

        And a search indexer's cursor of erasures applied whose position is not
        the sequence after an erasure or retention record (:func:`_cursors_ahead`).
        """
        for consumer, position, after_record in found:
            if position > head_now:
                self.problem(_cursor_past(consumer, position, head_now))
            elif _search(consumer, SEARCH_ERASURES) and not after_record:
                self.problem(
                    f"consumer {consumer} says the erasure and retention records below "
                    f"sequence {position} are applied to the search index, but sequence "
                    f"{position - 1} is no such record (the indexer writes the sequence after "
                    "one; cursor moved?): standby replicas take the records before it as "
                    "applied and answer searches over content of a held log that may still "
                    "match erased text"
                )

    def orphan_content(self, seq: int, received: Any) -> None:
        """Names a content row within the head that no log entry has (sequence, receive time)."""
        self.problem(
            f"content row received {_instant(received)} without a log entry (inserted, or its "
            "entry deleted?)",
            seq,
        )

    def rows_outside(self, found: list[tuple[str, int, Any, Any, bool]], head_now: int) -> None:
        """Names the rows at a negative sequence, and content past the pages without an entry.

        ``found``: :func:`_rows_outside`, read before ``head_now``; content the
        log has grown to since had its entry committed with it (in the same
        statement's snapshot), so a row without one is named within the head
        too.
        """
        negative: dict[int, tuple[list[str], str | None]] = {}
        for what, seq, event_id, received, has_entry in found:
            if seq >= 0:
                if has_entry:
                    continue
                if seq >= head_now:
                    self.problem(
                        "content row without a log entry beyond the log head "
                        f"(size {head_now}): inserted?",
                        seq,
                    )
                else:
                    self.orphan_content(seq, received)
                continue
            kinds, known = negative.setdefault(seq, ([], None))
            negative[seq] = ([*kinds, what], known or event_id)
        order = ("log entry", "event row", "content row")
        for seq, (found_kinds, event_id) in sorted(negative.items()):
            kinds = sorted(found_kinds, key=order.index)
            listed = kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} and {kinds[-1]}"
            self.problem(
                f"{listed} at a negative sequence, no place in a log (inserted?)",
                seq,
                None if event_id is None else str(event_id),
            )

    def check_targets(self, size: int, root: bytes) -> None:
        """Compares the rebuilt root at ``size`` with every checkpoint at that size."""
        for target in self.targets.get(size, []):
            if root != target.root:
                self.problem(
                    f"{target.source} at size {target.size}: the tree rebuilt from the stored "
                    f"events has another root (a leaf in sequences "
                    f"{self.last_good}..{target.size - 1} was changed, removed or reordered)"
                )
            else:
                self.last_good = target.size

    def add_leaf(self, leaf: bytes | None, completed: dict[int, list[bytes]]) -> None:
        """Extends the rebuilt tree and checks any checkpoint at the new size.

        The nodes the leaf completes go to ``completed``, by level.
        """
        if leaf is None or self.broken_at is not None:
            self.broken_at = self.tree.size if self.broken_at is None else self.broken_at
            return
        for node, digest in self.tree.append(leaf):
            completed.setdefault(node.level, []).append(digest)
        if self.tree.size in self.targets:
            self.check_targets(self.tree.size, self.tree.root())

    def entry(self, row: _Row) -> bytes | None:
        """The cheap checks, in order: presence, leaf hash, integrated leaf.

        Returns the leaf to extend the rebuilt tree with (None: unknown).
        """
        seq, event_id, committed = row.seq, row.entry_event_id, row.canonical
        if seq >= self.head:  # judged in finish: the log may have grown meanwhile
            self.beyond.append((seq, event_id))
        leaf = None
        if committed is None:
            self.problem(checks.MISSING_EVENT, seq, event_id)
        else:
            leaf = sha256(b"\x00" + committed).digest()
            if leaf != row.leaf_hash:
                self.problem(checks.CHANGED_EVENT, seq, event_id)
        integrated = row.integrated
        if row.integrated_as_text:  # read as its bytes, compared as any
            self.problem(f"node level 0 index {seq}: {_text_column(_NODE_HASH)}")
        if integrated is not None and leaf is not None and integrated != leaf:
            self.integrated_differs.append((seq, event_id))
        # Keep rebuilding with the integrated leaf when the event is gone, so later
        # checkpoints are still checked; the missing event is already reported.
        return leaf if leaf is not None else integrated

    def gap(self, start: int, end: int, integrated: dict[int, bytes]) -> list[bytes | None]:
        """Reports missing sequences; returns their integrated leaves for the rebuilt tree."""
        self.problem(f"sequences {start}..{end - 1} are missing (rows deleted)", start)
        return [integrated.get(seq) for seq in range(start, end)]

    def finish(self, head_now: int) -> None:
        """Checkpoints beyond the walk are problems, unless the log has grown to them since.

        ``head_now``: the log's size read again after the walk (a running system
        goes on appending and signing while it is verified).

        An integrated leaf that differs from its event's is the node row changed
        when a checkpoint covering it has the rebuilt tree's root (the events are
        what was signed): it was named as the event changed (review, 2026-12-05).
        Past the checkpoints no signed root says which, and the event is named.
        """
        for seq, event_id in self.integrated_differs:
            if seq < self.last_good:
                self.problem(
                    f"node level 0 index {seq} (leaves {seq}..{seq}) differs from the tree "
                    "rebuilt from the stored events"
                )
            else:
                self.problem(
                    "leaf differs from the one the notary integrated at this sequence "
                    "(event changed, moved or forged after integration)",
                    seq,
                    event_id,
                )
        for seq, event_id in self.beyond:
            if seq >= head_now:
                self.problem(
                    f"log entry beyond the log head (size {head_now}): inserted?", seq, event_id
                )
        for size in sorted(s for s in self.targets if s > self.tree.size and s > head_now):
            for target in self.targets[size]:
                if self.broken_at is not None and size > self.broken_at:
                    self.problem(
                        f"{target.source} at size {size} cannot be checked: leaf "
                        f"{self.broken_at} is missing and was never integrated"
                    )
                elif target.source.startswith("exported checkpoint"):  # of any epoch
                    # Only the copies tell a rollback. Not a copy a stopped leader left (what
                    # exported_only counts): named here. (A later epoch's was "tail truncated?"
                    # and counted so until a review of 2026-12-07.)
                    self.report.exported_only -= target.unstored
                    self.problem(
                        f"{target.source} at size {size} covers sequences "
                        f"{self.tree.size}..{size - 1}, which are missing: the log is behind a "
                        "checkpoint that was signed and exported (tail truncated, or the store "
                        "restored from a backup older than the checkpoint?)"
                    )
                else:
                    self.problem(
                        f"{target.source} at size {size} covers sequences "
                        f"{self.tree.size}..{size - 1}, which are missing (tail truncated?)"
                    )


_Work = tuple[
    str,
    int,
    str,
    bytes,
    bytes,
    bytes | None,
    bytes | None,
    dict[str, object],
    "_Classified | None",
]
"""What the JSON checks of one event need (picklable, for a worker process)."""


class _Classified(NamedTuple):
    """What the check of a content row's ``data_classification`` needs."""

    column: object
    empty: bool
    """The content is ``{}`` (no sweep erases it; the migration leaves it NULL)."""
    since: dt.datetime | None
    """``integrity.classification_required_since``."""
    later_than: tuple[int, Any] | None
    """(Sequence, receive time) of the log's first entry before this one received at or
    after ``since`` (:func:`checks.classification_required`)."""


def _json_checks(batch: list[_Work]) -> list[Problem]:
    """The expensive checks of events: ids, search columns, content against commitments.

    And the content row's classification column (:func:`checks.classification_problem`).
    """
    out = []
    for log_id, seq, event_id, leaf, committed, salt, content, columns, classified in batch:
        parsed = None
        if content is not None:
            try:
                parsed = restore.parse_content(content)
            except restore.ContentError as exc:  # until 2026-12-06 it stopped verify, or passed
                out.append(Problem(log_id, str(exc), seq, event_id))
        try:
            node = json.loads(committed)  # once for every check below
        except ValueError:
            node = None  # reported by event_problems
        found = checks.event_problems(log_id, event_id, leaf, committed, salt, parsed, node)
        found = [p for p in found if p != checks.CHANGED_EVENT]  # reported in order already
        wrong = None
        if isinstance(node, dict):
            found += checks.column_problems(node, columns)
            if classified is not None:
                why = checks.classification_required(node, classified.since, classified.later_than)
                wrong = checks.classification_problem(
                    node, classified.column, classified.empty, why
                )
        out += [Problem(log_id, what, seq, event_id) for what in found]
        if wrong is not None:
            out.append(Problem(log_id, wrong[0], seq, event_id, warning=wrong[1]))
    return out


def _integrated(
    conn: sa.Connection, log_id: str, start: int, end: int, as_text: set[int] | None = None
) -> dict[int, bytes]:
    """The integrated leaves (level-0 nodes) of ``start .. end-1``, by index.

    On SQLite read as their stored bytes; the indexes of those stored as text
    go to ``as_text`` (:func:`_node_hash`).
    """
    rows = conn.execute(
        sa.select(nodes.c.idx, *_node_hash(conn)).where(
            nodes.c.log_id == log_id, nodes.c.level == 0, nodes.c.idx >= start, nodes.c.idx < end
        )
    )
    out = {}
    for r in rows:
        out[int(r[0])] = bytes(r[1])
        if len(r) > 2 and r[2] and as_text is not None:
            as_text.add(int(r[0]))
    return out


def _node_hash(conn: sa.Connection) -> list[Any]:
    """A node's hash as read: on SQLite its stored bytes, and whether it is stored as text.

    SQLite keeps any type in any column: a hash rewritten as text by raw SQL
    read as a ``str``, and its ``bytes()`` aborted verify (TypeError; one that
    is no UTF-8 did not even read). Read ``CAST(hash AS BLOB)``, the text ones
    named. PostgreSQL's ``bytea`` holds bytes only: read as it was.
    """
    if conn.dialect.name != "sqlite":
        return [nodes.c.hash]
    return [sa.cast(nodes.c.hash, sa.LargeBinary), sa.func.typeof(nodes.c.hash) == "text"]


def _stored_levels(
    conn: sa.Connection, log_id: str, start: int, end: int
) -> dict[int, StoredLevel]:
    """The stored nodes that leaves ``start .. end-1`` complete, by level, in one statement.

    At level ``l`` those are the indexes ``start >> l .. (end >> l) - 1``
    (a node's last leaf completes it): one index range scan per level (their
    ``OR`` in one ``WHERE`` was, on SQLite, a scan of all the log's nodes for
    every page), aggregated by the database, so no row reaches Python unless
    a level disagrees.
    """
    if conn.dialect.name == "postgresql":
        return stored_levels(conn, log_id, start, end)
    rows = conn.execute(
        _levels_sqlite(end.bit_length()), {"log_id": log_id, "lo": start, "hi": end}
    )
    return {
        int(level): StoredLevel(int(count), first, last, bytes(hashes or b""), int(as_text))
        for level, count, first, last, hashes, as_text in rows
        if count
    }


@functools.cache
def _levels_sqlite(levels: int) -> sa.TextClause:
    """SQLite's ``_stored_levels`` for levels ``0 .. levels-1``: one text per number of levels.

    Built with SQLAlchemy's constructs it cost more to build than to run.
    The hashes' bytes are joined as text and read back as those bytes, with
    how many are stored as text (:func:`_node_hash`; the level is then read row by
    row, which names them); level 0's are left out: the walk compares the
    integrated leaves with the events one by one (and names those stored as text).
    """
    return sa.text(
        " UNION ALL ".join(
            f"SELECT {level}, count(*), min(idx), max(idx), "
            + (
                "CAST(group_concat(hash, '') AS BLOB), sum(typeof(hash) = 'text')"
                if level
                else "NULL, 0"
            )
            + f" FROM integrity_nodes WHERE log_id = :log_id AND level = {level}"
            f" AND idx >= (:lo >> {level}) AND idx < (:hi >> {level})"
            for level in range(levels)
        )
    )


_NODE_LEVELS = sa.text("""
WITH RECURSIVE found(level) AS (
    SELECT min(level) FROM integrity_nodes WHERE log_id = :log_id
    UNION ALL
    SELECT (SELECT min(n.level) FROM integrity_nodes n
            WHERE n.log_id = :log_id AND n.level > found.level)
    FROM found WHERE found.level IS NOT NULL
)
SELECT level,
    (SELECT min(n.idx) FROM integrity_nodes n WHERE n.log_id = :log_id AND n.level = found.level),
    (SELECT max(n.idx) FROM integrity_nodes n WHERE n.log_id = :log_id AND n.level = found.level)
FROM found WHERE level IS NOT NULL
""")
"""(level, least index, greatest index) of every level a log has nodes at, any level.

Each level found by one index probe from the last (a loose index scan), so
~1 ms whatever the log's size: a ``GROUP BY level`` reads every node, and a
probe per possible level was a statement that took longer to plan than to run.
"""


def _node_levels(conn: sa.Connection, log_id: str) -> list[tuple[int, int, int]]:
    rows = conn.execute(_NODE_LEVELS, {"log_id": log_id})
    return [(int(level), int(low), int(high)) for level, low, high in rows]


def _must_store(conn: sa.Connection, log_id: str, head: int) -> tuple[int, int]:
    """(Leaves from the first whose nodes must all be stored, at most ``head``; the cursor).

    The notary stores the nodes of a run of leaves and moves its cursor past
    them in one transaction: a stored node, a stored checkpoint or the cursor
    covering leaves up to ``n`` means all nodes of leaves ``0 .. n-1`` were
    stored. Without the cursor, the nodes of the leaves integrated since the
    last checkpoint could be deleted from the tail unseen, while a restarted
    notary failed to load its edge from them (and with it every log's round).
    """
    cp = checkpoints.c
    signed = conn.execute(sa.select(sa.func.max(cp.tree_size)).where(cp.log_id == log_id))
    ends = [(high + 1) << level for level, _, high in _node_levels(conn, log_id) if level >= 0]
    cursor = cursors.position(conn, CONSUMER, log_id)
    return min(head, max([int(signed.scalar() or 0), cursor, *ends])), cursor


def _nodes_beyond(conn: sa.Connection, log_id: str, size: int) -> list[tuple[int, int]]:
    """(level, index) of the stored nodes not within leaves ``0 .. size-1``, sorted.

    Read only at the levels that have any: at level ``l`` the indexes from
    ``size >> l`` on (every index, at a level whose nodes cover more than
    ``size`` leaves) and any negative one; every node of a negative level.
    """
    n = nodes.c
    past = [
        n.level == level
        if level < 0
        else sa.and_(n.level == level, sa.or_(n.idx < 0, n.idx >= size >> level))
        for level, low, high in _node_levels(conn, log_id)
        if level < 0 or low < 0 or high >= size >> level
    ]
    if not past:
        return []
    rows = conn.execute(
        sa.select(n.level, n.idx).where(n.log_id == log_id, sa.or_(*past)).order_by(n.level, n.idx)
    )
    return [(int(level), int(idx)) for level, idx in rows]


def _rows_outside(
    conn: sa.Connection, log_id: str, start: int
) -> list[tuple[str, int, Any, Any, bool]]:
    """(what, sequence, event id, receive time, whether a log entry has it) of rows no page reads.

    Those at a negative sequence, of every table (the pages start at 0: an
    entry, event and content forged at -1 passed, review 2026-12-05), and the
    content rows from ``start`` on: past the head, or past the last page (its
    entries deleted; entries and event rows there are named by the walk and
    the orphan query). One statement, an index range each. The receive time
    is read as stored (on SQLite text, which may be no time at all).
    """
    le, ev, ct = log_entries, events, event_content
    has_entry = sa.exists().where(
        le.c.log_id == ct.c.log_id, le.c.seq == ct.c.seq, le.c.receive_time == ct.c.receive_time
    )
    received = (
        sa.type_coerce(ct.c.receive_time, sa.String)
        if conn.dialect.name == "sqlite"
        else ct.c.receive_time
    )
    negative = [
        sa.select(
            sa.literal(what, sa.String),
            t.c.seq,
            event_id,
            sa.cast(sa.null(), received.type),  # typed: PostgreSQL reads two NULLs as text
            sa.literal(True, sa.Boolean),
        ).where(t.c.log_id == log_id, t.c.seq < 0)
        for what, t, event_id in (
            ("log entry", le, le.c.event_id),
            ("event row", ev, ev.c.event_id),
            ("content row", ct, sa.null()),
        )
    ]
    past = sa.select(
        sa.literal("content row", sa.String), ct.c.seq, sa.null(), received, has_entry
    ).where(ct.c.log_id == log_id, ct.c.seq >= start)
    rows = conn.execute(sa.union_all(*negative, past))
    return [
        (str(what), int(seq), event_id, when, bool(entry))
        for what, seq, event_id, when, entry in rows
    ]


def _cursors_ahead(conn: sa.Connection, log_id: str, head: int) -> list[tuple[str, int, bool]]:
    """(consumer, position, after a record) of the cursors past ``head`` but the notary's.

    A consumer resumes at its cursor, so one moved past the head skips the
    sequences in between for good (review, 2026-12-05: only the notary's was
    checked). The search indexer's rows of erasures applied, build plans and
    holds (:data:`SEARCH_ERASURES`, :data:`SEARCH_BUILDING`, :data:`SEARCH_HELD`,
    :data:`SEARCH_MENDED`) never lie past the head either. A row of erasures applied within it is
    returned too unless its position - 1 is an erasure or retention record
    (the log's entry): the indexer writes the sequence after the latest record
    it applied past a held log, and standby replicas then answer searches over
    content without waiting for the records below it (until 2026-12-06 only
    such a row past the head was named, as a read position). Read in one
    statement (a row is written after its record is committed) before the head
    is read again: a cursor moves only past committed entries.
    """
    c, e, le = consumer_cursors.c, events.c, log_entries.c
    record = (
        sa.select(1)
        .select_from(
            events.join(
                log_entries,
                sa.and_(le.log_id == e.log_id, le.seq == e.seq, le.receive_time == e.receive_time),
            )
        )
        .where(
            e.log_id == log_id,
            e.seq == c.position - 1,
            e.event_type.in_(erasure.RECORD_TYPES),
        )
        .exists()
    )
    erasures = sa.and_(c.consumer.like(f"search-indexer%{SEARCH_ERASURES}"), ~record)
    rows = conn.execute(
        sa.select(c.consumer, c.position, record)
        .where(c.log_id == log_id, c.consumer != CONSUMER, sa.or_(c.position > head, erasures))
        .order_by(c.consumer)
    )
    return [(str(consumer), int(position), bool(after)) for consumer, position, after in rows]


def _search(consumer: str, suffix: str) -> bool:
    """Whether ``consumer`` is one of the search indexer's cursors ending ``suffix``."""
    return consumer.startswith("search-indexer") and consumer.endswith(suffix)


def _cursor_past(consumer: str, position: int, head: int) -> str:
    """What a consumer's cursor past the head says, by what the cursor is."""
    past = f"but the log head says {head} (cursor moved, or tail truncated?)"
    if _search(consumer, SEARCH_ERASURES):
        return (
            f"consumer {consumer} says the erasure and retention records below sequence "
            f"{position} are applied to the search index {past}: standby replicas answer "
            "searches over content of a held log without waiting for any record, and what "
            "the index holds of erased text matches them"
        )
    if _search(consumer, SEARCH_BUILDING):
        return (
            f"consumer {consumer} plans the search index built at {position} entries {past}: "
            f"reads of the log answer INDEX_BUILDING until it holds {position} entries"
        )
    if _search(consumer, SEARCH_HELD):
        return (
            f"consumer {consumer} says the search index is held at sequence {position - 1} {past}"
        )
    if _search(consumer, SEARCH_MENDED):
        return (
            f"consumer {consumer} says the search index's hold at sequence {position - 1} was "
            f"repaired {past}"
        )
    return (
        f"consumer {consumer} has read {position} entries {past}: sequences "
        f"{head}..{position - 1} would never reach it"
    )


def _runs(indexes: Iterable[int]) -> Iterator[tuple[int, int]]:
    """(first, last) of each run of consecutive integers, of increasing ``indexes``."""
    run: tuple[int, int] | None = None
    for i in indexes:
        if run is not None and i == run[1] + 1:
            run = (run[0], i)
            continue
        if run is not None:
            yield run
        run = (i, i)
    if run is not None:
        yield run


def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}..{last}"


def _head(conn: sa.Connection, log_id: str) -> int:
    """The log's size now: the read transaction ends first (SQLite keeps its snapshot)."""
    conn.commit()
    return int(conn.execute(sa.select(logs.c.size).where(logs.c.log_id == log_id)).scalar() or 0)


def verify_log(
    conn: sa.Connection,
    log_id: str,
    keys: Sequence[VerifierKey],
    origin_prefix: str,
    checkpoint_dir: Path | None,
    report: Report,
    progress: Progress | None = None,
    mode: str = "full",
    pool: Executor | None = None,
    content_keys: Keyring | None = None,
    classification_required_since: dt.datetime | None = None,
) -> None:
    """Checks one log; appends what is wrong to ``report``.

    The cheap checks (leaves, tree, checkpoints) run here in sequence order;
    in ``full`` mode the JSON checks of each page go to ``pool`` (worker
    processes: they are CPU-bound Python) or run inline without one.
    """
    full = mode == "full"
    report.logs += 1
    head = _head(conn, log_id)
    last = _last_seq(conn, log_id)
    # Read before the pages, so that every page sees the nodes this says are stored.
    must_store, cursor = _must_store(conn, log_id, head)
    starts = range(0, -1 if last is None else last + 1, PAGE)
    pages_end = starts[-1] + PAGE if starts else 0  # content below: checked by its page
    with contextlib.ExitStack() as stack:
        pages: Iterable[tuple[int, Page | None]] = ((lo, None) for lo in starts)
        if not full and conn.dialect.name == "postgresql":
            # Started before the signatures are checked, so the two overlap.
            pages = stack.enter_context(
                PageChecks(conn.engine, log_id, head, starts, PAGE, DATABASE_READERS)
            )
        targets = _checkpoints(conn, log_id, keys, origin_prefix, checkpoint_dir, report)
        walk = _LogWalk(log_id, head, targets, report, conn, must_store)
        in_database, expected = _walk_pages(
            conn,
            walk,
            full,
            pages,
            progress,
            pool,
            content_keys,
            classification_required_since,
        )
    if expected < head:
        walk.add_leaves(walk.gap(expected, head, _integrated(conn, log_id, expected, head)))
    # Read before the head is read again, so that the notary's nodes among them lie
    # within it (it integrates only entries the head covers).
    beyond = _nodes_beyond(conn, log_id, head)
    outside = _rows_outside(conn, log_id, min(head, pages_end))
    ahead = _cursors_ahead(conn, log_id, head)
    # Read again: what was appended (and integrated, and signed) during the walk is
    # no truncation; a head now smaller than what the checks below see still is.
    head_now = max(head, _head(conn, log_id))
    walk.finish(head_now)
    if walk.unrecorded:
        # An erasure deletes content and appends its record in one transaction: content
        # seen gone during the walk has its record committed, maybe past the pages walked.
        # Records past the head the walk began with were not counted by it.
        after = min(expected, head) - 1
        for seq, committed in storage.erasure_records(conn, log_id, after=after):
            walk.erasure_facts(seq, "", committed, gone=False, record=True)
    walk.unrecorded_erasures()
    upto = _head(conn, log_id)  # the index rows of records past it are not compared
    for seq, event_id, what in erasure_problems(conn, log_id, upto):
        walk.problem(what, seq, event_id)
    walk.rows_outside(outside, head_now)
    # Pages found intact in the database hold no orphan (their event rows are
    # exactly their entries' sequences and receive times): look only past them.
    # An event row at a negative sequence is named above, with its entry if any.
    unpaged = events.c.seq > last if last is not None and in_database == len(starts) else sa.true()
    orphans = conn.execute(
        sa.select(events.c.seq, events.c.event_id)
        .where(
            events.c.log_id == log_id,
            events.c.seq >= 0,
            unpaged,
            ~sa.exists().where(
                log_entries.c.log_id == events.c.log_id,
                log_entries.c.seq == events.c.seq,
                log_entries.c.receive_time == events.c.receive_time,
            ),
        )
        .order_by(events.c.seq)
    )
    for seq, event_id in orphans:
        walk.problem("event row without a log entry (inserted?)", int(seq), str(event_id))
    walk.nodes_beyond(beyond, head_now, cursor)
    walk.cursors_ahead(ahead, head_now)


def _walk_pages(
    conn: sa.Connection,
    walk: _LogWalk,
    full: bool,
    pages: Iterable[tuple[int, Page | None]],
    progress: Progress | None,
    pool: Executor | None,
    content_keys: Keyring | None,
    since: dt.datetime | None = None,
) -> tuple[int, int]:
    """Feeds every page to ``walk``; returns (pages intact in the database, next sequence).

    A page the database found intact arrives as its leaves and the stored nodes
    they complete; any other is read and checked row by row here (and, in
    ``full`` mode, JSON-checked). ``since``: ``integrity.classification_required_since``;
    the first entry received at or after it is found here, in log order, for the
    JSON checks of every entry after it (:class:`_Classified`).
    """
    log_id, report = walk.log_id, walk.report
    pending: list[Future[list[Problem]]] = []
    work: list[_Work] = []
    work_bytes = 0

    def flush() -> None:
        nonlocal work_bytes
        if pool is None:
            report.add(_json_checks(work))
        else:
            while len(pending) > 4 and pending[0].done():
                report.add(pending.pop(0).result())
            while len(pending) > 8:  # the workers are behind: their queue holds events
                report.add(pending.pop(0).result())
            pending.append(pool.submit(_json_checks, list(work)))
        work.clear()
        work_bytes = 0

    expected = 0
    in_database = 0
    last_report = time.monotonic()
    boundary: tuple[int, Any] | None = None  # the first entry received at or after ``since``
    for lo, known in pages:
        if known is not None:
            if lo > expected:  # the previous page ended short (its tail rows deleted)
                walk.add_leaves(walk.gap(expected, lo, _integrated(conn, log_id, expected, lo)))
            count = len(known.leaves) // HASH_SIZE
            walk.add_known(known.leaves, known.nodes)
            report.pages_in_database += 1
            in_database += 1
            expected = lo + count
            report.events += count
        else:
            leaves: list[bytes | None] = []
            rows: list[_Row] = []
            for a, b in _spans(conn, log_id, full, lo, lo + PAGE):
                span_rows, orphans = _page_rows(conn, log_id, full, a, b, content_keys, walk.head)
                rows += span_rows
                for seq, received in orphans:
                    walk.orphan_content(seq, received)
            for row in rows:
                seq = row.seq
                if row.sealing is not None:
                    report.problems.append(Problem(log_id, row.sealing, seq, row.entry_event_id))
                if row.key_owner is not None:
                    report.problems.append(Problem(log_id, row.key_owner, seq, row.entry_event_id))
                for problem in row.misspelt:
                    report.problems.append(Problem(log_id, problem, seq, row.entry_event_id))
                if seq > expected:
                    leaves += walk.gap(expected, seq, _integrated(conn, log_id, expected, seq))
                leaf = walk.entry(row)
                leaves.append(leaf)
                if full and row.canonical is not None:
                    gone = row.content is None and row.sealing is None
                    # A record stored as text names nothing, as storage.erasure_records reads it.
                    intact = not row.as_text & {"events.canonical", "log_entries.leaf_hash"}
                    record = seq < walk.head and leaf == row.leaf_hash and intact
                    walk.erasure_facts(seq, row.entry_event_id, row.canonical, gone, record)
                    classified = None
                    if row.classification is not None:
                        classified = _Classified(*row.classification, since, boundary)
                    work.append(
                        (
                            log_id,
                            seq,
                            row.entry_event_id,
                            row.leaf_hash,
                            row.canonical,
                            row.salt,
                            row.content,
                            row.columns or {},
                            classified,
                        )
                    )
                    work_bytes += len(row.canonical) + len(row.content or b"")
                    if work_bytes > READ_BYTES:  # large events: checked before the next span
                        flush()
                received = _utc(row.receive_time)  # the committed one, else named
                if (
                    since is not None
                    and boundary is None
                    and isinstance(received, dt.datetime)
                    and received >= since
                ):
                    boundary = (seq, received)
                expected = seq + 1
                report.events += 1
            walk.add_leaves(leaves)
            if len(work) >= PAGE:
                flush()
        if progress is not None and time.monotonic() - last_report > 2:
            progress(log_id, expected, walk.head)
            last_report = time.monotonic()
    if work:
        flush()
    for done in pending:
        report.add(done.result())
    return in_database, expected


def verify_store(
    engine: sa.Engine,
    keys: Sequence[VerifierKey],
    origin_prefix: str,
    checkpoint_dir: Path | None = None,
    log_ids: Sequence[str] = (),
    progress: Progress | None = None,
    mode: str = "full",
    workers: int | None = None,
    content_keys: Keyring | Literal["embedded"] | None = "embedded",
    classification_required_since: dt.datetime | None = None,
) -> Report:
    """Verifies every log (or the ones named) of the store.

    ``workers`` processes run the ``full`` mode's JSON checks (default 1:
    inline; on a 2-core machine shipping pages to workers cost more than it
    saved, so more is only worth it with spare cores). ``content_keys`` opens
    sealed content for the ``full`` mode's check against the commitments (by
    default as the embedded mode seals: see ``open_store``).
    ``classification_required_since``: since when every replica writes the
    content rows' classification (``integrity.classification_required_since``):
    NULL on a classified event received then or later, or later in its log than
    one that was, is a problem, not a warning. Raises
    :class:`NoExportsError` if ``checkpoint_dir`` is given, missing, and a log
    to verify has stored checkpoints.
    """
    if content_keys == "embedded":
        content_keys = embedded_keys(engine.url.render_as_string(hide_password=False))
    if mode not in MODES:
        raise ValueError(f"verify mode {mode!r}: one of {', '.join(MODES)}")
    report = Report()
    count = workers if workers is not None else 1
    with contextlib.ExitStack() as stack:
        pool = None
        if mode == "full" and count > 1:
            pool = stack.enter_context(ProcessPoolExecutor(count))
        _verify_logs(
            engine,
            keys,
            origin_prefix,
            checkpoint_dir,
            log_ids,
            progress,
            mode,
            pool,
            report,
            content_keys,
            classification_required_since,
        )
    return report


_TRACES = (log_entries, events, event_content, nodes, checkpoints, consumer_cursors)
"""The tables whose rows say a log existed: its rows, the notary's, and every consumer's
cursor (a consumer reads only logs with entries). Not ``content_keys``: a key row is
written with its batch, and a group's other batches may commit while that one is refused."""


def _headless(
    conn: sa.Connection, known: set[str], checkpoint_dir: Path | None
) -> dict[str, list[str]]:
    """Logs found anywhere but in ``logs``, with where (table names, exported checkpoints).

    Verify took its list from that table alone: deleting a log's row hid the
    log, whatever was then done to it (review, 2026-12-05). It then looked in
    the log's own tables and the notary's, not in the consumers' cursors: a log
    whose every other row and exported copy was deleted was listed nowhere,
    and verify passed without it (2026-12-06).
    """
    found: dict[str, list[str]] = {}
    for table in _TRACES:
        for log_id in _log_ids(conn, table):
            found.setdefault(log_id, []).append(table.name)
    if checkpoint_dir is not None and checkpoint_dir.is_dir():
        for d in checkpoint_dir.iterdir():
            if d.is_dir():
                found.setdefault(d.name, []).append("exported checkpoints")
    return {log_id: found[log_id] for log_id in sorted(found.keys() - known)}


def _log_ids(conn: sa.Connection, table: sa.Table) -> list[str]:
    """The distinct ``log_id`` values of ``table``.

    Where its primary key begins with ``log_id``, one probe of that index per
    log (a skip scan: each the smallest ``log_id`` greater than the one
    before, so every row's is found): ``SELECT DISTINCT`` read every row, of
    events, content and nodes alike, ~200 ms of a 100,000-event verify's
    ~350 ms before its first page (2026-12-06). ``consumer_cursors`` (key:
    consumer first, a few rows per log) is read whole.
    """
    if table.primary_key.columns.values()[0] is not table.c.log_id:
        return [str(log_id) for (log_id,) in conn.execute(sa.select(table.c.log_id).distinct())]
    later = table.alias("later")
    ids = sa.select(sa.func.min(table.c.log_id).label("log_id")).cte("ids", recursive=True)
    following = (
        sa.select(sa.func.min(later.c.log_id))
        .where(later.c.log_id > ids.c.log_id)
        .scalar_subquery()
    )
    ids = ids.union_all(sa.select(following).where(ids.c.log_id.is_not(None)))
    query = sa.select(ids.c.log_id).where(ids.c.log_id.is_not(None))
    return [str(log_id) for (log_id,) in conn.execute(query)]


class NoExportsError(Exception):
    """The checkpoint directory is missing while the logs verified have stored checkpoints."""


def _exports_there(
    conn: sa.Connection, checkpoint_dir: Path | None, log_ids: Sequence[str], chosen: list[str]
) -> None:
    """Raises :class:`NoExportsError` if the directory is missing and a checkpoint is stored.

    Its folders used to be read only if it existed: a mistyped path, a Job
    without the volume, or another host's default read as "no copies", and
    a history rolled back past its last checkpoint passed (review, 2026-12-05).
    Naming every stored checkpoint instead would call a mistake tampering.
    """
    if checkpoint_dir is None or checkpoint_dir.is_dir():
        return
    query = sa.select(checkpoints.c.log_id).limit(1)
    if log_ids:
        query = query.where(checkpoints.c.log_id.in_(chosen))
    if conn.execute(query).first() is not None:
        state = "is not a directory" if checkpoint_dir.exists() else "does not exist"
        raise NoExportsError(
            f"checkpoint directory {checkpoint_dir} {state}, and the store holds signed "
            "checkpoints: each is checked against the copy the notary exported there before "
            "storing it, which tells a history rolled back"
        )


def _verify_logs(
    engine: sa.Engine,
    keys: Sequence[VerifierKey],
    origin_prefix: str,
    checkpoint_dir: Path | None,
    log_ids: Sequence[str],
    progress: Progress | None,
    mode: str,
    pool: Executor | None,
    report: Report,
    content_keys: Keyring | None,
    classification_required_since: dt.datetime | None = None,
) -> None:
    with engine.connect() as conn:
        known = [str(r[0]) for r in conn.execute(sa.select(logs.c.log_id).order_by(logs.c.log_id))]
        headless = _headless(conn, set(known), checkpoint_dir)
        if log_ids:
            headless = {x: where for x, where in headless.items() if x in log_ids}
        for log_id, where in headless.items():
            listed = where[0] if len(where) == 1 else f"{', '.join(where[:-1])} and {where[-1]}"
            report.problems.append(
                Problem(
                    log_id,
                    f"found in {listed} but has no row in logs (deleted?): checked with a head"
                    " of 0",
                )
            )
        known = sorted({*known, *headless})
        for log_id in log_ids:
            if log_id not in known:
                report.problems.append(Problem(log_id, "no such log"))
        chosen = [x for x in known if x in log_ids] if log_ids else known
        _exports_there(conn, checkpoint_dir, log_ids, chosen)
        for log_id in chosen:
            verify_log(
                conn,
                log_id,
                keys,
                origin_prefix,
                checkpoint_dir,
                report,
                progress,
                mode,
                pool,
                content_keys,
                classification_required_since,
            )
