"""Rewrapping the stored data keys under the Transit KEK's latest version.

After a rotation of the Transit key, data keys wrapped under older versions
still open. Retiring those versions (``min_decryption_version``, then trim) is
what makes a backup taken before an erasure unreadable, and would destroy every
live key still wrapped under them: this moves the live ones first.

The rows are read a page at a time in key id order, each page rewrapped by
Transit (outside any transaction; :data:`~.transit.BATCH_ITEMS` keys a request,
the page failing whole if one request does) and written in one transaction of
its own, each row compare-and-swap on the wrapped bytes it was read with: a key
erased meanwhile (row deleted) stays deleted, and one rewritten meanwhile (by
another run, after a later rotation) is not set back to what was read; one
another run rewrote under an older version than this run's is read again and
rewrapped again (:func:`_read_again`). A run
killed midway loses nothing (each page commits whole; a row holds the old
wrapping or the new one, both open) and the next run goes on: keys under the
latest version are counted, not written. The latest version is not read from
Vault (that would need ``read`` on the key): it is the one Transit's rewrapped
ciphertexts carry (``vault:vN:``).

A key stored during the run, under a key id the pages have passed, is not
seen; nor is one a service wrapped before the rotation and stores later. So
the run ends by counting the keys still under an older version (``behind``),
after waiting for every transaction then writing ``content_keys`` to end
(:func:`_await_writers`). A service checks, after inserting a key wrapped
ahead and before committing, that it is within :data:`~.keyring.SPARE_SECONDS`
of its wrap (``KeysExpiredError``, rolled back, otherwise): a key wrapped
before the rotation and inserted after that wait, which began that long after
the rotation, fails the check; one inserted before it committed (or rolled
back) before the count read. Versions may be retired after a run that started
at least that long after the rotation and counted none behind.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa

from aiaudit.common.keys.kek import KekError, transit_version
from aiaudit.common.keys.keyring import StoredKey
from aiaudit.common.store.schema import content_keys
from aiaudit.common.store.sql import _stored_key, _wrapped

LISTED_IDS = 100
"""Key ids a report lists of the keys that did not rewrap (it counts them all)."""

WRITERS_TIMEOUT = 10.0
"""Seconds the final count waits for transactions writing ``content_keys`` to end.

