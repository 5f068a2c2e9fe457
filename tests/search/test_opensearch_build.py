"""A new OpenSearch ``index_prefix`` over a store holding events is built before it answers.

A new prefix (the README's way to re-index) is indexed from sequence 0 of every
log. Until 2026-12-06 its searches, aggregates and exports answered what it had
indexed so far, as if whole: an event not indexed yet read as one that never
happened. The leading indexer now records, when it starts on a prefix without
positions, each log's size (the store cursor ``search-indexer[:<prefix>]#building``),
and until a log's position reaches it the tenant's reads answer UNAVAILABLE
INDEX_BUILDING on every replica, as an embedded index being built does; a log held
below it by an event that cannot be indexed answers FAILED_PRECONDITION INDEX_HELD on
every replica too (the leader records the hold, ``search-indexer[:<prefix>]#held``; until
2026-12-06 standbys answered INDEX_BUILDING). On PostgreSQL with the indexer's
least-privileged login, as in production.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from opensearchpy import OpenSearch

from aiaudit.common import leader
from aiaudit.common.store import cursors, open_store
from aiaudit.common.store.prepare import prepare
from aiaudit.common.store.sql import SqlEventStore
from aiaudit.search import indexer
from aiaudit.search.backends.base import BackendUnavailableError
from aiaudit.search.backends.opensearch import (
    OpenSearchBackend,
    cursor_name,
    held_cursor_name,
)
from aiaudit.search.v1 import search_service_pb2 as pb
from tests.conftest import Postgres
from tests.helpers import interaction, wait_until
from tests.search.conftest import SearchSuite, refusal
from tests.search.test_contract import export
from tests.search.test_damaged_logs import damage_in_clear
from tests.search.test_replicas import _replicas


def _indexer(
    store: SqlEventStore, backend: OpenSearchBackend, batch: int = 10, **kw: Any
) -> indexer.Indexer:
    """An indexer of ``store`` into ``backend`` (``batch`` entries a bulk, polls of 0.05 s)."""
    return indexer.Indexer(store, backend, batch, 0.05, 1.0, lambda _: None, **kw)


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


def _held_rows(admin_dsn: str, prefix: str) -> dict[str, int]:
    """Where the leader recorded logs held, as the store holds it: log id -> the hold's
    sequence + 1."""
    with psycopg.connect(admin_dsn) as admin:
        rows = admin.execute(
            "SELECT log_id, position FROM consumer_cursors WHERE consumer = %s",
            (held_cursor_name(prefix),),
        ).fetchall()
    return {log_id: int(position) for log_id, position in rows}


def test_a_new_prefix_over_a_store_holding_events_answers_index_building_on_every_replica(
    tmp_path: Path, tenant: str, own_postgres: Postgres, opensearch_url: str, index_prefix: str
) -> None:
    """The store holds five events of the tenant, the third and the fourth damaged (the log
    is held at the third, half-way through its build, for as long as the test needs); two
    replicas start on a prefix new to the store. The tenant's searches, aggregates and
    exports are refused, saying how far the log is, on the leader and on the standby alike
    (it reads the plan and the positions from the store); a tenant born after the plan
    answers. The log is held: both answer FAILED_PRECONDITION INDEX_HELD at its sequence,
    without a RetryInfo (until 2026-12-06 INDEX_BUILDING, "retry in 10 s", for as long as
    the event stayed damaged; the standby kept saying so after that, the hold being in the
    leader's memory only: it now reads the leader's record of it in the store). The third
    mended, the log moves on to the fourth, where both say it is held now; that mended
    too, both answer every event."""
    store = open_store(own_postgres.app_url, keys=None)  # content in clear, as the suites run
    ids = [f"e-{i}" for i in range(5)]
    try:
        now = dt.datetime.now(dt.UTC)
        store.append_group([[prepare(interaction(tenant, i), now) for i in ids]])
        size = store.log_sizes()[tenant]
    finally:
        store.close()
    kept = {seq: _content(own_postgres.admin_dsn, tenant, seq) for seq in (2, 3)}
    for seq in kept:
        damage_in_clear(own_postgres.admin_url, tenant, seq, "content JSON")
    replicas = _replicas(tmp_path, own_postgres, opensearch_url, index_prefix, export_wait=30.0)

    def held(seq: int) -> dict[str, str]:
        return {
            "code": "FAILED_PRECONDITION",
            "reason": "INDEX_HELD",
            "indexed": str(seq),
            "target": str(size),
            "held_at_sequence": str(seq),
            "retry": "",  # no RetryInfo: waiting does not end a hold
        }

    try:
        leader, standby = replicas
        standby.append([interaction(f"{tenant}-z", "probe")])
        standby.wait_indexed(f"{tenant}-z", 1)  # the leader's pass went past the held log
        assert leader.suite.components["search"].backend.positions()[tenant] == 2
        assert _told(leader, tenant) == held(2)
        wait_until(lambda: _told(standby, tenant) == held(2))  # the leader's word, polled
        assert _plan_rows(own_postgres.admin_dsn, index_prefix) == {tenant: size}
        assert _held_rows(own_postgres.admin_dsn, index_prefix) == {tenant: 3}
        for running in replicas:
            with pytest.raises(grpc.RpcError) as counted:
                running.search.Aggregate(
                    pb.AggregateRequest(tenant_id=tenant, group_by=["event_id"])
                )
            assert refusal(counted.value) == held(2)
            with pytest.raises(grpc.RpcError) as exported:  # at once, not after export_wait
                export(running, tenant, pb.EXPORT_FORMAT_JSONL)
            assert refusal(exported.value) == held(2)
            assert running.all_ids(f"{tenant}-z") == ["probe"]

        _mend(own_postgres.admin_dsn, tenant, 2, kept[2])  # held again, one further
        for running in replicas:
            wait_until(lambda r=running: _told(r, tenant) == held(3))
        assert _held_rows(own_postgres.admin_dsn, index_prefix) == {tenant: 4}  # moved on

        _mend(own_postgres.admin_dsn, tenant, 3, kept[3])  # the log goes on
        for running in replicas:
            assert wait_until(lambda r=running: _told(r, tenant) is None and r.all_ids(tenant))
            assert running.all_ids(tenant, order_by="sequence") == ids
        assert leader.suite.components["search"].backend.building() == {}
        assert standby.suite.components["search"].backend.building() == {}
        assert _held_rows(own_postgres.admin_dsn, index_prefix) == {tenant: 4}  # left behind
    finally:
        for r in replicas:
            r.channel.close()
            r.suite.stop()


def test_the_batch_that_ends_a_build_short_of_the_head_is_searchable_on_every_replica(
    tmp_path: Path, tenant: str, own_postgres: Postgres, opensearch_url: str, index_prefix: str
) -> None:
    """A log planned at five events, held at the third; three more arrive, the seventh
    damaged too. The third mended, the batch from it ends the build (position 6, past
    the target 5) short of the head (8): the log is held again, past its target, so
    both replicas answer. No periodic refresh (``refresh_interval: -1``): what they
    answer is what the indexer made searchable. Both find the six events at once.
    Until 2026-12-06 only a batch reaching the head was refreshed, and after its
    position moved: here nothing was searchable, and a standby could end a build
    before the build's last documents were (a CI run found ['e-0', 'e-1'] of five)."""
    ids = [f"e-{i}" for i in range(8)]
    store = open_store(own_postgres.app_url, keys=None)  # content in clear, as the suites run
    try:
        now = dt.datetime.now(dt.UTC)
        store.append_group([[prepare(interaction(tenant, i), now) for i in ids[:5]]])
        kept = _content(own_postgres.admin_dsn, tenant, 2)
        damage_in_clear(own_postgres.admin_url, tenant, 2, "content JSON")
        replicas = _replicas(
            tmp_path, own_postgres, opensearch_url, index_prefix, refresh_interval="-1"
        )
        try:
            assert wait_until(lambda: _held_rows(own_postgres.admin_dsn, index_prefix))
            store.append_group([[prepare(interaction(tenant, i), now) for i in ids[5:]]])
            damage_in_clear(own_postgres.admin_url, tenant, 6, "content JSON")
            _mend(own_postgres.admin_dsn, tenant, 2, kept)
            for running in replicas:
                assert wait_until(lambda r=running: _told(r, tenant) is None)
                assert running.all_ids(tenant, order_by="sequence") == ids[:6]
            positions = replicas[0].suite.components["search"].backend.positions()
            assert positions[tenant] == 6  # held at the seventh, past the target
        finally:
            for r in replicas:
                r.channel.close()
                r.suite.stop()
    finally:
        store.close()


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
        running = _indexer(store, running_on, 1)
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


