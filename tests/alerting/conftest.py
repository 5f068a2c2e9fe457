"""Alerting fixtures: alerting runs as a login in ``aiaudit_alerting``, ingest writes events."""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import psycopg
import pytest
import sqlalchemy as sa
import yaml

from aiaudit.alerting.engine import Engine
from aiaudit.alerting.model import FIRING, Alert, StoredRule
from aiaudit.alerting.rulebook import RuleBook
from aiaudit.alerting.rules import compile_rule
from aiaudit.alerting.sinks import alert_json
from aiaudit.alerting.store import AlertStore
from aiaudit.alerting.tables import alerts, deliveries
from aiaudit.common import client, config
from aiaudit.common.store import open_store
from aiaudit.common.store.prepare import prepare
from aiaudit.common.store.sql import SqlEventStore
from aiaudit.common.v1 import event_pb2 as ev
from tests.conftest import Postgres, refuse_shared, shared_database, write_keys
from tests.helpers import clear_on_postgres


def bare_alert(tenant: str, rule_id: str = "r", change_seq: int = 0) -> Alert:
    """A firing alert with no events or evidence, for tests that write alert rows directly."""
    now = dt.datetime.now(dt.UTC)
    return Alert(
        tenant=tenant,
        alert_id="a" * 32,
        rule_id=rule_id,
        dedup_key="k",
        state=FIRING,
        severity=5,
        summary=rule_id,
        event_ids=[],
        evidence=[],
        labels={},
        occurrence_count=1,
        create_time=now,
        last_seen_time=now,
        change_seq=change_seq,
    )


