"""The embedded backend: one SQLite file with an FTS5 index (no servers).

The index is derived data, so it lives in its own file (``search.db`` in the
data directory) rather than in the store: indexing never takes the store's
write lock, and the file can be deleted to rebuild it. The indexer's position
per log is kept in the same file and moved in the same transaction as the
documents, so the embedded index is exactly-once even across crashes. A
schema change (``user_version``) drops and rebuilds the index from the log.

A new or rebuilt index is built (:meth:`SqliteFtsBackend.building`): its
first pass takes, per log, the size the log had (``building``), and until a
log's position reaches it the index misses events that the store holds, so
reads of that tenant answer UNAVAILABLE ``INDEX_BUILDING`` instead of a partial
answer. Each log leaves ``building`` in the transaction that moves its position
there; a restart in the middle keeps what is left.

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
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence, Sized
from contextlib import contextmanager
from pathlib import Path

from aiaudit.common.store.private_files import private_sqlite_file
from aiaudit.search import catalogue, translate_sql
from aiaudit.search.backends.base import (
    GROUPS,
    MAX_BUCKETS,
    TIME_BUCKETS,
    AggregateSpec,
    Aggregation,
    Bucket,
    GroupKey,
    Hit,
    Page,
    SearchSpec,
    Stats,
    TooManyBucketsError,
)
from aiaudit.search.catalogue import Kind
from aiaudit.search.document import Document
from aiaudit.search.language import Node, Text, matched_texts

log = logging.getLogger(__name__)

SCHEMA_VERSION = 5
"""4: booleans in ``entries.bool``; as the text "true"/"false" they were one with that text.
5: an attribute or trust signal holding ``""`` has its entry (``attributes.k:*`` finds it)."""
_SQL_TYPES = {
    Kind.KEYWORD: "TEXT",
    Kind.ENUM: "TEXT",
    Kind.INT: "INTEGER",
    Kind.TIMESTAMP: "INTEGER",
    Kind.FLOAT: "REAL",
    Kind.DURATION: "REAL",
}
_TEXT_COLUMNS = [f.column for f in catalogue.TEXTS]
_TOKENIZE = "unicode61 remove_diacritics 0"
_SCALAR_COLUMNS = [f.column for f in catalogue.SCALARS]


def _schema() -> list[str]:
    columns = ", ".join(f"{f.column} {_SQL_TYPES[f.kind]}" for f in catalogue.SCALARS)
    return [
        f"CREATE TABLE docs (id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, {columns}, "
        "revision INTEGER NOT NULL, UNIQUE (tenant_id, event_id))",
        "CREATE INDEX docs_sequence ON docs (tenant_id, sequence)",
        "CREATE INDEX docs_time ON docs (tenant_id, occurred_time, sequence)",
        *_ORDERED_INDEXES,
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
        f"tokenize = '{_TOKENIZE}')",
        "CREATE TABLE positions (log_id TEXT PRIMARY KEY, position INTEGER NOT NULL)",
        f"PRAGMA user_version = {SCHEMA_VERSION}",
    ]


_ORDERED_INDEXES = [
    "CREATE INDEX IF NOT EXISTS docs_user_time "
    "ON docs (tenant_id, actor__user_id, occurred_time, sequence)",
    "CREATE INDEX IF NOT EXISTS docs_model_time "
    "ON docs (tenant_id, model__name, occurred_time, sequence)",
]
"""A user's or a model's documents in the default order (time, then sequence), so a page of
``actor.user_id = "u"`` reads its 50 rows. Without ``sequence`` (until 2026-12-06:
``docs_user``, ``docs_model``) the order was not the index's, and SQLite walked the tenant's
every document in time order for the few of the user: 12 ms a page on a 30,000-event log
(0.05 ms so), and 13 ms with a phrase too. Not in the schema's version (no rebuild): a file
made before them gets them at open, and loses the old two (:data:`_OLD_INDEXES`)."""
_OLD_INDEXES = ["DROP INDEX IF EXISTS docs_user", "DROP INDEX IF EXISTS docs_model"]

_BUILD_TABLES = [
    "CREATE TABLE IF NOT EXISTS building (log_id TEXT PRIMARY KEY, target INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS build_unplanned (since INTEGER NOT NULL)",
]
"""The index's first build: per log, the size it must reach before that log's reads are
whole (``building``); a row in ``build_unplanned``: the index is new or rebuilt and those
sizes are not taken yet. Not in the schema's version: a file of schema 5 made before them
gets them empty (built: until 2026-12-06 nothing told a build apart)."""


HIGHLIGHT_WORK = 1_000_000
"""Bound on one field's snippet work: its matches * (the event's matches + its sentences / 8).

