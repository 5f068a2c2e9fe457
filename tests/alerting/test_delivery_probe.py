"""A row due of another sink does not make a deliverer walk its own sink's tenants.

A pass first asks whether any row is due, and walks the tenants with rows pending only
if so. Asked of every sink's rows, one row due of a sink this process has no address
for (left pending for good) or of another deliverer's sink made each poll of the
webhook deliverer walk all its tenants: 152 ms a poll on PostgreSQL, 29 ms on SQLite,
with 10,000 tenants' rows waiting out their backoff (review, 2026-12-07).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from aiaudit.alerting.sinks import Deliverer, SinkConfig, alert_json, due_rows
from aiaudit.alerting.tables import deliveries
from tests.alerting.conftest import bare_alert

LONG_AGO = dt.datetime(2001, 1, 1, tzinfo=dt.UTC)
NOW = LONG_AGO + dt.timedelta(days=1)
TENANTS = 2_000


def pending(tenant: str, sink: str, due: dt.datetime) -> dict[str, object]:
    a = bare_alert(tenant)
    return {
        "tenant": a.tenant,
        "alert_id": a.alert_id,
        "sink": sink,
        "status": "pending",
        "attempts": 1,
        "next_attempt_time": due,
        "payload": alert_json(a),
    }


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def poll_work(engine: sa.Engine) -> int:
    """Work of a webhook deliverer's poll: SQLite's VM steps, PostgreSQL's outbox scans."""
    statement = due_rows(engine.dialect.name, ("webhook",))
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            explain = sa.text(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement.text}")
            plan = conn.execute(
                explain.bindparams(*statement._bindparams.values()), {"now": NOW}
            ).scalar_one()[0]["Plan"]
            return sum(
                n["Actual Loops"]
                for n in _nodes(plan)
                if n.get("Relation Name") == "alerting_deliveries"
            )
        raw = conn.connection.dbapi_connection
        steps = [0]

        def step() -> int:
            steps[0] += 1
            return 0

        raw.set_progress_handler(step, 1)  # type: ignore[union-attr]
        try:
            conn.execute(statement, {"now": NOW}).all()
        finally:
            raw.set_progress_handler(None, 1)  # type: ignore[union-attr]
        return steps[0]


def test_a_row_due_of_another_sink_walks_no_tenant(new_store: sa.Engine) -> None:
    engine = new_store
    waiting = NOW + dt.timedelta(hours=1)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(deliveries),
            [pending(f"t{i:05d}", "webhook", waiting) for i in range(TENANTS)],
        )
    nothing_due = poll_work(engine)
    with engine.begin() as conn:  # a syslog row this process has no address for, due
        conn.execute(sa.insert(deliveries), [pending("zz-other", "syslog", LONG_AGO)])
    other_due = poll_work(engine)
    assert other_due <= 2 * nothing_due, (nothing_due, other_due)
    config = SinkConfig(webhook_url="http://127.0.0.1:9/hook", webhook_secret="s3cret")
    assert Deliverer(engine, config, clock=lambda: NOW, sink="webhook").run_once() == 0
    with engine.connect() as conn:
        left = conn.execute(
            sa.select(
                deliveries.c.sink, deliveries.c.attempts, deliveries.c.next_attempt_time
            ).where(deliveries.c.tenant == "zz-other")
        ).one()
    assert (left.sink, left.attempts) == ("syslog", 1)
