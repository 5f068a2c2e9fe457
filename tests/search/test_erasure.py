"""An erased event's text leaves the index: full text and highlights stop finding it."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import grpc
import pytest
from opensearchpy import OpenSearch

from aiaudit.common.erasure import erase
from aiaudit.common.store import open_store
from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.ingest.v1 import ingest_service_pb2 as ipb
from aiaudit.search import stored_document
from aiaudit.search.backends.opensearch import OpenSearchBackend, body
from aiaudit.search.component import Search
from aiaudit.search.v1 import search_service_pb2 as pb
from tests.helpers import flip_sealed_content, holding, interaction, secret_word, wait_until
from tests.integrity.test_entries_outside_log import error_info
from tests.search.conftest import SearchSuite, backend_settings, start_suite


def test_erased_content_is_no_longer_searchable(search_suite: SearchSuite, tenant: str) -> None:
    search_suite.append(
        [
            interaction(tenant, "m-1", text="the mango project budget", user="alice"),
            interaction(tenant, "m-2", text="mango season again", user="bob"),
        ]
    )
    search_suite.wait_indexed(tenant, 2)
    assert sorted(search_suite.all_ids(tenant, query="mango")) == ["m-1", "m-2"]

    done = erase(search_suite.suite.store, tenant, "request #9", "dpo", subject_id="alice")
    assert done.erased == ["m-1"]

    # The record reaches the indexer, which indexes m-1 again from the store, now without
    # text: the index's own count says so (a page leaves m-1 out even before).
    search_suite.wait_indexed(tenant, 3)
    wait_until(lambda: search_suite.find(tenant, query="mango").total_size == 1)
    assert search_suite.all_ids(tenant, query="mango") == ["m-2"]
    (still,) = search_suite.find(tenant, 'event_id = "m-1"').results  # metadata stays
    assert still.event.actor.user_id == "alice" and not still.event.input.messages[0].parts[0].text
    assert not still.highlights
    records = search_suite.find(tenant, 'event_type = "EVENT_TYPE_PRIVACY_ERASURE"').results
    assert [list(r.event.privacy_action.event_ids) for r in records] == [["m-1"]]
    assert records[0].event.event_type == ev.EVENT_TYPE_PRIVACY_ERASURE


@pytest.fixture(params=["sqlite", "opensearch"])
def impatient_suite(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SearchSuite]:
    """A suite whose reads wait half a second for the index (``export_wait``), not 30."""
    settings = {**backend_settings(request.param, request), "export_wait": 0.5}
    running = start_suite(tmp_path, request.param, settings)
    yield running
    running.channel.close()
    running.suite.stop()


def _refused_for_the_erasure(call: Callable[[], object], record: int) -> str:
    """The details of ``call``'s UNAVAILABLE ERASURE_NOT_INDEXED naming the erasure record."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    details = caught.value.details() or ""
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, details
    info = error_info(caught.value)
    assert info.reason == "ERASURE_NOT_INDEXED", details
    assert dict(info.metadata) == {"sequence": str(record)}
    assert f"has not yet applied the erasure at sequence {record}" in details
    return details


def test_a_read_over_content_waits_for_the_erasure_to_reach_the_index(
    impatient_suite: SearchSuite, tenant: str
) -> None:
    """Until the indexer reaches the erasure record the index still holds the text, and every
    answer computed from it says what the text was (review, 2026-12-05): ``NOT
    input.text:"hiv"`` found no event where ``NOT input.text:"cancer"`` found the erased
    one (SearchEvents and Aggregate), and ``query: hiv`` answered no results but
    ``total_size`` 1. A read of content, under NOT too, waits for the index to apply the
    erasure, and says so when it does not (``export_wait``); one of metadata answers."""
    running = impatient_suite
    running.append([interaction(tenant, "m-1", text="patient has hiv diagnosis")])
    running.wait_indexed(tenant, 1)
    running.suite.components["search"].indexer.stop()  # type: ignore[attr-defined]
    erase(running.suite.store, tenant, "request #10", "dpo", subject_id="alice")
    record = running.suite.store.log_sizes()[tenant] - 1

    def reads(filter: str, query: str = "") -> list[Callable[[], object]]:
        """SearchEvents and Aggregate of ``filter`` and ``query`` (an export waits for the
        index to reach the log anyway; see the next tests for one the erasure comes during)."""
        aggregate = pb.AggregateRequest(tenant_id=tenant, filter=filter, query=query)
        return [
            lambda: running.find(tenant, filter, query=query),
            lambda: running.search.Aggregate(aggregate),
        ]

    for guess in ("hiv", "cancer"):
        over_content = [
            *reads(f'event_id = "m-1" AND NOT input.text:"{guess}"'),
            *reads(f'event_id = "m-1" AND input.text:"{guess}"'),
            *reads('event_id = "m-1"', query=guess),  # total_size counted the erased text
        ]
        for read in over_content:
            said = _refused_for_the_erasure(read, record)
            assert "nothing was returned" in said

    # What reads no content answers: the event without its content or highlights.
    page, aggregate = (read() for read in reads('event_id = "m-1"'))
    assert isinstance(page, pb.SearchEventsResponse) and page.total_size == 1
    assert not page.results[0].event.input.messages[0].parts[0].text
    assert not page.results[0].highlights
    assert isinstance(aggregate, pb.AggregateResponse)
    assert sum(b.count for b in aggregate.buckets) == 1


