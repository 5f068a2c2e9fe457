"""Access records: concurrent reads share commits, and a read whose record fails answers nothing."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import grpc
import psycopg
import pytest

from aiaudit.common.access import AccessLog
from aiaudit.common.auth import DEV_CALLER
from aiaudit.common.store import SqlEventStore
from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.search.v1 import search_service_pb2 as pb
from aiaudit.search.v1 import search_service_pb2_grpc as pb_grpc
from tests.conftest import Postgres
from tests.helpers import concurrently, interaction, open_log, wait_until
from tests.search.conftest import SearchSuite, start_suite


def test_concurrent_records_share_transactions_and_all_are_durable(
    store: SqlEventStore, tenant: str
) -> None:
    open_log(store, tenant)
    access = AccessLog(store)
    readers = 24
    barrier = threading.Barrier(readers)

    def read(i: int) -> None:
        barrier.wait()
        access.submit(DEV_CALLER, tenant, "test.read", {"n": i}).result(timeout=30)

    concurrently(readers, read)
    # Once a future resolved, its record is committed: a fresh read sees every one.
    stored = [s.to_event() for s in store.read_log(tenant, 1, 100)]
    assert sorted(e.attributes["access.n"].int_value for e in stored) == list(range(readers))
    assert {e.event_type for e in stored} == {ev.EVENT_TYPE_AUDIT_ACCESS}
    assert access.groups_committed < readers
    for e in stored:  # the read's own time, a moment before the log received its record
        lead = e.receive_time.ToDatetime(dt.UTC) - e.occurred_time.ToDatetime(dt.UTC)
        assert dt.timedelta(0) <= lead < dt.timedelta(seconds=30)


def test_a_stream_of_reads_reuses_one_writer_which_then_exits(
    store: SqlEventStore, tenant: str
) -> None:
    open_log(store, tenant)
    access = AccessLog(store)
    reads = 10
    for i in range(reads):  # one after the other, as a single client reads
        access.record(DEV_CALLER, tenant, "test.read", {"n": i})
    # Each read came within the writer's linger of the previous commit: no thread per read.
    assert access.writers_started < reads
    assert len(store.read_log(tenant, 1, 100)) == reads

    def writers() -> int:
        return sum(t.name == "access-log" and t.is_alive() for t in threading.enumerate())

    wait_until(lambda: writers() == 0)  # idle: no thread left behind
    access.record(DEV_CALLER, tenant, "test.read", {"n": reads})
    assert access.writers_started >= 2


def test_a_read_whose_access_record_fails_returns_nothing(
    tmp_path: Path, tenant: str, own_postgres: Postgres
) -> None:
    postgres = own_postgres  # the indexer tails every log: the session's would come first
    running = start_suite(tmp_path, "sqlite", {}, store_url=postgres.app_url)
    try:
        running.append([interaction(tenant, "e-1")])
        request = pb.SearchEventsRequest(tenant_id=tenant, filter='event_id = "e-1"')
        wait_until(lambda: running.search.SearchEvents(request).total_size == 1)
        with psycopg.connect(postgres.admin_dsn, autocommit=True) as admin:
            admin.execute("REVOKE INSERT ON log_entries FROM aiaudit_writer")
            try:
                with pytest.raises(grpc.RpcError) as refused:
                    running.search.SearchEvents(request)
            finally:
                admin.execute("GRANT INSERT ON log_entries TO aiaudit_writer")
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "access record could not be written" in str(refused.value.details())
        again = running.search.SearchEvents(request)
        assert [r.event.event_id for r in again.results] == ["e-1"]
    finally:
        running.channel.close()
        running.suite.stop()


def test_a_read_that_fails_while_its_record_fails_says_it_was_not_recorded(
    tmp_path: Path, tenant: str, own_postgres: Postgres
) -> None:
    """An error is an answer too (the page's store read failing here): it waits for the
    record, and without one answers that, as integrity's reads do. It answered the page's
    own error, unrecorded, after waiting for the record with no bound (review, 2026-12-05)."""
    running = start_suite(tmp_path, "sqlite", {}, store_url=own_postgres.app_url)
    try:
        running.append([interaction(tenant, "e-1")])
        request = pb.SearchEventsRequest(tenant_id=tenant, filter='event_id = "e-1"')
        wait_until(lambda: running.search.SearchEvents(request).total_size == 1)
        with psycopg.connect(own_postgres.admin_dsn, autocommit=True) as admin:
            admin.execute("REVOKE SELECT ON events FROM aiaudit_writer")  # the page fails
            with pytest.raises(grpc.RpcError) as failed:
                running.search.SearchEvents(request)
            assert "the store is unavailable" in str(failed.value.details())
            admin.execute("REVOKE INSERT ON log_entries FROM aiaudit_writer")  # and the record
            with pytest.raises(grpc.RpcError) as refused:
                running.search.SearchEvents(request)
    finally:
        running.channel.close()
        running.suite.stop()
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "access record could not be written" in str(refused.value.details())


def test_what_a_record_quotes_needs_pii_read_to_be_read_or_matched(
    search_suite: SearchSuite, tenant: str
) -> None:
    """A search's filter may name personal data the auditor may not search for.

    The compliance officer's search by IP left the IP in its access record's
    content: an auditor (content.read, no pii.read) read it there and matched
    it by full text, highlighted (review, 2026-12-04).
    """
    ip = "198.51.100.23"
    search_suite.append([interaction(tenant, "e-1")])
    officer = search_suite.as_role("compliance_officer")
    officer.SearchEvents(
        pb.SearchEventsRequest(tenant_id=tenant, filter=f'actor.ip_address = "{ip}"')
    )
    records = "event_type = AUDIT_ACCESS"

    def quoted(stub: pb_grpc.SearchServiceStub, **kw: str) -> list[str]:
        page = stub.SearchEvents(pb.SearchEventsRequest(tenant_id=tenant, page_size=100, **kw))
        return [
            part.text + "".join(f for h in r.highlights.values() for f in h.fragments)
            for r in page.results
            for m in r.event.input.messages
            for part in m.parts
        ]

    wait_until(lambda: any(ip in q for q in quoted(search_suite.search, filter=records)))
    assert any(ip in q for q in quoted(officer, filter=records))
    assert any(ip in q for q in quoted(officer, query=f'"{ip}"'))
    auditor = search_suite.as_role("auditor")
    assert not any(ip in q for q in quoted(auditor, filter=records))
    found = auditor.SearchEvents(pb.SearchEventsRequest(tenant_id=tenant, query=f'"{ip}"'))
    assert found.total_size == 0
    event_id = (
        officer.SearchEvents(pb.SearchEventsRequest(tenant_id=tenant, query=f'"{ip}"'))
        .results[0]
        .event.event_id
    )
    got = auditor.GetEvent(pb.GetEventRequest(tenant_id=tenant, event_id=event_id)).event
    assert got.event_type == ev.EVENT_TYPE_AUDIT_ACCESS
    assert [p.text for m in got.input.messages for p in m.parts] == [""]  # as if erased


def test_a_search_padded_past_4096_characters_is_recorded_whole(
    search_suite: SearchSuite, tenant: str
) -> None:
    """Records kept the first 4,096 characters of each text a search sends (8,192 allowed):
    a filter padded with blanks ran, and its record showed only the blanks (review)."""
    search_suite.append([interaction(tenant, "e-1", text="my diagnosis is cancer")])
    search_suite.wait_indexed(tenant, 1)
    asked = {"filter": " " * 4100 + 'event_id = "e-1"', "query": " " * 4100 + "cancer"}
    page = search_suite.search.SearchEvents(pb.SearchEventsRequest(tenant_id=tenant, **asked))
    assert [r.event.event_id for r in page.results] == ["e-1"]
    store = search_suite.suite.store
    records = [
        e
        for e in (s.to_event() for s in store.read_log(tenant, 0, 100))
        if e.event_type == ev.EVENT_TYPE_AUDIT_ACCESS and len(e.input.messages) == 2
    ]
    said = {m.name: m.parts[0].text for m in records[-1].input.messages}
    assert said == asked


def test_a_text_longer_than_a_record_keeps_is_marked_cut(store: SqlEventStore, tenant: str) -> None:
    """No request sends more than 64 KiB of one text; if one did, its record would say so."""
    open_log(store, tenant)
    access = AccessLog(store)
    long = "x" * 70_000
    access.submit(DEV_CALLER, tenant, "test.read", {"filter": long, "n": 1}).result(timeout=30)
    (record,) = [s.to_event() for s in store.read_log(tenant, 1, 10)]
    assert record.input.messages[0].parts[0].text == long[: 64 * 1024]
    assert record.attributes["access.filter.chars"].int_value == 70_000
    assert "access.n.chars" not in record.attributes
