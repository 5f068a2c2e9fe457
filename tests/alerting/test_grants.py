"""Least privilege on PostgreSQL: only the alerting role writes alerts, not every consumer."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from aiaudit.alerting.model import FIRING, Alert
from aiaudit.alerting.store import AlertStore
from aiaudit.alerting.tables import alerts, deliveries, rules
from tests.alerting.conftest import login
from tests.conftest import Postgres


def _alert(tenant: str) -> Alert:
    now = dt.datetime.now(dt.UTC)
    return Alert(
        tenant=tenant,
        alert_id="a" * 32,
        rule_id="forged",
        dedup_key="k",
        state=FIRING,
        severity=5,
        summary="forged",
        event_ids=[],
        evidence=[],
        labels={},
        occurrence_count=1,
        create_time=now,
        last_seen_time=now,
    )


def test_a_plain_consumer_cannot_write_alerts_and_the_alerting_role_can(
    postgres: Postgres, tenant: str
) -> None:
    indexer = sa.create_engine(postgres.consumer_url)  # what search and the notary run as
    engine = sa.create_engine(login(postgres, "aiaudit_alerting"))
    try:
        store = AlertStore(indexer)
        for write in (
            lambda c: store.insert_alert(c, _alert(tenant)),
            lambda c: c.execute(sa.update(alerts).values(state="resolved")),
            lambda c: c.execute(sa.delete(rules)),
            lambda c: c.execute(sa.select(deliveries.c.payload)),
        ):
            with (
                pytest.raises(sa.exc.ProgrammingError, match="permission denied"),
                indexer.begin() as conn,
            ):
                write(conn)
        with engine.begin() as conn:
            AlertStore(engine).insert_alert(conn, _alert(tenant))
        with engine.connect() as conn:
            got = conn.execute(sa.select(alerts.c.rule_id).where(alerts.c.tenant == tenant))
            assert got.scalars().all() == ["forged"]
            # Still a consumer: it reads the log and its own cursor.
            conn.execute(sa.text("SELECT count(*) FROM events WHERE log_id = :t"), {"t": tenant})
            conn.execute(sa.text("SELECT count(*) FROM consumer_cursors"))
    finally:
        indexer.dispose()
        engine.dispose()
