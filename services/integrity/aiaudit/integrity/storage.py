"""SQL adapter of the tree and checkpoint tables (SQLite and PostgreSQL alike)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from aiaudit.common import canonical, erasure
from aiaudit.common.restore import text_column as text_column
from aiaudit.common.store import pgarrays
from aiaudit.common.store.schema import (
    RECORDS_WHERE,
    consumer_cursors,
    event_content,
    log_entries,
)
from aiaudit.common.store.sql import pg_rows
from aiaudit.integrity.merkle import MissingNodeError, NodeID
from aiaudit.integrity.note import NoteError, parse_checkpoint, parse_note
from aiaudit.integrity.tables import checkpoints, nodes


class StoredAsTextError(ValueError):
    """A row read whose binary column is stored as text (SQLite; rewritten by raw SQL).

    SQLite keeps any type in any column: read as a ``str``, a node's hash, a
    checkpoint's root or a leaf hash made its ``bytes()`` raise TypeError (the
    proofs answered UNKNOWN, the notary's round aborted for every log), and a
    text that is no UTF-8 did not even read (UNAVAILABLE, "retry"). The reads
    below take such a column's stored bytes (``CAST(... AS BLOB)``) and its
    type in the same statement, and raise this for one stored as text: the
    proofs answer DATA_LOSS naming it (``VerifyEvent`` names a checkpoint's
    root so stored among its problems), and the notary leaves that log
    unsigned (a ValueError, as a tree that does not extend its checkpoint).
    PostgreSQL's ``bytea`` holds bytes only: its reads are unchanged.
    """

    def __init__(self, where: str, column: str) -> None:
        """``where``: the row (``log 'L' node level 2 index 1``); ``column``: ``table.column``."""
        self.column = column
        super().__init__(f"{where}: {text_column(column)}")


class NoteMismatchError(ValueError):
    """A stored checkpoint's column that is not what its signed note says (raw SQL).

    The service answers a checkpoint's ``tree_size`` and ``root_hash`` from its
    row beside the note: a row forged by raw SQL (a real note under size 1000)
    answered a size of 1000 with a note of size 3, unremarked (review,
    2026-12-07). :func:`as_noted` raises this; the RPCs answer DATA_LOSS naming it.
    """

    def __init__(self, cp: StoredCheckpoint, column: str, detail: str) -> None:
        """``column``: ``table.column``; ``detail``: how it differs from the note."""
        self.column = column
        super().__init__(
            f"log {cp.log_id!r} stored checkpoint at size {cp.tree_size}: column {column} "
            f"{detail} (rewritten by raw SQL?)"
        )


def as_noted(cp: StoredCheckpoint) -> StoredCheckpoint:
    """``cp`` if its size and root are those its signed note states; else NoteMismatchError.

    Only parsed, not verified: the caller verifies the note against the keys it trusts.
    """
    try:
        noted = parse_checkpoint(parse_note(cp.signed_note).text)
    except NoteError as exc:
        raise NoteMismatchError(
            cp, "integrity_checkpoints.signed_note", f"is no checkpoint note ({exc})"
        ) from None
    if noted.size != cp.tree_size:
        raise NoteMismatchError(
            cp, "integrity_checkpoints.tree_size", f"is not the size its note states ({noted.size})"
        )
    if noted.root_hash != cp.root_hash:
        raise NoteMismatchError(
            cp, "integrity_checkpoints.root_hash", "is not the root hash its note states"
        )
    return cp


def _as_bytes(column: sa.Column[Any]) -> tuple[Any, Any]:
    """SQLite: a binary column read as its stored bytes, and whether it is stored as text."""
    return (
        sa.cast(column, sa.LargeBinary).label(column.name),
        (sa.func.typeof(column) == "text").label(f"{column.name}_as_text"),
    )


_NODES_BY_ARRAYS = (
    "SELECT w.level, w.idx, (SELECT n.hash FROM integrity_nodes n"
    " WHERE n.log_id = %(log_id)s AND n.level = w.level AND n.idx = w.idx)"
    " FROM unnest(%(levels)s::smallint[], %(idxs)s::bigint[]) AS w(level, idx)"
)
"""PostgreSQL: the wanted nodes as two arrays, each looked up by primary key.