def login(pg: Postgres, role: str) -> str:
    """A new login role that is a member of ``role``; returns its SQLAlchemy URL."""
    user, password = f"u_{uuid.uuid4().hex[:8]}", secrets.token_hex(16)
    with psycopg.connect(pg.admin_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{password}' IN ROLE {role}")
    return f"postgresql+psycopg://{user}:{password}@{pg.admin_dsn.split('@', 1)[1]}"


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A database of alerting's own, shared by its tests (each writes to its own tenant).

    The engine of every server these tests start tails every log of the store,
    like the search indexer and the notary (``own_postgres``): in the session's
    database it would first work through the logs other suites left there (the
    erasure contract's 70,000 entries, the notary's long backlog, damaged rows),
    and a test's alert would wait behind them for as long as that takes, which
    depends on which suites ran before (the jailbreak alert's test, then bounded
    at 1 s, missed its second and ``test_list_alerts_pagination`` its deadline so).
    """
    with shared_database() as pg:
        yield pg


@pytest.fixture(scope="session")
def alerting_login(postgres: Postgres) -> str:
    """One login granted only aiaudit_alerting for the session (what alerting runs as)."""
    return login(postgres, "aiaudit_alerting")


@pytest.fixture
def alerting_url(store_url: str, request: pytest.FixtureRequest) -> str:
    """The store as alerting runs in production: a login in ``aiaudit_alerting``."""
    if store_url.startswith("sqlite"):
        return store_url
    return str(request.getfixturevalue("alerting_login"))


@pytest.fixture
def consumer(alerting_url: str) -> Iterator[SqlEventStore]:
    """The store as the alerting role."""
    s = open_store(alerting_url)
    yield s
    s.close()


def append(store: SqlEventStore, events: list[ev.Event], when: dt.datetime | None = None) -> None:
    now = when or dt.datetime.now(dt.UTC)
    store.append_group([[prepare(e, now) for e in events]])


@pytest.fixture
def owner_url(store_url: str, request: pytest.FixtureRequest) -> str:
    """Who can overwrite a stored row: the database owner (an attacker with database access)."""
    if store_url.startswith("sqlite"):
        return store_url
    pg: Postgres = request.getfixturevalue("postgres")
    return pg.admin_url


def payloads(consumer: SqlEventStore, tenant: str) -> list[str]:
    """The tenant's delivery payloads (webhook outbox rows)."""
    with consumer.engine.connect() as c:
        found = c.execute(sa.select(deliveries.c.payload).where(deliveries.c.tenant == tenant))
        return list(found.scalars())


@contextlib.contextmanager
def damaged_event(owner_url: str, tenant: str, seq: int = 1) -> Iterator[Callable[[], None]]:
    """One event's stored canonical form overwritten with bytes that are no JSON.

    Yields the repair; it is also made on the way out, as the PostgreSQL database is
    shared by the session's other tests.
    """
    owner = sa.create_engine(owner_url)
    at = "WHERE log_id = :t AND seq = :s"
    where = {"t": tenant, "s": seq}
    with owner.begin() as conn:
        original = conn.execute(sa.text(f"SELECT canonical FROM events {at}"), where)
        canonical = original.scalar_one()
        conn.execute(sa.text(f"UPDATE events SET canonical = :c {at}"), {"c": b"not json", **where})

    def repair() -> None:
        with owner.begin() as conn:
            conn.execute(
                sa.text(f"UPDATE events SET canonical = :c {at}"), {"c": canonical, **where}
            )

    try:
        yield repair
    finally:
        repair()
        owner.dispose()


def make_engine(
    consumer: SqlEventStore, sinks: tuple[str, ...] = (), window_save_events: int = 1
) -> Engine:
    """An engine that saves window samples with every batch unless told otherwise."""
    store = AlertStore(consumer.engine)
    return Engine(
        consumer,
        store,
        RuleBook(store),
        sinks,
        500,
        alert_json,
        window_save_events=window_save_events,
    )


@contextlib.contextmanager
def serving(
    store_url: str,
    alerting_url: str,
    tmp_path: Path,
    *,
    search: bool = False,
    tenants: list[str] | None = None,
    **alerting: object,
) -> Iterator[tuple[grpc.Channel, dict[str, str], str]]:
    """Ingest and alerting on one server; alerting runs as ``alerting_url``, with ``alerting``
    settings beside; ``search``: search too (SQLite index), to read the log as its readers do;
    ``tenants``: the tenants every key names (default ``*``)."""
    from aiaudit.cli.server import start

    keys = write_keys(tmp_path / "keys.yaml", tenants)
    cfg = tmp_path / "aiaudit.yaml"
    settings: dict[str, object] = {
        "api_keys_file": str(tmp_path / "keys.yaml"),
        "address": "127.0.0.1:0",
        "data_dir": str(tmp_path),
        "database_url": store_url,
        "services": ["ingest", "alerting"],
        "alerting": {"database_url": alerting_url, "poll_interval": 0.02, **alerting},
        **clear_on_postgres(store_url),
    }
    if search:
        refuse_shared(store_url, "a search index")
        settings["services"] = ["ingest", "search", "alerting"]
        settings["search"] = {"backend": "sqlite", "poll_interval": 0.05, "max_backoff": 1.0}
    cfg.write_text(yaml.safe_dump(settings))
    suite = start(config.load(cfg, env={}))
    address = f"127.0.0.1:{suite.port}"
    channel = client.channel(address, keys["admin"])
    try:
        yield channel, keys, address
    finally:
        channel.close()
        suite.stop()


@pytest.fixture
def alerting_server(
    store_url: str, alerting_url: str, tmp_path: Path
) -> Iterator[tuple[grpc.Channel, dict[str, str], str]]:
    """Ingest and alerting on one server; alerting runs as the alerting role."""
    with serving(store_url, alerting_url, tmp_path) as running:
        yield running


def drain(engine: Engine, tenant: str) -> int:
    """Runs the engine over one tenant's log only (other tests share the database)."""
    from aiaudit.common.store import cursors

    total = 0
    while True:
        with engine.store.engine.connect() as conn:
            start = cursors.position(conn, "alerting", tenant)
        done = engine.process(tenant, start).processed
        if not done:
            return total
        total += done


def alert_rows(consumer: SqlEventStore, tenant: str, rule: str = "") -> list[sa.Row]:  # type: ignore[type-arg]
    """The tenant's alert rows (of one rule), by rule."""
    q = sa.select(alerts).where(alerts.c.tenant == tenant).order_by(alerts.c.rule_id)
    if rule:
        q = q.where(alerts.c.rule_id == rule)
    with consumer.engine.connect() as c:
        return list(c.execute(q))


def put_rule(consumer: SqlEventStore, tenant: str, source: str) -> None:
    """Stores a rule (enabled) as the service would, without the service."""
    store = AlertStore(consumer.engine)
    rule = compile_rule(source)
    with store.write() as conn, conn.begin():
        store.put_rule(
            conn,
            StoredRule(tenant, rule.id, source, True, rule.severity, dt.datetime.now(dt.UTC)),
        )