@pytest.mark.parametrize("kind", ["building", "held", "mended"])
def test_the_indexers_own_rows_are_no_prefix_s_cursor(kind: str) -> None:
    """The names of the build plan, of the holds the leader records and of the holds that
    ended: per prefix, within the column's 64 characters, starting ``search-indexer`` (the
    indexer's role writes them, under the row policies that keep such cursors to it), and
    never a prefix's own cursor, its erasures' or another of these."""
    from aiaudit.search.backends import opensearch

    named: dict[str, Callable[[str], str]] = {
        "own": opensearch.cursor_name,
        "erasures": opensearch.erasures_cursor_name,
        "building": opensearch.building_cursor_name,  # type: ignore[attr-defined]
        "held": opensearch.held_cursor_name,
        "mended": opensearch.mended_cursor_name,
    }
    long = "p" * 61
    prefixes = ["aiaudit-events", "aiaudit-v2", kind, long, long[:-1] + "q"]
    names = [named[kind](p) for p in prefixes]
    assert names[:3] == [
        f"search-indexer#{kind}",
        f"search-indexer:aiaudit-v2#{kind}",
        f"search-indexer:{kind}#{kind}",
    ]
    assert len(set(names)) == len(names)
    assert all(n.startswith("search-indexer") and len(n) <= 64 for n in names)
    others = {f(p) for other, f in named.items() if other != kind for p in prefixes}
    assert not others & set(names)