One statement text whatever the number of nodes, prepared once per
connection (``pg_rows``) and planned once by the server; a ``(level, idx) IN (...)``
list is a new statement per length and costs a SQLAlchemy compile and a
server plan each time (measured at 1M leaves: p99 2.4 ms for the list, 0.9 ms
for the arrays). A correlated lookup rather than a join: with a join, a log
too fresh for statistics was planned as one row and all its nodes were read
for every proof. A node not stored comes back with a NULL hash.
"""


_NODES_PER_QUERY = 500
"""Nodes bound in one SQLite statement (two parameters each): far below its 32,766."""


def _nodes_by_values(n: int) -> str:
    """SQLite: ``n`` wanted nodes as a VALUES table, each looked up by primary key.

    A ``(level, idx) IN (...)`` row-value list used the key's ``log_id`` alone:
    every node of the log was read for each proof (9 ms at 20,000 leaves,
    growing with the log; a batch of 500 proofs outlasted search's 5 s timeout
    at 32,000). ``CROSS JOIN`` makes the VALUES the outer loop whatever the
    statistics say, so each row is one probe of the primary key. The hash is
    read as its stored bytes, with whether it is stored as text (:class:`StoredAsTextError`).
    """
    values = ", ".join(["(?, ?)"] * n)
    return (
        f"SELECT level, idx, CAST(hash AS BLOB), typeof(hash) = 'text'"
        f" FROM (VALUES {values}) AS w CROSS JOIN integrity_nodes"
        " WHERE log_id = ? AND level = w.column1 AND idx = w.column2"
    )


class NodeCache:
    """Hashes of the nodes near the root, shared by the proofs one process serves.

    Every proof of a log passes through the same few nodes near its root: at
    1,000,000 leaves 12 of a proof's 20 nodes are at level 8 or above, ~7,800
    nodes in all, and each costs PostgreSQL an index lookup (~50 us here) per
    proof. A stored node never changes (the tree is append-only; the
    application role cannot update it), but a database restored from a backup
    and grown again could hold other hashes at the same places: whoever reads
    through the cache checks the proof against the signed root before serving
    it, and clears the cache when it does not verify.
    """

    MIN_LEVEL = 8
    """Nodes covering at least 256 leaves; the lower ones are rarely asked for twice."""
    MAX_ENTRIES = 200_000
    """About 30 MB; a full cache starts over rather than tracking use."""

    def __init__(self) -> None:
        """Empty."""
        self._hashes: dict[tuple[str, int, int], bytes] = {}

    def get(self, log_id: str, node: NodeID) -> bytes | None:
        """The cached hash of a node, if any."""
        return self._hashes.get((log_id, node.level, node.index))

    def put(self, log_id: str, node: NodeID, digest: bytes) -> None:
        """Keeps a node read from the table, if it is high enough to be worth it."""
        if node.level >= self.MIN_LEVEL:
            if len(self._hashes) >= self.MAX_ENTRIES:
                self._hashes = {}
            self._hashes[(log_id, node.level, node.index)] = digest

    def clear(self) -> None:
        """Forgets everything (a proof built with these hashes did not verify)."""
        self._hashes = {}


class NodeTable:
    """``merkle.NodeReader`` over one log's rows of ``integrity_nodes``: one query per read."""

    def __init__(self, conn: sa.Connection, log_id: str, cache: NodeCache | None = None) -> None:
        """Reads through ``conn`` (inside the caller's transaction, if any), and ``cache``."""
        self._conn = conn
        self._log_id = log_id
        self._cache = cache

    def read_nodes(self, ids: Sequence[NodeID]) -> list[bytes]:
        """Hashes of ``ids`` in order; ``MissingNodeError`` names the first one not stored."""
        cache = self._cache
        found: dict[NodeID, bytes] = {}
        wanted = list(ids)
        if cache is not None:
            wanted = []
            for n in ids:
                digest = cache.get(self._log_id, n)
                if digest is None:
                    wanted.append(n)
                else:
                    found[n] = digest
        stored = self._stored(wanted)
        if cache is not None:
            for n, digest in stored.items():
                cache.put(self._log_id, n, digest)
        found.update(stored)
        missing = [n for n in ids if n not in found]
        if missing:
            raise MissingNodeError(f"log {self._log_id!r}: no stored hash for node {missing[0]}")
        return [found[n] for n in ids]

    def _stored(self, ids: Sequence[NodeID]) -> dict[NodeID, bytes]:
        """The stored hashes of ``ids`` (those stored), in one query."""
        if not ids:
            return {}
        if self._conn.dialect.name == "postgresql":
            rows: Iterable[Any] = pg_rows(
                self._conn,
                _NODES_BY_ARRAYS,
                {
                    "levels": pgarrays.int2_array([n.level for n in ids]),
                    "idxs": pgarrays.int8_array([n.index for n in ids]),
                    "log_id": self._log_id,
                },
            )
        else:
            found: list[Any] = []
            for i in range(0, len(ids), _NODES_PER_QUERY):
                part = ids[i : i + _NODES_PER_QUERY]
                params = (*(v for n in part for v in (n.level, n.index)), self._log_id)
                found += self._conn.exec_driver_sql(_nodes_by_values(len(part)), params)
            for level, idx, _, as_text in found:
                if as_text:
                    where = f"log {self._log_id!r} node level {level} index {idx}"
                    raise StoredAsTextError(where, "integrity_nodes.hash")
            rows = [r[:3] for r in found]
        return {
            NodeID(int(level), int(idx)): bytes(digest)
            for level, idx, digest in rows
            if digest is not None
        }


