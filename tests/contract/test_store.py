"""Store behaviour below gRPC: group commit, append-only grants, partitions."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
import sqlalchemy as sa

from aiaudit.common.store.schema import events
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from tests.conftest import Postgres, Running
from tests.helpers import empty_database, interaction, sqlalchemy_url, wait_until


@contextmanager
def writers_blocked(store_url: str, tenant: str, request: pytest.FixtureRequest) -> Iterator[None]:
    """Holds the tenant's log head lock from another connection."""
    if store_url.startswith("sqlite"):
        conn = sqlite3.connect(store_url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
    else:
        pg: Postgres = request.getfixturevalue("postgres")
        with psycopg.connect(pg.admin_dsn) as conn:
            conn.execute("SELECT size FROM logs WHERE log_id = %s FOR UPDATE", (tenant,))
            yield
            conn.rollback()


def test_concurrent_single_appends_share_transactions(
    server: Running,
    store_url: str,
    tenant: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The head held elsewhere, twenty appends queue behind the first group: they commit
    together once it is free.

    The writer waits for the head without a limit here: with its 1 s ``lock_timeout``
    (tests/contract/test_busy_heads.py) the first group went to a lane when the twenty
    took longer than that to reach the committer (a loaded machine), every later batch
    followed it there, uncounted in ``in_flight`` and ``backlog``, and the wait below ran
    out; or the lane committed them in three groups.
    """
    stub = pb_grpc.IngestServiceStub(server.channel)
    stub.Append(pb.AppendRequest(events=[interaction(tenant, "first")]))
    committer = server.suite.components["ingest"].committer  # type: ignore[attr-defined]
    monkeypatch.setattr(committer, "_lock_timeout", None)
    before = committer.groups_committed
    results: list[int] = []
    n = 20
    with writers_blocked(store_url, tenant, request):
        threads = [
            threading.Thread(
                target=lambda i=i: results.append(
                    stub.Append(pb.AppendRequest(events=[interaction(tenant, f"g{i}")]))
                    .receipts[0]
                    .sequence
                )
            )
            for i in range(n)
        ]
        for t in threads:
            t.start()
        wait_until(lambda: committer.in_flight + committer.backlog() == n)
    for t in threads:
        t.join()
    assert sorted(results) == list(range(1, n + 1))
    assert committer.groups_committed - before <= 2  # one blocked group, then everyone else at once


def test_application_role_cannot_change_or_delete(postgres: Postgres, tenant: str) -> None:
    import datetime as dt

    from aiaudit.common.store import open_store
    from aiaudit.common.store.prepare import prepare
    from aiaudit.common.store.sql import NewEvent  # noqa: F401  (documents what is written)

    store = open_store(postgres.app_url)
    store.append_group([[prepare(interaction(tenant, "x"), dt.datetime.now(dt.UTC))]])
    store.close()
    dsn = postgres.app_url.replace("postgresql+psycopg://", "postgresql://")
    for sql in (
        "UPDATE events SET event_type = 'EVENT_TYPE_FEEDBACK' WHERE log_id = %s",
        "DELETE FROM events WHERE log_id = %s",
        "UPDATE log_entries SET leaf_hash = '\\x00' WHERE log_id = %s",
        "DELETE FROM log_entries WHERE log_id = %s",
        "DELETE FROM event_content WHERE log_id = %s",
        "TRUNCATE events",
        "UPDATE logs SET size = 0 WHERE log_id = %s",  # the head only grows
        "UPDATE logs SET log_id = 'elsewhere' WHERE log_id = %s",
        "DELETE FROM logs WHERE log_id = %s",
    ):
        with psycopg.connect(dsn) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(sql, (tenant,) if "%s" in sql else None)


def test_events_are_partitioned_by_time(postgres: Postgres) -> None:
    with psycopg.connect(postgres.admin_dsn) as conn:
        parents = {
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_partitioned_table p "
                "JOIN pg_class c ON c.oid = p.partrelid"
            )
        }
        children = [
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'events'"
            )
        ]
    assert {"events", "event_content"} <= parents
    assert "events_default" in children and len(children) >= 13  # this month + 12 ahead + default


def test_db_migrate_command_is_idempotent(
    postgres: Postgres, capsys: pytest.CaptureFixture[str]
) -> None:
    from aiaudit.cli.main import main

    assert main(["db", "migrate", "--database-url", postgres.admin_url]) == 0
    assert "schema is current" in capsys.readouterr().out
    assert main(["db", "migrate", "--database-url", postgres.admin_url]) == 0


def test_a_connection_killed_under_the_pool_costs_nothing(postgres: Postgres, tenant: str) -> None:
    from aiaudit.common.store import open_store
    from aiaudit.common.store.prepare import prepare

    store = open_store(postgres.app_url, pool_size=1)
    try:
        now = dt.datetime.now(dt.UTC)
        store.append_group([[prepare(interaction(tenant, "before"), now)]])
        user = store.engine.url.username
        with psycopg.connect(postgres.admin_dsn, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = %s",
                (user,),
            ).fetchone()
        assert killed is not None and killed[0] >= 1  # the pooled connection is gone
        (outcome,) = store.append_group([[prepare(interaction(tenant, "after"), now)]])
        assert isinstance(outcome, list) and outcome[0].sequence == 1
        assert store.log_sizes()[tenant] == 2
    finally:
        store.close()


def test_an_append_after_a_database_restart_succeeds_at_once(
    postgres: Postgres, tenant: str
) -> None:
    """Every connection died (the store's own and the pool's): the retry opens a live one."""
    from aiaudit.common.store import open_store
    from aiaudit.common.store.prepare import prepare

    store = open_store(postgres.app_url, pool_size=1)
    try:
        now = dt.datetime.now(dt.UTC)
        store.append_group([[prepare(interaction(tenant, "before"), now)]])  # a store connection
        assert store.log_sizes()[tenant] == 1  # a pooled one, back in the pool
        with psycopg.connect(postgres.admin_dsn, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = %s",
                (store.engine.url.username,),
            ).fetchone()
        assert killed is not None and killed[0] >= 2
        (outcome,) = store.append_group([[prepare(interaction(tenant, "after"), now)]])
        assert isinstance(outcome, list) and outcome[0].sequence == 1
        assert store.log_sizes()[tenant] == 2
    finally:
        store.close()


def test_a_read_on_a_killed_connection_fails_as_sqlalchemy_would_then_recovers(
    postgres: Postgres, tenant: str
) -> None:
    """Reads go to psycopg directly; their errors still reach callers as SQLAlchemy's
    (what the services map to UNAVAILABLE), and the dead connection leaves the pool."""
    from aiaudit.common.store import open_store
    from aiaudit.common.store.prepare import prepare

    store = open_store(postgres.app_url, pool_size=1)
    try:
        store.append_group([[prepare(interaction(tenant, "kept"), dt.datetime.now(dt.UTC))]])
        assert [s.event_id for s in store.read_log(tenant, 0, 10)] == ["kept"]
        with psycopg.connect(postgres.admin_dsn, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (store.engine.url.username,),
            )
        with pytest.raises(sa.exc.OperationalError) as raised:
            store.read_log(tenant, 0, 10)
        assert raised.value.connection_invalidated
        assert [s.event_id for s in store.read_log(tenant, 0, 10)] == ["kept"]
    finally:
        store.close()


def test_a_large_group_round_trips_exactly(store_url: str, tenant: str) -> None:
    """Enough rows for PostgreSQL's COPY path: every column and byte comes back as written."""
    import sqlalchemy as sa

    from aiaudit.common.store import open_store
    from aiaudit.common.store.prepare import prepare
    from aiaudit.common.store.schema import events

    store = open_store(store_url)
    now = dt.datetime.now(dt.UTC)
    sent = []
    for i in range(80):  # above the COPY threshold
        e = interaction(tenant, f"big-{i}", text=f'naïve 東京 \\ " \n\t\x01 {i}', user=f"u{i % 3}")
        if i % 2:  # optional columns left empty on half of them
            e.actor.ClearField("application")
        else:
            e.correlation.session_id = f"s-{i}"
        e.occurred_time.FromDatetime(dt.datetime(2026, 3, 1, 12, 0, i % 60, 123456))
        sent.append(prepare(e, now))
    receipts = store.append_group([sent])[0]
    assert isinstance(receipts, list) and [r.sequence for r in receipts] == list(range(80))
    back = store.read_log(tenant, 0, 100)
    assert [s.event_id for s in back] == [f"big-{i}" for i in range(80)]
    for new, stored in zip(sent, back, strict=True):
        assert stored.canonical == new.committed.canonical
        assert stored.leaf_hash == new.committed.leaf_hash
        assert stored.salt == new.salt and stored.content == new.committed.content
        assert stored.receive_time == new.receive_time
        assert stored.to_event() == new.event
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(events.c.event_type, events.c.occurred_time, events.c.application)
            .where(events.c.log_id == tenant)
            .order_by(events.c.seq)
        ).all()
    assert [r.event_type for r in rows] == ["EVENT_TYPE_INTERACTION"] * 80
    assert [r.occurred_time.replace(tzinfo=dt.UTC) for r in rows] == [
        dt.datetime(2026, 3, 1, 12, 0, i % 60, 123456, tzinfo=dt.UTC) for i in range(80)
    ]
    assert [r.application for r in rows] == [None if i % 2 else "app" for i in range(80)]
    store.close()


def test_reading_a_fresh_log_finds_each_row_once(postgres: Postgres, tenant: str) -> None:
    """No statistics yet on a new tenant's rows: the read must still be linear, not quadratic.

    With a join, the planner took the fresh log for one row and rescanned the
    whole log for every entry read; each table is now scanned once by range,
    and the plans' row counts (over all loops) show it.
    """
    import json

    from aiaudit.common.store import open_store
    from aiaudit.common.store.prepare import prepare_batch
    from aiaudit.common.store.sql import _RANGE_PG

    store = open_store(postgres.app_url)
    now = dt.datetime.now(dt.UTC)
    for _ in range(3):
        store.append_group([prepare_batch([interaction(tenant) for _ in range(100)], now)])
    assert [s.sequence for s in store.read_log(tenant, 100, 150)] == list(range(100, 250))
    plans = []
    with store.engine.connect() as conn:
        for statement in _RANGE_PG:
            sql = statement % {"log_id": f"'{tenant}'", "start": 100, "stop": 250}
            plans.append(conn.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + sql).scalar_one())
    store.close()

    def visited(node: dict[str, object]) -> int:
        """Rows the scans of event rows produced, over all their loops."""
        rows = 0
        if str(node.get("Relation Name", "")).startswith(("events", "event_content")):
            rows += int(node["Actual Rows"]) * int(node["Actual Loops"])  # type: ignore[call-overload]
        for child in node.get("Plans", []):  # type: ignore[attr-defined]
            rows += visited(child)
        return rows

    trees = [(json.loads(p) if isinstance(p, str) else p)[0]["Plan"] for p in plans]
    # The log's entries, then the canonical forms, then salt with content: one row each.
    assert [visited(tree) for tree in trees] == [0, 150, 150]


