"""Consumer cursors: the log is the outbox, each consumer keeps its position.

A consumer (notary, indexer, alerting) reads entries ``position ..`` of a log,
processes them, and advances its cursor. When its outputs live in the same
database it advances in the same transaction (exactly once); otherwise its
outputs must be idempotent (the indexer's document id is the event id).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy as sa

from aiaudit.common.store.schema import consumer_cursors, log_entries, logs
from aiaudit.common.store.sql import pg_rows

# PostgreSQL: the same statements as prepared text (``pg_rows``). Consumers call
# them several times a second each; through SQLAlchemy they cost the notary
# about half its CPU per integration round, holding the interpreter lock that
# the proof RPCs of the same process wait for.
_POSITION_PG = (
    "SELECT position FROM consumer_cursors WHERE consumer = %(consumer)s AND log_id = %(log_id)s"
)
_ADVANCE_PG = """
INSERT INTO consumer_cursors (consumer, log_id, position)
VALUES (%(consumer)s, %(log_id)s, %(position)s)
ON CONFLICT (consumer, log_id) DO UPDATE SET position = EXCLUDED.position
    WHERE consumer_cursors.position <= EXCLUDED.position
RETURNING position
"""
_BACKLOG_PG = """
SELECT l.log_id, COALESCE(c.position, 0), l.size
FROM logs l LEFT JOIN consumer_cursors c ON c.log_id = l.log_id AND c.consumer = %(consumer)s
WHERE l.size > COALESCE(c.position, 0)
ORDER BY l.log_id
"""


@dataclass(frozen=True)
class Backlog:
    """A log with entries a consumer has not processed yet."""

    log_id: str
    position: int
    size: int


def position(conn: sa.Connection, consumer: str, log_id: str) -> int:
    """How many entries of a log the consumer has processed."""
    if conn.dialect.name == "postgresql":
        rows = pg_rows(conn, _POSITION_PG, {"consumer": consumer, "log_id": log_id})
        return int(rows[0][0]) if rows else 0
    found = conn.execute(
        sa.select(consumer_cursors.c.position).where(
            consumer_cursors.c.consumer == consumer, consumer_cursors.c.log_id == log_id
        )
    ).scalar()
    return int(found or 0)


def advance(conn: sa.Connection, consumer: str, log_id: str, new_position: int) -> None:
    """Moves the cursor forward (never back) inside the caller's transaction."""
    if conn.dialect.name == "postgresql":
        params = {"consumer": consumer, "log_id": log_id, "position": new_position}
        pg_rows(conn, _ADVANCE_PG, params)
        return
    updated = conn.execute(
        sa.update(consumer_cursors)
        .where(
            consumer_cursors.c.consumer == consumer,
            consumer_cursors.c.log_id == log_id,
            consumer_cursors.c.position <= new_position,
        )
        .values(position=new_position)
    ).rowcount
    if updated == 0 and position(conn, consumer, log_id) == 0:
        conn.execute(
            sa.insert(consumer_cursors).values(
                consumer=consumer, log_id=log_id, position=new_position
            )
        )


def backlog(conn: sa.Connection, consumer: str) -> list[Backlog]:
    """Every log with entries past the consumer's cursor."""
    if conn.dialect.name == "postgresql":
        rows = pg_rows(conn, _BACKLOG_PG, {"consumer": consumer})
        return [Backlog(r[0], int(r[1]), int(r[2])) for r in rows]
    c = consumer_cursors
    query = (
        sa.select(logs.c.log_id, sa.func.coalesce(c.c.position, 0), logs.c.size)
        .select_from(
            logs.outerjoin(c, sa.and_(c.c.log_id == logs.c.log_id, c.c.consumer == consumer))
        )
        .where(logs.c.size > sa.func.coalesce(c.c.position, 0))
        .order_by(logs.c.log_id)
    )
    return [Backlog(r[0], int(r[1]), int(r[2])) for r in conn.execute(query)]


def positions(conn: sa.Connection, consumer: str) -> dict[str, int]:
    """Every log's position of one consumer (a log it has not started is absent: 0)."""
    c = consumer_cursors
    query = sa.select(c.c.log_id, c.c.position).where(c.c.consumer == consumer)
    return {str(r[0]): int(r[1]) for r in conn.execute(query)}


@dataclass(frozen=True)
class Pending:
    """What a consumer has yet to process, over every log."""

    entries: int
    oldest: dt.datetime | None
    """Receive time of the oldest entry it has not processed (None: it is caught up)."""


_FIRSTS_PER_QUERY = 1000
"""(log, sequence) pairs bound in one statement (PostgreSQL takes 65,535 parameters)."""


def pending(conn: sa.Connection, done: Mapping[str, int]) -> Pending:
    """Entries past ``done`` (each log's position) in every log, and the oldest one's time.

    The oldest is the earliest receive time among each log's first entry past its
    position: one primary-key probe per log behind.
    """
    sizes = {str(r[0]): int(r[1]) for r in conn.execute(sa.select(logs.c.log_id, logs.c.size))}
    firsts = [(log_id, done.get(log_id, 0)) for log_id, size in sizes.items()]
    firsts = [(log_id, seq) for log_id, seq in firsts if sizes[log_id] > seq]
    oldest: dt.datetime | None = None
    e = log_entries
    for i in range(0, len(firsts), _FIRSTS_PER_QUERY):
        chunk = firsts[i : i + _FIRSTS_PER_QUERY]
        found = conn.execute(
            sa.select(sa.func.min(e.c.receive_time)).where(
                sa.tuple_(e.c.log_id, e.c.seq).in_(chunk)
            )
        ).scalar()
        if found is not None:
            found = found if found.tzinfo else found.replace(tzinfo=dt.UTC)  # SQLite: naive
            oldest = found if oldest is None else min(oldest, found)
    return Pending(sum(sizes[log_id] - seq for log_id, seq in firsts), oldest)