_WRITE_NODES_PG = """
WITH written AS (
    INSERT INTO integrity_nodes (log_id, level, idx, hash)
    SELECT %(log_id)s, w.level, w.idx, w.hash
    FROM unnest(%(levels)s::smallint[], %(idxs)s::bigint[], %(hashes)s::bytea[])
        AS w(level, idx, hash)
    RETURNING 1
) SELECT count(*) FROM written
"""
"""PostgreSQL: a round's nodes as three arrays in one prepared statement, not one row each."""


def write_nodes(conn: sa.Connection, log_id: str, new: Iterable[tuple[NodeID, bytes]]) -> None:
    """Inserts completed nodes; a node stored twice violates the primary key (never silently)."""
    created = list(new)
    if not created:
        return
    if conn.dialect.name == "postgresql":
        params = {  # binary arrays: psycopg's list dumper was most of a round's CPU
            "log_id": log_id,
            "levels": pgarrays.int2_array([n.level for n, _ in created]),
            "idxs": pgarrays.int8_array([n.index for n, _ in created]),
            "hashes": pgarrays.bytea_array([h for _, h in created]),
        }
        pg_rows(conn, _WRITE_NODES_PG, params)
        return
    conn.execute(
        sa.insert(nodes),
        [{"log_id": log_id, "level": n.level, "idx": n.index, "hash": h} for n, h in created],
    )


_LEAF_HASHES_PG = (
    "SELECT seq, leaf_hash FROM log_entries"
    " WHERE log_id = %(log_id)s AND seq = ANY(%(seqs)s::bigint[])"
)


def leaf_hashes(conn: sa.Connection, log_id: str, seqs: Sequence[int]) -> dict[int, bytes]:
    """The leaf hash of each of ``seqs`` that has an entry, by sequence: one query."""
    if conn.dialect.name == "postgresql":
        params = {"log_id": log_id, "seqs": pgarrays.int8_array(list(seqs))}
        rows: Iterable[Any] = pg_rows(conn, _LEAF_HASHES_PG, params)
    else:
        found = conn.execute(
            sa.select(log_entries.c.seq, *_as_bytes(log_entries.c.leaf_hash)).where(
                log_entries.c.log_id == log_id, log_entries.c.seq.in_(list(seqs))
            )
        ).all()
        for seq, _, as_text in found:
            _leaf_in_form(log_id, seq, as_text)
        rows = [r[:2] for r in found]
    return {int(seq): bytes(leaf) for seq, leaf in rows}