A writer held longer (a commit waiting for a synchronous standby that is
down) fails the run (:class:`WritersBusyError`) rather than counts without
it. On PostgreSQL the wait holds no lock (services' writes go on meanwhile);
on SQLite it is a writer's turn, so the services' writes queue behind it.
"""


class WritersBusyError(Exception):
    """A transaction writing ``content_keys`` outlasted :data:`WRITERS_TIMEOUT`: no count."""


MAX_PAGE_SIZE = 10_000
"""Keys per page at most: a page is one transaction, and its rows and answers (~200
bytes a key) stay a few MB. Transit gets a page in requests of at most
:data:`~.transit.BATCH_ITEMS` keys (until 2026-12-07 a page was one request, which
OpenBao refused from 250 keys: the default page of 500 failed)."""


class Rewrapper(Protocol):
    """A KEK that rewraps under its latest version (:class:`~.transit.TransitKek`)."""

    name: str

    def rewrap(self, wrapped: Sequence[bytes]) -> list[bytes | None]:
        """Each key rewrapped, in order; None for one the KEK refuses (damaged)."""
        ...


@dataclass
class RewrapReport:
    """What a run did, so far (a failed run's report says what it committed)."""

    rewrapped: int = 0
    """Keys written under a newer version."""
    current: int = 0
    """Keys already under the latest version: left as they were."""
    changed: int = 0
    """Keys erased, or rewritten under the latest version, between their read and their
    update: left as they are."""
    damaged: int = 0
    """Keys the KEK refused (altered, or under a version already retired): left as they were."""
    damaged_ids: list[int] = field(default_factory=list)
    """The first :data:`LISTED_IDS` of those."""
    version: int | None = None
    """The latest Transit version seen; None if no key was sent."""
    behind: int = 0
    """Keys still under a version older than ``version`` when the run ended (stored
    during it; not the damaged ones): run again before retiring a version."""
    refused: set[int] = field(default_factory=set, repr=False)
    """Every damaged key's id: not counted ``behind`` (a run again changes nothing)."""


def rewrap_keys(
    engine: sa.Engine,
    kek: Rewrapper,
    report: RewrapReport,
    page_size: int = 500,
    writers_timeout: float = WRITERS_TIMEOUT,
) -> None:
    """Rewraps every key of ``kek`` in the store under its latest version, into ``report``.

    Then waits for the transactions writing ``content_keys`` to end (at most
    ``writers_timeout`` seconds, else :class:`WritersBusyError`) and counts the
    keys still behind it (``report.behind``). Raises :class:`KekError` when
    Transit fails a request as a whole: ``report`` then counts what the pages
    before committed (nothing of the failed page was written). ``page_size``
    from 1 to :data:`MAX_PAGE_SIZE`, else ValueError.
    """
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page size {page_size}: from 1 to {MAX_PAGE_SIZE}")
    for page in _pages(engine, kek.name, page_size):
        _rewrap_page(engine, kek, page, report)
    latest = report.version
    if latest is not None:
        _await_writers(engine, writers_timeout)
        report.behind = sum(
            (transit_version(row.wrapped) or latest) < latest
            for page in _pages(engine, kek.name, page_size)
            for row in page
            if row.key_id not in report.refused
        )


_WRITERS = sa.text(
    "SELECT DISTINCT virtualtransaction FROM pg_locks WHERE locktype = 'relation'"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND relation = to_regclass(:table) AND granted AND pid IS DISTINCT FROM pg_backend_pid()"
    " AND mode IN ('RowExclusiveLock', 'ShareRowExclusiveLock', 'ExclusiveLock',"
    " 'AccessExclusiveLock')"
)
"""The transactions holding a lock that writing ``content_keys`` takes (PostgreSQL)."""

_STILL_OPEN = sa.text(
    "SELECT DISTINCT virtualtransaction FROM pg_locks WHERE virtualtransaction = ANY(:ids)"
)
"""Which of these transactions still hold a lock: each holds its own until it has ended."""

_POLL_SECONDS = (0.005, 0.1)
"""The first and the longest pause between two looks at PostgreSQL's lock table."""


def _await_writers(engine: sa.Engine, timeout: float) -> None:
    """Returns once every transaction that was writing ``content_keys`` has ended.

    PostgreSQL: the transactions that hold a writer's lock on the table when
    this starts (each insert, update or delete takes ROW EXCLUSIVE until its
    transaction ends, commit included however long a synchronous standby makes
    that) are waited for until none holds any lock, as ``CREATE INDEX
    CONCURRENTLY`` waits; no lock is taken, so no later writer queues behind
    the wait (a ``LOCK TABLE ... IN SHARE MODE`` held every new subject's
    append under its logs' head locks, and failed ingest's groups at its 1 s
    lock timeout). A writer that takes its lock after this began inserts after
    the run started and re-checks its keys' age after the insert
    (``KeysExpiredError``). SQLite: the write lock (``BEGIN IMMEDIATE``), held
    by every writer until its commit is durable and visible. Reads after this
    see every such commit.
    """
    if engine.dialect.name != "sqlite":
        _await_postgres_writers(engine, timeout)
        return
    ms = max(1, round(timeout * 1000))
    with engine.connect().execution_options(sqlite_immediate=True) as conn:
        raw: Any = conn.connection.driver_connection  # no transaction begun yet
        before = raw.execute("PRAGMA busy_timeout").fetchone()[0]
        raw.execute(f"PRAGMA busy_timeout = {ms}")
        try:
            with conn.begin():  # a store's engine: BEGIN IMMEDIATE (its "begin" listener)
                if not raw.in_transaction:  # a plain engine: BEGIN is ours
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
        except sa.exc.OperationalError as exc:
            if "locked" not in str(exc.orig):
                raise
            raise _busy(timeout, str(exc.orig).splitlines()[0]) from exc
        finally:
            raw.execute(f"PRAGMA busy_timeout = {before}")


def _await_postgres_writers(engine: sa.Engine, timeout: float) -> None:
    """:func:`_await_writers` on PostgreSQL: polls ``pg_locks`` (readable by any login)."""
    deadline = time.monotonic() + timeout
    pause = _POLL_SECONDS[0]
    with engine.connect() as conn:
        waiting = list(conn.execute(_WRITERS, {"table": content_keys.name}).scalars())
        conn.rollback()
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _busy(timeout, f"{len(waiting)} transaction(s), the first {waiting[0]}")
            time.sleep(min(pause, left))
            pause = min(pause * 2, _POLL_SECONDS[1])
            waiting = list(conn.execute(_STILL_OPEN, {"ids": waiting}).scalars())
            conn.rollback()


def _busy(timeout: float, detail: str) -> WritersBusyError:
    return WritersBusyError(
        f"a transaction writing {content_keys.name} was still open after {timeout:g} s "
        f"({detail}): the keys still behind were not counted"
    )


def _pages(engine: sa.Engine, kek_name: str, page_size: int) -> Iterator[list[StoredKey]]:
    """The stored keys of ``kek_name`` in key id order, a page (one short read) at a time."""
    ck = content_keys.c
    after: int | None = None
    while True:
        with engine.connect() as conn:
            query = (
                sa.select(ck.key_id, ck.subject, ck.kek, *_wrapped(conn))
                .where(ck.kek == kek_name)
                .order_by(ck.key_id)
                .limit(page_size)
            )
            if after is not None:
                query = query.where(ck.key_id > after)
            page = [_stored_key(*row) for row in conn.execute(query).all()]
        if not page:
            return
        after = page[-1].key_id
        yield page


def _rewrap_page(
    engine: sa.Engine, kek: Rewrapper, page: Sequence[StoredKey], report: RewrapReport
) -> None:
    """One page: keys under an older version (all, while the latest is unknown) rewrapped."""
    asked: list[tuple[StoredKey, int]] = []
    for row in page:
        version = transit_version(row.wrapped)
        if version is None:  # not Transit's (stored as text, altered): nothing to send
            _damaged(report, row.key_id)
        elif report.version is not None and version >= report.version:
            report.current += 1
        else:
            asked.append((row, version))
    if not asked:
        return
    answers = kek.rewrap([row.wrapped for row, _ in asked])
    updates: list[tuple[StoredKey, bytes]] = []
    for (row, version), new in zip(asked, answers, strict=True):
        now = transit_version(new) if new is not None else None
        if new is None or now is None:
            _damaged(report, row.key_id)
            continue
        if now < version:
            raise KekError(
                f"Transit key {kek.name} rewrap: answered version {now} for data key "
                f"{row.key_id} wrapped under version {version}"
            )
        report.version = max(report.version or 0, now)
        if now == version:
            report.current += 1
        else:
            updates.append((row, new))
    if not updates:
        return
    ck = content_keys.c
    lost: list[int] = []
    with engine.begin() as conn:
        for row, new in updates:
            swapped = conn.execute(
                sa.update(content_keys)
                .where(ck.key_id == row.key_id, ck.kek == kek.name, ck.wrapped == row.wrapped)
                .values(wrapped=new)
            ).rowcount
            if swapped:
                report.rewrapped += 1
            else:
                lost.append(row.key_id)
    if lost:
        _read_again(engine, kek, lost, report)


def _read_again(
    engine: sa.Engine, kek: Rewrapper, key_ids: list[int], report: RewrapReport
) -> None:
    """Keys erased or rewritten between their read and their update, read again.

    One erased stays erased, one rewritten under the latest version stays as it
    is: both ``changed``. One still under an older version (written first by
    another run whose Transit call came before a rotation) is rewrapped again:
    counted as done, it would be lost with the version it holds, retired on
    this run's word.
    """
    ck = content_keys.c
    with engine.connect() as conn:
        query = sa.select(ck.key_id, ck.subject, ck.kek, *_wrapped(conn)).where(
            ck.key_id.in_(key_ids), ck.kek == kek.name
        )
        rows = [_stored_key(*row) for row in conn.execute(query).all()]
    latest = report.version or 0  # set: these keys were rewrapped to it
    behind = [r for r in rows if (transit_version(r.wrapped) or 0) < latest]
    report.changed += len(key_ids) - len(behind)
    if behind:
        _rewrap_page(engine, kek, behind, report)


def _damaged(report: RewrapReport, key_id: int) -> None:
    report.damaged += 1
    report.refused.add(key_id)
    if len(report.damaged_ids) < LISTED_IDS:
        report.damaged_ids.append(key_id)
