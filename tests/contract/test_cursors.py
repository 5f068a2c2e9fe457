"""The outbox contract: cursors per consumer and log, on both backends."""

from __future__ import annotations

import datetime as dt

from aiaudit.common.store import cursors, open_store
from aiaudit.common.store.prepare import prepare
from aiaudit.common.store.sql import SqlEventStore
from tests.helpers import interaction


def test_backlog_and_advance(store: SqlEventStore, consumer_url: str, tenant: str) -> None:
    now = dt.datetime.now(dt.UTC)
    store.append_group([[prepare(interaction(tenant), now) for _ in range(5)]])
    consumer = open_store(consumer_url)
    with consumer.engine.begin() as conn:
        mine = [b for b in cursors.backlog(conn, "test-consumer") if b.log_id == tenant]
        assert mine == [cursors.Backlog(tenant, 0, 5)]
        cursors.advance(conn, "test-consumer", tenant, 3)
        cursors.advance(conn, "test-consumer", tenant, 2)  # never moves back
        assert cursors.position(conn, "test-consumer", tenant) == 3
        assert cursors.position(conn, "other-consumer", tenant) == 0
    entries = consumer.read_log(tenant, 3, 100)
    assert [e.sequence for e in entries] == [3, 4]
    with consumer.engine.begin() as conn:
        cursors.advance(conn, "test-consumer", tenant, 5)
        assert tenant not in {b.log_id for b in cursors.backlog(conn, "test-consumer")}
    consumer.close()