FTS5's snippet() scores a window at every match of the field by walking
every match of the event, and the sentence starts before it: 1,000 matches
in one field took 13 ms, 8,000 took 660 ms, 60,000 (a prompt of 120 KB)
40 s. The product is bounded instead, so a page's highlighting stays
linear in its text whatever a gateway sent: 1,000,000 allows 1,000 matches
in a field (about 15 ms). A field over it is returned without highlights,
as OpenSearch returns none past HIGHLIGHT_CHARS.
"""
_SENTENCE_COST = 8
"""Sentence starts walked per match walked, in snippet()'s time (measured: ~1.2 ns vs ~10 ns)."""


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
            self._rebuild(conn, version)
        for statement in [*_BUILD_TABLES, *_ORDERED_INDEXES, *_OLD_INDEXES]:
            conn.execute(statement)
        self._truncate_wal()  # a crash may have left an erasure's old pages in the WAL

    def _rebuild(self, conn: sqlite3.Connection, version: int) -> None:
        """Drops an index of another schema (one transaction) and creates this one, empty.

        The indexer then indexes every log again from the store, as into a new
        file; both are built (:meth:`building`: until a log is indexed again its
        reads answer UNAVAILABLE ``INDEX_BUILDING``). Dropping takes time in the
        index's size (``secure_delete`` zeroes every freed page: about 6 ms per
        MB), before the service serves: it is said at WARNING, with what the
        rebuild means for reads, and how long it took (until 2026-12-06 nothing
        said it, and searches found only what was indexed again since).
        Interrupted, nothing is dropped (and the build is planned again).
        """
        if version != 0:  # 0: a new file
            log.warning(
                "search index %s has schema %d, this version needs %d: dropping it (%d MB) "
                "and indexing every log again from the store; until a tenant's log is "
                "indexed again its searches, aggregates and exports answer UNAVAILABLE "
                "INDEX_BUILDING (not what is indexed so far)",
                self._path,
                version,
                SCHEMA_VERSION,
                self._path.stat().st_size // 1_000_000,
            )
        started = time.monotonic()
        conn.execute("BEGIN IMMEDIATE")
        for name in ("docs", "entries", "texts", "positions", "building", "build_unplanned"):
            conn.execute(f"DROP TABLE IF EXISTS {name}")
        for statement in [*_schema(), *_BUILD_TABLES]:
            conn.execute(statement)
        # Built from the log from now on: until each log is indexed again, reads of it miss events.
        conn.execute("INSERT INTO build_unplanned (since) VALUES (?)", (time.time_ns() // 1000,))
        conn.execute("COMMIT")
        if version != 0:
            log.warning(
                "search index %s dropped in %.1f s; the indexer rebuilds it",
                self._path,
                time.monotonic() - started,
            )

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

    def building(self) -> dict[str, int] | None:
        """Per log still being built, the position it must reach; None: not yet planned.

        A new or rebuilt file is unplanned until :meth:`begin_building`.
        """
        conn = self._conn()
        if conn.execute("SELECT 1 FROM build_unplanned").fetchone() is not None:
            return None
        rows = conn.execute("SELECT log_id, target FROM building").fetchall()
        return {log_id: int(target) for log_id, target in rows}

    def begin_building(self, sizes: dict[str, int]) -> dict[str, int]:
        """Plans a new or rebuilt index's build from the store's log ``sizes``.

        Each log holding entries past its position must reach its size. Once
        only: later calls answer :meth:`building` as it is.
        """
        with self._write_lock, self._transaction() as conn:
            if conn.execute("SELECT 1 FROM build_unplanned").fetchone() is not None:
                indexed = dict(conn.execute("SELECT log_id, position FROM positions").fetchall())
                conn.executemany(
                    "INSERT OR REPLACE INTO building (log_id, target) VALUES (?, ?)",
                    [(k, n) for k, n in sizes.items() if n > indexed.get(k, 0)],
                )
                conn.execute("DELETE FROM build_unplanned")
        built = self.building()
        assert built is not None
        return built

    def erasures_applied(self) -> dict[str, int]:
        """None: the index is this process's own, and its indexer always leads."""
        return {}

    def record_erasures_applied(self, log_id: str, applied: int) -> None:
        """Nothing: no other replica reads this process's index."""

    def holds(self) -> dict[str, int]:
        """None: the index is this process's own, and its indexer always leads."""
        return {}

    def record_held(self, log_id: str, sequence: int) -> None:
        """Nothing: no other replica reads this process's index."""

    def record_mended(self, log_id: str, sequence: int) -> None:
        """Nothing: no other replica reads this process's index."""

    def write(
        self,
        log_id: str,
        docs: Sequence[Document],
        new_position: int,
        gone: Sequence[Document] = (),
        erasing: bool = False,
        visible: bool = False,
    ) -> None:
        """Replaces each document (by tenant and event id), removes ``gone``, moves the position.

        One transaction (the log's build ends in it when the position reaches its
        target: :meth:`building`). As on OpenSearch, a document holding the same or a later
        revision stays. ``erasing``: the same transaction also merges the FTS5
        index into one segment, so no deleted entry keeps the replaced text,
        and the WAL is truncated after it. Visible once committed (``visible`` changes nothing).
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
            conn.execute(  # this log is built once its position reaches its target
                "DELETE FROM building WHERE log_id = ? AND target <= ?", (log_id, new_position)
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
        """Snippets of the hits' fields that match, each within HIGHLIGHT_WORK (one SELECT)."""
        expression = translate_sql.highlight_expression(node)
        if expression is None or not ids:
            return {}
        wanted = self._snippets_wanted(conn, matched_texts(node), ids)
        rows = sorted(set().union(*wanted))
        if not rows:
            return {}
        columns, params = [], []
        for i, chosen in enumerate(wanted):
            snippet = f"snippet(texts, {i}, char(1), char(2), '...', 24)"
            if not chosen:
                snippet = "NULL"
            elif len(chosen) < len(rows):  # else snippet() as such: no CASE on ordinary pages
                snippet = f"CASE WHEN rowid IN ({_marks(chosen)}) THEN {snippet} END"
                params += sorted(chosen)
            columns.append(snippet)
        out: dict[int, dict[str, list[str]]] = {}
        for row in conn.execute(
            f"SELECT rowid, {', '.join(columns)} FROM texts "
            f"WHERE texts MATCH ? AND rowid IN ({_marks(rows)})",
            [*params, expression, *rows],
        ):
            marked = (
                (f.name, _marked(fragment))
                for f, fragment in zip(catalogue.TEXTS, row[1:], strict=True)
                if fragment and "\x01" in fragment
            )
            found = {name: [fragment] for name, fragment in marked if "<em>" in fragment}
            out[row[0]] = found
        return out

    def _snippets_wanted(
        self, conn: sqlite3.Connection, phrases: list[Text], ids: list[int]
    ) -> list[set[int]]:
        """Per text column, the hits to call snippet() on: some match, within HIGHLIGHT_WORK.

        The matches are bounded first, each step only where the one before
        could not clear the hit, all in time linear in the text: a phrase
        matches at most once per token (FTS5 keeps each field's token count
        in its docsize table: most hits stop there, their text unread); then,
        largest field first, at most the substring counts of its tokens in the
        casefolded text (FTS5 folds no two characters together that casefold
        keeps apart: checked for every code point on SQLite 3.40); then
        FTS5's own count (a long text with a hundred "is" has many more inside
        words). A field without matches gets no snippet() call.
        """
        tokenizer = self._tokenizer()
        tokens = [tokenizer.tokens(p.phrase) for p in phrases]
        keys = [
            [t for p, t in zip(phrases, tokens, strict=True) if f.name in p.fields]
            for f in catalogue.TEXTS
        ]
        folded_keys = [[tuple(k.casefold() for k in t) for t in column] for column in keys]
        phrase_counts = [len(column) for column in keys]
        widest = max(phrase_counts)
        wanted: list[set[int]] = [set() for _ in _TEXT_COLUMNS]
        unclear: dict[int, tuple[list[int], list[int]]] = {}
        for rowid, sz in conn.execute(
            f"SELECT id, sz FROM texts_docsize WHERE id IN ({_marks(ids)})", ids
        ):
            sizes = _varints(sz)
            most = widest * sum(sizes)  # at least the event's matches, and each column's
            if most * (most + max(sizes) // _SENTENCE_COST) <= HIGHLIGHT_WORK:
                chosen: list[bool | None] = [
                    n > 0 and size > 0 for n, size in zip(phrase_counts, sizes, strict=True)
                ]
            else:
                bound = [n * size for n, size in zip(phrase_counts, sizes, strict=True)]
                if None in (chosen := _affordable(bound, sizes)):
                    unclear[rowid] = (bound, sizes)
                    continue
            for column_rows, ok in zip(wanted, chosen, strict=True):
                if ok:
                    column_rows.add(rowid)
        if not unclear:
            return wanted
        for rowid, *values in conn.execute(
            f"SELECT rowid, {', '.join(_TEXT_COLUMNS)} FROM texts WHERE rowid IN "
            f"({_marks(unclear)})",
            list(unclear),
        ):
            texts = [v or "" for v in values]
            bound, sentences = unclear[rowid]
            chosen = _affordable(bound, sentences)
            for i in sorted(range(len(texts)), key=lambda i: -sentences[i]):  # largest first
                if None not in chosen:
                    break
                if bound[i]:
                    bound[i] = _matches(texts[i].casefold().count, folded_keys[i])
                    chosen = _affordable(bound, sentences)
            if None in chosen:
                sentences = [min(n, _sentences(t)) for n, t in zip(sentences, texts, strict=True)]
                chosen = _affordable(bound, sentences)
            if None in chosen:
                counts = tokenizer.counts(texts)
                exact = [
                    _matches(lambda k: c.get(k, 0), column)  # noqa: B023 (used at once)
                    for c, column in zip(counts, keys, strict=True)
                ]
                chosen = _affordable(exact, sentences)
            for column_rows, ok in zip(wanted, chosen, strict=True):
                if ok:
                    column_rows.add(rowid)
        return wanted

    def _tokenizer(self) -> _Tokenizer:
        tokenizer: _Tokenizer | None = getattr(self._local, "tokenizer", None)
        if tokenizer is None:
            tokenizer = self._local.tokenizer = _Tokenizer()
            with self._registry_lock:
                self._opened.append(tokenizer.conn)
        return tokenizer

    def aggregate(self, spec: AggregateSpec) -> Aggregation:
        """GROUP BY with SQL statistics; exact percentiles by rank with window functions."""
        conn = self._conn()
        params: list[object] = []
        where = self._where(spec.tenant, spec.where, params)
        if spec.below_sequence is not None:
            where += " AND d.sequence < ?"
            params.append(spec.below_sequence)
        groups = [f"d.{f.column}" for f in spec.group_by]
        select = [*groups, "COUNT(*)"]
        for m in spec.metrics:
            c = f"d.{m.column}"
            select += [f"COUNT({c})", f"MIN({c})", f"MAX({c})", f"AVG({c})", f"TOTAL({c})"]
        group_sql = f" GROUP BY {', '.join(groups)}" if groups else ""
        in_page, page_params = where, list(params)
        if spec.page_size and groups:  # keyset over the groups' keys, NULL (missing) first
            order_sql = f" ORDER BY {', '.join(groups)}"
            limit = spec.page_size + 1
            if spec.after is not None:
                in_page += " AND " + _after_group(groups, spec.after, page_params)
        else:
            order_sql = f" ORDER BY COUNT(*) DESC, {', '.join(groups)}" if groups else ""
            limit = MAX_BUCKETS + 1
        rows = conn.execute(
            f"SELECT {', '.join(select)} FROM docs d WHERE {in_page}{group_sql}{order_sql} "
            f"LIMIT {limit}",
            page_params,
        ).fetchall()
        if len(rows) > MAX_BUCKETS and not spec.page_size:
            raise TooManyBucketsError(f"more than {MAX_BUCKETS} groups", GROUPS)
        n = len(groups)
        orders = [tuple(None if v is None else str(v) for v in row[:n]) for row in rows]
        if spec.page_size and groups and rows:  # the percentiles of this page's groups only
            in_page += " AND NOT " + _after_group(groups, orders[-1], page_params)
        percentiles = self._percentiles(conn, spec, in_page, page_params)
        buckets = []
        for row, order in zip(rows, orders, strict=True):
            keys = tuple("" if v is None else v for v in order)
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
            buckets.append(Bucket(keys, int(row[n]), stats, order))
        time_buckets: list[tuple[int, int]] = []
        if spec.interval_seconds:
            width = spec.interval_seconds * 1_000_000
            found = conn.execute(
                f"SELECT (d.occurred_time / {width}) * {width} AS b, COUNT(*) FROM docs d "
                f"WHERE {where} GROUP BY b ORDER BY b LIMIT {MAX_BUCKETS + 1}",
                params,
            ).fetchall()
            if len(found) > MAX_BUCKETS:
                raise TooManyBucketsError(
                    f"more than {MAX_BUCKETS} histogram buckets", TIME_BUCKETS
                )
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


def _after_group(columns: list[str], after: GroupKey, params: list[object]) -> str:
    """SQL true of the rows whose group comes after ``after`` in ``ORDER BY columns``.

    SQLite orders NULL (a missing value) first; never NULL itself, so its NOT is the
    rows up to that group.
    """
    ors = []
    for i, value in enumerate(after):
        parts = [f"{c} IS ?" for c in columns[:i]]
        params.extend(after[:i])
        if value is None:
            parts.append(f"{columns[i]} IS NOT NULL")
        else:
            parts.append(f"({columns[i]} IS NOT NULL AND {columns[i]} > ?)")
            params.append(value)
        ors.append(" AND ".join(parts))
    return "(" + " OR ".join(f"({o})" for o in ors) + ")"


class _Tokenizer:
    """The index's tokenizer on an in-memory FTS5 table: tokens and counts as FTS5 sees them.

    Each use is rolled back, so no prompt text stays in it (nor reaches a file).
    """

    def __init__(self) -> None:
        self.conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        columns = ", ".join(_TEXT_COLUMNS)
        self.conn.execute(f"CREATE VIRTUAL TABLE t USING fts5({columns}, tokenize = '{_TOKENIZE}')")
        self.conn.execute("CREATE VIRTUAL TABLE t_instances USING fts5vocab(t, instance)")
        self.conn.execute("CREATE VIRTUAL TABLE t_columns USING fts5vocab(t, col)")

    def tokens(self, phrase: str) -> tuple[str, ...]:
        """The phrase's tokens, folded (ASCII: letters and digits, lower-cased, as FTS5 does)."""
        if phrase.isascii():
            return tuple(_ASCII_TOKEN.findall(phrase.lower()))
        with self._scratch():
            self.conn.execute(f"INSERT INTO t ({_TEXT_COLUMNS[0]}) VALUES (?)", (phrase,))
            found = self.conn.execute("SELECT offset, term FROM t_instances").fetchall()
        return tuple(term for _, term in sorted(found))

    def counts(self, texts: Sequence[str]) -> list[dict[str, int]]:
        """Per text column, how many times each token occurs in it."""
        out: list[dict[str, int]] = [{} for _ in _TEXT_COLUMNS]
        marks = ", ".join("?" for _ in _TEXT_COLUMNS)
        with self._scratch():
            self.conn.execute(f"INSERT INTO t VALUES ({marks})", texts)
            for term, column, count in self.conn.execute("SELECT term, col, cnt FROM t_columns"):
                out[_TEXT_COLUMNS.index(column)][term] = count
        return out

    @contextmanager
    def _scratch(self) -> Iterator[None]:
        """A transaction rolled back: the table is empty again after each use."""
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.conn.execute("ROLLBACK")


_ASCII_TOKEN = re.compile("[a-z0-9]+")


def _marks(values: Sized) -> str:
    return ", ".join("?" for _ in range(len(values)))


def _matches(count: Callable[[str], int], phrases: list[tuple[str, ...]]) -> int:
    """At most the instances of the phrases: each its least frequent token's count."""
    return sum(min(map(count, tokens)) if tokens else 0 for tokens in phrases)


def _affordable(matches: list[int], sentences: list[int]) -> list[bool | None]:
    """Per column: a match within HIGHLIGHT_WORK (True), none (False), or over it (None).

    ``sentences``: at most the sentence starts of each column.
    """
    event = sum(matches)
    return [
        (n * (event + s // _SENTENCE_COST) <= HIGHLIGHT_WORK or None) if n else False
        for n, s in zip(matches, sentences, strict=True)
    ]


def _sentences(text: str) -> int:
    """At most the sentence starts snippet() finds: a token after '.' or ':' and whitespace."""
    return 1 + sum(text.count(stop + space) for stop in ".:" for space in " \t\n\r")


def _varints(blob: bytes) -> list[int]:
    """The integers of an FTS5 docsize record (SQLite varints: 7 bits a byte, high bit: more)."""
    out, value = [], 0
    for byte in blob:
        value = value << 7 | byte & 0x7F
        if byte < 0x80:
            out.append(value)
            value = 0
    return out


def _marked(fragment: str) -> str:
    """The fragment HTML-escaped, matches wrapped in ``<em>``: prompt text is no markup.

    SQLite marks matches with U+0001 and U+0002; escaping comes first, so a
    literal one in a prompt can only be taken for a mark, and only the marks
    paired as snippet() writes them become tags (:func:`_paired`). The
    characters escaped are OpenSearch's ``html`` encoder's (quotes and ``/``
    too), so both backends return the same fragment.
    """
    return _paired(html.escape(fragment, quote=True).replace("/", "&#x2F;"))


_MARKS = re.compile("[\x01\x02]")


def _paired(escaped: str) -> str:
    """``escaped`` with snippet()'s marks as tags, and the prompt's own U+0001/U+0002 dropped.

    snippet() opens and closes each match in turn, never two opens running: an
    open followed by another open, or by no close, and a close with no open,
    are the prompt's (a control character, which shows nothing). One inside a
    phrase's match can shorten that match's mark, never unpair a tag: they were
    an ``</em>`` opened by nothing and an ``<em>`` left open (review, 2026-12-07).
    """
    out: list[str] = []
    opened = -1  # where the open tag stands in ``out`` while a match is open
    at = 0
    for mark in _MARKS.finditer(escaped):
        out.append(escaped[at : mark.start()])
        at = mark.end()
        if mark.group() == "\x01":
            if opened >= 0:
                out[opened] = ""
            opened = len(out)
            out.append("<em>")
        elif opened >= 0:
            out.append("</em>")
            opened = -1
    out.append(escaped[at:])
    if opened >= 0:
        out[opened] = ""
    return "".join(out)


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