def _partition_of(dsn: str, tenant: str) -> tuple[str, str]:
    """The partitions holding the tenant's only event and its content."""
    with psycopg.connect(dsn) as conn:
        (events,) = conn.execute(
            "SELECT tableoid::regclass::text FROM events WHERE log_id = %s", (tenant,)
        ).fetchone() or ("",)
        (content,) = conn.execute(
            "SELECT tableoid::regclass::text FROM event_content WHERE log_id = %s", (tenant,)
        ).fetchone() or ("",)
    return events, content


def test_db_migrate_moves_rows_waiting_in_default_into_their_month(
    own_postgres: Postgres, tenant: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A year without `db migrate` sends events to DEFAULT; the next run gives their month a
    partition and moves them there (PostgreSQL refuses that partition while DEFAULT holds
    its rows, so the month would stay in DEFAULT for good)."""
    from aiaudit.cli.main import main
    from aiaudit.common.store import open_store
    from aiaudit.common.store.prepare import prepare

    later = dt.datetime.now(dt.UTC).replace(day=15) + dt.timedelta(days=31 * 15)
    store = open_store(own_postgres.app_url)
    try:
        event = interaction(tenant, "far-ahead")
        store.append_group([[prepare(event, later)]])
        assert _partition_of(own_postgres.admin_dsn, tenant) == (
            "events_default",
            "event_content_default",
        )
        (first,) = store.read_log(tenant, 0, 10)
        before = (first.canonical, first.content)

        assert main(["db", "migrate", "--database-url", own_postgres.admin_url]) == 0
        month = f"{later:%Y_%m}"
        assert _partition_of(own_postgres.admin_dsn, tenant) == (
            f"events_{month}",
            f"event_content_{month}",
        )
        (stored,) = store.read_log(tenant, 0, 10)
        assert (stored.canonical, stored.content) == before  # moved whole, content and all
        assert main(["db", "migrate", "--database-url", own_postgres.admin_url]) == 0
    finally:
        store.close()


def test_partition_bounds_are_utc_midnights_whatever_the_session_zone(
    own_postgres: Postgres, tenant: str
) -> None:
    from aiaudit.common.store import open_store
    from aiaudit.common.store.partitions import ensure_partitions
    from aiaudit.common.store.prepare import prepare

    month = (dt.datetime.now(dt.UTC).replace(day=1) + dt.timedelta(days=31 * 20)).replace(day=1)
    engine = sa.create_engine(
        own_postgres.admin_url, connect_args={"options": "-c timezone=America/New_York"}
    )
    try:
        with engine.begin() as conn:
            assert f"events_{month:%Y_%m}" in ensure_partitions(conn, month.date(), months_ahead=0)
    finally:
        engine.dispose()
    store = open_store(own_postgres.app_url)
    try:  # two hours into the month in UTC: still the previous evening in New York
        store.append_group(
            [
                [
                    prepare(
                        interaction(tenant),
                        month.replace(hour=2, minute=0, second=0, microsecond=0),
                    )
                ]
            ]
        )
    finally:
        store.close()
    assert _partition_of(own_postgres.admin_dsn, tenant)[0] == f"events_{month:%Y_%m}"


def test_a_consumer_moves_only_its_own_cursor(own_postgres: Postgres, tenant: str) -> None:
    """The indexer's login (aiaudit_consumer) could set the notary's and alerting's cursors:
    events would never be signed or checked by a rule. Row-level security keeps each
    consumer's row to its own role; every cursor stays readable."""
    host = own_postgres.admin_dsn.split("@", 1)[1]
    dsns = {}
    with psycopg.connect(own_postgres.admin_dsn, autocommit=True) as admin:
        for role in ("aiaudit_notary", "aiaudit_alerting"):
            user, password = f"u_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
            admin.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{password}' IN ROLE {role}")
            dsns[role] = f"postgresql://{user}:{password}@{host}"
    dsns["aiaudit_consumer"] = own_postgres.consumer_url.replace("postgresql+psycopg", "postgresql")
    insert = "INSERT INTO consumer_cursors (consumer, log_id, position) VALUES (%s, %s, %s)"

    def run(role: str, sql: str, params: tuple[object, ...]) -> int:
        with psycopg.connect(dsns[role]) as conn:
            return conn.execute(sql, params).rowcount

    for owned, role in (("integrity", "aiaudit_notary"), ("alerting-windows", "aiaudit_alerting")):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            run("aiaudit_consumer", insert, (owned, tenant, 5))
        assert run(role, insert, (owned, tenant, 3)) == 1
        move = "UPDATE consumer_cursors SET position = 0 WHERE consumer = %s AND log_id = %s"
        assert run("aiaudit_consumer", move, (owned, tenant)) == 0  # not its row: untouched
    assert run("aiaudit_consumer", insert, ("search-indexer", tenant, 7)) == 1
    for role in ("aiaudit_notary", "aiaudit_alerting"):  # members of aiaudit_consumer too
        move = "UPDATE consumer_cursors SET position = 0 WHERE consumer = %s AND log_id = %s"
        assert run(role, move, ("search-indexer", tenant)) == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            run(role, insert, ("search-indexer", f"{tenant}-x", 9))
    with psycopg.connect(dsns["aiaudit_consumer"]) as conn:
        seen = conn.execute(
            "SELECT consumer, position FROM consumer_cursors WHERE log_id = %s", (tenant,)
        ).fetchall()
    assert sorted(seen) == [("alerting-windows", 3), ("integrity", 3), ("search-indexer", 7)]


def test_a_new_month_meets_partitions_an_older_version_bounded_in_local_time(
    own_postgres: Postgres,
) -> None:
    """Older versions wrote bounds in the session's zone (New York: 05:00 UTC); the next UTC
    month overlapped the last of them and `db migrate` failed for good."""
    from aiaudit.common.store.partitions import ensure_partitions

    month = (dt.datetime.now(dt.UTC).replace(day=1) + dt.timedelta(days=31 * 30)).date()
    month = month.replace(day=1)
    after = (month + dt.timedelta(days=31)).replace(day=1)
    local = sa.create_engine(
        own_postgres.admin_url, connect_args={"options": "-c timezone=America/New_York"}
    )
    try:
        with local.begin() as conn:
            for table in ("events", "event_content"):
                conn.execute(
                    sa.text(
                        f"CREATE TABLE {table}_{month:%Y_%m} PARTITION OF {table} "
                        f"FOR VALUES FROM ('{month}') TO ('{after}')"  # local midnights
                    )
                )
    finally:
        local.dispose()
    admin = sa.create_engine(own_postgres.admin_url)
    try:
        with admin.begin() as conn:
            made = ensure_partitions(conn, month, months_ahead=1)
    finally:
        admin.dispose()
    assert made == [f"events_{after:%Y_%m}", f"event_content_{after:%Y_%m}"]


def test_a_new_month_is_attached_beside_open_writes(own_postgres: Postgres) -> None:
    """Creating a partition as PARTITION OF locks the parent against every append and
    erasure until migrate commits; attaching one built apart does not wait for them."""
    from aiaudit.common.store.partitions import ensure_partitions

    month = (dt.datetime.now(dt.UTC).replace(day=1) + dt.timedelta(days=31 * 40)).date()
    with psycopg.connect(own_postgres.admin_dsn) as writer:  # an append in progress
        for table, columns, values in (
            ("events", "event_id, event_type, occurred_time, canonical", "'e', 'x', now(), ''"),
            ("event_content", "salt, content", "'', ''"),
        ):
            writer.execute(
                f"INSERT INTO {table} (log_id, seq, receive_time, {columns}) "
                f"VALUES ('t-open', 0, now(), {values})"
            )
        admin = sa.create_engine(own_postgres.admin_url)
        try:
            with admin.begin() as conn:
                conn.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
                made = ensure_partitions(conn, month.replace(day=1), months_ahead=0)
        finally:
            admin.dispose()
        writer.rollback()
    assert made == [f"events_{month:%Y_%m}", f"event_content_{month:%Y_%m}"]


def test_a_hand_made_archive_partition_from_minvalue_is_met_not_a_crash(
    own_postgres: Postgres,
) -> None:
    """An operator's `FOR VALUES FROM (MINVALUE)` partition has no bound to read: migrate
    failed comparing a time with nothing."""
    from aiaudit.common.store.partitions import ensure_partitions

    month = (dt.datetime.now(dt.UTC).replace(day=1) + dt.timedelta(days=31 * 50)).date()
    admin = sa.create_engine(own_postgres.admin_url)
    try:
        with admin.begin() as conn:
            conn.execute(
                sa.text(
                    "CREATE TABLE events_archive PARTITION OF events "
                    "FOR VALUES FROM (MINVALUE) TO ('2000-01-01 00:00:00+00')"
                )
            )
        with admin.begin() as conn:
            made = ensure_partitions(conn, month.replace(day=1), months_ahead=0, tables=[events])
    finally:
        admin.dispose()
    assert made == [f"events_{month:%Y_%m}"]


def _month_ahead(own_postgres: Postgres, tables: tuple[str, ...]) -> str:
    """Drops the month twelve ahead of ``tables``: what the monthly `db migrate` creates."""
    month = (dt.datetime.now(dt.UTC).date().replace(day=1) + dt.timedelta(days=31 * 12)).replace(
        day=1
    )
    with psycopg.connect(own_postgres.admin_dsn, autocommit=True) as conn:
        for table in tables:
            conn.execute(f"DROP TABLE {table}_{month:%Y_%m}")
    return f"{month:%Y_%m}"


def _migrating(url: str, name: str, failed: list[Exception]) -> threading.Thread:
    """`db migrate` (its engine named ``name`` in pg_stat_activity) in a thread of its own."""
    from aiaudit.common.store.migrate import migrate

    def run() -> None:
        engine = sa.create_engine(url, connect_args={"application_name": name})
        try:
            migrate(engine)
        except Exception as exc:
            failed.append(exc)
        finally:
            engine.dispose()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _waiting_for_a_lock(own_postgres: Postgres, name: str) -> bool:
    with psycopg.connect(own_postgres.admin_dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT wait_event_type FROM pg_stat_activity WHERE application_name = %s", (name,)
        ).fetchone()
    return row is not None and row[0] == "Lock"


@pytest.mark.parametrize("table", ["events", "event_content"])
def test_a_migrate_waiting_to_attach_a_month_holds_reads_and_erasures_only_briefly(
    own_postgres: Postgres, tenant: str, table: str
) -> None:
    """Attaching a month takes ACCESS EXCLUSIVE on the table's DEFAULT partition. While
    that waited behind a read in progress (a backup, a long export), each later read of
    the log (``events``) or erasure (``event_content``), neither pruned to its months,
    queued behind it for all of migrate's 10 s lock_timeout, and again at each of the
    CronJob's tries. Here they wait 3 s at most and get through; migrate ends once the
    read does."""
    from aiaudit.common import erasure
    from aiaudit.common.store import open_store
    from aiaudit.common.store.prepare import prepare

    store = open_store(own_postgres.app_url)
    try:
        store.append_group([[prepare(interaction(tenant, "e-0"), dt.datetime.now(dt.UTC))]])
    finally:
        store.close()
    month = _month_ahead(own_postgres, (table,))
    impatient = "?options=-c%20lock_timeout%3D3s"
    failed: list[Exception] = []
    with psycopg.connect(own_postgres.admin_dsn) as reader:  # a read in progress
        reader.execute(f"SELECT count(*) FROM {table}").fetchone()
        name = f"migrate-{uuid.uuid4().hex[:8]}"
        migrating = _migrating(own_postgres.admin_url, name, failed)
        wait_until(lambda: _waiting_for_a_lock(own_postgres, name))
        if table == "events":  # every consumer's read
            other = open_store(own_postgres.consumer_url + impatient, keys=None)
            try:
                assert [e.event_id for e in other.read_log(tenant, 0, 10)] == ["e-0"]
            finally:
                other.close()
        else:
            other = open_store(own_postgres.privacy_url + impatient, keys=None)
            try:
                erasure.erase(other, tenant, reason="r", requested_by="p", event_ids=["e-0"])
            finally:
                other.close()
        reader.rollback()
        migrating.join(timeout=120)
    assert not migrating.is_alive() and failed == []
    with psycopg.connect(own_postgres.admin_dsn) as conn:
        assert conn.execute("SELECT to_regclass(%s)", (f"{table}_{month}",)).fetchone() != (None,)


def test_two_migrates_at_once_both_succeed(own_postgres: Postgres) -> None:
    """The CronJob's migrate and an upgrade's hook Job may run at once: both created the
    same month, and the one that came second failed on the other's table (its Job retried,
    or the upgrade failed)."""
    month = _month_ahead(own_postgres, ("event_content",))
    failed: list[Exception] = []
    with psycopg.connect(own_postgres.admin_dsn) as reader:  # holds the first one's attach
        reader.execute("SELECT count(*) FROM event_content").fetchone()
        first, second = (f"migrate-{uuid.uuid4().hex[:8]}" for _ in range(2))
        threads = [_migrating(own_postgres.admin_url, first, failed)]
        wait_until(lambda: _waiting_for_a_lock(own_postgres, first))
        threads.append(_migrating(own_postgres.admin_url, second, failed))
        wait_until(lambda: _waiting_for_a_lock(own_postgres, second))
        reader.rollback()
        for thread in threads:
            thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads) and failed == []
    with psycopg.connect(own_postgres.admin_dsn) as conn:
        assert conn.execute("SELECT to_regclass(%s)", (f"event_content_{month}",)).fetchone() != (
            None,
        )


