"""The embedded backend: one SQLite file with an FTS5 index (no servers).

The index is derived data, so it lives in its own file (``search.db`` in the
data directory) rather than in the store: indexing never takes the store's
write lock, and the file can be deleted to rebuild it. The indexer's position
per log is kept in the same file and moved in the same transaction as the
documents, so the embedded index is exactly-once even across crashes. A
schema change (``user_version``) drops and rebuilds the index from the log.

Erasure: FTS5 keeps the text of a deleted row in its index segments (the
deleted entries stay until segments merge), SQLite keeps deleted cells and
freed pages as they were, and the WAL keeps old page images. So every
connection runs with ``secure_delete`` (deleted content and freed pages are
zeroed), a write carrying erasures also merges the FTS5 index into one
segment in its transaction ('optimize': FTS5 drops deleted entries only when
it merges into the oldest segment; SQLite 3.40 has no FTS5 ``secure-delete``),
and then checkpoints the WAL and truncates it to zero bytes.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from aiaudit.common.store.private_files import private_sqlite_file
from aiaudit.search import catalogue, translate_sql
from aiaudit.search.backends.base import (
    MAX_BUCKETS,
    AggregateSpec,
    Aggregation,
    Bucket,
    Hit,
    Page,
    SearchSpec,
    Stats,
    TooManyBucketsError,
)
from aiaudit.search.catalogue import Kind
from aiaudit.search.document import Document
from aiaudit.search.language import Node

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4
"""4: booleans in ``entries.bool``; as the text "true"/"false" they were one with that text."""
_SQL_TYPES = {
    Kind.KEYWORD: "TEXT",
    Kind.ENUM: "TEXT",
    Kind.INT: "INTEGER",
    Kind.TIMESTAMP: "INTEGER",
    Kind.FLOAT: "REAL",
    Kind.DURATION: "REAL",
}
_TEXT_COLUMNS = [f.column for f in catalogue.TEXTS]
_SCALAR_COLUMNS = [f.column for f in catalogue.SCALARS]


def _schema() -> list[str]:
    columns = ", ".join(f"{f.column} {_SQL_TYPES[f.kind]}" for f in catalogue.SCALARS)
    return [
        f"CREATE TABLE docs (id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, {columns}, "
        "revision INTEGER NOT NULL, UNIQUE (tenant_id, event_id))",
        "CREATE INDEX docs_sequence ON docs (tenant_id, sequence)",
        "CREATE INDEX docs_time ON docs (tenant_id, occurred_time, sequence)",
        "CREATE INDEX docs_user ON docs (tenant_id, actor__user_id, occurred_time)",
        "CREATE INDEX docs_model ON docs (tenant_id, model__name, occurred_time)",
        # NUMERIC keeps a 64-bit integer exact (REAL made it a double); SQLite
        # compares integers and doubles by value.
        # One of str, num, bool per row: a boolean is no text, "true" no boolean.
        "CREATE TABLE entries (doc INTEGER NOT NULL, field TEXT NOT NULL, str TEXT, num NUMERIC, "
        "bool INTEGER)",
        "CREATE INDEX entries_str ON entries (field, str, doc)",
        "CREATE INDEX entries_num ON entries (field, num, doc)",
        "CREATE INDEX entries_bool ON entries (field, bool, doc) WHERE bool IS NOT NULL",
        "CREATE INDEX entries_doc ON entries (doc)",
        f"CREATE VIRTUAL TABLE texts USING fts5({', '.join(_TEXT_COLUMNS)}, "
        "tokenize = 'unicode61 remove_diacritics 0')",
        "CREATE TABLE positions (log_id TEXT PRIMARY KEY, position INTEGER NOT NULL)",
        f"PRAGMA user_version = {SCHEMA_VERSION}",
    ]


class SqliteFtsBackend:
    """Documents, entries and FTS5 texts in one SQLite file."""

    name = "sqlite"
    visible_on_write = True

    def __init__(self, path: Path) -> None:
        """Opens (creating or rebuilding) the index file."""
        self._path = path
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._registry_lock = threading.Lock()
        self._opened: list[sqlite3.Connection] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        private_sqlite_file(path)  # it holds prompts and responses as plain text: 0600
        conn = self._conn()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")
            for name in ("docs", "entries", "texts", "positions"):
                conn.execute(f"DROP TABLE IF EXISTS {name}")
            for statement in _schema():
                conn.execute(statement)
            conn.execute("COMMIT")
        self._truncate_wal()  # a crash may have left an erasure's old pages in the WAL

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute("PRAGMA secure_delete=ON")  # erased text never lingers in free space
            self._local.conn = conn
            with self._registry_lock:
                self._opened.append(conn)
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        """Closes every connection opened by any thread."""
        with self._registry_lock:
            for conn in self._opened:
                conn.close()
            self._opened = []
        self._local = threading.local()

    def positions(self) -> dict[str, int]:
        """Entries indexed per log."""
        rows = self._conn().execute("SELECT log_id, position FROM positions").fetchall()
        return {log_id: int(p) for log_id, p in rows}

    def write(
        self,
        log_id: str,
        docs: Sequence[Document],
        new_position: int,
        gone: Sequence[Document] = (),
        erasing: bool = False,
    ) -> None:
        """Replaces each document (by tenant and event id), removes ``gone``, moves the position.

        One transaction. As on OpenSearch, a document holding the same or a later
        revision stays. ``erasing``: the same transaction also merges the FTS5
        index into one segment, so no deleted entry keeps the replaced text,
        and the WAL is truncated after it.
        """
        marks = ", ".join("?" for _ in range(len(_SCALAR_COLUMNS) + 2))
        insert_doc = (
            f"INSERT INTO docs (tenant_id, {', '.join(_SCALAR_COLUMNS)}, revision) VALUES ({marks})"
        )
        insert_text = f"INSERT INTO texts (rowid, {', '.join(_TEXT_COLUMNS)}) VALUES (?, ?, ?, ?)"
        with self._write_lock, self._transaction() as conn:
            for doc in gone:
                _delete(conn, doc)
            for doc in docs:
                if not _delete(conn, doc):
                    continue
                values = [doc.scalars.get(f.name) for f in catalogue.SCALARS]
                rowid = conn.execute(insert_doc, (doc.tenant_id, *values, doc.revision)).lastrowid
                conn.executemany(
                    "INSERT INTO entries (doc, field, str, num, bool) VALUES (?, ?, ?, ?, ?)",
                    [(rowid, e.field, e.str_value, e.num_value, e.bool_value) for e in doc.entries],
                )
                if doc.texts:
                    texts = [doc.texts.get(f.name, "") for f in catalogue.TEXTS]
                    conn.execute(insert_text, (rowid, *texts))
            conn.execute(
                "INSERT INTO positions (log_id, position) VALUES (?, ?) ON CONFLICT (log_id) "
                "DO UPDATE SET position = max(position, excluded.position)",
                (log_id, new_position),
            )
            if erasing:
                conn.execute("INSERT INTO texts (texts) VALUES ('optimize')")
        if erasing:
            self._truncate_wal()

    def _truncate_wal(self) -> None:
        """Copies the WAL into the file and empties it, so no old page image keeps erased text.

        Waits (``busy_timeout``) for readers of older snapshots; one still busy
        then leaves the WAL as it is until the next erasure or start.
        """
        busy = self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        if busy:
            log.warning(
                "search index WAL not truncated (readers busy): until the next erasure or start"
            )

    def retain(self, retention_days: int, now: dt.datetime) -> list[str]:
        """Deletes the documents that occurred more than ``retention_days`` ago.

        Returns ``["<n> documents"]`` when any were deleted (the embedded
        index has no months to drop, so it is exact to the microsecond). Their
        text leaves the files as an erased one does: FTS5 segments merged, the
        WAL truncated.
        """
        cutoff = now - dt.timedelta(days=retention_days)
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        before = (cutoff - epoch) // dt.timedelta(microseconds=1)
        old = "SELECT id FROM docs WHERE occurred_time < ?"
        with self._write_lock, self._transaction() as conn:
            conn.execute(f"DELETE FROM entries WHERE doc IN ({old})", (before,))
            conn.execute(f"DELETE FROM texts WHERE rowid IN ({old})", (before,))
            deleted = conn.execute("DELETE FROM docs WHERE occurred_time < ?", (before,)).rowcount
            if deleted:
                conn.execute("INSERT INTO texts (texts) VALUES ('optimize')")
        if not deleted:
            return []
        self._truncate_wal()
        return [f"{deleted} documents"]

    def make_visible(self) -> None:
        """Committed rows are visible already."""

    def _where(self, tenant: str, node: Node | None, params: list[object]) -> str:
        params.append(tenant)
        sql = "d.tenant_id = ?"
        if node is not None:
            sql += " AND " + translate_sql.where(node, params)
        return sql

    def search(self, spec: SearchSpec) -> Page:
        """Keyset pagination over ``order`` (which always ends with ``sequence``)."""
        params: list[object] = []
        where = self._where(spec.tenant, spec.where, params)
        if spec.below_sequence is not None:
            where += " AND d.sequence < ?"
            params.append(spec.below_sequence)
        conn = self._conn()
        total = -1
        if spec.count:
            total = conn.execute(f"SELECT COUNT(*) FROM docs d WHERE {where}", params).fetchone()[0]
        if spec.after is not None:
            ors = []
            for i, key in enumerate(spec.order):
                parts = [f"d.{k.field.column} = ?" for k in spec.order[:i]]
                parts.append(f"d.{key.field.column} {'<' if key.descending else '>'} ?")
                params += [*spec.after[:i], spec.after[i]]
                ors.append("(" + " AND ".join(parts) + ")")
            where += " AND (" + " OR ".join(ors) + ")"
        order = ", ".join(
            f"d.{k.field.column} {'DESC' if k.descending else 'ASC'}" for k in spec.order
        )
        columns = ", ".join(f"d.{k.field.column}" for k in spec.order)
        rows = conn.execute(
            f"SELECT d.id, d.sequence, {columns} FROM docs d WHERE {where} "
            f"ORDER BY {order} LIMIT ?",
            [*params, spec.limit],
        ).fetchall()
        marks = self._highlights(conn, spec.where, [r[0] for r in rows]) if spec.highlight else {}
        hits = [Hit(int(r[1]), tuple(int(v) for v in r[2:]), marks.get(r[0], {})) for r in rows]
        return Page(hits, total if total >= 0 else len(hits))

    def _highlights(
        self, conn: sqlite3.Connection, node: Node | None, ids: list[int]
    ) -> dict[int, dict[str, list[str]]]:
        expression = translate_sql.highlight_expression(node)
        if expression is None or not ids:
            return {}
        snippets = ", ".join(
            f"snippet(texts, {i}, char(1), char(2), '...', 24)" for i in range(len(_TEXT_COLUMNS))
        )
        marks = ", ".join("?" for _ in ids)
        out: dict[int, dict[str, list[str]]] = {}
        for row in conn.execute(
            f"SELECT rowid, {snippets} FROM texts WHERE texts MATCH ? AND rowid IN ({marks})",
            [expression, *ids],
        ):
            found = {
                f.name: [_marked(fragment)]
                for f, fragment in zip(catalogue.TEXTS, row[1:], strict=True)
                if fragment and "\x01" in fragment
            }
            out[row[0]] = found
        return out

    def aggregate(self, spec: AggregateSpec) -> Aggregation:
        """GROUP BY with SQL statistics; exact percentiles by rank with window functions."""
        conn = self._conn()
        params: list[object] = []
        where = self._where(spec.tenant, spec.where, params)
        groups = [f"d.{f.column}" for f in spec.group_by]
        select = [*groups, "COUNT(*)"]
        for m in spec.metrics:
            c = f"d.{m.column}"
            select += [f"COUNT({c})", f"MIN({c})", f"MAX({c})", f"AVG({c})", f"TOTAL({c})"]
        group_sql = f" GROUP BY {', '.join(groups)}" if groups else ""
        order_sql = f" ORDER BY COUNT(*) DESC, {', '.join(groups)}" if groups else ""
        rows = conn.execute(
            f"SELECT {', '.join(select)} FROM docs d WHERE {where}{group_sql}{order_sql} "
            f"LIMIT {MAX_BUCKETS + 1}",
            params,
        ).fetchall()
        if len(rows) > MAX_BUCKETS:
            raise TooManyBucketsError(f"more than {MAX_BUCKETS} groups")
        n = len(groups)
        percentiles = self._percentiles(conn, spec, where, params)
        buckets = []
        for row in rows:
            keys = tuple("" if v is None else str(v) for v in row[:n])
            if not groups and row[n] == 0:
                continue
            stats = {}
            for i, m in enumerate(spec.metrics):
                count, lo, hi, avg, total = row[n + 1 + 5 * i : n + 6 + 5 * i]
                if count:
                    stats[m.name] = Stats(
                        int(count),
                        float(lo),
                        float(hi),
                        float(avg),
                        float(total),
                        percentiles.get((keys, m.name), {}),
                    )
            buckets.append(Bucket(keys, int(row[n]), stats))
        time_buckets: list[tuple[int, int]] = []
        if spec.interval_seconds:
            width = spec.interval_seconds * 1_000_000
            found = conn.execute(
                f"SELECT (d.occurred_time / {width}) * {width} AS b, COUNT(*) FROM docs d "
                f"WHERE {where} GROUP BY b ORDER BY b LIMIT {MAX_BUCKETS + 1}",
                params,
            ).fetchall()
            if len(found) > MAX_BUCKETS:
                raise TooManyBucketsError(f"more than {MAX_BUCKETS} histogram buckets")
            time_buckets = [(int(b), int(c)) for b, c in found]
        return Aggregation(buckets, time_buckets)

    def _percentiles(
        self, conn: sqlite3.Connection, spec: AggregateSpec, where: str, params: list[object]
    ) -> dict[tuple[tuple[str, ...], str], dict[float, float]]:
        """Linear interpolation between the closest ranks (as numpy's default)."""
        out: dict[tuple[tuple[str, ...], str], dict[float, float]] = {}
        if not spec.percentiles:
            return out
        groups = [f"d.{f.column}" for f in spec.group_by]
        partition = f"PARTITION BY {', '.join(groups)} " if groups else ""
        keys = [f"g{i}" for i in range(len(groups))]
        for m in spec.metrics:
            c = f"d.{m.column}"
            named = [f"{g} AS {k}" for g, k in zip(groups, keys, strict=True)]
            ranked = (
                f"SELECT {', '.join([*named, f'{c} AS x'])}, "
                f"ROW_NUMBER() OVER ({partition}ORDER BY {c}) - 1 AS r, "
                f"COUNT(*) OVER ({partition.strip()}) AS n "
                f"FROM docs d WHERE {where} AND {c} IS NOT NULL"
            )
            wanted = " OR ".join(
                f"r = CAST({p / 100.0!r} * (n - 1) AS INTEGER) "
                f"OR r = CAST({p / 100.0!r} * (n - 1) AS INTEGER) + 1"
                for p in spec.percentiles
            )
            values: dict[tuple[str, ...], dict[int, tuple[float, int]]] = {}
            for row in conn.execute(
                f"SELECT {', '.join([*keys, 'r', 'n', 'x'])} FROM ({ranked}) WHERE {wanted}",
                params,
            ):
                group = tuple("" if v is None else str(v) for v in row[: len(keys)])
                r, n, x = row[len(keys) :]
                values.setdefault(group, {})[int(r)] = (float(x), int(n))
            for group, ranks in values.items():
                n = next(iter(ranks.values()))[1]
                result = {}
                for p in spec.percentiles:
                    position = p / 100.0 * (n - 1)
                    low = int(position)
                    lo = ranks[low][0]
                    hi = ranks.get(low + 1, ranks[low])[0]
                    result[p] = lo + (hi - lo) * (position - low)
                out[(group, m.name)] = result
        return out


def _marked(fragment: str) -> str:
    """The fragment HTML-escaped, matches wrapped in ``<em>``: prompt text is no markup.

    SQLite marks matches with U+0001 and U+0002; escaping comes first, so
    even a literal one in a prompt can only turn into an ``<em>`` tag. The
    characters escaped are OpenSearch's ``html`` encoder's (quotes and ``/``
    too), so both backends return the same fragment.
    """
    escaped = html.escape(fragment, quote=True).replace("/", "&#x2F;")
    return escaped.replace("\x01", "<em>").replace("\x02", "</em>")


def _delete(conn: sqlite3.Connection, doc: Document) -> bool:
    """Removes the stored document of ``doc``'s event, unless at ``doc``'s revision or later.

    Returns whether the event has no document now.
    """
    old = conn.execute(
        "SELECT id, revision FROM docs WHERE tenant_id = ? AND event_id = ?",
        (doc.tenant_id, doc.event_id),
    ).fetchone()
    if old is None:
        return True
    if old[1] >= doc.revision:
        return False
    for table, key in (("entries", "doc"), ("texts", "rowid"), ("docs", "id")):
        conn.execute(f"DELETE FROM {table} WHERE {key} = ?", (old[0],))
    return True
