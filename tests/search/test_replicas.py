"""Search replicas sharing one store and one OpenSearch: one indexes, the others stand by.

Each replica is a whole server (ingest and search) on PostgreSQL, its
indexer logged in as the least-privileged consumer role, as in production.
"""

from __future__ import annotations

from pathlib import Path

from opensearchpy import OpenSearch

from aiaudit.search.backends.opensearch import VERSION_BASE
from aiaudit.search.indexer import Indexer
from aiaudit.search.v1 import search_service_pb2 as pb
from tests.conftest import Postgres
from tests.helpers import interaction, wait_until
from tests.search.conftest import SearchSuite, start_suite


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


def test_one_replica_indexes_and_a_standby_takes_over(
    tmp_path: Path, tenant: str, own_postgres: Postgres, opensearch_url: str, index_prefix: str
) -> None:
    settings = {
        "opensearch_url": opensearch_url,
        "index_prefix": index_prefix,
        "refresh_interval": "100ms",
        "database_url": own_postgres.consumer_url,
    }
    replicas = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        replicas.append(
            start_suite(tmp_path / name, "opensearch", settings, store_url=own_postgres.app_url)
        )
    try:
        wait_until(lambda: any(_indexer(r).leading for r in replicas))
        leader, standby = sorted(replicas, key=lambda r: not _indexer(r).leading)
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
