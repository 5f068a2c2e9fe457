"""Least privilege on PostgreSQL: only the alerting role writes alerts, not every consumer."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from aiaudit.alerting.store import AlertStore
from aiaudit.alerting.tables import alerts, deliveries, rules
from tests.alerting.conftest import bare_alert, login
from tests.conftest import Postgres


def test_a_plain_consumer_cannot_write_alerts_and_the_alerting_role_can(
    postgres: Postgres, tenant: str
) -> None:
    indexer = sa.create_engine(postgres.consumer_url)  # what search and the notary run as
    engine = sa.create_engine(login(postgres, "aiaudit_alerting"))
    try:
        store = AlertStore(indexer)
        for write in (
            lambda c: store.insert_alert(c, bare_alert(tenant, "forged")),
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
            AlertStore(engine).insert_alert(conn, bare_alert(tenant, "forged"))
        with engine.connect() as conn:
            got = conn.execute(sa.select(alerts.c.rule_id).where(alerts.c.tenant == tenant))
            assert got.scalars().all() == ["forged"]
            # Still a consumer: it reads the log and its own cursor.
            conn.execute(sa.text("SELECT count(*) FROM events WHERE log_id = :t"), {"t": tenant})
            conn.execute(sa.text("SELECT count(*) FROM consumer_cursors"))
    finally:
        indexer.dispose()
        engine.dispose()