def test_a_hold_another_indexer_went_past_is_not_said(
    tenant: str, own_postgres: Postgres, opensearch_url: str, index_prefix: str
) -> None:
    """Driven pass by pass, on the indexer's login: indexer A builds a new prefix and holds
    the tenant's log at its damaged third event; mended, indexer B (another replica that
    led since) goes past it and holds the log at the fourth, also damaged. Each records
    its hold in the store once the log's position is there. A, reading that position (as
    its next pass does first), no longer says its own hold: it is below the position, an
    old one (it would name a sequence the log is past)."""
    writer = open_store(own_postgres.app_url, keys=None)  # content in clear
    store = open_store(own_postgres.consumer_url, keys=None)  # the indexer's login
    client = OpenSearch(hosts=[opensearch_url])
    backend = OpenSearchBackend(client, store.engine, index_prefix, "1s")
    running: list[indexer.Indexer] = []

    def one_pass(into: indexer.Indexer | None = None) -> indexer.Indexer:
        if into is None:
            into = _indexer(store, backend)
            running.append(into)
        into.run_once()
        return into

    try:
        now = dt.datetime.now(dt.UTC)
        writer.append_group([[prepare(interaction(tenant, f"e-{i}"), now) for i in range(5)]])
        kept = _content(own_postgres.admin_dsn, tenant, 2)
        for seq in (2, 3):
            damage_in_clear(own_postgres.admin_url, tenant, seq, "content JSON")
        first = one_pass()
        assert first.building(tenant) == indexer.Building(2, 5, 2)
        assert backend.holds() == {tenant: 2}
        _mend(own_postgres.admin_dsn, tenant, 2, kept)
        second = one_pass()
        assert second.building(tenant) == indexer.Building(3, 5, 3)
        assert backend.holds() == {tenant: 3}
        first._publish(backend.positions())  # what its next pass reads first
        assert first.building(tenant) == indexer.Building(3, 5, None)
    finally:
        for r in running:
            r._writer.shutdown(wait=True)  # never started: its bulk thread only
        backend.close()
        store.close()
        writer.close()


def test_a_hold_mended_while_the_cluster_is_down_is_not_said_by_standbys(
    tenant: str, own_postgres: Postgres, opensearch_url: str, index_prefix: str
) -> None:
    """The leading indexer builds a new prefix and holds the tenant's log at its first event,
    damaged (nothing before it to send: the cluster is not needed yet); a standby says
    INDEX_HELD from the leader's record. The event is mended, but the cluster is down (the
    leader's OpenSearch is a port nothing listens on): the leader's write fails, the log's
    position stays at the old hold. The leader says INDEX_BUILDING (retry); until
    2026-12-06 the standby went on saying INDEX_HELD (retrying will not help until the event
    is repaired) for as long as the outage lasted, as the position was still the record's
    - 1. The leader now records the mend (``search-indexer[:<prefix>]#mended``), and the
    standby says INDEX_BUILDING too. On PostgreSQL with the indexer's login."""
    writer = open_store(own_postgres.app_url, keys=None)  # content in clear
    store = open_store(own_postgres.consumer_url, keys=None)  # the indexer's login
    down = OpenSearch(hosts=["http://127.0.0.1:9"], max_retries=0, timeout=2)
    up = OpenSearch(hosts=[opensearch_url])
    leading = _indexer(store, OpenSearchBackend(down, store.engine, index_prefix, "1s"))
    job = indexer.Indexer.leader_job(index_prefix)
    lock = leader.for_engine(store.engine, job)  # the leader's replica holds the job's lock
    assert lock.acquire() is not None
    standby = _indexer(
        store,
        OpenSearchBackend(up, store.engine, index_prefix, "1s"),
        leadership=leader.for_engine(store.engine, job),
    )
    try:
        now = dt.datetime.now(dt.UTC)
        writer.append_group([[prepare(interaction(tenant, f"e-{i}"), now) for i in range(3)]])
        kept = _content(own_postgres.admin_dsn, tenant, 0)
        damage_in_clear(own_postgres.admin_url, tenant, 0, "content JSON")
        leading.run_once()
        assert leading.building(tenant) == indexer.Building(0, 3, 0)
        standby.start()
        wait_until(lambda: standby.building(tenant) == indexer.Building(0, 3, 0))
        assert not standby.leading

        _mend(own_postgres.admin_dsn, tenant, 0, kept)
        with pytest.raises(BackendUnavailableError):
            leading.run_once()  # the event reads back; its write does not land
        assert leading.building(tenant) == indexer.Building(0, 3, None)
        wait_until(lambda: standby.building(tenant) == indexer.Building(0, 3, None))
    finally:
        standby.stop()
        leading._writer.shutdown(wait=True)  # never started: its bulk thread only
        lock.release()
        store.close()
        writer.close()
