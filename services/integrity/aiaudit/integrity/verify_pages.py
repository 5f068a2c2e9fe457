"""``aiaudit verify --mode leaves`` on PostgreSQL: whole pages of the hash chain at once.

A page (entries ``lo .. hi-1``) is intact when its entries are exactly those
sequences in order, none lies beyond the head, its event rows are exactly
those entries (sequence and receive time), each of its content rows is one
of those entries' (sequence and receive time: erased content has none),
``SHA-256(0x00 || canonical)`` of each event row equals the entry's leaf
hash, and the integrated leaves (a prefix: the notary may lag) are the same.
Then the page yields its leaves for the rebuilt tree, with the stored inner
nodes the page's leaves complete (compared by the caller with the rebuilt
ones); anything else yields None and the caller checks that page row by row,
which names what is wrong.
"""

from __future__ import annotations

import collections
import itertools
import struct
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, NamedTuple

import psycopg
import sqlalchemy as sa

from aiaudit.common.store.sql import pg_rows
from aiaudit.integrity.merkle import HASH_SIZE

_NODES = """
    SELECT array_agg(x.n ORDER BY g.level) AS n, array_agg(x.first ORDER BY g.level) AS first,
           array_agg(x.last ORDER BY g.level) AS last,
           string_agg(x.hashes, ''::bytea ORDER BY g.level) AS hashes
    FROM generate_series(0, 62) AS g(level)
    CROSS JOIN LATERAL (
        SELECT count(*) AS n, min(idx) AS first, max(idx) AS last,
               string_agg(hash, ''::bytea) AS hashes
        FROM integrity_nodes
        WHERE log_id = %(log_id)s AND level = g.level
          AND idx >= (%(lo)s::bigint >> g.level) AND idx < (%(hi)s::bigint >> g.level)
    ) AS x
    WHERE g.level BETWEEN %(bottom)s AND %(top)s
"""
"""The stored nodes whose last leaf is in ``lo .. hi-1``, per level from ``bottom`` to ``top``.

At each level those are the indexes ``lo >> level .. (hi >> level) - 1``: one
index range scan each, which yields them in index order as a rule. Per level their
count, first and last index and hashes, so a caller compares them with the
rebuilt ones in one comparison per level. The levels come from a constant
series: with the bounds as parameters the generic plan guessed 1,000 levels,
and its cost switched on JIT compilation (~70 ms a page, five times the query).
"""

_SAME_AS_ENTRIES = (
    ("v.seqs", "e.seqs"),
    ("v.times", "e.times"),
    ("v.leaves", "e.leaves"),
    ("i.seqs", "substring(e.seqs FROM 1 FOR 8 * i.n::int)"),
    ("i.leaves", f"substring(e.leaves FROM 1 FOR {HASH_SIZE} * i.n::int)"),
    ("c.seqs", "e.seqs"),
    ("c.times", "e.times"),
)
"""The aggregates sent only when they differ from the entries' (or a prefix of them).

Each as two columns: the aggregate, NULL when it ``IS NOT DISTINCT FROM`` the
entries' counterpart, and whether it is; ``check_page`` takes the entries'
then. Byte for byte (``bytea`` equality), so the caller sees the very values
the database aggregated, without ~420 KiB of the ~740 KiB of a page's reply
(the event rows' leaves, times and sequences, the integrated leaves, the
content rows' keys): 8% of the server's time and 15% of a page's (2026-12-06).
"""

_SENT = ", ".join(
    f"CASE WHEN {x} IS NOT DISTINCT FROM {y} THEN NULL ELSE {x} END, {x} IS NOT DISTINCT FROM {y}"
    for x, y in _SAME_AS_ENTRIES
)

