"""One-round-trip appends (access records on PostgreSQL) write what ``append_group`` writes."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa

from aiaudit.common import commits
from aiaudit.common.access import access_event
from aiaudit.common.auth import DEV_CALLER
from aiaudit.common.store import SqlEventStore, open_store
from aiaudit.common.store.prepare import prepare
from aiaudit.common.store.quick import append_quick
from aiaudit.common.store.sql import NewEvent
from aiaudit.common.v1 import event_pb2
from tests.conftest import Postgres
from tests.helpers import interaction


@pytest.fixture
def store(postgres: Postgres) -> Iterator[SqlEventStore]:
    """PostgreSQL only, as the writer role: the path exists there (SQLite uses append_group)."""
    s = open_store(postgres.app_url)
    yield s
    s.close()


def _record(tenant: str, n: int) -> NewEvent:
    now = dt.datetime.now(dt.UTC)
    return prepare(access_event(DEV_CALLER, tenant, "test.read", {"n": n}, now), now)


def test_a_group_across_logs_continues_each_log_and_wakes_consumers(
    store: SqlEventStore, tenant: str
) -> None:
    other = f"{tenant}-b"
    store.append_group([[prepare(interaction(tenant), dt.datetime.now(dt.UTC))]])
    woken: list[None] = []
    unwatch = commits.on_commit(store.engine, lambda: woken.append(None))
    try:
        group = [_record(other, 0), _record(tenant, 1), _record(other, 2)]
        append_quick(store.engine, group)
    finally:
        unwatch()
    assert woken  # in-process consumers hear of the commit
    assert store.log_sizes()[tenant] == 2 and store.log_sizes()[other] == 2
    mine = store.read_log(tenant, 0, 10)
    assert [s.sequence for s in mine] == [0, 1]
    written = mine[1]
    assert written.event_id == group[1].event.event_id
    assert written.leaf_hash == group[1].committed.leaf_hash
    assert written.canonical == group[1].committed.canonical
    assert written.salt == group[1].salt
    assert written.to_event().attributes["access.n"].int_value == 1
    theirs = store.read_log(other, 0, 10)
    assert [s.to_event().attributes["access.n"].int_value for s in theirs] == [0, 2]
    with store.engine.connect() as conn:
        columns = conn.execute(
            sa.text("SELECT event_type, user_id FROM events WHERE log_id = :t AND seq = 1"),
            {"t": tenant},
        ).one()
    assert tuple(columns) == ("EVENT_TYPE_AUDIT_ACCESS", DEV_CALLER.principal)
    # Later appends through the ordinary path continue after the quick ones.
    receipts = store.append_group([[prepare(interaction(tenant), dt.datetime.now(dt.UTC))]])[0]
    assert isinstance(receipts, list) and receipts[0].sequence == 2


def test_a_refused_group_writes_nothing(store: SqlEventStore, tenant: str) -> None:
    first = _record(tenant, 0)
    append_quick(store.engine, [first])
    taken = _record(tenant, 1)
    event = event_pb2.Event()
    event.CopyFrom(taken.event)
    event.event_id = first.event.event_id  # an id already in the log
    with pytest.raises(psycopg.errors.UniqueViolation, match="log_entries_event_id_key"):
        append_quick(store.engine, [_record(tenant, 2), dataclasses.replace(taken, event=event)])
    assert store.log_sizes()[tenant] == 1
    assert [s.event_id for s in store.read_log(tenant, 0, 10)] == [first.event.event_id]
