"""Search pages from the index's copies of the stored events, and where they must not be used.

OpenSearch keeps each event's canonical form and content beside its indexed
fields, so a ``SearchEvents`` page is rebuilt without a store read. It must
equal what the store gives (``GetEvent``), never show text an erasure has
removed, and fall back to the store for documents indexed without a copy.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from opensearchpy import OpenSearch

from aiaudit.common.erasure import erase
from aiaudit.common.store import SqlEventStore, open_store
from aiaudit.common.store.prepare import prepare
from aiaudit.common.store.sql import StoredEvent
from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.search import language, stored_document
from aiaudit.search.backends.base import SearchSpec
from aiaudit.search.backends.opensearch import OpenSearchBackend, body, mappings
from aiaudit.search.document import Document
from aiaudit.search.indexer import Indexer
from aiaudit.search.v1 import search_service_pb2 as pb
from tests.helpers import interaction
from tests.search.conftest import SearchSuite, backend_settings, start_suite
from tests.unit import test_restore


def every_field(tenant: str) -> list[ev.Event]:
    """Events with every field set (each oneof member in turn), non-ASCII text included."""
    out = []
    for i, e in enumerate(test_restore.events()):
        e.tenant_id, e.event_id, e.event_type = tenant, f"full-{i}", ev.EVENT_TYPE_INTERACTION
        e.occurred_time.FromDatetime(dt.datetime(2026, 3, 1, 12, i, tzinfo=dt.UTC))
        out.append(e)
    return out


@pytest.fixture
def store_reads(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The sequences of every store read of a page (a spy on the real store, which still reads)."""
    reads: list[list[int]] = []
    real = SqlEventStore.read_sequences

    def spied(self: SqlEventStore, log_id: str, seqs: Sequence[int]) -> list[StoredEvent]:
        if seqs:
            reads.append(list(seqs))
        return real(self, log_id, seqs)

    monkeypatch.setattr(SqlEventStore, "read_sequences", spied)
    return reads


def results(search_suite: SearchSuite, tenant: str) -> dict[str, pb.SearchResult]:
    page = search_suite.find(tenant, page_size=100, order_by="sequence asc")
    return {r.event.event_id: r for r in page.results}


def stored_view(search_suite: SearchSuite, tenant: str, event_id: str) -> ev.Event:
    got = search_suite.search.GetEvent(pb.GetEventRequest(tenant_id=tenant, event_id=event_id))
    return got.event


def test_pages_equal_the_stored_events_and_read_the_store_only_without_copies(
    search_suite: SearchSuite, tenant: str, store_reads: list[list[int]]
) -> None:
    events = every_field(tenant)
    now = dt.datetime.now(dt.UTC)
    search_suite.suite.store.append_group([[prepare(e, now) for e in events]])
    search_suite.wait_indexed(tenant, len(events))
    store_reads.clear()
    found = results(search_suite, tenant)
    assert sorted(found) == sorted(e.event_id for e in events)
    keeps = search_suite.backend == "opensearch"
    assert (store_reads == []) is keeps, store_reads
    for event_id, result in found.items():
        assert result.event == stored_view(search_suite, tenant, event_id)
    texts = [p.text for r in found.values() for m in r.event.input.messages for p in m.parts]
    assert any("é" in t for t in texts), "content, non-ASCII included, must come back"


@pytest.fixture
def opensearch_suite(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SearchSuite]:
    running = start_suite(tmp_path, "opensearch", backend_settings("opensearch", request))
    yield running
    running.channel.close()
    running.suite.stop()


def test_documents_indexed_without_a_copy_are_read_from_the_store(
    opensearch_suite: SearchSuite,
    tenant: str,
    store_reads: list[list[int]],
    opensearch_url: str,
    index_prefix: str,
) -> None:
    """Documents an earlier version indexed have no copy: their page reads them from the store."""
    suite = opensearch_suite
    suite.append([interaction(tenant, f"old-{i}", text=f"old text {i}") for i in range(3)])
    suite.wait_indexed(tenant, 3)
    direct = OpenSearch(hosts=[opensearch_url])
    direct.update_by_query(
        index=f"{index_prefix}-*",
        body={
            "query": {"term": {"tenant_id": tenant}},
            "script": {"source": "ctx._source.remove('event_copy')"},
        },
        params={"refresh": "true", "conflicts": "proceed"},
    )
    direct.close()
    store_reads.clear()
    found = results(suite, tenant)
    assert sorted(found) == ["old-0", "old-1", "old-2"]
    assert sorted(s for read in store_reads for s in read) == sorted(
        r.sequence for r in found.values()
    )
    for event_id, result in found.items():
        assert result.event == stored_view(suite, tenant, event_id)
        assert result.event.input.messages[0].parts[0].text == f"old text {event_id[-1]}"


