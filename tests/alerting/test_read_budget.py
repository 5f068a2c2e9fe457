"""The engine evaluates a log of large events in batches bounded by stored bytes, each once."""

from __future__ import annotations

import pytest

from aiaudit.alerting import engine as alerting
from aiaudit.common.store import cursors
from aiaudit.common.store.sql import SqlEventStore
from tests.alerting.conftest import alert_rows, drain, make_engine, put_rule
from tests.contract.test_read_budget import BUDGET, _log

EVERY_EVENT = "id: every\nseverity: low\nwhen: {field: actor.user_id, equals: alice}\n"


def test_a_log_of_large_events_is_evaluated_in_several_batches_each_event_once(
    store: SqlEventStore,
    consumer: SqlEventStore,
    tenant: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """2,000 events of a few MB were one batch of gigabytes: the engine was killed for its
    memory and read the same batch again on restart. Batches now end at READ_BYTES, and a
    batch cut there is read ahead and used like a whole one."""
    _log(store, tenant)
    monkeypatch.setattr(alerting, "READ_BYTES", BUDGET, raising=False)
    put_rule(consumer, tenant, EVERY_EVENT)
    engine = make_engine(consumer)
    batches: list[int] = []
    process = engine.process

    def recorded(log_id: str, start: int) -> alerting.Outcome:
        outcome = process(log_id, start)
        batches.append(outcome.processed)
        return outcome

    monkeypatch.setattr(engine, "process", recorded)
    try:
        assert drain(engine, tenant) == 12
    finally:
        engine.close()
    assert batches == [2, 2, 2, 2, 4, 0]
    rows = alert_rows(consumer, tenant, "every")
    assert [r.occurrence_count for r in rows] == [12]  # each event once: none skipped, none twice
    with consumer.engine.connect() as conn:
        assert cursors.position(conn, alerting.CONSUMER, tenant) == 12