def _leaf_in_form(log_id: str, seq: int, as_text: bool) -> None:
    """Raises :class:`StoredAsTextError` for a leaf hash stored as text (SQLite)."""
    if as_text:
        raise StoredAsTextError(f"log {log_id!r} sequence {seq}", "log_entries.leaf_hash")


_LEAVES_PG = (
    "SELECT seq, leaf_hash FROM log_entries"
    " WHERE log_id = %(log_id)s AND seq >= %(start)s AND seq < %(stop)s ORDER BY seq"
)


def leaves(conn: sa.Connection, log_id: str, start: int, limit: int) -> list[tuple[int, bytes]]:
    """(sequence, leaf hash) of entries ``start ..`` in order: the narrow read the notary tails.

    On SQLite they end before a leaf hash stored as text, and one at ``start``
    raises :class:`StoredAsTextError`: the notary integrates the log up to it
    and leaves it there, unsigned past it, as a tree that does not extend its
    checkpoint (one read as a ``str`` aborted every log's round).
    """
    if conn.dialect.name == "postgresql":
        params = {"log_id": log_id, "start": start, "stop": start + limit}
        return [(int(seq), bytes(leaf)) for seq, leaf in pg_rows(conn, _LEAVES_PG, params)]
    rows = conn.execute(
        sa.select(log_entries.c.seq, *_as_bytes(log_entries.c.leaf_hash))
        .where(
            log_entries.c.log_id == log_id,
            log_entries.c.seq >= start,
            log_entries.c.seq < start + limit,
        )
        .order_by(log_entries.c.seq)
    )
    out: list[tuple[int, bytes]] = []
    for seq, leaf, as_text in rows:
        if as_text and out:  # the next read starts at it, and raises
            break
        _leaf_in_form(log_id, seq, as_text)
        out.append((int(seq), bytes(leaf)))
    return out


@dataclass(frozen=True)
class StoredCheckpoint:
    """A row of ``integrity_checkpoints``."""

    log_id: str
    tree_size: int
    root_hash: bytes
    signed_note: str
    sign_time: dt.datetime
    key_version: str
    root_as_text: bool = False
    """(SQLite) ``root_hash`` is stored as text, read as its bytes: only
    :func:`all_checkpoints` returns such a row (``verify`` names it), and
    :func:`latest_checkpoint` if asked (``VerifyEvent`` names it); the other
    reads raise :class:`StoredAsTextError`."""


def insert_checkpoints(conn: sa.Connection, cps: Sequence[StoredCheckpoint]) -> None:
    """Stores signed checkpoints in one statement; one at a size already stored fails it all."""
    if not cps:
        return
    conn.execute(
        sa.insert(checkpoints),
        [
            {
                "log_id": cp.log_id,
                "tree_size": cp.tree_size,
                "root_hash": cp.root_hash,
                "signed_note": cp.signed_note,
                "sign_time": cp.sign_time,
                "key_version": cp.key_version,
            }
            for cp in cps
        ],
    )


def _row(r: Any, as_text: bool = False) -> StoredCheckpoint:
    """A Row of :func:`_columns`, or their values as read raw.

    ``as_text``: a ``root_hash`` stored as text is returned (flagged), not raised.
    """
    when = r.sign_time
    assert isinstance(when, dt.datetime)
    text = bool(getattr(r, "root_hash_as_text", False))
    if text and not as_text:
        where = f"log {r.log_id!r} stored checkpoint at size {r.tree_size}"
        raise StoredAsTextError(where, "integrity_checkpoints.root_hash")
    return StoredCheckpoint(
        str(r.log_id),
        int(str(r.tree_size)),
        bytes(r.root_hash),
        str(r.signed_note),
        when if when.tzinfo else when.replace(tzinfo=dt.UTC),
        str(r.key_version),
        text,
    )


_COLUMNS = (
    checkpoints.c.log_id,
    checkpoints.c.tree_size,
    checkpoints.c.root_hash,
    checkpoints.c.signed_note,
    checkpoints.c.sign_time,
    checkpoints.c.key_version,
)
_COLUMNS_SQLITE = (*_COLUMNS[:2], *_as_bytes(checkpoints.c.root_hash), *_COLUMNS[3:])
"""SQLite's: ``root_hash`` as its stored bytes, and whether it is stored as text."""


