"""A log head held by another session holds that tenant's reads alone (PostgreSQL).

Every read appends an access record to its tenant's log before it answers,
and concurrent reads' records share one transaction. The access log's writer
waited on a head lock with no limit: while an erasure of tenant A (or a
session left open with A's head) held it, the reads of every other tenant
whose records were grouped with A's, or queued behind that group, waited
too, until the lock went or their deadline passed (review, 2026-12-05). Now
the writer waits at most ``lock_timeout`` for a head and that log's records
wait in a lane of their own; A's reads still answer only once their record is
durable. Busy logs committing at once are capped, here and in ingest's group
committer, so that many busy tenants cannot take every connection.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path

import grpc
import psycopg
import pytest

from aiaudit.common import access
from aiaudit.common.access import AccessLog
from aiaudit.common.auth import DEV_CALLER
from aiaudit.common.store import open_store
from aiaudit.common.store.prepare import prepare_batch
from aiaudit.common.store.sql import Conflict, NewEvent, SqlEventStore
from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.ingest.committer import GroupCommitter
from aiaudit.search.v1 import search_service_pb2 as pb
from tests.conftest import Postgres
from tests.helpers import interaction, wait_until
from tests.integrity.conftest import login
from tests.search.conftest import start_suite

HELD = 60.0
"""How long a head may stay locked in these tests: far past any deadline they set."""

PROMPT = 8.0
"""A read of a tenant whose head is free answers within this (its call's deadline)."""


@contextlib.contextmanager
def heads_locked(postgres: Postgres, *log_ids: str) -> Iterator[Callable[[str], None]]:
    """The logs' heads locked by other sessions (as an erasure holds its tenant's head).

    Yields ``release(log_id)``, which lets one head go before the others.
    """
    with contextlib.ExitStack() as stack:
        held: dict[str, psycopg.Connection[tuple[object, ...]]] = {}
        for log_id in log_ids:
            conn = stack.enter_context(psycopg.connect(postgres.admin_dsn))
            conn.execute(f"SET idle_in_transaction_session_timeout = {int(HELD * 1000)}")
            row = conn.execute(
                "SELECT size FROM logs WHERE log_id = %s FOR UPDATE", (log_id,)
            ).fetchone()
            assert row is not None
            stack.callback(conn.rollback)
            held[log_id] = conn
        yield lambda log_id: held[log_id].rollback()


def waiting_for_heads(postgres: Postgres, longer_than: float = 0.0) -> int:
    """Sessions of the test database waiting for a lock, for more than ``longer_than`` s."""
    with psycopg.connect(postgres.admin_dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid() "
            "AND now() - query_start > make_interval(secs => %s)",
            (longer_than,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def access_records(store: SqlEventStore, log_id: str) -> list[ev.Event]:
    return [
        e
        for e in (s.to_event() for s in store.read_log(log_id, 0, 1000))
        if e.event_type == ev.EVENT_TYPE_AUDIT_ACCESS
    ]


def test_a_read_of_another_tenant_answers_while_a_head_is_held(
    tmp_path: Path, own_postgres: Postgres, tenant: str
) -> None:
    """Search, as the writer login (records take the one-statement path)."""
    a, b = f"{tenant}-a", f"{tenant}-b"
    postgres = own_postgres  # the indexer tails every log: the session's would come first
    running = start_suite(tmp_path, "sqlite", {}, store_url=postgres.app_url)
    store = open_store(postgres.admin_url)
    try:
        running.append([interaction(a, "a-1"), interaction(b, "b-1")])
        of_b = pb.SearchEventsRequest(tenant_id=b, filter='event_id = "b-1"')
        wait_until(lambda: running.search.SearchEvents(of_b).total_size == 1)
        of_a = pb.SearchEventsRequest(tenant_id=a, filter='event_id = "a-1"')
        with heads_locked(postgres, a):
            answer_of_a: Future[pb.SearchEventsResponse] = running.search.SearchEvents.future(
                of_a, timeout=HELD
            )
            wait_until(lambda: waiting_for_heads(postgres) >= 1)  # A's record waits for its head
            # B's reads answer within their deadline (DEADLINE_EXCEEDED on the old code: B's
            # records waited behind A's in the one writer)
            found = running.search.SearchEvents(of_b, timeout=PROMPT)
            assert [r.event.event_id for r in found.results] == ["b-1"]
            got = running.search.GetEvent(
                pb.GetEventRequest(tenant_id=b, event_id="b-1"), timeout=PROMPT
            )
            assert got.event.event_id == "b-1"
            assert len(access_records(store, b)) >= 3  # each answer's record is durable
            # A's read answers only once its record is: not while A's head is held
            assert not answer_of_a.done()
            assert access_records(store, a) == []
        found_a = answer_of_a.result(timeout=30)
        assert [r.event.event_id for r in found_a.results] == ["a-1"]
        (record,) = access_records(store, a)
        assert record.attributes["access.action"].string_value == "search.events"
        # A's lane drained and ended: A's next read goes the ordinary way, promptly
        running.search.SearchEvents(of_a, timeout=PROMPT)
        assert len(access_records(store, a)) == 2
    finally:
        store.close()
        running.channel.close()
        running.suite.stop()


def test_a_read_waiting_for_a_held_head_gives_up_at_the_record_wait(
    tmp_path: Path, own_postgres: Postgres, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read whose record waits for a head held elsewhere answers UNAVAILABLE after
    ``RECORD_WAIT_SECONDS``; its record still lands once the head is free. It waited
    with no limit, so reads of a tenant whose head a session kept could take every
    server thread (review, 2026-12-05)."""
    monkeypatch.setattr(access, "RECORD_WAIT_SECONDS", 1.0)
    a = f"{tenant}-a"
    postgres = own_postgres  # the indexer tails every log: the session's would come first
    running = start_suite(tmp_path, "sqlite", {}, store_url=postgres.app_url)
    store = open_store(postgres.admin_url)
    try:
        running.append([interaction(a, "a-1")])
        of_a = pb.SearchEventsRequest(tenant_id=a, filter='event_id = "a-1"')
        wait_until(lambda: running.search.SearchEvents(of_a).total_size == 1)
        before = len(access_records(store, a))
        with heads_locked(postgres, a):
            with pytest.raises(grpc.RpcError) as refused:
                running.search.SearchEvents(of_a, timeout=HELD)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "access record" in (refused.value.details() or "")
            assert len(access_records(store, a)) == before  # nothing answered, nothing yet
        wait_until(lambda: len(access_records(store, a)) == before + 1)  # the lane committed
    finally:
        store.close()
        running.channel.close()
        running.suite.stop()


@pytest.fixture
def postgres(own_postgres: Postgres) -> Postgres:
    """A database of the test's own: :func:`waiting_for_heads` counts every session of the
    database waiting for a lock, in the session's one another test's too."""
    return own_postgres


@pytest.fixture
def recorder(postgres: Postgres) -> Iterator[SqlEventStore]:
    """The store as a login granted only ``aiaudit_recorder`` (records take the
    transaction path, heads locked through ``aiaudit_record_head``)."""
    store = open_store(login(postgres, "aiaudit_recorder"))
    yield store
    store.close()


def _opened(store: SqlEventStore, *log_ids: str) -> None:
    now = dt.datetime.now(dt.UTC)
    store.append_group([prepare_batch([interaction(x)], now) for x in log_ids])


def test_a_recorders_records_of_another_tenant_commit_while_a_head_is_held(
    recorder: SqlEventStore, postgres: Postgres, tenant: str
) -> None:
    a, b = f"{tenant}-a", f"{tenant}-b"
    admin = open_store(postgres.admin_url)
    try:
        _opened(admin, a, b)
        access = AccessLog(recorder)
        with heads_locked(postgres, a):
            of_a = access.submit(DEV_CALLER, a, "test.read", {"n": 0})
            wait_until(lambda: waiting_for_heads(postgres) >= 1)
            of_b = [access.submit(DEV_CALLER, b, "test.read", {"n": i}) for i in range(3)]
            for f in of_b:
                f.result(timeout=PROMPT)  # TimeoutError on the old code
            also_a = access.submit(DEV_CALLER, a, "test.read", {"n": 1})  # goes to A's lane
            f = access.submit(DEV_CALLER, b, "test.read", {"n": 3})
            f.result(timeout=PROMPT)
            assert not of_a.done() and not also_a.done()
            assert access_records(admin, a) == []
        of_a.result(timeout=30)
        also_a.result(timeout=30)
        assert sorted(e.attributes["access.n"].int_value for e in access_records(admin, a)) == [
            0,
            1,
        ]
        assert len(access_records(admin, b)) == 4
    finally:
        admin.close()


def test_busy_logs_committing_at_once_are_capped_in_access_records(
    postgres: Postgres, tenant: str
) -> None:
    """One lane at a time here: the second busy log's records wait for the first lane,
    holding no connection, and the other tenants' records go on."""
    a, b, c = f"{tenant}-a", f"{tenant}-b", f"{tenant}-c"
    store = open_store(postgres.app_url)
    try:
        _opened(store, a, b, c)
        access = AccessLog(store, max_lanes=1)
        with heads_locked(postgres, a, c) as release:
            of_a = access.submit(DEV_CALLER, a, "test.read", {})
            of_c = access.submit(DEV_CALLER, c, "test.read", {})
            # both set aside (each costs the writer up to its lock timeout), B goes on
            access.submit(DEV_CALLER, b, "test.read", {}).result(timeout=PROMPT)
            wait_until(lambda: waiting_for_heads(postgres, longer_than=1.5) >= 1)
            with pytest.raises(AssertionError):  # a second lane would wait for the other head
                wait_until(lambda: waiting_for_heads(postgres, longer_than=1.5) >= 2, 3.0)
            assert not of_a.done() and not of_c.done()
            release(a)
            release(c)
        of_a.result(timeout=30)
        of_c.result(timeout=30)
        assert len(access_records(store, a)) == 1 and len(access_records(store, c)) == 1
    finally:
        store.close()


def _batch(log_id: str, *ids: str) -> list[NewEvent]:
    return prepare_batch([interaction(log_id, i) for i in ids], dt.datetime.now(dt.UTC))


def test_busy_logs_committing_at_once_are_capped_in_ingest(postgres: Postgres, tenant: str) -> None:
    a, b, c = f"{tenant}-a", f"{tenant}-b", f"{tenant}-c"
    store = open_store(postgres.app_url)
    committer = GroupCommitter(store, max_lanes=1)
    try:
        for f in [committer.submit(_batch(x, f"{x}-0")) for x in (a, b, c)]:
            f.result(30)
        with heads_locked(postgres, a, c) as release:
            of_a = committer.submit(_batch(a, "a-1"))
            of_c = committer.submit(_batch(c, "c-1"))
            outcome = committer.submit(_batch(b, "b-1")).result(timeout=PROMPT)
            assert not isinstance(outcome, Conflict)
            wait_until(lambda: waiting_for_heads(postgres, longer_than=1.5) >= 1)
            with pytest.raises(AssertionError):  # uncapped, two lanes wait for a head each
                wait_until(lambda: waiting_for_heads(postgres, longer_than=1.5) >= 2, 3.0)
            assert not of_a.done() and not of_c.done()
            release(a)
            release(c)
        for f in (of_a, of_c):
            outcome = f.result(timeout=30)
            assert not isinstance(outcome, Conflict)
        sizes = store.log_sizes()
        assert (sizes[a], sizes[b], sizes[c]) == (2, 2, 2)
    finally:
        committer.close()
        store.close()
