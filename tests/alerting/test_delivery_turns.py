"""A tenant's backlog of deliveries does not hold another tenant's alert behind it.

The sinks are shared by every tenant, and a deliverer's pass took the 100 rows due
longest: a tenant whose rules opened thousands of alerts (a rule keyed per user, a
flood of flagged events) had every other tenant's fresh alert wait until its backlog
was sent, 100 attempts a pass, each up to ``webhook_timeout`` (review, 2026-12-07).
A pass now takes turns between tenants, read through ``alerting_deliveries_turns``
(migration ``alerting_0007``), so its cost does not grow with one tenant's backlog.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from aiaudit.alerting.sinks import TURN_ROWS, Deliverer, SinkConfig, alert_json, due_rows
from aiaudit.alerting.tables import TS, deliveries
from aiaudit.common.store.migrate import migrate
from aiaudit.common.store.sql import SqlEventStore
from tests.alerting.conftest import bare_alert
from tests.helpers import serve_http, store_as_left


def recording(received: list[tuple[str, str]]) -> type[BaseHTTPRequestHandler]:
    """A webhook receiver that takes every alert, noting its (tenant, alert id) in order."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            alert = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((alert["tenant"], alert["alert_id"]))
            self.send_response(200)
            self.end_headers()

    return Handler


SECRET = "s3cret-for-tests"
LONG_AGO = dt.datetime(2001, 1, 1, tzinfo=dt.UTC)
"""Due times no other test's rows have: the deliverer's clock sees only these rows due."""
NOW = LONG_AGO + dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)


def queue(engine: sa.Engine, flooding: str, other: str, backlog: int) -> None:
    """``backlog`` webhook rows of ``flooding`` due a second apart, then one of ``other``
    an hour after the first."""
    rows = []
    for i in range(backlog):
        a = dataclasses.replace(bare_alert(flooding), alert_id=f"{i:032x}")
        rows.append((a, LONG_AGO + dt.timedelta(seconds=i)))
    rows.append((dataclasses.replace(bare_alert(other), alert_id="b" * 32), LONG_AGO + HOUR))
    with engine.begin() as conn:
        conn.execute(
            sa.insert(deliveries),
            [
                {
                    "tenant": a.tenant,
                    "alert_id": a.alert_id,
                    "sink": "webhook",
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_time": due,
                    "payload": alert_json(a),
                }
                for a, due in rows
            ],
        )


def test_a_tenants_backlog_does_not_hold_another_tenants_alert(
    consumer: SqlEventStore, tenant: str
) -> None:
    flooding, other = f"{tenant}-a", f"{tenant}-b"
    queue(consumer.engine, flooding, other, 150)
    received: list[tuple[str, str]] = []

    server, base = serve_http(recording(received))
    try:
        config = SinkConfig(webhook_url=f"{base}/hook", webhook_secret=SECRET)
        deliverer = Deliverer(consumer.engine, config, clock=lambda: NOW)
        first = deliverer.run_once()
        # A turn each, the tenant due longest first, then the rest of its turn.
        assert first == len(received) == TURN_ROWS + 1
        assert [t for t, _ in received[:2]] == [flooding, other]
        assert [a for _, a in received[2:]] == [f"{i:032x}" for i in range(1, TURN_ROWS)]
        while deliverer.run_once():
            pass
    finally:
        server.shutdown()
    assert sorted(received) == sorted(
        [(flooding, f"{i:032x}") for i in range(150)] + [(other, "b" * 32)]
    )


