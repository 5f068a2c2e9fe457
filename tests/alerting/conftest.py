"""Alerting fixtures: the engine runs as the consumer role, events are written as ingest."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from aiaudit.alerting.engine import Engine
from aiaudit.alerting.rulebook import RuleBook
from aiaudit.alerting.sinks import alert_json
from aiaudit.alerting.store import AlertStore
from aiaudit.common.store import open_store
from aiaudit.common.store.prepare import prepare
from aiaudit.common.store.sql import SqlEventStore
from aiaudit.common.v1 import event_pb2 as ev


@pytest.fixture
def consumer(consumer_url: str) -> Iterator[SqlEventStore]:
    s = open_store(consumer_url)
    yield s
    s.close()


def append(store: SqlEventStore, events: list[ev.Event], when: dt.datetime | None = None) -> None:
    now = when or dt.datetime.now(dt.UTC)
    store.append_group([[prepare(e, now) for e in events]])


def make_engine(consumer: SqlEventStore, sinks: tuple[str, ...] = ()) -> Engine:
    store = AlertStore(consumer.engine)
    return Engine(consumer, store, RuleBook(store), sinks, 500, alert_json)
