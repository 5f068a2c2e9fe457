"""The rows of ``erasure_names`` one record owes, and the statement writing them.

Shared by the store (each erasure or sweep writes its record's rows), ``aiaudit db
reindex-erasures`` (writes the ones missing) and ``aiaudit verify`` (names the ones missing):
all three must agree on what a record owes, or verify names rows nobody could write.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from aiaudit.common.store.schema import erasure_names

LONGEST = 128
"""An event id's most characters (``events.event_id`` is ``varchar(128)``)."""

_PG = (
    f"INSERT INTO {erasure_names.name} (log_id, event_id, record_seq)"
    " SELECT %(log_id)s, unnest(%(ids)s::text[]), %(seq)s"
)
_SQLITE = f"INSERT INTO {erasure_names.name} (log_id, event_id, record_seq) VALUES (?, ?, ?)"


def owed(named: Iterable[str]) -> list[str]:
    """The ids a record naming ``named`` owes a row, once each, in order.

    Not one no event can have: longer than 128 characters or holding U+0000 (``aiaudit
    erase`` took any ``--event-id`` before 2026-12-06). It names no content to put back,
    and PostgreSQL refused its row, failing the erasure and revision ``0014`` alike.
    """
    return [e for e in dict.fromkeys(named) if len(e) <= LONGEST and "\x00" not in e]


def write(conn: sa.Connection, log_id: str, seq: int, ids: list[str], *, missing: bool) -> int:
    """Writes the rows of the record at ``seq`` naming ``ids`` (from :func:`owed`); how many.

    ``missing``: only those not there yet (the repair); otherwise a row already there
    is an error (the record was just appended). One array on PostgreSQL, not a statement
    per 1,000 rows; the driver's executemany on SQLite (SQLAlchemy's cost ~0.2 s a
    10,000-id record). Neither needs ``SELECT`` on the table: the privacy role has none.
    """
    if not ids:
        return 0
    if conn.dialect.name == "postgresql":
        statement = _PG + (" ON CONFLICT DO NOTHING" if missing else "")
        return conn.exec_driver_sql(statement, {"log_id": log_id, "ids": ids, "seq": seq}).rowcount
    statement = _SQLITE.replace("INSERT", "INSERT OR IGNORE", 1) if missing else _SQLITE
    return conn.exec_driver_sql(statement, [(log_id, e, seq) for e in ids]).rowcount
