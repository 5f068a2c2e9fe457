"""The embedded index of another schema is dropped and rebuilt: said, and all of it or none."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
from pathlib import Path

import grpc
import pytest

from aiaudit.common.store import open_store
from aiaudit.common.store.prepare import prepare
from aiaudit.search import indexer
from aiaudit.search.backends import sqlite_fts
from aiaudit.search.v1 import search_service_pb2 as pb
from tests.helpers import flip_sealed_content, interaction, wait_until
from tests.search.conftest import SearchSuite, refusal, start_suite
from tests.search.test_contract import export


def test_an_index_of_another_schema_is_dropped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A version whose index schema changed drops the embedded index at start and indexes
    every log again: the drop takes time in the index's size before the service serves, and
    searches then find only what is indexed again. Nothing said so (review); a new file is
    no rebuild and says nothing."""
    path = tmp_path / "search.db"
    with caplog.at_level(logging.WARNING, logger=sqlite_fts.__name__):
        sqlite_fts.SqliteFtsBackend(path).close()
    assert not caplog.records  # a new file
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("INSERT INTO positions VALUES ('t', 7)")
    conn.execute(f"PRAGMA user_version = {sqlite_fts.SCHEMA_VERSION - 1}")
    conn.close()
    with caplog.at_level(logging.WARNING, logger=sqlite_fts.__name__):
        backend = sqlite_fts.SqliteFtsBackend(path)
    try:
        assert backend.positions() == {}
    finally:
        backend.close()
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2, said
    assert f"has schema {sqlite_fts.SCHEMA_VERSION - 1}" in said[0]
    assert f"needs {sqlite_fts.SCHEMA_VERSION}" in said[0]
    assert "indexing every log again" in said[0]
    assert "dropped in" in said[1]


def _building(err: grpc.RpcError) -> dict[str, str]:
    """UNAVAILABLE INDEX_BUILDING's metadata, with its RetryInfo's delay (``retry``)."""
    told = refusal(err)
    assert (told.pop("code"), told.pop("reason")) == ("UNAVAILABLE", "INDEX_BUILDING"), told
    return told


def _held(err: grpc.RpcError) -> dict[str, str]:
    """FAILED_PRECONDITION INDEX_HELD's metadata, with any RetryInfo's delay (``retry``)."""
    told = refusal(err)
    assert (told.pop("code"), told.pop("reason")) == ("FAILED_PRECONDITION", "INDEX_HELD"), told
    return told


def _answer(running: SearchSuite, tenant: str) -> list[str] | None:
    """Every data event of the tenant, oldest first; None while the index is being built."""
    try:
        return running.all_ids(tenant, order_by="sequence")
    except grpc.RpcError as exc:
        assert refusal(exc)["reason"] in ("INDEX_BUILDING", "INDEX_HELD")
        return None