_PAGE = f"""
    SELECT e.n, e.seqs, e.times, e.leaves, v.n, i.n, c.n, {_SENT}, t.n, t.first, t.last, t.hashes
    FROM (SELECT count(*) AS n, string_agg(int8send(seq), ''::bytea) AS seqs,
                 string_agg(timestamptz_send(receive_time), ''::bytea) AS times,
                 string_agg(leaf_hash, ''::bytea) AS leaves
          FROM log_entries WHERE log_id = %(log_id)s AND seq >= %(lo)s AND seq < %(hi)s) AS e,
         (SELECT count(*) AS n, string_agg(int8send(seq), ''::bytea) AS seqs,
                 string_agg(timestamptz_send(receive_time), ''::bytea) AS times,
                 string_agg(sha256('\\x00'::bytea || canonical), ''::bytea) AS leaves
          FROM events WHERE log_id = %(log_id)s AND seq >= %(lo)s AND seq < %(hi)s) AS v,
         (SELECT count(*) AS n, string_agg(int8send(idx), ''::bytea) AS seqs,
                 string_agg(hash, ''::bytea) AS leaves
          FROM integrity_nodes
          WHERE log_id = %(log_id)s AND level = 0 AND idx >= %(lo)s AND idx < %(hi)s) AS i,
         (SELECT count(*) AS n, string_agg(int8send(seq), ''::bytea) AS seqs,
                 string_agg(timestamptz_send(receive_time), ''::bytea) AS times
          FROM event_content WHERE log_id = %(log_id)s AND seq >= %(lo)s AND seq < %(hi)s) AS c,
         ({_NODES}) AS t
"""
"""One page in one statement: per table one aggregate over an index range scan.

The entries' leaf hashes, ``SHA-256(0x00 || canonical)`` of the event rows
(computed by the server, so only 32 bytes per event cross the wire) and the
integrated leaves, each concatenated with the sequences (8 bytes big-endian)
and the receive times (8-byte binary form) in the same pass. No ``ORDER BY``
inside the aggregates (a sort per page): both concatenations of a table see
the rows in the same order, and the sequence string says which order that was.
The content rows' sequences and receive times (their primary key's columns),
each of which must be an entry's. Those of the other tables than the entries
as ``_SAME_AS_ENTRIES`` says. Then ``_NODES`` above the leaves.
"""


class StoredLevel(NamedTuple):
    """The stored nodes of one level in an index range: how many rows, first and last index, hashes.

    ``hashes`` is concatenated in the order the database read the rows (index
    order as a rule); a caller that finds it different reads the rows one by one.
    """

    rows: int
    first: int | None
    last: int | None
    hashes: bytes
    as_text: int = 0
    """How many are stored as text (SQLite: rewritten by raw SQL; read as their bytes)."""


class Page(NamedTuple):
    """An intact page: its leaves, and the stored nodes (by level) its leaves complete."""

    leaves: bytes
    nodes: dict[int, StoredLevel]


