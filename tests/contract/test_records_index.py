"""The latest erasure or retention record of a log is found by its own index.

Every search, aggregate and export over content asks for it. Without the
partial index ``events_records`` both backends walked the log's primary key
backwards through every event (PostgreSQL on a partition without statistics,
SQLite always): the plans below name the index, so those walks are gone.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from aiaudit.common.store import SqlEventStore, open_store
from aiaudit.common.store.migrate import migrate
from aiaudit.common.store.prepare import prepare_batch
from aiaudit.common.store.sql import LAST_RECORD, LAST_RECORD_PG
from aiaudit.common.v1 import event_pb2 as ev
from tests.helpers import interaction, store_as_left


def load_with_a_record(store: SqlEventStore, tenant: str) -> int:
    """200 interactions, a retention record, 200 more; returns the record's sequence."""
    record = interaction(tenant, "retention")
    record.event_type = ev.EVENT_TYPE_RETENTION_APPLIED
    batch = [
        *(interaction(tenant, f"a-{i}") for i in range(200)),
        record,
        *(interaction(tenant, f"b-{i}") for i in range(200)),
    ]
    store.append_group([prepare_batch(batch, dt.datetime.now(dt.UTC))])
    return 200


def records_index_scans(engine: sa.Engine, tenant: str) -> list[str]:
    """How each plan of the store's statement reads the log's events (one line per scan).

    PostgreSQL: the custom plan and the generic one (the store prepares the
    statement, and after five runs PostgreSQL may keep a plan made without the
    tenant), each scan of the partition holding the tenant's events named by
    the index it reads; SQLite: its query plan's lines.
    """
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.execute(sa.text(f"EXPLAIN QUERY PLAN {LAST_RECORD}"), {"log_id": tenant})
            return [str(r[3]) for r in rows]
        (partition,) = conn.execute(
            sa.text("SELECT tableoid::regclass::text FROM events WHERE log_id = :t LIMIT 1"),
            {"t": tenant},
        ).one()
        custom = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {LAST_RECORD_PG}", {"log_id": tenant})
        conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        name = f"last_record_{uuid.uuid4().hex[:8]}"
        conn.exec_driver_sql(
            f"PREPARE {name}(text) AS {LAST_RECORD_PG.replace('%(log_id)s', '$1')}"
        )
        generic = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) EXECUTE {name}('{tenant}')")
        plans = [custom.scalar_one()[0]["Plan"], generic.scalar_one()[0]["Plan"]]
        return [
            f"{node['Node Type']} {node.get('Index Name', '')}"
            for plan in plans
            for node in _nodes(plan)
            if node.get("Relation Name") == partition
        ]


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def records_index_names(engine: sa.Engine) -> set[str]:
    """``events_records`` and, on PostgreSQL, its partitions' indexes (named by the server)."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            found = conn.execute(
                sa.text(
                    "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'"
                )
            )
            return {n for (n,) in found if n == "events_records"}
        found = conn.execute(
            sa.text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = to_regclass('events_records')"
                " UNION SELECT relname FROM pg_class WHERE relname = 'events_records'"
            )
        )
        return {n for (n,) in found}


def assert_found_by_the_index(engine: sa.Engine, tenant: str) -> None:
    names = records_index_names(engine)
    assert "events_records" in names
    scans = records_index_scans(engine, tenant)
    assert scans, "no plan reads the tenant's events"
    for scan in scans:
        assert any(scan.endswith(f" {n}") or f"INDEX {n} " in f"{scan} " for n in names), scans


def test_the_latest_record_is_found_by_its_index_not_by_walking_the_log(
    store: SqlEventStore, tenant: str
) -> None:
    record = load_with_a_record(store, tenant)
    assert store.last_record(tenant) == record
    assert_found_by_the_index(store.engine, tenant)


@pytest.fixture(params=["sqlite", "postgresql"])
def before_the_index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """A store as versions before revision ``0012`` left it: at ``0011``, no ``events_records``
    (``0001`` makes the tables from today's definitions: dropped, the revision set back)."""

    def set_back(conn: sa.Connection) -> None:
        conn.execute(sa.text("DROP INDEX events_records"))
        conn.execute(
            sa.text(
                "UPDATE alembic_version SET version_num = '0011' "
                "WHERE version_num IN ('0012', '0013', '0014')"
            )
        )

    with store_as_left(request, tmp_path, "heads", set_back) as engine:
        yield engine


def test_migrating_a_store_from_before_the_index_builds_it_over_the_events_there(
    before_the_index: sa.Engine,
) -> None:
    engine = before_the_index
    tenant = f"t-{uuid.uuid4().hex[:12]}"
    assert records_index_names(engine) == set()
    store = open_store(engine.url.render_as_string(hide_password=False))
    try:
        record = load_with_a_record(store, tenant)
        migrate(engine)
        migrate(engine)  # again: nothing to do
        assert store.last_record(tenant) == record
        assert_found_by_the_index(engine, tenant)
    finally:
        store.close()