@pytest.mark.parametrize("index", ["rebuilt", "new"])
def test_reads_of_a_log_the_index_is_still_building_answer_unavailable_not_part_of_it(
    tmp_path: Path, tenant: str, index: str
) -> None:
    """A rebuilt index (another schema) or a new one (no ``search.db``) over a store that
    holds events is indexed from sequence 0: until a log gets back to where it was, its
    searches and aggregates found what was indexed so far, as if whole (review: an event
    not indexed yet read as one that never happened). They answer UNAVAILABLE
    INDEX_BUILDING, saying how far the log is, and so do exports; the ordinary lag (a whole
    index behind the newest events) answers as before. The log is held here by a damaged
    event, so that the build stops half-way for as long as the test needs; that, waiting
    does not mend: the reads answer FAILED_PRECONDITION INDEX_HELD, naming the sequence,
    without a RetryInfo (until 2026-12-06 UNAVAILABLE INDEX_BUILDING, "retry in 10 s",
    however long the event stayed damaged)."""
    url = f"sqlite:///{tmp_path / 'aiaudit.db'}"  # content sealed: a damaged row holds the log
    open_store(url, run_migrations=True).close()
    ids = [f"e-{i}" for i in range(5)]
    first = start_suite(tmp_path, "sqlite", {}, store_url=url)
    try:
        first.append([interaction(tenant, i) for i in ids[:2]])
        first.wait_indexed(tenant, 2)
        first.suite.components["search"].indexer.stop()  # type: ignore[attr-defined]
        sequences = first.append([interaction(tenant, i) for i in ids[2:]])
    finally:
        first.channel.close()
        first.suite.stop()
    flip_sealed_content(url, tenant, sequences[0])  # e-2: the log is held there

    def probed(running: SearchSuite, probe: str) -> None:
        """Waits for a pass past the held log (a new tenant sorting after it is indexed)."""
        running.append([interaction(probe, "probe")])
        running.wait_indexed(probe, 1)
        backend = running.suite.components["search"].backend  # type: ignore[attr-defined]
        assert backend.positions()[tenant] == sequences[0]

    # A whole index behind the newest events: the ordinary lag, answered as the index is.
    lagging = start_suite(tmp_path, "sqlite", {}, store_url=url)
    try:
        probed(lagging, f"{tenant}-y")
        assert lagging.all_ids(tenant, order_by="sequence") == ids[:2]
    finally:
        lagging.channel.close()
        lagging.suite.stop()

    if index == "rebuilt":
        conn = sqlite3.connect(tmp_path / "search.db", isolation_level=None)
        conn.execute(f"PRAGMA user_version = {sqlite_fts.SCHEMA_VERSION - 1}")
        conn.close()
    else:
        for name in ("search.db", "search.db-wal", "search.db-shm"):
            (tmp_path / name).unlink(missing_ok=True)
    store = open_store(url)
    size = store.log_sizes()[tenant]  # the log when the build begins: access records too
    store.close()
    running = start_suite(tmp_path, "sqlite", {"export_wait": 30.0}, store_url=url)
    try:
        probed(running, f"{tenant}-z")
        with pytest.raises(grpc.RpcError) as searched:
            running.find(tenant)
        told = _held(searched.value)
        assert told == {
            "indexed": str(sequences[0]),
            "target": str(size),
            "held_at_sequence": str(sequences[0]),
            "retry": "",  # no RetryInfo: waiting does not end a hold
        }
        said = searched.value.details() or ""
        assert f"has {sequences[0]} of its {size} log entries indexed" in said
        assert f"held at sequence {sequences[0]} by an event that cannot be indexed" in said
        assert "retrying will not help until that event is repaired" in said
        assert "retry later" not in said
        with pytest.raises(grpc.RpcError) as counted:
            running.search.Aggregate(pb.AggregateRequest(tenant_id=tenant, group_by=["event_id"]))
        assert _held(counted.value)["indexed"] == str(sequences[0])
        with pytest.raises(grpc.RpcError) as exported:  # at once, not after export_wait
            export(running, tenant, pb.EXPORT_FORMAT_JSONL)
        assert _held(exported.value)["target"] == str(size)
        # The store still answers for one event; a tenant the build did not plan, as ever.
        got = running.search.GetEvent(pb.GetEventRequest(tenant_id=tenant, event_id="e-4"))
        assert got.event.event_id == "e-4"
        assert running.all_ids(f"{tenant}-z") == ["probe"]

        flip_sealed_content(url, tenant, sequences[0])  # mended: the log goes on
        assert wait_until(lambda: _answer(running, tenant)) == ids
        exported_ids = [
            json.loads(line)["eventId"]
            for line in export(running, tenant, pb.EXPORT_FORMAT_JSONL).decode().splitlines()
        ]
        assert exported_ids == ids
    finally:
        running.channel.close()
        running.suite.stop()


def test_a_build_is_planned_once_kept_across_a_restart_and_ends_where_the_log_was(
    tmp_path: Path, tenant: str
) -> None:
    """Driven pass by pass (no thread; batches of one entry, so a pass indexes
    ``_PASS_BATCHES``): a new index plans its build before it indexes anything, each log
    to its size then; a restart half-way keeps the plan; a log is built once indexed that
    far, though events appended since are not indexed yet (the ordinary lag), and a log
    born after the plan is never building. A file made before these tables is built."""
    store = open_store(f"sqlite:///{tmp_path / 'aiaudit.db'}", run_migrations=True)
    now = dt.datetime.now(dt.UTC)
    per_pass = indexer._PASS_BATCHES
    planned = per_pass + 10

    def append(log_id: str, n: int) -> None:
        store.append_group([[prepare(interaction(log_id), now) for _ in range(n)]])

    def one_pass(backend: sqlite_fts.SqliteFtsBackend) -> indexer.Indexer:
        running = indexer.Indexer(store, backend, 1, 0.05, 1.0, lambda _: None)
        try:
            running.run_once()
        finally:
            running._writer.shutdown(wait=True)  # never started: its bulk thread only
        return running

    append(tenant, planned)
    path = tmp_path / "search.db"
    backend = sqlite_fts.SqliteFtsBackend(path)
    try:
        assert backend.building() is None  # new: not planned yet
        unknown = indexer.Indexer(store, backend, 1, 0.05, 1.0, lambda _: None)
        unknown._writer.shutdown(wait=True)
        assert unknown.building(f"{tenant}-new") == indexer.Building(0, None, None)
        running = one_pass(backend)
        assert backend.building() == {tenant: planned}
        assert running.building(tenant) == indexer.Building(per_pass, planned, None)
        assert backend.positions()[tenant] == per_pass
    finally:
        backend.close()
    append(tenant, per_pass)  # after the plan: lag, not build
    append(f"{tenant}-new", 3)
    backend = sqlite_fts.SqliteFtsBackend(path)  # restarted half-way
    try:
        assert backend.building() == {tenant: planned}
        running = one_pass(backend)
        assert backend.positions()[tenant] == 2 * per_pass < planned + per_pass
        assert running.building(tenant) is None
        assert running.building(f"{tenant}-new") is None
        assert backend.building() == {}
    finally:
        backend.close()
    conn = sqlite3.connect(path, isolation_level=None)  # as a file of schema 5 made before
    conn.execute("DROP TABLE building")
    conn.execute("DROP TABLE build_unplanned")
    conn.close()
    backend = sqlite_fts.SqliteFtsBackend(path)
    try:
        assert backend.building() == {}
    finally:
        backend.close()
        store.close()
