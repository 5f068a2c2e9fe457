"""Small appends in one round trip (PostgreSQL): what every read's access record costs.

``SqlEventStore.append_group`` reads each log head first (sequences are
assigned in Python, so a batch can be refused whole and retries are
idempotent), then writes, then commits: three round trips and SQLAlchemy's
work around them. An access record needs none of that: its id is random, so
it is never a retry and never conflicts. Here the heads' increments and the
rows (each row's sequence read back from its head, locked by then) go to the
server as one simple-protocol query of several statements, which PostgreSQL
runs as one transaction and commits before it answers: one round trip, one
fsync per group. The rows are the ones ``append_group`` writes.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
import sqlalchemy as sa

from aiaudit.common.store.schema import TEXT_COLUMNS
from aiaudit.common.store.sql import ConnectionLostError, NewEvent, content_json, search_columns

_COLUMNS = ["event_type", "occurred_time", *TEXT_COLUMNS]
_SEQ = "(SELECT size - 1 FROM logs WHERE log_id = %(log_id)s)"
"""The sequence just reserved (the head row is locked by then)."""

_STATEMENTS = [
    "INSERT INTO logs (log_id, size) VALUES (%(log_id)s, 1) "
    "ON CONFLICT (log_id) DO UPDATE SET size = logs.size + 1",
    "INSERT INTO log_entries (log_id, seq, event_id, leaf_hash, receive_time) "
    f"VALUES (%(log_id)s, {_SEQ}, %(event_id)s, %(leaf_hash)s, %(receive_time)s)",
    f"INSERT INTO events (log_id, seq, receive_time, event_id, canonical, {', '.join(_COLUMNS)}) "
    f"VALUES (%(log_id)s, {_SEQ}, %(receive_time)s, %(event_id)s, %(canonical)s, "
    f"{', '.join(f'%({c})s' for c in _COLUMNS)})",
    "INSERT INTO event_content (log_id, seq, receive_time, salt, content) "
    f"VALUES (%(log_id)s, {_SEQ}, %(receive_time)s, %(salt)s, %(content)s)",
]
"""One event's statements: reserve the next sequence of its log, write its three rows."""


def append_quick(engine: sa.Engine, group: Sequence[NewEvent]) -> None:
    """Commits the events (new ids only) in one transaction and one round trip; raises on failure.

    The heads are locked in log order, as ``append_group`` locks them, so the
    two never deadlock. SQLAlchemy's commit afterwards only fires the
    in-process commit listeners (consumers' wake-ups): the transaction is
    over by then. A connection found dead is invalidated and the group tried
    once more on a fresh one: a transaction whose answer was lost either
    committed (the retry then fails on the taken ids, nothing is written twice)
    or left nothing.
    """
    try:
        _append(engine, group)
    except ConnectionLostError:
        _append(engine, group)


def _append(engine: sa.Engine, group: Sequence[NewEvent]) -> None:
    ordered = sorted(group, key=lambda e: e.log_id)
    query = "; ".join(
        statement.replace("%(", f"%(e{i}_")
        for i in range(len(ordered))
        for statement in _STATEMENTS
    )
    params = {
        f"e{i}_{name}": value for i, e in enumerate(ordered) for name, value in _row(e).items()
    }
    with engine.connect() as conn, conn.begin():
        raw = conn.connection.driver_connection
        assert isinstance(raw, psycopg.Connection)
        # Autocommit: psycopg sends no BEGIN of its own (a round trip); the
        # statements, sent together, are one implicit transaction.
        raw.autocommit = True
        try:
            with psycopg.ClientCursor(raw) as cur:  # values bound here: several statements
                cur.execute(query, params)
        except psycopg.OperationalError as exc:
            if raw.closed:
                conn.invalidate()
                raise ConnectionLostError(str(exc)) from exc
            raise
        finally:
            if not raw.closed:
                raw.autocommit = False


def _row(e: NewEvent) -> dict[str, object]:
    """Every value one event's statements need, by parameter name."""
    return {
        "log_id": e.log_id,
        "event_id": e.event.event_id,
        "leaf_hash": e.committed.leaf_hash,
        "receive_time": e.receive_time,
        "canonical": e.committed.canonical,
        "salt": e.salt,
        "content": content_json(e),
        **search_columns(e.event),
    }