def _long_export_events(tenant: str, secret_of_510: str) -> list[ev.Event]:
    """520 events of 20 KB, alice's m-510 the only one of hers: two pages of an export, the
    first far past what the stream buffers."""
    return [
        interaction(
            tenant,
            f"m-{i:03d}",
            text=f"hiv {i} {secret_of_510 if i == 510 else ''} " + "x" * 20_000,
            user="alice" if i == 510 else "bob",
        )
        for i in range(520)
    ]


def _append_all(running: SearchSuite, tenant: str, events: list[ev.Event]) -> None:
    for at in range(0, len(events), 100):
        running.append(events[at : at + 100])
    running.wait_indexed(tenant, len(events))


def _export_opened(
    running: SearchSuite, tenant: str, request: pb.ExportRequest
) -> Iterator[pb.ExportResponse]:
    """The export, its first chunk read (the first page read, the stream held by its buffer).

    Opened once the index holds the whole log: the export waits ``export_wait`` (half a
    second here) for its snapshot, which holds the access records of the reads before it,
    an export's too. Under load the OpenSearch indexer took longer to index them, and the
    export was refused SEARCH_UNAVAILABLE before it read anything (2026-12-07).
    """
    component = running.suite.components["search"]
    assert isinstance(component, Search)
    size = running.suite.store.log_sizes()[tenant]
    assert component.indexer.wait_indexed(tenant, size, timeout=30, whole=True)
    stream = running.search.Export(request)
    assert next(stream).data
    return stream


def test_an_export_over_content_stops_when_an_erasure_it_meets_is_not_indexed(
    impatient_suite: SearchSuite, tenant: str
) -> None:
    """An erasure committed while an export reads its first page: its second page comes from
    an index that still holds the text. It listed the events the erased text decided,
    ``query: hiv`` without the erased one, ``NOT input.text:"secret"`` too (it held the
    word), telling what the text was (review, 2026-12-05). The export waits for the index
    to apply the erasure, and stops saying so when it does not."""
    running = impatient_suite
    _append_all(running, tenant, _long_export_events(tenant, "secret"))
    exports = [
        pb.ExportRequest(tenant_id=tenant, format=pb.EXPORT_FORMAT_JSONL, query="hiv"),
        pb.ExportRequest(
            tenant_id=tenant, format=pb.EXPORT_FORMAT_JSONL, filter='NOT input.text:"secret"'
        ),
    ]
    streams = [_export_opened(running, tenant, e) for e in exports]
    running.suite.components["search"].indexer.stop()  # type: ignore[attr-defined]
    assert erase(running.suite.store, tenant, "r", "dpo", subject_id="alice").erased == ["m-510"]
    record = running.suite.store.log_sizes()[tenant] - 1
    for stream in streams:
        said = _refused_for_the_erasure(lambda s=stream: list(s), record)  # type: ignore[misc]
        assert "the export stopped before its end" in said