def _columns(conn: sa.Connection) -> tuple[Any, ...]:
    return _COLUMNS_SQLITE if conn.dialect.name == "sqlite" else _COLUMNS


def latest_checkpoint(
    conn: sa.Connection, log_id: str, as_text: bool = False
) -> StoredCheckpoint | None:
    """The largest signed checkpoint of a log.

    ``as_text``: one whose root is stored as text is returned flagged, not raised.
    """
    row = conn.execute(
        sa.select(*_columns(conn))
        .where(checkpoints.c.log_id == log_id)
        .order_by(checkpoints.c.tree_size.desc())
        .limit(1)
    ).first()
    return _row(row, as_text) if row is not None else None


@dataclass(frozen=True)
class ProofTarget:
    """A log entry and the checkpoint a proof of it is asked against (if that one exists)."""

    seq: int
    leaf_hash: bytes
    checkpoint: StoredCheckpoint | None


_TARGET_PG = """
SELECT le.seq, le.leaf_hash,
    c.log_id, c.tree_size, c.root_hash, c.signed_note, c.sign_time, c.key_version
FROM log_entries le LEFT JOIN integrity_checkpoints c
    ON c.log_id = le.log_id AND c.tree_size = COALESCE(
        NULLIF(%(tree_size)s::bigint, 0),
        (SELECT max(m.tree_size) FROM integrity_checkpoints m WHERE m.log_id = %(log_id)s))
WHERE le.log_id = %(log_id)s AND {where}
"""
_TARGET_BY_PG = {
    "sequence": _TARGET_PG.format(where="le.seq = %(key)s::bigint"),
    "event_id": _TARGET_PG.format(where="le.event_id = %(key)s"),
}
"""PostgreSQL: :func:`proof_target` as prepared text (see ``pg_rows``): 0.3 ms, not 2."""


def proof_target(
    conn: sa.Connection, log_id: str, which: str, key: int | str, tree_size: int
) -> ProofTarget | None:
    """The entry whose ``which`` (sequence or event_id) is ``key``, and a checkpoint.

    The checkpoint is the one at ``tree_size`` (0: the latest). One round trip
    instead of two (entry, then checkpoint): it is half of what an inclusion
    proof costs the database. None when there is no such entry.
    """
    params = {"log_id": log_id, "key": key, "tree_size": tree_size}
    if conn.dialect.name == "postgresql":
        rows = pg_rows(conn, _TARGET_BY_PG[which], params)
        if not rows:
            return None
        seq, leaf, *checkpoint = rows[0]
        found = _row(StoredCheckpoint(*checkpoint)) if checkpoint[1] is not None else None
        return ProofTarget(int(seq), bytes(leaf), found)
    le, cp = log_entries, checkpoints
    size: sa.ColumnElement[int] = (
        sa.literal(tree_size, sa.BigInteger)
        if tree_size
        else sa.select(sa.func.max(cp.c.tree_size)).where(cp.c.log_id == log_id).scalar_subquery()
    )
    match = le.c.seq == key if which == "sequence" else le.c.event_id == key
    row = conn.execute(
        sa.select(le.c.seq, *_as_bytes(le.c.leaf_hash), *_columns(conn))
        .select_from(le.outerjoin(cp, sa.and_(cp.c.log_id == le.c.log_id, cp.c.tree_size == size)))
        .where(le.c.log_id == log_id, match)
    ).first()
    if row is None:
        return None
    _leaf_in_form(log_id, int(row.seq), row.leaf_hash_as_text)
    found = _row(row) if row.tree_size is not None else None
    return ProofTarget(int(row.seq), bytes(row.leaf_hash), found)


def checkpoint_at(conn: sa.Connection, log_id: str, tree_size: int) -> StoredCheckpoint | None:
    """The checkpoint signed at exactly ``tree_size``."""
    row = conn.execute(
        sa.select(*_columns(conn)).where(
            checkpoints.c.log_id == log_id, checkpoints.c.tree_size == tree_size
        )
    ).first()
    return _row(row) if row is not None else None


