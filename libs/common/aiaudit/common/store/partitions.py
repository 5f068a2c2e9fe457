"""Monthly range partitions of the time-partitioned tables (PostgreSQL only).

Partitions are created ahead of time by migrations and `aiaudit db maintain`;
a DEFAULT partition catches anything outside them so an insert never fails.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from aiaudit.common.store.schema import PARTITIONED


def _month_start(day: dt.date, months_ahead: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months_ahead
    return dt.date(index // 12, index % 12 + 1, 1)


def ensure_partitions(conn: sa.Connection, today: dt.date, months_ahead: int = 12) -> list[str]:
    """Creates missing monthly partitions from this month on; returns their names."""
    if conn.dialect.name != "postgresql":
        return []
    created = []
    for table in PARTITIONED:
        conn.execute(
            sa.text(
                f"CREATE TABLE IF NOT EXISTS {table.name}_default PARTITION OF {table.name} DEFAULT"
            )
        )
        for i in range(months_ahead + 1):
            start, end = _month_start(today, i), _month_start(today, i + 1)
            name = f"{table.name}_{start:%Y_%m}"
            exists = conn.execute(sa.text("SELECT to_regclass(:n)"), {"n": name}).scalar()
            if exists is None:
                conn.execute(
                    sa.text(
                        f"CREATE TABLE {name} PARTITION OF {table.name} "
                        f"FOR VALUES FROM ('{start}') TO ('{end}')"
                    )
                )
                created.append(name)
    return created