def test_an_export_over_content_goes_on_from_an_index_that_applied_an_erasure_it_meets(
    search_suite: SearchSuite, tenant: str
) -> None:
    """An erasure committed while an export reads its first page: the second page is read
    from the index once it has applied it, the events decided by the text no more. m-510
    held "secret": once erased it matches ``NOT input.text:"secret"`` through its user,
    and is listed without content (the export left it out: the index still held the
    word, or a page that matched text dropped erased events, whatever else matched)."""
    _append_all(search_suite, tenant, _long_export_events(tenant, "secret"))
    request = pb.ExportRequest(
        tenant_id=tenant,
        format=pb.EXPORT_FORMAT_JSONL,
        filter='(input.text:"hiv" OR actor.user_id = "alice") AND NOT input.text:"secret"',
    )
    stream = search_suite.search.Export(request)
    first = next(stream)
    assert erase(search_suite.suite.store, tenant, "r", "dpo", subject_id="alice").erased == [
        "m-510"
    ]
    lines = [
        json.loads(line) for line in (first.data + b"".join(c.data for c in stream)).splitlines()
    ]
    assert [line["eventId"] for line in lines] == [f"m-{i:03d}" for i in range(520)]
    (erased,) = [line for line in lines if line["eventId"] == "m-510"]
    assert "secret" not in json.dumps(erased)


def test_an_erased_event_matched_by_metadata_beside_text_is_listed(
    search_suite: SearchSuite, tenant: str
) -> None:
    """Pages and exports whose match held text left out every event whose content was
    erased, even one matched by metadata (``OR actor.user_id = "alice"``): total_size and
    Aggregate counted it. The index, once it has applied the erasure, decides for all."""
    search_suite.append(
        [
            interaction(tenant, "m-1", text="the mango plan", user="alice"),
            interaction(tenant, "m-2", text="mango season", user="bob"),
        ]
    )
    search_suite.wait_indexed(tenant, 2)
    erase(search_suite.suite.store, tenant, "request #15", "dpo", subject_id="alice")
    filter = 'event_type = INTERACTION AND (input.text:"mango" OR actor.user_id = "alice")'
    page = search_suite.find(tenant, filter, order_by="sequence asc")
    assert [r.event.event_id for r in page.results] == ["m-1", "m-2"] and page.total_size == 2
    assert not page.results[0].event.input.messages[0].parts[0].text
    export = pb.ExportRequest(tenant_id=tenant, filter=filter, format=pb.EXPORT_FORMAT_JSONL)
    lines = b"".join(c.data for c in search_suite.search.Export(export)).splitlines()
    assert [json.loads(line)["eventId"] for line in lines] == ["m-1", "m-2"]
    aggregate = pb.AggregateRequest(tenant_id=tenant, filter=filter)
    assert sum(b.count for b in search_suite.search.Aggregate(aggregate).buckets) == 2


def test_an_export_waits_for_every_event_of_a_held_log_not_only_its_erasures(
    tmp_path: Path, tenant: str
) -> None:
    """A log held at a damaged event has the erasure records past it applied, and a wait
    for such a record counts it as indexed: an export's snapshot needs every event before
    it indexed, or the export leaves out, without a word, those past the damaged one."""
    url = f"sqlite:///{tmp_path / 'aiaudit.db'}"  # content sealed: a damaged row holds the log
    open_store(url, run_migrations=True).close()
    first = start_suite(tmp_path, "sqlite", {}, store_url=url)
    try:
        first.append([interaction(tenant, "victim", text="the mango plan")])
        first.wait_indexed(tenant, 1)
        first.suite.components["search"].indexer.stop()  # type: ignore[attr-defined]
        first.append([interaction(tenant, "later")])
        later = first.search.GetEvent(pb.GetEventRequest(tenant_id=tenant, event_id="later"))
        first.append([interaction(tenant, "after")])
        flip_sealed_content(url, tenant, later.sequence)  # damaged before any indexer read it
        first.ingest.EraseEvents(
            ipb.EraseEventsRequest(tenant_id=tenant, event_ids=["victim"], reason="art. 17")
        )
    finally:
        first.channel.close()
        first.suite.stop()

    suite = start_suite(tmp_path, "sqlite", {"export_wait": 0.5}, store_url=url)
    try:
        component = suite.suite.components["search"]
        assert isinstance(component, Search)
        size = suite.suite.store.log_sizes()[tenant]
        assert component.indexer.wait_indexed(tenant, size, timeout=30)  # the record: last
        assert component.backend.positions()[tenant] == later.sequence  # held before it
        export = pb.ExportRequest(
            tenant_id=tenant, filter="event_type = INTERACTION", format=pb.EXPORT_FORMAT_JSONL
        )
        with pytest.raises(grpc.RpcError) as caught:
            list(suite.search.Export(export))
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error_info(caught.value).reason == "SEARCH_UNAVAILABLE"

        flip_sealed_content(url, tenant, later.sequence)  # mended: the indexer goes on
        assert component.indexer.wait_indexed(tenant, size, timeout=30, whole=True)
        lines = b"".join(c.data for c in suite.search.Export(export)).splitlines()
        assert [json.loads(line)["eventId"] for line in lines] == ["victim", "later", "after"]
    finally:
        suite.channel.close()
        suite.suite.stop()