def all_checkpoints(conn: sa.Connection, log_id: str) -> Iterator[StoredCheckpoint]:
    """Every checkpoint of a log, smallest first; one whose root is stored as text flagged."""
    rows = conn.execute(
        sa.select(*_columns(conn))
        .where(checkpoints.c.log_id == log_id)
        .order_by(checkpoints.c.tree_size)
    )
    for r in rows:
        yield _row(r, as_text=True)


def signed_sizes(conn: sa.Connection) -> dict[str, int]:
    """Every log's largest signed tree size."""
    query = sa.select(checkpoints.c.log_id, sa.func.max(checkpoints.c.tree_size)).group_by(
        checkpoints.c.log_id
    )
    return {str(r[0]): int(r[1]) for r in conn.execute(query)}


def positions_and_latest(
    conn: sa.Connection, consumer: str, log_ids: Sequence[str]
) -> list[tuple[str, int, int]]:
    """(log id, cursor position, largest signed size or 0) of each of these logs with a cursor.

    The largest size is a correlated ``max`` per log, which the primary key
    answers with one index probe (a ``GROUP BY`` over the logs would read all
    their checkpoints, one a second each).
    """
    c = consumer_cursors
    latest = (
        sa.select(sa.func.coalesce(sa.func.max(checkpoints.c.tree_size), 0))
        .where(checkpoints.c.log_id == c.c.log_id)
        .scalar_subquery()
    )
    out = []
    for i in range(0, len(log_ids), _IDS_PER_QUERY):
        query = sa.select(c.c.log_id, c.c.position, latest).where(
            c.c.consumer == consumer, c.c.log_id.in_(list(log_ids[i : i + _IDS_PER_QUERY]))
        )
        out += [(str(r[0]), int(r[1]), int(r[2])) for r in conn.execute(query)]
    return out


_IDS_PER_QUERY = 1000
"""Log ids bound in one statement: PostgreSQL takes at most 65,535 parameters, and a
notary with that many logs behind (after a long Vault outage) signed none of them."""


def missing_privileges(conn: sa.Connection) -> list[str]:
    """On PostgreSQL, the notary's privileges this login lacks (empty on SQLite)."""
    if conn.dialect.name != "postgresql":
        return []
    wanted = [
        ("integrity_nodes", "INSERT"),
        ("integrity_checkpoints", "INSERT"),
        ("consumer_cursors", "UPDATE"),
        ("log_entries", "SELECT"),
    ]
    missing = []
    for table, privilege in wanted:
        ok = conn.execute(
            sa.text("SELECT has_table_privilege(current_user, :t, :p)"),
            {"t": table, "p": privilege},
        ).scalar()
        if not ok:
            missing.append(f"{privilege} on {table}")
    return missing


_COMMITMENT = canonical.COMMITMENT_PREFIX.encode()


_RECORDS_SQL = (
    "SELECT e.seq, e.canonical,"
    " (SELECT le.leaf_hash FROM log_entries le"
    "  WHERE le.log_id = e.log_id AND le.seq = e.seq AND le.receive_time = e.receive_time{leaf})"
    f" FROM events e WHERE e.log_id = :log_id AND e.{RECORDS_WHERE} AND {{where}}{{canonical}}"
    "{order}"
)
_AFTER = "e.seq > :after AND e.seq < (SELECT size FROM logs WHERE log_id = :log_id)"
_PAGE = " ORDER BY e.seq LIMIT :page"
ERASURE_RECORDS = sa.text(_RECORDS_SQL.format(leaf="", where=_AFTER, canonical="", order=_PAGE))
"""The records after a sequence, found by the partial index ``events_records``.

Its predicate written out (a bound list of types proves nothing to either
planner), and each record's entry a lookup by its full primary key rather
than a join. With the types bound and a join, SQLite walked the log's
primary key from ``after`` to the head, and PostgreSQL read every entry of
the log into a hash join (and, on a generic plan, walked the events too):
26 ms (SQLite) and 14-22 ms (PostgreSQL, a partition without statistics) a
call on a 30,000-event log, growing with it, for every ``VerifyEvent`` of an
erased event (2026-12-06).
"""
_LEAF_SQLITE = " AND typeof(le.leaf_hash) = 'blob'"
_CANONICAL_SQLITE = " AND typeof(e.canonical) = 'blob'"
ERASURE_RECORDS_SQLITE = sa.text(
    _RECORDS_SQL.format(leaf=_LEAF_SQLITE, where=_AFTER, canonical=_CANONICAL_SQLITE, order=_PAGE)
)
"""SQLite's: a record whose canonical form or leaf hash is stored as text (SQLite keeps any
type; rewritten by raw SQL) is none, as any other damaged record (``verify`` names it). Read
as a ``str``, its ``bytes()`` raised TypeError, and ``VerifyEvent`` of every event erased
before it failed (a text that is no UTF-8 did not even read)."""


