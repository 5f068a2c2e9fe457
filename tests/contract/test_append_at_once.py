"""Small groups on PostgreSQL go in one statement: they write what the other paths write."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa

from aiaudit.common import commits
from aiaudit.common.access import access_event
from aiaudit.common.auth import DEV_CALLER
from aiaudit.common.store import SqlEventStore, open_store
from aiaudit.common.store.prepare import prepare
from aiaudit.common.store.sql import NewEvent, Receipt, _append_at_once
from aiaudit.common.v1 import event_pb2
from tests.conftest import Postgres
from tests.helpers import concurrently, interaction, wait_until


@pytest.fixture
def store(postgres: Postgres) -> Iterator[SqlEventStore]:
    """PostgreSQL only, as the writer role: the path exists there (SQLite inserts row by row)."""
    s = open_store(postgres.app_url)
    yield s
    s.close()


def _record(tenant: str, n: int) -> NewEvent:
    now = dt.datetime.now(dt.UTC)
    return prepare(access_event(DEV_CALLER, tenant, "test.read", {"n": n}, now), now)


def test_a_group_across_logs_continues_each_log_and_wakes_consumers(
    store: SqlEventStore, tenant: str
) -> None:
    other = f"{tenant}-b"
    store.append_group([[prepare(interaction(tenant), dt.datetime.now(dt.UTC))]])
    woken: list[None] = []
    unwatch = commits.on_commit(store.engine, lambda: woken.append(None))
    try:
        group = [_record(other, 0), _record(tenant, 1), _record(other, 2)]
        outcomes = store.append_group([[group[0], group[1]], [group[2]]])
    finally:
        unwatch()
    assert woken  # in-process consumers hear of the commit
    receipts = [r for batch in outcomes for r in batch if isinstance(r, Receipt)]
    assert [(r.log_id, r.sequence) for r in receipts] == [(other, 0), (tenant, 1), (other, 1)]
    assert [r.leaf_hash for r in receipts] == [e.committed.leaf_hash for e in group]
    assert store.log_sizes()[tenant] == 2 and store.log_sizes()[other] == 2
    mine = store.read_log(tenant, 0, 10)
    assert [s.sequence for s in mine] == [0, 1]
    written = mine[1]
    assert written.event_id == group[1].event.event_id
    assert written.leaf_hash == group[1].committed.leaf_hash
    assert written.canonical == group[1].committed.canonical
    assert written.salt == group[1].salt
    assert written.to_event().attributes["access.n"].int_value == 1
    theirs = store.read_log(other, 0, 10)
    assert [s.to_event().attributes["access.n"].int_value for s in theirs] == [0, 2]
    with store.engine.connect() as conn:
        columns = conn.execute(
            sa.text("SELECT event_type, user_id FROM events WHERE log_id = :t AND seq = 1"),
            {"t": tenant},
        ).one()
    assert tuple(columns) == ("EVENT_TYPE_AUDIT_ACCESS", DEV_CALLER.principal)
    # A group large enough for COPY continues after the small one.
    now = dt.datetime.now(dt.UTC)
    big = store.append_group([[prepare(interaction(tenant), now) for _ in range(40)]])[0]
    assert isinstance(big, list) and [r.sequence for r in big] == list(range(2, 42))


def test_a_taken_id_fails_the_statement_with_nothing_written(
    store: SqlEventStore, postgres: Postgres, tenant: str
) -> None:
    """The unique index refuses the statement whole; append_group then plans with lookups."""
    first = _record(tenant, 0)
    store.append_group([[first]])
    taken = _record(tenant, 1)
    event = event_pb2.Event()
    event.CopyFrom(taken.event)
    event.event_id = first.event.event_id  # an id already in the log, other content
    group = [[_record(tenant, 2)], [taken._replace(event=event)]]
    with (
        psycopg.connect(
            sa.make_url(postgres.app_url)
            .set(drivername="postgresql")
            .render_as_string(hide_password=False),
            autocommit=True,
        ) as conn,
        conn.cursor(binary=True) as cursor,
        pytest.raises(psycopg.errors.UniqueViolation, match="log_entries_event_id_key"),
    ):
        _append_at_once(cursor, group)
    assert store.log_sizes()[tenant] == 1
    assert [s.event_id for s in store.read_log(tenant, 0, 10)] == [first.event.event_id]
    outcomes = store.append_group(group)  # the batch with the taken id alone is refused
    assert isinstance(outcomes[0], list) and outcomes[0][0].sequence == 1
    assert not isinstance(outcomes[1], list) and outcomes[1].event_id == first.event.event_id


def test_writers_in_several_threads_at_once_get_gap_free_sequences(
    store: SqlEventStore, tenant: str
) -> None:
    """Each thread takes a store connection of its own; the head lock keeps the log in order."""
    threads, per_thread = 6, 15
    start = threading.Barrier(threads)
    receipts: list[Receipt] = []

    def write(k: int) -> None:
        start.wait()
        for i in range(per_thread):
            (outcome,) = store.append_group([[_record(tenant, k * 100 + i)]])
            assert isinstance(outcome, list)
            receipts.extend(outcome)

    concurrently(threads, write)
    assert sorted(r.sequence for r in receipts) == list(range(threads * per_thread))
    stored = store.read_log(tenant, 0, threads * per_thread + 1)
    assert {s.event_id: s.sequence for s in stored} == {r.event_id: r.sequence for r in receipts}


def test_heads_are_locked_in_code_point_order_whatever_the_database_collation(
    postgres: Postgres, tenant: str
) -> None:
    """The one-statement path locks heads in the order the multi-statement path does.

    Under an en-US collation ``a_c`` sorts before ``a-b``, in code points after
    it: locked in the collation's order, a group holding one head while it
    waited for the other deadlocked with a writer locking them the other way.
    """
    db = f"aiaudit_icu_{tenant.replace('-', '_')}"
    with psycopg.connect(postgres.admin_dsn, autocommit=True) as admin:
        admin.execute(
            f"CREATE DATABASE {db} TEMPLATE template0 LOCALE_PROVIDER icu"
            " ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
        )
    dsn = postgres.admin_dsn.rsplit("/", 1)[0] + f"/{db}"
    url = dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    store = open_store(url, run_migrations=True)
    first, second = f"a-b{tenant}", f"a_c{tenant}"  # code point order; en-US says the reverse
    try:
        now = dt.datetime.now(dt.UTC)
        store.append_group([[prepare(interaction(log), now)] for log in (first, second)])
        with psycopg.connect(dsn) as holder:
            order = "SELECT x FROM unnest(%s::text[]) x ORDER BY x"
            assert [r[0] for r in holder.execute(order, ([first, second],))] == [second, first]
            holder.rollback()
            lock = "SELECT size FROM logs WHERE log_id = %s FOR UPDATE"
            holder.execute(lock, (first,))
            outcome: list[object] = []
            group = [[prepare(interaction(second), now)], [prepare(interaction(first), now)]]
            writer = threading.Thread(target=lambda: outcome.extend(store.append_group(group)))
            writer.start()
            waiting = (
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            with psycopg.connect(dsn, autocommit=True) as watcher:
                wait_until(lambda: watcher.execute(waiting, (db,)).fetchone()[0] == 1)  # type: ignore[index]
            holder.execute(lock + " NOWAIT", (second,))  # free: the writer waits holding nothing
            holder.rollback()
            writer.join(20)
        assert [[r.sequence for r in b] for b in outcome] == [[1], [1]]  # type: ignore[attr-defined]
    finally:
        store.close()
        with psycopg.connect(postgres.admin_dsn, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {db} WITH (FORCE)")
