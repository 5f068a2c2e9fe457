"""Monthly range partitions of the time-partitioned tables (PostgreSQL only).

Every ``aiaudit db migrate`` (the chart's install and upgrade hook) and ``aiaudit db
partitions`` (its monthly schedule) creates the partitions of this month and the next
twelve; a DEFAULT partition catches anything outside them so an insert never fails. Bounds are UTC
midnights, moved to meet a neighbour that exists already (versions before
2026-12-03 wrote bounds in the session's time zone, and a new month must not
overlap them).

A new month is created apart and then attached, which takes a lock on the
parent that appends and erasures do not wait for; it also takes ACCESS
EXCLUSIVE on the DEFAULT partition, which reads of the log and erasures, not
pruned to their months, queue behind while it waits, so migrate waits briefly
and tries again (:func:`aiaudit.common.store.migrate.migrate`). Rows that landed in
DEFAULT (migrate not run for a year, a clock far ahead) are moved into a
partition of their month when it is created: PostgreSQL refuses to create a
partition whose rows already sit in DEFAULT, which would otherwise leave the
month in DEFAULT for good. Moving locks the table for the move; the caller
runs one table per transaction (:func:`aiaudit.common.store.migrate.migrate`),
so no transaction of migrate holds both tables, which an erasure (content,
then the log) and an append (the log, then content) take in turn.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa

from aiaudit.common.store.schema import PARTITIONED

_BOUNDS = r"""
SELECT c.relname,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1]::timestamptz,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = CAST(:parent AS regclass) AND NOT c.relpartbound IS NULL
  AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'
"""


_EARLIEST = dt.datetime.min.replace(tzinfo=dt.UTC)
_LATEST = dt.datetime.max.replace(tzinfo=dt.UTC)


def _month_start(day: dt.date, months_ahead: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months_ahead
    return dt.date(index // 12, index % 12 + 1, 1)


def _utc(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _literal(moment: dt.datetime) -> str:
    return f"'{moment.astimezone(dt.UTC).isoformat()}'"


def _fit(
    lo: dt.datetime, hi: dt.datetime, taken: list[tuple[dt.datetime, dt.datetime]]
) -> tuple[dt.datetime, dt.datetime]:
    """[lo, hi) shrunk to meet the partitions that exist (their bounds win)."""
    for a, b in sorted(taken):
        if a <= lo < b:
            lo = b
        if lo < a < hi:
            hi = a
    return lo, hi


def ensure_partitions(
    conn: sa.Connection,
    today: dt.date,
    months_ahead: int = 12,
    tables: Sequence[sa.Table] = PARTITIONED,
) -> list[str]:
    """Creates the missing monthly partitions (this month on, and months waiting in DEFAULT).

    Returns the names created. Runs in the caller's transaction.
    """
    if conn.dialect.name != "postgresql":
        return []
    created = []
    for table in tables:
        default = f"{table.name}_default"
        conn.execute(
            sa.text(f"CREATE TABLE IF NOT EXISTS {default} PARTITION OF {table.name} DEFAULT")
        )
        existing = conn.execute(sa.text(_BOUNDS), {"parent": table.name}).all()
        names = {r[0] for r in existing}
        # MINVALUE / MAXVALUE bounds (a hand-made archive partition) come back NULL.
        taken = [(r[1] or _EARLIEST, r[2] or _LATEST) for r in existing]
        waiting = conn.execute(
            sa.text(f"SELECT DISTINCT date_trunc('month', receive_time, 'UTC') FROM {default}")
        ).scalars()
        months = {_month_start(today, i) for i in range(months_ahead + 1)}
        months |= {m.astimezone(dt.UTC).date() for m in waiting}
        for start in sorted(months):
            name = f"{table.name}_{start:%Y_%m}"
            lo, hi = _fit(_utc(start), _utc(_month_start(start, 1)), taken)
            if name in names or lo >= hi:
                continue
            in_range = f"receive_time >= {_literal(lo)} AND receive_time < {_literal(hi)}"
            bounds = f"FOR VALUES FROM ({_literal(lo)}) TO ({_literal(hi)})"
            moving = conn.execute(
                sa.text(f"SELECT EXISTS (SELECT 1 FROM {default} WHERE {in_range})")
            ).scalar()
            if moving:
                conn.execute(sa.text(f"ALTER TABLE {table.name} DETACH PARTITION {default}"))
                conn.execute(sa.text(f"CREATE TABLE {name} PARTITION OF {table.name} {bounds}"))
                conn.execute(
                    sa.text(f"INSERT INTO {name} SELECT * FROM {default} WHERE {in_range}")
                )
                conn.execute(sa.text(f"DELETE FROM {default} WHERE {in_range}"))
                conn.execute(
                    sa.text(f"ALTER TABLE {table.name} ATTACH PARTITION {default} DEFAULT")
                )
            else:
                conn.execute(sa.text(f"CREATE TABLE {name} (LIKE {table.name} INCLUDING ALL)"))
                conn.execute(sa.text(f"ALTER TABLE {table.name} ATTACH PARTITION {name} {bounds}"))
            taken.append((lo, hi))
            created.append(name)
    return created