def test_two_migrates_of_a_new_database_take_turns(postgres: Postgres) -> None:
    """Two `db migrate`s at once over a database without the schema (an upgrade's hook Job
    and one run by hand, or two releases installed with --no-hooks) both created the
    tables, and the second failed with DuplicateTable. Each now waits for the schema
    lock: held here, both are seen waiting, and once let go both succeed."""
    from aiaudit.common.store.migrate import SCHEMA_LOCK

    failed: list[Exception] = []
    with empty_database(postgres.admin_dsn) as dsn, psycopg.connect(dsn) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        names = [f"migrate-{uuid.uuid4().hex[:8]}" for _ in range(2)]
        threads = [_migrating(sqlalchemy_url(dsn), name, failed) for name in names]
        wait_until(lambda: all(_waiting_for_a_lock(postgres, n) for n in names))
        holder.rollback()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(t.is_alive() for t in threads) and failed == []
        made = holder.execute("SELECT to_regclass('events_records')").fetchone()
        assert made == ("events_records",)


def test_db_partitions_tops_up_the_months_past_a_revision_it_does_not_know(
    own_postgres: Postgres, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the chart's schedule runs: the months, never the schema. The database is at a
    revision this code does not know (a release rolled back, an image changed between
    upgrades): `db migrate` stops at Alembic before the partitions (the schedule ran it
    until 2026-12-06, and the months stopped twelve ahead of its last good run), `db
    partitions` makes the month twelve ahead and leaves the revision as it was."""
    from alembic.util import CommandError

    from aiaudit.cli.main import main

    month = _month_ahead(own_postgres, ("events", "event_content"))
    with psycopg.connect(own_postgres.admin_dsn, autocommit=True) as conn:
        conn.execute(  # one branch's head (each branch has its row)
            "UPDATE alembic_version SET version_num = 'zz_future' "
            "WHERE version_num = (SELECT min(version_num) FROM alembic_version)"
        )
    url = own_postgres.admin_url
    with pytest.raises(CommandError, match="zz_future"):
        main(["db", "migrate", "--database-url", url])
    assert main(["db", "partitions", "--database-url", url]) == 0
    assert "twelve months ahead" in capsys.readouterr().out
    with psycopg.connect(own_postgres.admin_dsn) as conn:
        for table in ("events", "event_content"):
            made = conn.execute("SELECT to_regclass(%s)", (f"{table}_{month}",)).fetchone()
            assert made == (f"{table}_{month}",)
        revisions = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert ("zz_future",) in revisions


def test_db_partitions_over_a_database_without_the_schema_says_to_migrate_first(
    own_postgres: Postgres, capsys: pytest.CaptureFixture[str]
) -> None:
    from aiaudit.cli.main import main

    with empty_database(own_postgres.admin_dsn) as dsn:
        assert main(["db", "partitions", "--database-url", sqlalchemy_url(dsn)]) == 1
        err = capsys.readouterr().err
        assert "run `aiaudit db migrate` first" in err and "events" in err


def test_db_partitions_as_a_role_without_the_rights_says_so_not_to_migrate(
    own_postgres: Postgres, capsys: pytest.CaptureFixture[str]
) -> None:
    """The schedule's Secret naming a role that may not create tables (the services' own, a
    DBA's read-only login): until 2026-12-06 `db partitions` answered its "permission
    denied" with "run `aiaudit db migrate` first", as for a database with no schema, and an
    operator migrated a database that was current (review)."""
    from aiaudit.cli.main import main

    _month_ahead(own_postgres, ("events", "event_content"))
    assert main(["db", "partitions", "--database-url", own_postgres.app_url]) == 1
    err = capsys.readouterr().err
    assert "permission denied" in err and "the role lacks the rights" in err
    assert "db migrate` first" not in err


def test_db_migrate_as_a_role_without_the_rights_says_so(
    own_postgres: Postgres, capsys: pytest.CaptureFixture[str]
) -> None:
    """The hook's Secret naming the services' own login: `db migrate` ended in a traceback
    (review, 2026-12-06); it now names the refusal and the role to use, exit 1."""
    from aiaudit.cli.main import main

    assert main(["db", "migrate", "--database-url", own_postgres.app_url]) == 1
    err = capsys.readouterr().err
    assert "permission denied" in err and "the role lacks the rights" in err
    assert own_postgres.app_url.split("@")[0].split(":")[-1] not in err  # no password