def test_a_filter_on_text_a_match_must_not_hold_lists_erased_events(
    search_suite: SearchSuite, tenant: str
) -> None:
    """Pages left an erased event out of every filter naming content, ``NOT`` too:
    one that never held "password" went missing from ``NOT input.text:"password"``."""
    search_suite.append(
        [
            interaction(tenant, "m-1", text="hello there", user="alice"),
            interaction(tenant, "m-2", text="my password is hunter2", user="bob"),
        ]
    )
    search_suite.wait_indexed(tenant, 2)
    erase(search_suite.suite.store, tenant, "request #12", "dpo", subject_id="alice")
    search_suite.wait_indexed(tenant, 3)
    found = search_suite.find(tenant, 'NOT input.text:"password" AND event_type = INTERACTION')
    assert [r.event.event_id for r in found.results] == ["m-1"] and found.total_size == 1


def test_a_late_write_of_the_text_never_undoes_an_erasure(
    search_suite: SearchSuite, tenant: str
) -> None:
    """A deposed indexer's bulk landing after the new leader indexed the erasure record (or
    any write retried late) carries the event with its text, at the event's own revision;
    the content-free document, at the record's later revision, stays."""
    search_suite.append([interaction(tenant, "m-1", text="the mango secret", user="alice")])
    search_suite.wait_indexed(tenant, 1)
    store = search_suite.suite.store
    (before,) = store.read_event_ids(tenant, ["m-1"])
    late = stored_document.from_stored(before)
    assert late.texts and late.revision == before.sequence
    component = search_suite.suite.components["search"]
    assert isinstance(component, Search)
    erase(store, tenant, "request #11", "dpo", event_ids=["m-1"])
    assert component.indexer.wait_indexed(tenant, store.log_sizes()[tenant], timeout=30)
    wait_until(lambda: search_suite.all_ids(tenant, query="mango") == [])

    component.backend.write(tenant, [late], 0)  # refused as older, not an error
    component.backend.make_visible()
    assert search_suite.all_ids(tenant, query="mango") == []
    (still,) = search_suite.find(tenant, 'event_id = "m-1"').results
    assert not still.event.input.messages[0].parts[0].text


def test_an_erasure_outranks_a_document_indexed_before_revisions(
    tmp_path: Path, tenant: str, request: pytest.FixtureRequest
) -> None:
    """Indices written before documents had revisions hold OpenSearch's own write counts
    as versions (2 here: a document sent twice); the erasure's text-free document must
    still replace the old one with its text (a revision is sent above every such count)."""
    settings = backend_settings("opensearch", request)
    first = start_suite(tmp_path, "opensearch", settings)
    try:
        component = first.suite.components["search"]
        assert isinstance(component, Search)
        component.indexer.stop()  # what follows is written as before revisions
        first.append([interaction(tenant, "m-1", text="the mango secret")])
        (stored,) = first.suite.store.read_event_ids(tenant, ["m-1"])
        doc = stored_document.from_stored(stored)
        component.backend.ensure_template()  # type: ignore[attr-defined]
        index = component.backend.index_name(doc)  # type: ignore[attr-defined]
        direct = OpenSearch(hosts=[settings["opensearch_url"]])
        for _ in range(2):
            direct.index(index=index, body=body(doc), id=doc.doc_id, routing=tenant, refresh=True)
        direct.close()
        erase(first.suite.store, tenant, "request #12", "dpo", event_ids=["m-1"])
    finally:
        first.channel.close()
        first.suite.stop()
    again = start_suite(tmp_path, "opensearch", settings)  # the same store and index
    try:
        indexer = again.suite.components["search"].indexer  # type: ignore[attr-defined]
        assert indexer.wait_indexed(tenant, again.suite.store.log_sizes()[tenant], timeout=30)
        wait_until(lambda: again.find(tenant, 'event_id = "m-1"').total_size == 1)
        assert again.all_ids(tenant, query="mango") == []
    finally:
        again.channel.close()
        again.suite.stop()