def check_page(
    conn: psycopg.Connection[Any], log_id: str, lo: int, hi: int, head: int
) -> Page | None:
    """Entries ``lo .. hi-1`` if intact: recomputed leaves and the stored nodes they complete.

    The leaves concatenated; the nodes above the leaves by level (``_NODES``),
    the integrated leaves (a prefix of the page) as level 0.
    """
    params = {"log_id": log_id, "lo": lo, "hi": hi, "bottom": 1, "top": hi.bit_length()}
    with conn.cursor(binary=True) as cur:
        row = cur.execute(_PAGE, params, prepare=True).fetchone()
    assert row is not None
    n, seqs, times, leaves, vn, k, cn, *rest = row
    # _SAME_AS_ENTRIES, in its order: each aggregate, or its entries' counterpart if the same.
    sent = iter(zip(rest[0::2], rest[1::2], strict=False))

    def aggregated(counterpart: Any) -> Any:
        value, same = next(sent)
        return counterpart if same else value

    vseqs, vtimes, computed = aggregated(seqs), aggregated(times), aggregated(leaves)
    iseqs, done = aggregated(_prefix(seqs, 8 * k)), aggregated(_prefix(leaves, HASH_SIZE * k))
    cseqs, ctimes = aggregated(seqs), aggregated(times)
    inner = rest[2 * len(_SAME_AS_ENTRIES) :]
    if not n or lo + n > head or vn != n:
        return None
    expected = struct.pack(f">{n}q", *range(lo, lo + n))  # the sequences in index order
    if seqs == vseqs == expected and (not k or iseqs == expected[: 8 * k]):
        # The rule: every aggregate in sequence order, compared as it came.
        if computed != leaves or times != vtimes or (k and done != leaves[: HASH_SIZE * k]):
            return None
        if len(leaves) != HASH_SIZE * n:
            return None
        if (
            cn
            and not (cseqs == expected and ctimes == times)
            and not _entries_content(lo, n, times, cn, cseqs, ctimes)
        ):
            return None
        return Page(leaves, {0: StoredLevel(k, lo, lo + k - 1, b""), **_levels(1, *inner)})
    entries = _in_order(lo, n, seqs, leaves, HASH_SIZE)
    if entries is None or _in_order(lo, n, vseqs, computed, HASH_SIZE) != entries:
        return None
    entry_times = _in_order(lo, n, seqs, times, 8)
    if entry_times is None or entry_times != _in_order(lo, n, vseqs, vtimes, 8):
        return None
    if k and _in_order(lo, k, iseqs, done, HASH_SIZE) != entries[: HASH_SIZE * k]:
        return None
    if cn and not _entries_content(lo, n, entry_times, cn, cseqs, ctimes):
        return None
    return Page(entries, {0: StoredLevel(k, lo, lo + k - 1, b""), **_levels(1, *inner)})


def _prefix(value: bytes | None, size: int) -> bytes | None:
    """``substring(value FROM 1 FOR size)`` (NULL stays NULL)."""
    return None if value is None else value[:size]


def _entries_content(
    lo: int, n: int, times: bytes, count: int, seqs: bytes, received: bytes
) -> bool:
    """Whether each of ``count`` content rows is an entry's (its sequence and receive time).

    ``times``: the entries' receive times, of sequences ``lo .. lo+n-1`` in that
    order; ``seqs`` and ``received``: the content rows' (8 bytes each), in the
    order the database read them. A row with no entry (inserted, or left when
    its entry was deleted) sends the page to the row-by-row check, which names
    it. Every entry has its content row unless erased (primary key: at most one
    each), so this loop runs only on pages with erased content (or, against
    the rule, read out of sequence order).
    """
    if count > n or len(seqs) != 8 * count or len(received) != 8 * count:
        return False
    for i, seq in enumerate(struct.unpack(f">{count}q", seqs)):
        at = seq - lo
        if not 0 <= at < n or times[8 * at : 8 * at + 8] != received[8 * i : 8 * i + 8]:
            return False
    return True


def stored_levels(conn: sa.Connection, log_id: str, lo: int, hi: int) -> dict[int, StoredLevel]:
    """The stored nodes whose last leaf is in ``lo .. hi-1``, by level (``_NODES``).

    For the pages checked row by row, through the walk's own connection.
    """
    params = {"log_id": log_id, "lo": lo, "hi": hi, "bottom": 0, "top": hi.bit_length()}
    return _levels(0, *pg_rows(conn, _NODES, params)[0])


def _levels(
    bottom: int, counts: list[int], firsts: list[Any], lasts: list[Any], hashes: Any
) -> dict[int, StoredLevel]:
    """``_NODES``'s arrays, split by level (those with a stored node)."""
    out = {}
    at = 0
    for level, (count, first, last) in enumerate(zip(counts, firsts, lasts, strict=True), bottom):
        if count:
            out[level] = StoredLevel(count, first, last, hashes[at : at + HASH_SIZE * count])
            at += HASH_SIZE * count
    return out


