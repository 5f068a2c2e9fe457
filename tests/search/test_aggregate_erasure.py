"""An aggregate over content never counts erased text the index still holds.

Until the indexer reaches an erasure record, the index still holds the erased
text. Pages and exports that match content leave such events out; an
``Aggregate`` counted them, and its buckets named them (``group_by:
event_id``), for as long as the index lagged (review, 2026-12-05). It now
waits for the index to apply the tenant's latest erasure, up to
``export_wait``, and answers ``UNAVAILABLE`` (``ERASURE_NOT_INDEXED``) if it
does not. The index lags here because its indexer stopped. A log held at a
damaged event before the record does not make it wait: the indexer applies
the erasures past the event its log waits at.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from aiaudit.common.store import open_store
from aiaudit.ingest.v1 import ingest_service_pb2 as ipb
from aiaudit.search.v1 import search_service_pb2 as pb
from tests.helpers import flip_sealed_content, interaction, secret_word, wait_until
from tests.integrity.test_entries_outside_log import error_info
from tests.search.conftest import start_suite


def test_an_aggregate_over_content_waits_for_the_erasure_to_reach_the_index(
    tmp_path: Path, tenant: str
) -> None:
    url = f"sqlite:///{tmp_path / 'aiaudit.db'}"  # content sealed: a damaged row holds the log
    open_store(url, run_migrations=True).close()
    secret = secret_word()
    query = f'"{secret}"'
    by_event = pb.AggregateRequest(tenant_id=tenant, query=query, group_by=["event_id"])
    # The index lags behind the erasure: its indexer stopped before the record.
    first = start_suite(tmp_path, "sqlite", {"export_wait": 0.5}, store_url=url)
    try:
        auditor = first.as_role("auditor")  # content.read
        first.append([interaction(tenant, "victim", text=f"my diagnosis is {secret}")])
        first.wait_indexed(tenant, 1)
        assert [list(b.keys) for b in auditor.Aggregate(by_event).buckets] == [["victim"]]
        first.suite.components["search"].indexer.stop()  # type: ignore[attr-defined]
        first.append([interaction(tenant, "later")])
        later = first.search.GetEvent(pb.GetEventRequest(tenant_id=tenant, event_id="later"))
        flip_sealed_content(url, tenant, later.sequence)  # damaged before any indexer read it
        first.ingest.EraseEvents(
            ipb.EraseEventsRequest(tenant_id=tenant, event_ids=["victim"], reason="art. 17")
        )
        with pytest.raises(grpc.RpcError) as caught:
            auditor.Aggregate(by_event)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "has not yet applied the erasure" in (caught.value.details() or "")
        assert error_info(caught.value).reason == "ERASURE_NOT_INDEXED"
        # What does not match content needs no wait: the erased text is not read.
        by_user = pb.AggregateRequest(tenant_id=tenant, group_by=["actor.user_id"])
        assert sum(b.count for b in auditor.Aggregate(by_user).buckets) >= 1
    finally:
        first.channel.close()
        first.suite.stop()

    # A new indexer goes from where the first stopped and is held at the damaged event,
    # before the erasure record: it applies the erasure all the same (until 2026-12-05 it
    # did not, and every aggregate over content answered UNAVAILABLE while the log waited).
    suite = start_suite(tmp_path, "sqlite", {"export_wait": 0.5}, store_url=url)
    try:
        auditor = suite.as_role("auditor")
        wait_until(lambda: _answers(auditor, by_event))
        assert list(auditor.Aggregate(by_event).buckets) == []
        backend = suite.suite.components["search"].backend  # type: ignore[attr-defined]
        assert backend.positions()[tenant] == later.sequence  # still held

        flip_sealed_content(url, tenant, later.sequence)  # mended: the indexer goes on
        suite.wait_indexed(tenant, 3)  # victim, later and the record
        assert list(auditor.Aggregate(by_event).buckets) == []
    finally:
        suite.channel.close()
        suite.suite.stop()


def _answers(stub: object, request: pb.AggregateRequest) -> bool:
    """Whether the aggregate answers (the index has applied the erasure) rather than waits."""
    try:
        stub.Aggregate(request)  # type: ignore[attr-defined]
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.UNAVAILABLE:
            raise
        return False
    return True