@pytest.mark.parametrize("checkpointed", [False, True], ids=["in-wal", "in-file"])
def test_erased_text_leaves_every_file_of_the_embedded_index(
    tmp_path: Path, tenant: str, checkpointed: bool
) -> None:
    """FTS5 keeps a deleted row's terms in its segments until they merge, SQLite its deleted
    cells and free pages, the WAL old page images: once the erasure is indexed, no file of
    the index holds the text, be it still in the WAL or checkpointed into the file."""
    running = start_suite(tmp_path, "sqlite", {})
    try:
        secret = secret_word()
        running.append(
            [
                interaction(tenant, "m-1", text=f"the {secret} plan", user="alice"),
                interaction(tenant, "m-2", text="mango season", user="bob"),
            ]
        )
        running.wait_indexed(tenant, 2)
        store = running.suite.store
        component = running.suite.components["search"]
        assert isinstance(component, Search)
        # The searches that waited left access records in the log: indexed, they would
        # write pages holding the text into the WAL after the checkpoint below.
        assert component.indexer.wait_indexed(tenant, store.log_sizes()[tenant], timeout=30)
        index = tmp_path / "search.db"
        if checkpointed:
            with closing(sqlite3.connect(index)) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        files = sorted(tmp_path.glob("search.db*"))
        assert holding(files, secret) == ["search.db" if checkpointed else "search.db-wal"]

        erase(store, tenant, "request #13", "dpo", subject_id="alice")
        assert component.indexer.wait_indexed(tenant, store.log_sizes()[tenant], timeout=30)

        assert holding(tmp_path.glob("search.db*"), secret) == []
        assert running.all_ids(tenant, 'event_id = "m-1"') == ["m-1"]  # its metadata stays
    finally:
        running.channel.close()
        running.suite.stop()


def index_files(client: OpenSearch, index: str) -> list[Path]:
    """Every file of an index on the test node (local: scripts/backends/opensearch.sh)."""
    index_uuid = client.indices.get_settings(index=index)[index]["settings"]["index"]["uuid"]
    (node,) = client.nodes.info(node_id="_local", metric="settings")["nodes"].values()
    (data,) = node["settings"]["path"]["data"]
    folder = Path(data) / "nodes" / "0" / "indices" / index_uuid
    assert folder.is_dir(), f"{folder}: the index's files are not on this machine"
    return [f for f in folder.rglob("*") if f.is_file()]


def test_erased_text_leaves_the_opensearch_index_files(
    tmp_path: Path, tenant: str, request: pytest.FixtureRequest
) -> None:
    """A replaced document stays in its Lucene segment, text and all, marked deleted, until
    the segment is merged: once the erasure is indexed, its index soon holds no deleted
    document, and none of its files (segments, translog) holds the text."""
    settings = backend_settings("opensearch", request)
    running = start_suite(tmp_path, "opensearch", settings)
    direct = OpenSearch(hosts=[settings["opensearch_url"]])
    try:
        secret = secret_word()
        # One bulk, so most likely one segment, where the erased document is one in 31: a
        # segment is merged by default only past 10 % deleted.
        others = [interaction(tenant, f"o-{i}", text="mango season", user="bob") for i in range(30)]
        running.append(
            [interaction(tenant, "m-1", text=f"the {secret} plan", user="alice"), *others]
        )
        running.wait_indexed(tenant, 31)
        store = running.suite.store
        component = running.suite.components["search"]
        assert isinstance(component, Search)
        (stored,) = store.read_event_ids(tenant, ["m-1"])
        assert isinstance(component.backend, OpenSearchBackend)
        index = component.backend.index_name(stored_document.from_stored(stored))
        wait_until(lambda: holding(index_files(direct, index), secret))  # the control

        erase(store, tenant, "request #14", "dpo", subject_id="alice")
        assert component.indexer.wait_indexed(tenant, store.log_sizes()[tenant], timeout=30)

        def deleted() -> int:
            stats = direct.indices.stats(index=index, metric="docs")
            return int(stats["indices"][index]["total"]["docs"]["deleted"])

        # A shard keeps a document replaced in about the last 30 s (its retention lease).
        wait_until(lambda: not deleted() and not holding(index_files(direct, index), secret), 120)
        assert running.all_ids(tenant, 'event_id = "m-1"') == ["m-1"]
    finally:
        direct.close()
        running.channel.close()
        running.suite.stop()
