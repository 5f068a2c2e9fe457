"""An erasure recorded in several records: every part blanks the evidence of the events it names.

A heavy subject's erasure is recorded in parts since 2026-12-06 (one record naming every
id grew past what readers fetch): the engine applies each, also when it holds the log at
a damaged event and reads the records past it a page at a time.
"""

from __future__ import annotations

import contextlib
import json

import pytest

from aiaudit.alerting import engine as engine_module
from aiaudit.common.erasure import erase
from aiaudit.common.store import open_store
from aiaudit.common.store.sql import SqlEventStore
from tests.alerting.conftest import alert_rows, append, damaged_event, drain, make_engine, payloads
from tests.alerting.test_faults import ATTACK
from tests.helpers import interaction


def test_every_part_of_an_erasure_blanks_the_evidence_it_names(
    store: SqlEventStore, consumer: SqlEventStore, privacy_url: str, tenant: str
) -> None:
    append(store, [interaction(tenant, text=ATTACK, user="mallory") for _ in range(3)])
    engine = make_engine(consumer, sinks=("webhook",))
    try:
        drain(engine, tenant)
        (before,) = alert_rows(consumer, tenant)
        assert [f["excerpt"] != "" for f in json.loads(before.evidence)] == [True] * 3
        privacy = open_store(privacy_url)
        try:
            done = erase(privacy, tenant, "r", "dpo", subject_id="mallory", per_record=1)
        finally:
            privacy.close()
        assert len(done.record_ids) == 3
        drain(engine, tenant)
        (after,) = alert_rows(consumer, tenant)
        assert [f["excerpt"] for f in json.loads(after.evidence)] == [""] * 3
        assert all("Ignore all previous" not in p for p in payloads(consumer, tenant))
    finally:
        engine.close()


def test_every_part_of_an_erasure_past_a_held_log_blanks_the_evidence_it_names(
    store: SqlEventStore,
    consumer: SqlEventStore,
    owner_url: str,
    privacy_url: str,
    tenant: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The records past the hold are read a page a pass: the part naming the alert's event
    is the second record, met on the second pass."""
    monkeypatch.setattr(engine_module, "_HELD_RECORDS", 1)
    events = [interaction(tenant, text=ATTACK, user="mallory") for _ in range(3)]
    append(store, events)
    engine = make_engine(consumer, sinks=("webhook",))
    with damaged_event(owner_url, tenant), contextlib.closing(engine):
        engine.run_once()  # the event before the damaged one
        engine.run_once()  # held at the damaged one
        assert engine.held.get(tenant) == 1
        privacy = open_store(privacy_url)
        try:
            ids = [events[2].event_id, events[0].event_id]
            done = erase(privacy, tenant, "r", "dpo", event_ids=ids, per_record=1)
        finally:
            privacy.close()
        assert len(done.record_ids) == 2
        engine.run_once()  # the first part: an event the alert does not name yet
        (first,) = alert_rows(consumer, tenant)
        assert "Ignore all previous" in first.evidence
        engine.run_once()  # the second part
        assert engine.held.get(tenant) == 1
        (after,) = alert_rows(consumer, tenant)
        assert [f["excerpt"] for f in json.loads(after.evidence)] == [""]
        assert all("Ignore all previous" not in p for p in payloads(consumer, tenant))