def pass_scans(engine: sa.Engine) -> list[str]:
    """How a webhook deliverer's pass reads ``alerting_deliveries``: one line per scan.

    PostgreSQL: each scan node of the table, its alias and the index it reads; SQLite:
    its query plan's lines naming the table's aliases (``d``, whether any row is due;
    ``x``, the probes; ``r``, rows by rowid).
    """
    statement = due_rows(engine.dialect.name, ("webhook",))
    sqlite = engine.dialect.name == "sqlite"
    prefix = "EXPLAIN QUERY PLAN" if sqlite else "EXPLAIN (FORMAT JSON)"
    explain = sa.text(f"{prefix} {statement.text}").bindparams(
        sa.bindparam("now", type_=TS), sink_0="webhook"
    )
    with engine.connect() as conn:
        found = conn.execute(explain, {"now": NOW})
        if sqlite:
            return [str(r[3]) for r in found if str(r[3]).split(" ")[1:2] in (["d"], ["x"], ["r"])]
        plan = found.scalar_one()[0]["Plan"]
    return [
        f"{node['Alias']} {node['Node Type']} {node.get('Index Name', '')}"
        for node in _nodes(plan)
        if node.get("Relation Name") == "alerting_deliveries"
    ]


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def assert_read_by_turns(engine: sa.Engine) -> None:
    """Every read of the outbox in a pass is a probe of ``alerting_deliveries_turns`` (or,
    on SQLite, a row fetched by its rowid), but for the oldest pending row's due time,
    read off ``alerting_deliveries_waiting``: none walks the due rows of every tenant."""
    scans = pass_scans(engine)
    assert scans, "the plan reads no outbox row"
    for scan in scans:
        assert re.fullmatch(_BY_TURNS, scan), scans


_BY_TURNS = (
    r"d Index (Only )?Scan alerting_deliveries_waiting"
    r"|x(_\d+)? Index (Only )?Scan alerting_deliveries_turns"
    r"|SEARCH d USING (COVERING )?INDEX alerting_deliveries_waiting \(sink=\?\)"
    r"|SEARCH x USING (COVERING )?INDEX alerting_deliveries_turns \(sink=\?.*\)"
    r"|SEARCH r USING INTEGER PRIMARY KEY \(rowid=\?\)"
)


def test_a_pass_reads_one_tenants_backlog_through_the_index(new_store: sa.Engine) -> None:
    """100,000 rows due of one tenant: with the tenant equated in the probes, both planners
    took ``alerting_deliveries_due`` (SQLite in a store made from scratch, PostgreSQL
    with statistics) and read every row of the backlog for the other tenant's row."""
    queue(new_store, "flood", "late", 100_000)
    if new_store.dialect.name == "postgresql":
        with new_store.begin() as conn:  # statistics as autovacuum would gather them
            conn.execute(sa.text("ANALYZE alerting_deliveries"))
    assert_read_by_turns(new_store)


def turns_index(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return {
            i["name"]
            for i in sa.inspect(conn).get_indexes("alerting_deliveries")
            if i["name"] in ("alerting_deliveries_turns", "alerting_deliveries_waiting")
        }


@pytest.fixture(params=["sqlite", "postgresql"])
def before_the_index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """A store as versions before ``alerting_0007`` left it: at ``alerting_0006``, no
    ``alerting_deliveries_turns`` (``alerting_0001`` makes the tables from today's
    definitions: dropped, the revision set back)."""

    def set_back(conn: sa.Connection) -> None:
        conn.execute(sa.text("DROP INDEX alerting_deliveries_turns"))
        conn.execute(sa.text("DROP INDEX alerting_deliveries_waiting"))
        conn.execute(
            sa.text(
                "UPDATE alembic_version SET version_num = 'alerting_0006'"
                " WHERE version_num = 'alerting_0007'"
            )
        )

    with store_as_left(request, tmp_path, "heads", set_back) as engine:
        yield engine


def test_migrating_a_store_from_before_the_index_builds_it_over_the_rows_there(
    before_the_index: sa.Engine,
) -> None:
    engine = before_the_index
    tenant = f"t-{uuid.uuid4().hex[:12]}"
    flooding, other = f"{tenant}-a", f"{tenant}-b"
    assert turns_index(engine) == set()
    queue(engine, flooding, other, 2_000)
    migrate(engine)
    migrate(engine)  # again: nothing to do
    assert turns_index(engine) == {"alerting_deliveries_turns", "alerting_deliveries_waiting"}
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:  # statistics as autovacuum would gather them
            conn.execute(sa.text("ANALYZE alerting_deliveries"))
    assert_read_by_turns(engine)
    with engine.connect() as conn:
        due = conn.execute(due_rows(engine.dialect.name, ("webhook",)), {"now": NOW}).all()
    assert [r.tenant for r in due[:2]] == [flooding, other]
    assert [r.alert_id for r in due] == [
        f"{0:032x}",
        "b" * 32,
        *(f"{i:032x}" for i in range(1, TURN_ROWS)),
    ]
