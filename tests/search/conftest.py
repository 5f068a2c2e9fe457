"""Search fixtures: the whole suite with each search backend, on real engines.

OpenSearch is a real node started by scripts/backends/opensearch.sh (idempotent;
the same script CI uses). Tests of one session share an index prefix of their
own, removed at the end; every test writes to its own tenant.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from opensearchpy import OpenSearch

from aiaudit.common import client
from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.ingest.v1 import ingest_service_pb2 as ingest_pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from aiaudit.search.v1 import search_service_pb2 as pb
from aiaudit.search.v1 import search_service_pb2_grpc as pb_grpc
from tests.conftest import _script_env, refuse_shared, serve_suite
from tests.helpers import wait_until

NOT_ACCESS = "NOT event_type = AUDIT_ACCESS"
"""Every read is audited into the tenant's log; tests about data leave those records out."""


@pytest.fixture(scope="session")
def opensearch_url() -> str:
    return _script_env("opensearch.sh")["AIAUDIT_TEST_OPENSEARCH_URL"]


@pytest.fixture(scope="session")
def index_prefix(opensearch_url: str) -> Iterator[str]:
    """This session's OpenSearch index prefix; its indices and template are removed at the end."""
    prefix = f"aiaudit-test-{uuid.uuid4().hex[:8]}"
    yield prefix
    os_client = OpenSearch(hosts=[opensearch_url])
    os_client.indices.delete(index=f"{prefix}-*", params={"ignore_unavailable": "true"})
    os_client.indices.delete_index_template(name=prefix, params={"ignore": 404})
    os_client.close()


@dataclass
class SearchSuite:
    backend: str
    suite: Any
    address: str
    keys: dict[str, str]
    channel: grpc.Channel
    search: pb_grpc.SearchServiceStub
    ingest: ingest_grpc.IngestServiceStub

    def as_role(self, role: str) -> pb_grpc.SearchServiceStub:
        return pb_grpc.SearchServiceStub(client.channel(self.address, self.keys[role]))

    def append(self, events: list[ev.Event]) -> list[int]:
        response = self.ingest.Append(ingest_pb.AppendRequest(events=events))
        return [r.sequence for r in response.receipts]

    def find(self, tenant: str, filter: str = "", **kw: Any) -> pb.SearchEventsResponse:
        combined = f"({filter}) AND {NOT_ACCESS}" if filter else NOT_ACCESS
        return self.search.SearchEvents(
            pb.SearchEventsRequest(tenant_id=tenant, filter=combined, **kw)
        )

    def all_ids(self, tenant: str, filter: str = "", **kw: Any) -> list[str]:
        """Every matching event id, across pages."""
        ids: list[str] = []
        token = ""
        while True:
            page = self.find(tenant, filter, page_token=token, page_size=1000, **kw)
            ids += [r.event.event_id for r in page.results]
            token = page.next_page_token
            if not token:
                return ids

    def wait_indexed(self, tenant: str, count: int, timeout: float = 30.0) -> None:
        """Waits until `count` data events of the tenant are searchable.

        A new (or rebuilt) embedded index over a store holding the tenant's events
        answers UNAVAILABLE INDEX_BUILDING until it indexed them: not searchable yet.
        """
        wait_until(lambda: self.searchable(tenant) >= count, timeout)

    def searchable(self, tenant: str) -> int:
        """The tenant's data events found; -1 while the index is still building its log
        (INDEX_BUILDING, or INDEX_HELD while an event it cannot index holds the log)."""
        try:
            return self.find(tenant, page_size=1).total_size
        except grpc.RpcError as exc:
            building = exc.code() in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.FAILED_PRECONDITION,
            ) and "index is being built" in (exc.details() or "")
            if not building:
                raise
            return -1


def building(running: SearchSuite, tenant: str) -> dict[str, str]:
    """What a search of a log a new (or rebuilt) index has not built yet says (:func:`refusal`).

    The store held the tenant's events before the index was made, so its reads are
    refused, saying how far the log is, until it is indexed that far (until 2026-12-06,
    what was indexed so far, as if whole).
    """
    with pytest.raises(grpc.RpcError) as caught:
        running.all_ids(tenant)
    return refusal(caught.value)


def refusal(err: grpc.RpcError) -> dict[str, str]:
    """A read refused while the index builds the log: its ``code`` and ``reason``, its
    ErrorInfo metadata, and its RetryInfo's delay in seconds (``retry``, '' without one).

    UNAVAILABLE INDEX_BUILDING (``indexed``, ``target``; retry in 10 s), or, while an
    event the indexer cannot index holds the log below its target, FAILED_PRECONDITION
    INDEX_HELD (``held_at_sequence`` too, and no RetryInfo: waiting does not end a hold).
    """
    found = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert found is not None, err
    reasons, delays = [], []
    told: dict[str, str] = {}
    for detail in found.details:
        info = error_details_pb2.ErrorInfo()
        retry = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            reasons.append(info.reason)
            told.update(info.metadata)
        elif detail.Unpack(retry):
            delays.append(str(retry.retry_delay.ToSeconds()))
    assert len(reasons) == 1, found
    return {"code": err.code().name, "reason": reasons[0], **told, "retry": ",".join(delays)}


def suite_of(backend: str, suite: Any, keys: dict[str, str]) -> SearchSuite:
    """A started suite with its admin channel and stubs."""
    address = f"127.0.0.1:{suite.port}"
    channel = client.channel(address, keys["admin"])
    return SearchSuite(
        backend,
        suite,
        address,
        keys,
        channel,
        pb_grpc.SearchServiceStub(channel),
        ingest_grpc.IngestServiceStub(channel),
    )


def start_suite(
    tmp_path: Path, backend: str, extra: dict[str, Any], store_url: str = ""
) -> SearchSuite:
    refuse_shared(store_url, "a search suite")
    search: dict[str, Any] = {"backend": backend, "poll_interval": 0.1, "max_backoff": 1.0}
    search.update(extra)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"search": search}))
    store: dict[str, object] = {"database_url": store_url} if store_url else {}
    suite, keys = serve_suite(tmp_path, cfg, services=("ingest", "search"), **store)
    return suite_of(backend, suite, keys)


def indexed_directly(
    opensearch_url: str, index_prefix: str, tenant: str, refresh: bool = True
) -> int:
    """How many of the tenant's events (access records aside) the node holds, asked directly;
    without ``refresh``, how many a search finds now."""
    direct = OpenSearch(hosts=[opensearch_url])
    try:
        if refresh:
            direct.indices.refresh(index=f"{index_prefix}-*")
        return int(
            direct.count(
                index=f"{index_prefix}-*",
                body={
                    "query": {
                        "bool": {
                            "filter": [{"term": {"tenant_id": tenant}}],
                            "must_not": [{"term": {"event_type": "EVENT_TYPE_AUDIT_ACCESS"}}],
                        }
                    }
                },
            )["count"]
        )
    finally:
        direct.close()


def backend_settings(backend: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    if backend == "sqlite":
        return {}
    return {
        "opensearch_url": request.getfixturevalue("opensearch_url"),
        "index_prefix": request.getfixturevalue("index_prefix"),
        "refresh_interval": "100ms",
    }


@pytest.fixture(params=["sqlite", "opensearch"])
def search_suite(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SearchSuite]:
    running = start_suite(tmp_path, request.param, backend_settings(request.param, request))
    yield running
    running.channel.close()
    running.suite.stop()
