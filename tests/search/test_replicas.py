"""Search replicas sharing one store and one OpenSearch: one indexes, the others stand by.

Each replica is a whole server (ingest and search) on PostgreSQL, its
indexer logged in as the least-privileged consumer role, as in production.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import psycopg
from opensearchpy import OpenSearch

from aiaudit.common.erasure import erase
from aiaudit.common.store import open_store
from aiaudit.common.store.prepare import prepare
from aiaudit.search.backends.opensearch import VERSION_BASE, cursor_name, erasures_cursor_name
from aiaudit.search.indexer import Indexer
from aiaudit.search.v1 import search_service_pb2 as pb
from tests.conftest import Postgres
from tests.helpers import interaction, secret_word, wait_until
from tests.search.conftest import SearchSuite, start_suite
from tests.search.test_damaged_logs import damage_in_clear


def _indexer(replica: SearchSuite) -> Indexer:
    indexer = replica.suite.components["search"].indexer  # type: ignore[attr-defined]
    assert isinstance(indexer, Indexer)
    return indexer


def _versions(opensearch_url: str, index_prefix: str, tenant: str) -> dict[str, tuple[int, int]]:
    """Each of the tenant's documents: (its ``_version``, its event's sequence)."""
    direct = OpenSearch(hosts=[opensearch_url])
    try:
        direct.indices.refresh(index=f"{index_prefix}-*")
        found = direct.search(
            index=f"{index_prefix}-*",
            body={"query": {"term": {"tenant_id": tenant}}, "size": 1000, "version": True},
        )
        return {
            hit["_id"]: (hit["_version"], hit["_source"]["sequence"])
            for hit in found["hits"]["hits"]
        }
    finally:
        direct.close()


def _replicas(
    tmp_path: Path, pg: Postgres, opensearch_url: str, index_prefix: str, **extra: Any
) -> list[SearchSuite]:
    """Two whole servers on one store and one OpenSearch prefix, the indexer on the consumer
    login; the one leading first."""
    settings = {
        "opensearch_url": opensearch_url,
        "index_prefix": index_prefix,
        "refresh_interval": "100ms",
        "database_url": pg.consumer_url,
        **extra,
    }
    replicas = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            replicas.append(
                start_suite(tmp_path / name, "opensearch", settings, store_url=pg.app_url)
            )
        wait_until(lambda: any(_indexer(r).leading for r in replicas))
    except BaseException:
        for r in replicas:
            r.channel.close()
            r.suite.stop()
        raise
    return sorted(replicas, key=lambda r: not _indexer(r).leading)


def test_one_replica_indexes_and_a_standby_takes_over(
    tmp_path: Path, tenant: str, own_postgres: Postgres, opensearch_url: str, index_prefix: str
) -> None:
    replicas = _replicas(tmp_path, own_postgres, opensearch_url, index_prefix)
    try:
        leader, standby = replicas
        assert not _indexer(standby).leading

        # Events sent to the standby are indexed by the leader, each once, and
        # the standby's own reads and exports see them (it follows the leader's position).
        standby.append([interaction(tenant, f"first-{i}") for i in range(6)])
        standby.wait_indexed(tenant, 6)
        export = b"".join(
            c.data
            for c in standby.search.Export(
                pb.ExportRequest(tenant_id=tenant, format=pb.EXPORT_FORMAT_JSONL)
            )
        )
        interactions = [line for line in export.splitlines() if b"EVENT_TYPE_INTERACTION" in line]
        assert len(interactions) == 6

        leader.channel.close()
        leader.suite.stop()  # its session ends, and the lock with it
        replicas.remove(leader)
        wait_until(lambda: _indexer(standby).leading)
        standby.append([interaction(tenant, f"then-{i}") for i in range(4)])
        standby.wait_indexed(tenant, 10)
        versions = _versions(opensearch_url, index_prefix, tenant)
        assert len(versions) >= 10  # the events, and the access records of the reads
        # Written at their revision (the event's sequence: none was erased), whichever
        # replica led: a late write of an older revision is refused.
        assert all(version == VERSION_BASE + seq for version, seq in versions.values()), versions
    finally:
        for r in replicas:
            r.channel.close()
            r.suite.stop()


def test_a_standby_answers_reads_over_content_of_a_held_log_once_its_erasure_is_applied(
    tmp_path: Path, tenant: str, own_postgres: Postgres, opensearch_url: str, index_prefix: str
) -> None:
    """The log is held at a damaged event; an erasure after it names an event indexed before
    the hold and one after it. The leader applies it (the text leaves the index) and says so
    in the store (``search-indexer:<prefix>#erasures``): a search over content answers on
    the standby too, without the erased text. Until 2026-12-06 the standby knew only the
    leader's positions, so its every read over content of the tenant answered UNAVAILABLE
    ERASURE_NOT_INDEXED for as long as the log was held. The prefix indexed the store before
    the events came (a prefix new to a store holding them is being built, and its reads of
    the tenant answer INDEX_BUILDING: tests/search/test_opensearch_build.py)."""
    secret = secret_word()
    (tmp_path / "before").mkdir()
    settings = {
        "opensearch_url": opensearch_url,
        "index_prefix": index_prefix,
        "refresh_interval": "100ms",
        "database_url": own_postgres.consumer_url,
    }
    before = start_suite(
        tmp_path / "before", "opensearch", settings, store_url=own_postgres.app_url
    )
    try:
        before.append([interaction(f"{tenant}-y", "earlier")])
        before.wait_indexed(f"{tenant}-y", 1)
    finally:
        before.channel.close()
        before.suite.stop()
    store = open_store(own_postgres.app_url, keys=None)  # content in clear, as the suites run
    now = dt.datetime.now(dt.UTC)
    events = [
        interaction(tenant, "m-0", text=f"the {secret} plan", user="alice"),
        interaction(tenant, "m-1", user="bob"),  # damaged below: the log is held at it
        interaction(tenant, "m-2", text=f"the {secret} again", user="alice"),
    ]
    store.append_group([[prepare(e, now) for e in events]])
    store.close()
    damage_in_clear(own_postgres.admin_url, tenant, 1, "content JSON")
    replicas = _replicas(tmp_path, own_postgres, opensearch_url, index_prefix, export_wait=10.0)
    try:
        leader, standby = replicas
        assert not _indexer(standby).leading
        standby.append([interaction(f"{tenant}-z", "probe")])
        standby.wait_indexed(f"{tenant}-z", 1)  # the leader's pass went past the held log
        backend = standby.suite.components["search"].backend
        assert backend.positions()[tenant] == 1  # m-0 indexed, held at m-1
        assert standby.all_ids(tenant, query=secret) == ["m-0"]  # no erasure to wait for

        privacy = open_store(own_postgres.privacy_url, keys=None)
        try:
            erased = erase(privacy, tenant, "gdpr", "dpo", subject_id="alice")
            record = privacy.log_sizes()[tenant] - 1
        finally:
            privacy.close()
        assert sorted(erased.erased) == ["m-0", "m-2"]

        # The standby's read over content waits for the record (export_wait), and answers.
        assert standby.find(tenant, query=secret).total_size == 0
        by_user = pb.AggregateRequest(
            tenant_id=tenant, query=f'"{secret}"', group_by=["actor.user_id"]
        )
        assert list(standby.as_role("auditor").Aggregate(by_user).buckets) == []
        # Their metadata is found (m-2's text-free document was written past the hold).
        assert sorted(standby.all_ids(tenant, 'actor.user_id = "alice"')) == ["m-0", "m-2"]
        assert leader.find(tenant, query=secret).total_size == 0
        assert backend.positions()[tenant] == 1  # still held
        assert backend.erasures_applied()[tenant] == record + 1  # applied up to the record
        assert not _indexer(standby).wait_indexed(tenant, record + 1, timeout=0, whole=True)
        names = {erasures_cursor_name(index_prefix)}
        with psycopg.connect(own_postgres.admin_dsn) as admin:
            rows = admin.execute(
                "SELECT consumer FROM consumer_cursors WHERE log_id = %s AND consumer LIKE %s",
                (tenant, "%#erasures"),
            ).fetchall()
        assert {r[0] for r in rows} == names
    finally:
        for r in replicas:
            r.channel.close()
            r.suite.stop()


def test_the_erasures_cursor_is_no_prefix_s_own() -> None:
    """The name of the row saying how far erasures past held logs are applied: per prefix,
    within the column's 64 characters, starting ``search-indexer`` (the indexer's role
    writes it), and never a prefix's own cursor (prefix ``erasures``'s is
    ``search-indexer:erasures``)."""
    long = "p" * 61
    prefixes = ["aiaudit-events", "erasures", "aiaudit-v2", long, long[:-1] + "q"]
    names = [erasures_cursor_name(p) for p in prefixes]
    assert names[:3] == [
        "search-indexer#erasures",
        "search-indexer:erasures#erasures",
        "search-indexer:aiaudit-v2#erasures",
    ]
    assert len(set(names)) == len(names)
    assert all(n.startswith("search-indexer") and len(n) <= 64 for n in names)
    assert not {cursor_name(p) for p in prefixes} & set(names)