RECORDS_AT = {
    dialect: sa.text(
        _RECORDS_SQL.format(leaf=leaf, where="e.seq = :after", canonical=canonical, order="")
    )
    for dialect, leaf, canonical in (
        ("postgresql", "", ""),
        ("sqlite", _LEAF_SQLITE, _CANONICAL_SQLITE),
    )
}
"""By dialect, the rows at the sequence a page of :func:`erasure_records` ended at, when the
page read none there that is its entry's: event rows forged at a record's sequence (another
receive time) may be ordered before it, and the next page starts past that sequence. A page
that ended on the forged row hid the record: content put back that it erases was not named
(review, 2026-12-07)."""


RECORDS_PAGE = 16
"""Records :func:`erasure_records` reads a query at most (~22 MB of 1.4 MB records); the
first query reads 2, each next twice as many: a reader stopping early mostly stops there."""


def erasure_records(
    conn: sa.Connection, log_id: str, after: int, most: int = RECORDS_PAGE
) -> Iterator[tuple[int, bytes]]:
    """(sequence, canonical form) of the log's erasure and retention records after ``after``.

    Found by their own index (:data:`ERASURE_RECORDS`), so only the few
    records are read; in sequence order (the order :class:`checks.Parts`
    reads parts in), a few a query (up to ``most``), so a reader that stops
    early reads no more. ``VerifyEvent`` of an erased event stops after the
    erasure naming it; it read and parsed every later record to the log's
    end, a retention sweep's each (148 ms on SQLite, 416 ms on PostgreSQL
    with 100 records of 10,000 ids after the event; 2026-12-07). Only a
    record that is the log's entry counts: its entry (sequence and receive
    time) within the head, its bytes hashing to the entry's leaf. An event
    row forged as a record naming an event whose content was deleted by raw
    SQL made ``verify`` and ``VerifyEvent`` take the deletion for an erasure
    (review, 2026-12-05); the row itself is named as inserted or changed.
    One stored as text on SQLite counts as none
    (:data:`ERASURE_RECORDS_SQLITE`). A page ending among rows at one sequence
    reads the rest there (:data:`RECORDS_AT`).
    """
    sqlite = conn.dialect.name == "sqlite"
    query = ERASURE_RECORDS_SQLITE if sqlite else ERASURE_RECORDS
    page = min(2, most)
    while True:
        rows = list(conn.execute(query, {"log_id": log_id, "after": after, "page": page}))
        full = len(rows) == page
        if full and not any(r[0] == rows[-1][0] and r[2] is not None for r in rows):
            # The next page begins past this page's last sequence: its record may be
            # among the rows there not read yet (event rows forged at it, read first).
            last = {"log_id": log_id, "after": rows[-1][0]}
            rows += conn.execute(RECORDS_AT["sqlite" if sqlite else "postgresql"], last).all()
        for seq, committed, leaf in rows:
            if leaf is not None and canonical.leaf_hash(bytes(committed)) == bytes(leaf):
                yield int(seq), bytes(committed)
        if not full:
            return
        after, page = int(rows[-1][0]), min(page * 2, most)


