"""A new OpenSearch ``index_prefix`` over a store holding events is built before it answers.

A new prefix (the README's way to re-index) is indexed from sequence 0 of every
log. Until 2026-12-06 its searches, aggregates and exports answered what it had
indexed so far, as if whole: an event not indexed yet read as one that never
happened. The leading indexer now records, when it starts on a prefix without
positions, each log's size (the store cursor ``search-indexer[:<prefix>]#building``),
and until a log's position reaches it the tenant's reads answer UNAVAILABLE
INDEX_BUILDING on every replica, as an embedded index being built does. On
PostgreSQL with the indexer's least-privileged login, as in production.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import psycopg
import pytest
from opensearchpy import OpenSearch

from aiaudit.common.store import cursors, open_store
from aiaudit.common.store.prepare import prepare
from aiaudit.search import indexer
from aiaudit.search.backends.opensearch import OpenSearchBackend, cursor_name
from aiaudit.search.v1 import search_service_pb2 as pb
from tests.conftest import Postgres
from tests.helpers import interaction, wait_until
from tests.search.conftest import SearchSuite, refusal
from tests.search.test_contract import export
from tests.search.test_damaged_logs import damage_in_clear
from tests.search.test_replicas import _replicas


def _told(running: SearchSuite, tenant: str) -> dict[str, str] | None:
    """What a search of the tenant says while its log is being built (:func:`refusal`); None
    once it answers."""
    try:
        running.all_ids(tenant)
    except grpc.RpcError as exc:
        return refusal(exc)
    return None


def _plan_rows(admin_dsn: str, prefix: str) -> dict[str, int]:
    """The prefix's build plan as the store holds it: log id -> its size when the build began."""
    with psycopg.connect(admin_dsn) as admin:
        rows = admin.execute(
            "SELECT log_id, position FROM consumer_cursors WHERE consumer = %s",
            (cursor_name(prefix) + "#building",),
        ).fetchall()
    return {log_id: int(position) for log_id, position in rows}


def _content(admin_dsn: str, tenant: str, seq: int) -> bytes:
    with psycopg.connect(admin_dsn) as admin:
        row = admin.execute(
            "SELECT content FROM event_content WHERE log_id = %s AND seq = %s", (tenant, seq)
        ).fetchone()
    assert row is not None
    return bytes(row[0])


def _mend(admin_dsn: str, tenant: str, seq: int, content: bytes) -> None:
    with psycopg.connect(admin_dsn) as admin:
        admin.execute(
            "UPDATE event_content SET content = %s WHERE log_id = %s AND seq = %s",
            (content, tenant, seq),
        )


def test_a_new_prefix_over_a_store_holding_events_answers_index_building_on_every_replica(
    tmp_path: Path, tenant: str, own_postgres: Postgres, opensearch_url: str, index_prefix: str
) -> None:
    """The store holds five events of the tenant, the third damaged (the log is held there,
    half-way through its build, for as long as the test needs); two replicas start on a
    prefix new to the store. The tenant's searches, aggregates and exports answer
    UNAVAILABLE INDEX_BUILDING, saying how far the log is, on the leader and on the standby
    alike (it reads the plan and the positions from the store); a tenant born after the plan
    answers. The hold is the leader's to name: it answers FAILED_PRECONDITION INDEX_HELD,
    without a RetryInfo (until 2026-12-06 INDEX_BUILDING, "retry in 10 s", for as long as
    the event stayed damaged); the standby does not know of it. Mended, both answer every
    event."""
    store = open_store(own_postgres.app_url, keys=None)  # content in clear, as the suites run
    ids = [f"e-{i}" for i in range(5)]
    try:
        now = dt.datetime.now(dt.UTC)
        store.append_group([[prepare(interaction(tenant, i), now) for i in ids]])
        size = store.log_sizes()[tenant]
    finally:
        store.close()
    kept = _content(own_postgres.admin_dsn, tenant, 2)
    damage_in_clear(own_postgres.admin_url, tenant, 2, "content JSON")
    replicas = _replicas(tmp_path, own_postgres, opensearch_url, index_prefix, export_wait=30.0)
    try:
        leader, standby = replicas
        standby.append([interaction(f"{tenant}-z", "probe")])
        standby.wait_indexed(f"{tenant}-z", 1)  # the leader's pass went past the held log
        assert leader.suite.components["search"].backend.positions()[tenant] == 2
        held = {
            "code": "FAILED_PRECONDITION",
            "reason": "INDEX_HELD",
            "indexed": "2",
            "target": str(size),
            "held_at_sequence": "2",
            "retry": "",  # no RetryInfo: waiting does not end a hold
        }
        assert _told(leader, tenant) == held
        building = {
            "code": "UNAVAILABLE",
            "reason": "INDEX_BUILDING",
            "indexed": "2",
            "target": str(size),
            "retry": "10",
        }
        wait_until(lambda: _told(standby, tenant) == building)  # the leader's positions, polled
        assert _plan_rows(own_postgres.admin_dsn, index_prefix) == {tenant: size}
        for running, expected in zip(replicas, (held, building), strict=True):
            with pytest.raises(grpc.RpcError) as counted:
                running.search.Aggregate(
                    pb.AggregateRequest(tenant_id=tenant, group_by=["event_id"])
                )
            assert refusal(counted.value) == expected
            with pytest.raises(grpc.RpcError) as exported:  # at once, not after export_wait
                export(running, tenant, pb.EXPORT_FORMAT_JSONL)
            assert refusal(exported.value) == expected
            assert running.all_ids(f"{tenant}-z") == ["probe"]

        _mend(own_postgres.admin_dsn, tenant, 2, kept)  # the log goes on
        for running in replicas:
            assert wait_until(lambda r=running: _told(r, tenant) is None and r.all_ids(tenant))
            assert running.all_ids(tenant, order_by="sequence") == ids
        assert leader.suite.components["search"].backend.building() == {}
        assert standby.suite.components["search"].backend.building() == {}
    finally:
        for r in replicas:
            r.channel.close()
            r.suite.stop()


