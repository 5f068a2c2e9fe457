"""``aiaudit verify``: walks the store and checks everything the log promises.

For every log, in sequence order (one streaming pass, O(log n) memory):

* each log entry has its event row, the event's canonical form hashes to the
  entry's leaf hash, its eventId/tenantId are the entry's, the search columns
  agree with the committed metadata, and stored content matches its salted
  commitments;
* sequences run 0 .. head-1 with no gap; no entry lies beyond the head; no
  event row lacks its log entry (inserted rows);
* each recomputed leaf equals the leaf the notary integrated at that position
  (level-0 node), which names the exact event that changed, moved or was
  forged after integration;
* the tree rebuilt from the recomputed leaves has, at every stored and every
  exported (WORM) checkpoint's size, that checkpoint's root. Every checkpoint
  must carry a valid signature from a trusted key for the log's origin. All
  roots coming from one rebuilt leaf sequence is what makes each checkpoint
  consistent with the next;
* no checkpoint or integrated leaf lies past the end of the log (a truncated
  tail).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from aiaudit.common import canonical
from aiaudit.common.store.schema import event_content, events, log_entries, logs
from aiaudit.integrity import checks, storage, worm
from aiaudit.integrity.merkle import CompactRange
from aiaudit.integrity.note import NoteError, VerifierKey, open_checkpoint
from aiaudit.integrity.tables import nodes

PAGE = 2000


@dataclass(frozen=True)
class Problem:
    """One thing wrong, and where."""

    log_id: str
    what: str
    sequence: int | None = None
    event_id: str | None = None

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
    logs: int = 0
    events: int = 0
    checkpoints: int = 0

    @property
    def ok(self) -> bool:
        """Whether nothing is wrong."""
        return not self.problems


Progress = Callable[[str, int, int], None]
"""Called now and then with (log id, events checked, log size)."""


@dataclass
class _Target:
    """A checkpoint the rebuilt tree must match at its size."""

    size: int
    root: bytes
    source: str


def _checkpoints(
    conn: sa.Connection,
    log_id: str,
    keys: Sequence[VerifierKey],
    origin: str,
    checkpoint_dir: Path | None,
    report: Report,
) -> dict[int, list[_Target]]:
    """Verified checkpoints by size (database and exported copies); bad ones are problems."""
    targets: dict[int, list[_Target]] = {}
    stored: dict[int, bytes] = {}

    def add(size: int, signed: str, source: str) -> bytes | None:
        report.checkpoints += 1
        try:
            body = open_checkpoint(signed, keys, origin)
        except NoteError as exc:
            report.problems.append(Problem(log_id, f"{source} at size {size}: {exc}"))
            return None
        if body.size != size:
            report.problems.append(
                Problem(log_id, f"{source} at size {size} is signed for size {body.size}")
            )
            return None
        targets.setdefault(size, []).append(_Target(size, body.root_hash, source))
        return body.root_hash

    for cp in storage.all_checkpoints(conn, log_id):
        root = add(cp.tree_size, cp.signed_note, "stored checkpoint")
        if root is not None and root != cp.root_hash:
            report.problems.append(
                Problem(
                    log_id,
                    f"stored checkpoint at size {cp.tree_size}: root_hash column is not the note's",
                )
            )
        if root is not None:
            stored[cp.tree_size] = root
    if checkpoint_dir is not None:
        for size, signed in worm.read_all(checkpoint_dir, log_id):
            root = add(size, signed, "exported checkpoint")
            if root is None:
                continue
            if size not in stored:
                report.problems.append(
                    Problem(
                        log_id,
                        f"checkpoint at size {size} is exported but missing from the database",
                    )
                )
            elif stored[size] != root:
                report.problems.append(
                    Problem(
                        log_id, f"stored checkpoint at size {size} differs from its exported copy"
                    )
                )
    return targets


def _rows(conn: sa.Connection, log_id: str) -> Iterator[Any]:
    """Entries with their event, content and integrated leaf, in sequence order, paged."""
    le, ev, ct = log_entries, events, event_content

    def same(t: sa.Table) -> sa.ColumnElement[bool]:
        return sa.and_(
            t.c.log_id == le.c.log_id, t.c.seq == le.c.seq, t.c.receive_time == le.c.receive_time
        )

    columns = [c for c in ev.c if c.name not in ("log_id", "seq", "receive_time", "canonical")]
    query = (
        sa.select(
            le.c.seq,
            le.c.event_id.label("entry_event_id"),
            le.c.leaf_hash,
            le.c.receive_time,
            ev.c.canonical,
            *[c.label(f"ev_{c.name}") for c in columns],
            ct.c.salt,
            ct.c.content,
            nodes.c.hash.label("integrated"),
        )
        .select_from(
            le.outerjoin(ev, same(ev))
            .outerjoin(ct, same(ct))
            .outerjoin(
                nodes,
                (nodes.c.log_id == le.c.log_id) & (nodes.c.level == 0) & (nodes.c.idx == le.c.seq),
            )
        )
        .order_by(le.c.seq)
        .limit(PAGE)
    )
    after = -1
    while True:
        page = conn.execute(query.where(le.c.log_id == log_id, le.c.seq > after)).all()
        yield from page
        if len(page) < PAGE:
            return
        after = int(page[-1].seq)


def _stored_columns(row: Any) -> dict[str, object]:
    out = {
        name.removeprefix("ev_"): value
        for name, value in row._mapping.items()
        if isinstance(name, str) and name.startswith("ev_")
    }
    out["receive_time"] = row.receive_time
    return out


class _LogWalk:
    """The streaming check of one log."""

    def __init__(
        self, log_id: str, head: int, targets: dict[int, list[_Target]], report: Report
    ) -> None:
        self.log_id = log_id
        self.head = head
        self.targets = targets
        self.report = report
        self.tree = CompactRange()
        self.broken_at: int | None = None
        self.last_good = 0

    def problem(self, what: str, sequence: int | None = None, event_id: str | None = None) -> None:
        self.report.problems.append(Problem(self.log_id, what, sequence, event_id))

    def add_leaf(self, leaf: bytes | None) -> None:
        """Extends the rebuilt tree and checks any checkpoint at the new size."""
        if leaf is None or self.broken_at is not None:
            self.broken_at = self.tree.size if self.broken_at is None else self.broken_at
            return
        self.tree.append(leaf)
        for target in self.targets.get(self.tree.size, []):
            if self.tree.root() != target.root:
                self.problem(
                    f"{target.source} at size {target.size}: the tree rebuilt from the stored "
                    f"events has another root (a leaf in sequences "
                    f"{self.last_good}..{target.size - 1} was changed, removed or reordered)"
                )
            else:
                self.last_good = target.size

    def entry(self, row: Any) -> None:
        seq, event_id = int(row.seq), str(row.entry_event_id)
        committed = bytes(row.canonical) if row.canonical is not None else None
        content = json.loads(row.content) if row.content is not None else None
        salt = bytes(row.salt) if row.salt is not None else None
        if seq >= self.head:
            self.problem(
                f"log entry beyond the log head (size {self.head}): inserted?", seq, event_id
            )
        for what in checks.event_problems(
            self.log_id, event_id, bytes(row.leaf_hash), committed, salt, content
        ):
            self.problem(what, seq, event_id)
        if committed is not None:
            try:
                node = json.loads(committed)
            except ValueError:
                node = None  # reported by event_problems
            if isinstance(node, dict):
                for what in checks.column_problems(node, _stored_columns(row)):
                    self.problem(what, seq, event_id)
        leaf = canonical.leaf_hash(committed) if committed is not None else None
        integrated = bytes(row.integrated) if row.integrated is not None else None
        if integrated is not None and leaf is not None and integrated != leaf:
            self.problem(
                "leaf differs from the one the notary integrated at this sequence "
                "(event changed, moved or forged after integration)",
                seq,
                event_id,
            )
        # Keep rebuilding with the integrated leaf when the event is gone, so later
        # checkpoints are still checked; the missing event is already reported.
        self.add_leaf(leaf if leaf is not None else integrated)

    def gap(self, start: int, end: int, integrated: dict[int, bytes]) -> None:
        self.problem(f"sequences {start}..{end - 1} are missing (rows deleted)", start)
        for seq in range(start, end):
            self.add_leaf(integrated.get(seq))

    def finish(self) -> None:
        for size in sorted(s for s in self.targets if s > self.tree.size):
            for target in self.targets[size]:
                if self.broken_at is not None and size > self.broken_at:
                    self.problem(
                        f"{target.source} at size {size} cannot be checked: leaf "
                        f"{self.broken_at} is missing and was never integrated"
                    )
                else:
                    self.problem(
                        f"{target.source} at size {size} covers sequences "
                        f"{self.tree.size}..{size - 1}, which are missing (tail truncated?)"
                    )


def _integrated(conn: sa.Connection, log_id: str, start: int, end: int) -> dict[int, bytes]:
    rows = conn.execute(
        sa.select(nodes.c.idx, nodes.c.hash).where(
            nodes.c.log_id == log_id, nodes.c.level == 0, nodes.c.idx >= start, nodes.c.idx < end
        )
    )
    return {int(r.idx): bytes(r.hash) for r in rows}


def verify_log(
    conn: sa.Connection,
    log_id: str,
    keys: Sequence[VerifierKey],
    origin: str,
    checkpoint_dir: Path | None,
    report: Report,
    progress: Progress | None = None,
) -> None:
    """Checks one log; appends what is wrong to ``report``."""
    report.logs += 1
    head = conn.execute(sa.select(logs.c.size).where(logs.c.log_id == log_id)).scalar()
    head = int(head or 0)
    walk = _LogWalk(
        log_id, head, _checkpoints(conn, log_id, keys, origin, checkpoint_dir, report), report
    )
    expected = 0
    last_report = time.monotonic()
    for row in _rows(conn, log_id):
        seq = int(row.seq)
        if seq > expected:
            walk.gap(expected, seq, _integrated(conn, log_id, expected, seq))
        walk.entry(row)
        expected = seq + 1
        report.events += 1
        if progress is not None and time.monotonic() - last_report > 2:
            progress(log_id, expected, head)
            last_report = time.monotonic()
    if expected < head:
        walk.gap(expected, head, _integrated(conn, log_id, expected, head))
    walk.finish()
    orphans = conn.execute(
        sa.select(events.c.seq, events.c.event_id)
        .where(
            events.c.log_id == log_id,
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
    integrated = conn.execute(
        sa.select(sa.func.max(nodes.c.idx)).where(nodes.c.log_id == log_id, nodes.c.level == 0)
    ).scalar()
    if integrated is not None and int(integrated) + 1 > head:
        walk.problem(
            f"the notary integrated {int(integrated) + 1} leaves but the log head says {head} "
            f"(tail truncated?)"
        )


def verify_store(
    engine: sa.Engine,
    keys: Sequence[VerifierKey],
    origin_prefix: str,
    checkpoint_dir: Path | None = None,
    log_ids: Sequence[str] = (),
    progress: Progress | None = None,
) -> Report:
    """Verifies every log (or the ones named) of the store."""
    report = Report()
    with engine.connect() as conn:
        known = [str(r[0]) for r in conn.execute(sa.select(logs.c.log_id).order_by(logs.c.log_id))]
        for log_id in log_ids:
            if log_id not in known:
                report.problems.append(Problem(log_id, "no such log"))
        chosen = [x for x in known if x in log_ids] if log_ids else known
        for log_id in chosen:
            verify_log(
                conn, log_id, keys, f"{origin_prefix}/{log_id}", checkpoint_dir, report, progress
            )
    return report
