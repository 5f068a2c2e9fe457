"""A damaged stored event holds its own log only, at itself, with one error naming it.

Until 2026-12-05 a damaged row held its log at the start of its batch (the
healthy events before it in the batch were never indexed, and the error named
the batch's first sequence), and a damaged event named by an erasure record
stopped the indexer for every tenant (``search indexer paused``, health
NOT_SERVING).
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from grpc_health.v1 import health_pb2

from aiaudit.common.erasure import erase
from aiaudit.common.store import open_store
from aiaudit.common.store.prepare import prepare
from aiaudit.search.v1 import search_service_pb2 as pb
from tests.helpers import flip_sealed_content, holding, interaction, secret_word
from tests.integrity.test_entries_outside_log import error_info
from tests.search.conftest import SearchSuite, start_suite
from tests.search.test_faults import health

SERVING = health_pb2.HealthCheckResponse.SERVING


def junk_canonical(url: str, tenant: str, event_id: str) -> bytes:
    """Overwrites an event's canonical form with what no parser takes; returns what it was."""
    engine = sa.create_engine(url)
    where = "WHERE log_id = :t AND event_id = :e"
    try:
        with engine.begin() as conn:
            params = {"t": tenant, "e": event_id}
            was = conn.execute(sa.text(f"SELECT canonical FROM events {where}"), params)
            canonical = bytes(was.scalar_one())
            conn.execute(
                sa.text(f"UPDATE events SET canonical = :j {where}"), {**params, "j": b"not json"}
            )
    finally:
        engine.dispose()
    return canonical


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def positions(running: SearchSuite) -> dict[str, int]:
    return running.suite.components["search"].backend.positions()  # type: ignore[no-any-return]


