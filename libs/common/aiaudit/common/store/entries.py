"""Where an event stands in a log, as one login sees it.

A command that writes its record through another login than the one it reads
or moves with (``integrity export-bundle``, ``alerting redeliver``) checks
through the reading login that the record landed in that log: a URL naming
another database would otherwise take the record unnoticed.
"""

from __future__ import annotations

import sqlalchemy as sa

from aiaudit.common.store.schema import log_entries, logs


def entry_sequence(conn: sa.Connection, log_id: str, event_id: str) -> int | None:
    """The sequence at which the event is an entry of the log (within its head), or None."""
    le = log_entries.c
    head = sa.select(logs.c.size).where(logs.c.log_id == log_id).scalar_subquery()
    seq = conn.execute(
        sa.select(le.seq).where(le.log_id == log_id, le.event_id == event_id, le.seq < head)
    ).scalar()
    return None if seq is None else int(seq)
