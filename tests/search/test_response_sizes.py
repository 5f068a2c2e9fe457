"""Answers fit gRPC's default 4 MiB a message, whatever the events hold.

A page of 50 events of 100 KB was 5 MB, past what a client with the default
receive limit takes, so no page of such a search could be read (`aiaudit search`
included); an XML export of one 2.4 MB event was one chunk of 4.8 MB (review,
2026-12-05).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from aiaudit.search.v1 import search_service_pb2 as pb
from tests.helpers import interaction
from tests.search.conftest import NOT_ACCESS, SearchSuite

DEFAULT_RECEIVE = 4 * 1024 * 1024


def test_pages_of_large_events_stay_under_the_default_message_size(
    search_suite: SearchSuite, tenant: str
) -> None:
    events = [
        interaction(tenant, f"big-{i:02d}", text=f"refund {i} " + "x" * 100_000) for i in range(60)
    ]
    for at in range(0, len(events), 10):
        search_suite.append(events[at : at + 10])
    search_suite.wait_indexed(tenant, len(events))
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        # The suite's channel keeps gRPC's default receive limit.
        page = search_suite.search.SearchEvents(
            pb.SearchEventsRequest(
                tenant_id=tenant, query="refund", filter=NOT_ACCESS, page_size=50, page_token=token
            )
        )
        assert page.ByteSize() < DEFAULT_RECEIVE and page.total_size == len(events)
        seen += [r.event.event_id for r in page.results]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    # Each once, across pages of 3 MiB (15 of these 200 KB results: the event's two texts;
    # its highlights are cut to 300 characters) instead of 50 a page.
    assert sorted(seen) == sorted(e.event_id for e in events) and pages == 4


def test_an_xml_export_of_one_large_event_comes_in_small_chunks(
    search_suite: SearchSuite, tenant: str
) -> None:
    text = "refund " + "y" * 1_200_000  # in input and output: a 2.4 MB event, 4.8 MB of XML
    search_suite.append([interaction(tenant, "huge", text=text)])
    search_suite.wait_indexed(tenant, 1)
    chunks = list(
        search_suite.search.Export(
            pb.ExportRequest(tenant_id=tenant, filter=NOT_ACCESS, format=pb.EXPORT_FORMAT_XML)
        )
    )
    assert max(len(c.data) for c in chunks) <= 64 * 1024
    data = b"".join(c.data for c in chunks)
    ET.fromstring(data)  # well-formed once joined
    assert text.encode() in data
