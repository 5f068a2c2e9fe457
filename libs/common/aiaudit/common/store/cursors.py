"""Consumer cursors: the log is the outbox, each consumer keeps its position.

A consumer (notary, indexer, alerting) reads entries ``position ..`` of a log,
processes them, and advances its cursor. When its outputs live in the same
database it advances in the same transaction (exactly once); otherwise its
outputs must be idempotent (the indexer's document id is the event id).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from aiaudit.common.store.schema import consumer_cursors, logs
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