@pytest.mark.parametrize("damage", ["canonical form", "sealed content"])
def test_the_events_before_a_damaged_one_in_its_batch_are_indexed_and_the_log_held_at_it(
    tmp_path: Path, tenant: str, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aiaudit.search")
    url = f"sqlite:///{tmp_path / 'aiaudit.db'}"
    store = open_store(url, run_migrations=True)  # content sealed under a KEK beside it
    now = dt.datetime.now(dt.UTC)
    names = [f"ok-{i}" for i in range(5)] + ["bad", "after"]
    store.append_group([[prepare(interaction(tenant, name), now) for name in names]])
    store.close()
    if damage == "canonical form":
        junk_canonical(url, tenant, "bad")
    else:
        flip_sealed_content(url, tenant, 5)
    running = start_suite(tmp_path, "sqlite", {})  # one batch holds all seven
    try:
        running.append([interaction(f"{tenant}-z", "probe")])
        running.wait_indexed(f"{tenant}-z", 1)  # the pass went past the damaged log
        assert sorted(running.all_ids(tenant)) == names[:5]
        assert positions(running)[tenant] == 5
        (held,) = errors(caplog)
        assert f"holds log {tenant} at sequence 5: event 'bad' is damaged" in held
        assert health(running.channel) == SERVING
    finally:
        running.channel.close()
        running.suite.stop()


def test_a_damaged_erased_event_holds_only_its_log_at_the_record_naming_it(
    tmp_path: Path, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The record's re-index of the events it names met one that does not parse: the
    indexer stopped for every tenant, and health went NOT_SERVING."""
    caplog.set_level(logging.INFO, logger="aiaudit.search")
    damaged, healthy = f"{tenant}-a", f"{tenant}-b"  # the damaged log's pass comes first
    url = f"sqlite:///{tmp_path / 'aiaudit.db'}"
    first = start_suite(tmp_path, "sqlite", {}, store_url=url)
    try:
        first.append([interaction(damaged, "m-0")])
        first.wait_indexed(damaged, 1)  # indexed, then erased and damaged
    finally:
        first.channel.close()
        first.suite.stop()
    store = open_store(url)
    sequence = store.log_sizes()[damaged]
    record = erase(store, damaged, "request", "dpo", event_ids=["m-0"]).record_id
    store.close()
    junk_canonical(url, damaged, "m-0")
    running = start_suite(tmp_path, "sqlite", {}, store_url=url)
    try:
        running.append([interaction(healthy, f"ok-{i}") for i in range(4)])
        running.wait_indexed(healthy, 4)  # the healthy tenant is not held up
        assert health(running.channel) == SERVING
        assert positions(running)[damaged] == sequence  # held at the record
        (held,) = errors(caplog)
        assert (
            f"holds log {damaged} at sequence {sequence}: event 'm-0', erased by the record "
            f"{record!r}, is damaged" in held
        )
    finally:
        running.channel.close()
        running.suite.stop()


def test_an_erasure_past_a_damaged_event_takes_the_text_out_of_the_index(
    tmp_path: Path, tenant: str
) -> None:
    """The log waits at the damaged event, its erasure record after it does not: the erased
    event's document is written again without its text (the index's files no longer hold
    it), and a count over content, which waits for the latest erasure, answers. Until
    2026-12-05 the record was never applied while the log was held: the text stayed
    searchable and countable, and a count over content answered UNAVAILABLE."""
    secret = secret_word()
    url = f"sqlite:///{tmp_path / 'aiaudit.db'}"
    first = start_suite(tmp_path, "sqlite", {}, store_url=url)
    try:
        first.append([interaction(tenant, "m-0", text=f"the {secret} plan", user="alice")])
        first.wait_indexed(tenant, 1)
    finally:
        first.channel.close()
        first.suite.stop()
    store = open_store(url)
    store.append_group([[prepare(interaction(tenant, "m-1", user="bob"), dt.datetime.now(dt.UTC))]])
    hold = store.log_sizes()[tenant] - 1
    assert erase(store, tenant, "gdpr", "dpo", subject_id="alice").erased == ["m-0"]
    record = store.log_sizes()[tenant] - 1
    store.close()
    canonical = junk_canonical(url, tenant, "m-1")
    running = start_suite(tmp_path, "sqlite", {"export_wait": 2.0}, store_url=url)
    try:
        running.append([interaction(f"{tenant}-z", "probe")])
        running.wait_indexed(f"{tenant}-z", 1)  # the pass went past the held log
        assert positions(running)[tenant] == hold  # still held at m-1
        assert holding([tmp_path / "search.db", tmp_path / "search.db-wal"], secret) == []
        assert running.find(tenant, query=secret).total_size == 0
        by_event = pb.AggregateRequest(tenant_id=tenant, query=f'"{secret}"', group_by=["event_id"])
        assert list(running.as_role("auditor").Aggregate(by_event).buckets) == []
        indexer = running.suite.components["search"].indexer
        assert indexer.wait_indexed(tenant, record + 1, timeout=0)  # what a count waits for
        assert not indexer.wait_indexed(tenant, record + 1, timeout=0, whole=True)  # an export

        engine = sa.create_engine(url)  # mended: the log goes on, the text does not come back
        with engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE events SET canonical = :c WHERE log_id = :t AND event_id = 'm-1'"),
                {"c": canonical, "t": tenant},
            )
        engine.dispose()
        running.wait_indexed(tenant, 3)  # m-0, m-1 and the record
        assert positions(running)[tenant] > record
        assert running.find(tenant, query=secret).total_size == 0
        assert running.all_ids(tenant, 'event_id = "m-0"') == ["m-0"]  # its metadata stays
    finally:
        running.channel.close()
        running.suite.stop()


def test_a_record_naming_a_damaged_event_still_takes_the_others_text_out(
    tmp_path: Path, tenant: str
) -> None:
    """The log is held at the record itself (one event it names does not parse): the other
    event it names loses its text all the same. The damaged one's document keeps its text,
    so a count over content still waits, and answers ERASURE_NOT_INDEXED."""
    kept, gone = secret_word(), secret_word()
    url = f"sqlite:///{tmp_path / 'aiaudit.db'}"
    first = start_suite(tmp_path, "sqlite", {}, store_url=url)
    try:
        first.append(
            [
                interaction(tenant, "m-0", text=f"the {kept} plan"),
                interaction(tenant, "m-1", text=f"the {gone} plan"),
            ]
        )
        first.wait_indexed(tenant, 2)
    finally:
        first.channel.close()
        first.suite.stop()
    store = open_store(url)
    erase(store, tenant, "gdpr", "dpo", event_ids=["m-0", "m-1"])
    record = store.log_sizes()[tenant] - 1
    store.close()
    junk_canonical(url, tenant, "m-0")
    running = start_suite(tmp_path, "sqlite", {"export_wait": 0.5}, store_url=url)
    try:
        running.append([interaction(f"{tenant}-z", "probe")])
        running.wait_indexed(f"{tenant}-z", 1)
        assert positions(running)[tenant] == record  # held at the record
        files = [tmp_path / "search.db", tmp_path / "search.db-wal"]
        assert holding(files, gone) == []
        assert holding(files, kept) != []  # m-0's document is as it was
        by_event = pb.AggregateRequest(tenant_id=tenant, query=f'"{kept}"', group_by=["event_id"])
        with pytest.raises(grpc.RpcError) as caught:
            running.as_role("auditor").Aggregate(by_event)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error_info(caught.value).reason == "ERASURE_NOT_INDEXED"
    finally:
        running.channel.close()
        running.suite.stop()