def _in_order(lo: int, n: int, seqs: bytes, values: bytes, width: int) -> bytes | None:
    """``values`` (``width`` bytes each) of sequences ``lo .. lo+n-1`` in that order.

    None unless ``seqs`` are exactly those sequences. ``seqs`` says in which
    order the database aggregated the rows: the index order as a rule (checked
    with one comparison), any order otherwise.
    """
    if len(seqs) != 8 * n or len(values) != width * n:
        return None
    if seqs == struct.pack(f">{n}q", *range(lo, lo + n)):
        return values
    got = struct.unpack(f">{n}q", seqs)
    if sorted(got) != list(range(lo, lo + n)):
        return None
    out = bytearray(width * n)
    for i, seq in enumerate(got):
        out[width * (seq - lo) : width * (seq - lo + 1)] = values[width * i : width * (i + 1)]
    return bytes(out)


AHEAD = 64
"""Pages checked ahead of the caller: the readers keep the server busy meanwhile
(the caller checks the checkpoints' signatures first, then rebuilds the tree),
and each waiting page holds only its leaves (128 KiB for 4,096 entries)."""


class PageChecks:
    """``check_page`` of each page start, yielded in order, several pages in flight.

    The server hashes each page on its own backend, so pages checked on
    ``readers`` connections at once use that many cores while the caller
    rebuilds the tree from the pages already back. The first pages are
    submitted on construction, so the caller's own work before iterating
    (checking the checkpoints' signatures) overlaps them.
    """

    def __init__(
        self,
        engine: sa.Engine,
        log_id: str,
        head: int,
        starts: Sequence[int],
        page: int,
        readers: int,
    ) -> None:
        """Starts checking the first ``AHEAD`` pages."""
        self._engine, self._log_id, self._head, self._page = engine, log_id, head, page
        self._local = threading.local()
        self._opened: list[Any] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(readers, thread_name_prefix="verify")
        self._queue = iter(starts)
        self._flight: collections.deque[tuple[int, Future[Page | None]]] = collections.deque(
            (lo, self._pool.submit(self._check, lo)) for lo in itertools.islice(self._queue, AHEAD)
        )

    def _check(self, lo: int) -> Page | None:
        driver: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if driver is None:
            raw = self._engine.raw_connection()
            with self._lock:
                self._opened.append(raw)
            driver = raw.driver_connection
            assert isinstance(driver, psycopg.Connection)
            # Index range scans hand the aggregates their rows in sequence order
            # (a bitmap scan would not, and the pages would need reordering here).
            driver.execute("SET LOCAL enable_bitmapscan = off")
            # Planning over every events partition cost ~8 ms a page: plan the
            # prepared page query once (partitions pruned at run time).
            driver.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            self._local.conn = driver
        return check_page(driver, self._log_id, lo, lo + self._page, self._head)

    def __iter__(self) -> Iterator[tuple[int, Page | None]]:
        """(page start, the intact page or None), in page order."""
        while self._flight:
            lo, result = self._flight.popleft()
            following = next(self._queue, None)
            if following is not None:
                self._flight.append((following, self._pool.submit(self._check, following)))
            yield lo, result.result()

    def close(self) -> None:
        """Stops the readers and returns their connections (the SET LOCALs end with them).

        A transaction of the readers' that went well is committed: it only read,
        so that is a rollback, but psycopg deallocates every prepared statement
        on a rollback (the pool's on return too, unless none is open), and the
        next verify on these pooled connections planned the page query again
        (commit: server CPU -2..9%, verify +4..8% from the second run on,
        2026-12-06).
        """
        self._pool.shutdown(wait=True, cancel_futures=True)
        for raw in self._opened:
            driver = raw.driver_connection
            assert isinstance(driver, psycopg.Connection)
            if driver.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS:
                raw.commit()
            else:
                raw.rollback()
            raw.close()

    def __enter__(self) -> PageChecks:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