@pytest.fixture
def other_prefix(opensearch_url: str) -> Iterator[str]:
    """An index prefix of the test's own, its indices and template removed at the end."""
    name = f"aiaudit-test-built-{uuid.uuid4().hex[:8]}"
    yield name
    direct = OpenSearch(hosts=[opensearch_url])
    direct.indices.delete(index=f"{name}-*", params={"ignore_unavailable": "true"})
    direct.indices.delete_index_template(name=name, params={"ignore": 404})
    direct.close()


def test_a_build_is_planned_once_kept_across_a_restart_and_never_for_a_prefix_with_positions(
    tenant: str, own_postgres: Postgres, opensearch_url: str, index_prefix: str, other_prefix: str
) -> None:
    """Driven pass by pass (no thread; batches of one entry, so a pass indexes
    ``_PASS_BATCHES``), on the indexer's login: a new prefix plans its build before it
    indexes anything, each log to its size then, in the store; a restart half-way keeps
    the plan; a log is built once indexed that far, though events appended since are not
    indexed yet (the ordinary lag), and a log born after the plan is never building. A
    prefix that already has positions (a deployment upgrading) gets no plan."""
    writer = open_store(own_postgres.app_url, keys=None)
    store = open_store(own_postgres.consumer_url, keys=None)  # the indexer's login
    now = dt.datetime.now(dt.UTC)
    per_pass = indexer._PASS_BATCHES
    planned = per_pass + 10

    def append(log_id: str, n: int) -> None:
        writer.append_group([[prepare(interaction(log_id), now) for _ in range(n)]])

    def backend(prefix: str) -> OpenSearchBackend:
        return OpenSearchBackend(OpenSearch(hosts=[opensearch_url]), store.engine, prefix, "1s")

    def one_pass(running_on: OpenSearchBackend) -> indexer.Indexer:
        running = indexer.Indexer(store, running_on, 1, 0.05, 1.0, lambda _: None)
        try:
            running.run_once()
        finally:
            running._writer.shutdown(wait=True)  # never started: its bulk thread only
        return running

    try:
        append(tenant, planned)
        first = backend(index_prefix)
        try:
            assert first.building() is None  # new over a store holding events: not planned
            running = one_pass(first)
            assert first.building() == {tenant: planned}
            assert _plan_rows(own_postgres.admin_dsn, index_prefix) == {tenant: planned}
            assert running.building(tenant) == indexer.Building(per_pass, planned, None)
            assert first.positions()[tenant] == per_pass
        finally:
            first.close()
        append(tenant, per_pass)  # after the plan: lag, not build
        append(f"{tenant}-new", 3)
        again = backend(index_prefix)  # restarted half-way
        try:
            assert again.building() == {tenant: planned}
            running = one_pass(again)
            assert again.positions()[tenant] == 2 * per_pass < planned + per_pass
            assert running.building(tenant) is None
            assert running.building(f"{tenant}-new") is None
            assert again.building() == {}
            assert _plan_rows(own_postgres.admin_dsn, index_prefix) == {tenant: planned}
        finally:
            again.close()

        # Another prefix an earlier version indexed part of: positions, and no plan.
        with store.engine.begin() as conn:
            cursors.advance(conn, cursor_name(other_prefix), tenant, per_pass)
        upgraded = backend(other_prefix)
        try:
            assert upgraded.building() == {}
            running = one_pass(upgraded)
            assert upgraded.positions()[tenant] == 2 * per_pass  # behind: the ordinary lag
            assert running.building(tenant) is None
            assert running.building(f"{tenant}-new") is None
            assert _plan_rows(own_postgres.admin_dsn, other_prefix) == {}
        finally:
            upgraded.close()
    finally:
        store.close()
        writer.close()


def test_the_build_cursor_is_no_prefix_s_own() -> None:
    """The plan's name: per prefix, within the column's 64 characters, starting
    ``search-indexer`` (the indexer's role writes it, under the row policies that keep such
    cursors to it), and never a prefix's own cursor nor its erasures'."""
    from aiaudit.search.backends import opensearch

    long = "p" * 61
    prefixes = ["aiaudit-events", "aiaudit-v2", "building", long, long[:-1] + "q"]
    names = [opensearch.building_cursor_name(p) for p in prefixes]  # type: ignore[attr-defined]
    assert names[:3] == [
        "search-indexer#building",
        "search-indexer:aiaudit-v2#building",
        "search-indexer:building#building",
    ]
    assert len(set(names)) == len(names)
    assert all(n.startswith("search-indexer") and len(n) <= 64 for n in names)
    others = {opensearch.cursor_name(p) for p in prefixes}
    others |= {opensearch.erasures_cursor_name(p) for p in prefixes}
    assert not others & set(names)