@pytest.fixture
def unrefreshed(opensearch_url: str) -> Iterator[tuple[OpenSearch, str]]:
    """A client and an index prefix (and template) of its own: indices that never refresh."""
    direct = OpenSearch(hosts=[opensearch_url])
    prefix = f"aiaudit-test-norefresh-{uuid.uuid4().hex[:8]}"
    yield direct, prefix
    direct.indices.delete(index=f"{prefix}-*", params={"ignore_unavailable": "true"})
    direct.indices.delete_index_template(name=prefix, params={"ignore": 404})
    direct.close()


def text_hits(backend: OpenSearchBackend, tenant: str, text: str) -> int:
    where = language.parse_query(text)
    order = language.parse_order_by("sequence asc")
    return len(backend.search(SearchSpec(tenant, where, order, 10)).hits)


def test_a_batch_that_erases_is_searchable_before_its_position_moves(
    tmp_path: Path, unrefreshed: tuple[OpenSearch, str], tenant: str
) -> None:
    """Pages use the index's copies once its position is past every erasure record: by
    then the erased text must be gone from what searches see, refresh or not."""
    direct, prefix = unrefreshed
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}", run_migrations=True)
    positions: list[tuple[int, int]] = []

    class Watched(OpenSearchBackend):
        def write(
            self, log_id: str, docs: Sequence[Document], new_position: int, visible: bool = False
        ) -> None:
            super().write(log_id, docs, new_position, visible)
            positions.append((new_position, text_hits(self, tenant, "mango")))

    backend = Watched(direct, store.engine, prefix, "-1")
    indexer = Indexer(store, backend, 100, 0.1, 1.0, lambda serving: None)
    try:
        now = dt.datetime.now(dt.UTC)
        store.append_group([[prepare(interaction(tenant, "m-1", text="mango budget"), now)]])
        indexer.run_once()  # at the head of the log: refreshed (``_show``) after the write
        assert text_hits(backend, tenant, "mango") == 1
        erase(store, tenant, "request #1", "dpo", event_ids=["m-1"])
        indexer.run_once()
        assert positions[-1] == (2, 0), positions  # past the record: the text was gone already
    finally:
        backend.close()
        store.close()


def test_indices_made_before_the_copies_take_them(
    tmp_path: Path, unrefreshed: tuple[OpenSearch, str], tenant: str
) -> None:
    """The mapping is strict: an index an earlier version made must learn the new field."""
    direct, prefix = unrefreshed
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}", run_migrations=True)
    before = mappings()
    del before["properties"]["event_copy"]
    direct.indices.create(index=f"{prefix}-2026.03", body={"mappings": before})
    backend = OpenSearchBackend(direct, store.engine, prefix, "-1")
    try:
        event = interaction(tenant, "x-1", text="kiwi")
        event.occurred_time.FromDatetime(dt.datetime(2026, 3, 2, tzinfo=dt.UTC))
        store.append_group([[prepare(event, dt.datetime.now(dt.UTC))]])
        (stored,) = store.read_log(tenant, 0, 1)
        doc = stored_document.from_stored(stored)
        assert backend.index_name(doc) == f"{prefix}-2026.03"
        backend.write(tenant, [doc], 1, visible=True)
        order = language.parse_order_by("sequence asc")
        (hit,) = backend.search(SearchSpec(tenant, None, order, 10, copies=True)).hits
        assert hit.copy == doc.copy and hit.copy is not None
        assert hit.copy.content == stored.content and hit.copy.canonical == stored.canonical
        assert "event_copy" in str(body(doc))
    finally:
        backend.close()
        store.close()
