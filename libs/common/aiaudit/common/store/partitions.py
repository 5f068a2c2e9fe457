"""Monthly range partitions of the time-partitioned tables (PostgreSQL only).

Every ``aiaudit db migrate`` (the chart runs it on each install and upgrade)
creates the partitions of this month and the next twelve; a DEFAULT partition
catches anything outside them so an insert never fails. Rows that landed in
DEFAULT (migrate not run for a year, a clock far ahead) are moved into a
partition of their month when it is created: PostgreSQL refuses to create a
partition whose rows already sit in DEFAULT, which would otherwise leave the
month in DEFAULT for good. Bounds are UTC midnights, whatever the session's
time zone.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from aiaudit.common.store.schema import PARTITIONED


def _month_start(day: dt.date, months_ahead: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months_ahead
    return dt.date(index // 12, index % 12 + 1, 1)


def _utc(day: dt.date) -> str:
    return f"'{day} 00:00:00+00'"


def ensure_partitions(conn: sa.Connection, today: dt.date, months_ahead: int = 12) -> list[str]:
    """Creates the missing monthly partitions (this month on, and months waiting in DEFAULT).

    Returns the names created. Runs in the caller's transaction, which holds
    the tables while DEFAULT is detached, so no insert sees them half done.
    """
    if conn.dialect.name != "postgresql":
        return []
    created = []
    for table in PARTITIONED:
        default = f"{table.name}_default"
        conn.execute(
            sa.text(f"CREATE TABLE IF NOT EXISTS {default} PARTITION OF {table.name} DEFAULT")
        )
        waiting = conn.execute(
            sa.text(f"SELECT DISTINCT date_trunc('month', receive_time, 'UTC') FROM {default}")
        ).scalars()
        months = {_month_start(today, i) for i in range(months_ahead + 1)}
        months |= {m.astimezone(dt.UTC).date() for m in waiting}
        for start in sorted(months):
            end = _month_start(start, 1)
            name = f"{table.name}_{start:%Y_%m}"
            if conn.execute(sa.text("SELECT to_regclass(:n)"), {"n": name}).scalar() is not None:
                continue
            in_range = f"receive_time >= {_utc(start)} AND receive_time < {_utc(end)}"
            moving = conn.execute(
                sa.text(f"SELECT EXISTS (SELECT 1 FROM {default} WHERE {in_range})")
            ).scalar()
            if moving:
                conn.execute(sa.text(f"ALTER TABLE {table.name} DETACH PARTITION {default}"))
            conn.execute(
                sa.text(
                    f"CREATE TABLE {name} PARTITION OF {table.name} "
                    f"FOR VALUES FROM ({_utc(start)}) TO ({_utc(end)})"
                )
            )
            if moving:
                conn.execute(
                    sa.text(f"INSERT INTO {name} SELECT * FROM {default} WHERE {in_range}")
                )
                conn.execute(sa.text(f"DELETE FROM {default} WHERE {in_range}"))
                conn.execute(
                    sa.text(f"ALTER TABLE {table.name} ATTACH PARTITION {default} DEFAULT")
                )
            created.append(name)
    return created