_NAMING = sa.text(
    "SELECT record_seq FROM erasure_names WHERE log_id = :log_id AND event_id = :event_id"
    " AND record_seq > :after AND record_seq < :before ORDER BY record_seq DESC LIMIT :page"
)
"""Records after ``after`` naming the event, latest first: one range of the primary key."""
_RECORD_AT = (
    "SELECT e.canonical, le.leaf_hash FROM log_entries le JOIN events e"
    " ON e.log_id = le.log_id AND e.seq = le.seq AND e.receive_time = le.receive_time"
    f" WHERE le.log_id = :log_id AND le.seq = :seq AND e.{RECORDS_WHERE}"
    " AND le.seq < (SELECT size FROM logs WHERE log_id = :log_id){blob}"
)
RECORD_AT = sa.text(_RECORD_AT.format(blob=""))
"""A record by its sequence: its entry by the primary key, its event row by the entry's."""
RECORD_AT_SQLITE = sa.text(
    _RECORD_AT.format(blob=" AND typeof(le.leaf_hash) = 'blob' AND typeof(e.canonical) = 'blob'")
)
"""SQLite's: one stored as text is no intact record (as :data:`ERASURE_RECORDS_SQLITE`)."""


NAMING_PAGE = 16
"""Candidate sequences :func:`record_naming` reads from ``erasure_names`` a query: each is
then checked against its record, one at a time, so a page costs nothing past the ids."""


def record_naming(conn: sa.Connection, log_id: str, event_id: str, after: int) -> int | None:
    """The sequence of the latest intact record after ``after`` naming the event, or None.

    Candidates come from ``erasure_names`` (an index the record's transaction
    writes), each checked against the record itself: its entry within the head,
    its bytes hashing to the entry's leaf, its ids naming the event. A row
    pointing at anything else is skipped (``verify`` names it). Reading every
    record after the event instead cost up to ~1.3 MB each (review, 2026-12-07).
    """
    query = RECORD_AT_SQLITE if conn.dialect.name == "sqlite" else RECORD_AT
    before = 2**63 - 1
    while True:
        params = {"log_id": log_id, "event_id": event_id, "after": after, "before": before}
        page = conn.execute(_NAMING, {**params, "page": NAMING_PAGE})
        seqs = [int(r) for r in page.scalars()]
        for seq in seqs:
            row = conn.execute(query, {"log_id": log_id, "seq": seq}).first()
            if row is None or canonical.leaf_hash(bytes(row[0])) != bytes(row[1]):
                continue
            record = erasure.read_record(bytes(row[0]))
            if record is not None and event_id in record.ids:
                return seq
        if len(seqs) < NAMING_PAGE:
            return None
        before = seqs[-1]


def content_classification(
    conn: sa.Connection, log_id: str, seq: int, received: dt.datetime
) -> tuple[object, bool] | None:
    """An event's content row's ``data_classification`` and whether the content is ``{}``.

    None without a row (erased). One read by the primary key (``VerifyEvent``).
    """
    ct = event_content.c
    row = conn.execute(
        sa.select(ct.data_classification, ct.content == b"{}").where(
            ct.log_id == log_id, ct.seq == seq, ct.receive_time == received
        )
    ).first()
    return None if row is None else (row[0], bool(row[1]))


def received_since(
    conn: sa.Connection, log_id: str, seq: int, since: dt.datetime, most: int
) -> tuple[int, dt.datetime] | None:
    """The first of the ``most`` entries before ``seq`` received at or after ``since``.

    (Sequence, receive time), or None: one range of the entries' primary key, bounded.
    """
    le = log_entries.c
    row = conn.execute(
        sa.select(le.seq, le.receive_time)
        .where(
            le.log_id == log_id,
            le.seq >= max(seq - most, 0),
            le.seq < seq,
            le.receive_time >= since.astimezone(dt.UTC),
        )
        .order_by(le.seq)
        .limit(1)
    ).first()
    if row is None:
        return None
    at = row[1] if row[1].tzinfo else row[1].replace(tzinfo=dt.UTC)
    return int(row[0]), at


def has_content_commitments(committed: bytes) -> bool:
    """Whether the canonical form commits to content (an event without any has none to lose)."""
    return _COMMITMENT in committed
