"""What a search's access record says was asked: every part of the request that decides
what is returned, a later page's start included, granted or refused."""

from __future__ import annotations

import grpc
import pytest

from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.search import document, paging
from aiaudit.search.v1 import search_service_pb2 as pb
from tests.helpers import interaction, whole_log
from tests.search.conftest import NOT_ACCESS, SearchSuite


def records(search_suite: SearchSuite, tenant: str, action: str) -> list[ev.Event]:
    """The tenant's access records of ``action``, oldest first, read from the store.

    Each is durable before its read is answered: no waiting for the index.
    """
    return [
        e
        for e in (s.to_event() for s in whole_log(search_suite.suite.store, tenant))
        if e.event_type == ev.EVENT_TYPE_AUDIT_ACCESS
        and e.attributes["access.action"].string_value == action
    ]


def said(record: ev.Event) -> dict[str, str]:
    """What the record keeps as content (the texts an auditor needs content.read to read)."""
    return {m.name: m.parts[0].text for m in record.input.messages}


def attribute(record: ev.Event, key: str) -> object:
    value = record.attributes[f"access.{key}"]
    which = value.WhichOneof("value")
    assert which is not None, key
    return getattr(value, which)


def test_an_aggregate_records_its_metrics_percentiles_and_histogram(
    search_suite: SearchSuite, tenant: str
) -> None:
    """Its record held the filter, query and group_by only: not which statistics, which
    percentiles or which histogram were read (review)."""
    search_suite.append([interaction(tenant, f"e-{i}") for i in range(3)])
    search_suite.wait_indexed(tenant, 3)
    asked = pb.AggregateRequest(
        tenant_id=tenant,
        filter=NOT_ACCESS,
        group_by=["model.name", "actor.user_id"],
        metrics=["usage.input_tokens", "usage.output_tokens"],
        percentiles=[50, 99.5],
        histogram=pb.Histogram(interval="1h"),
    )
    answer = search_suite.search.Aggregate(asked)
    assert set(answer.buckets[0].stats["usage.input_tokens"].percentiles) == {"50", "99.5"}
    plain = pb.AggregateRequest(tenant_id=tenant, filter=NOT_ACCESS, group_by=["model.name"])
    search_suite.search.Aggregate(plain)
    with pytest.raises(grpc.RpcError) as refused:  # grouping by an address needs pii.read
        search_suite.as_role("auditor").Aggregate(
            pb.AggregateRequest(
                tenant_id=tenant,
                group_by=["actor.ip_address"],
                metrics=["timing.latency"],
                percentiles=[95],
                histogram=pb.Histogram(interval="5m"),
            )
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED

    full, short, denied = records(search_suite, tenant, "search.aggregate")
    assert said(full) == {"filter": NOT_ACCESS}
    assert {
        key: attribute(full, key)
        for key in ("group_by", "metrics", "percentiles", "histogram.interval")
    } == {
        "group_by": "model.name,actor.user_id",  # as before
        "metrics": "usage.input_tokens,usage.output_tokens",
        "percentiles": "50,99.5",  # as the answer's stats name them
        "histogram.interval": "1h",
    }
    assert {
        key: attribute(short, key)
        for key in ("group_by", "metrics", "percentiles", "histogram.interval")
    } == {"group_by": "model.name", "metrics": "", "percentiles": "", "histogram.interval": ""}
    # A refusal keeps every text it asked as content, these too.
    assert denied.attributes["access.outcome"].string_value == "denied"
    assert said(denied) == {
        "group_by": "actor.ip_address",
        "metrics": "timing.latency",
        "percentiles": "95",
        "histogram.interval": "5m",
    }


def test_a_later_page_records_where_it_started(search_suite: SearchSuite, tenant: str) -> None:
    """A page past the first was recorded as ``page: true`` alone: which of the results it
    read could not be told (review). It says the sort values it started after, as content
    (a position among what a withheld filter matched is as private as the filter)."""
    sequences = search_suite.append([interaction(tenant, f"e-{i}") for i in range(3)])
    search_suite.wait_indexed(tenant, 3)
    first = pb.SearchEventsRequest(tenant_id=tenant, filter=NOT_ACCESS, page_size=2)
    page = search_suite.search.SearchEvents(first)
    assert len(page.results) == 2 and page.next_page_token
    last = page.results[-1]
    second = pb.SearchEventsRequest()
    second.CopyFrom(first)
    second.page_token = page.next_page_token
    assert len(search_suite.search.SearchEvents(second).results) == 1
    # A token made by hand (its binding is no secret) at a time no calendar holds.
    far = pb.SearchEventsRequest(
        tenant_id=tenant,
        filter=NOT_ACCESS,
        page_token=paging.encode(paging.digest(tenant, NOT_ACCESS, "", ""), (2**62, 1)),
    )
    assert len(search_suite.search.SearchEvents(far).results) == 3  # all before it
    by_sequence = pb.SearchEventsRequest(
        tenant_id=tenant,
        filter=NOT_ACCESS,
        order_by="sequence",
        page_token=paging.encode(
            paging.digest(tenant, NOT_ACCESS, "", "sequence"), (sequences[0],)
        ),
    )
    rest = search_suite.search.SearchEvents(by_sequence)
    assert [r.sequence for r in rest.results] == sequences[1:]
    # Refused (a query needs content.read), with a token issued for none of this.
    with pytest.raises(grpc.RpcError) as refused:
        search_suite.as_role("analyst").SearchEvents(
            pb.SearchEventsRequest(tenant_id=tenant, query="hello", page_token="not-a-token")
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED

    # The last five (waiting for the index searched too).
    one, two, three, four, denied = records(search_suite, tenant, "search.events")[-5:]
    assert said(one) == {"filter": NOT_ACCESS}
    assert (attribute(one, "page"), attribute(one, "page_size")) == (False, 2)
    when = document.iso(document.micros(last.event.occurred_time))
    assert said(two) == {
        "filter": NOT_ACCESS,
        "page_after": f"occurred_time={when}, sequence={last.sequence}",
    }
    assert (attribute(two, "page"), attribute(two, "page_size")) == (True, 2)
    assert said(three)["page_after"] == (
        "occurred_time=4611686018427387904 microseconds since the epoch, sequence=1"
    )
    assert attribute(three, "page_size") == 50  # the default, asked as 0
    assert said(four)["page_after"] == f"sequence={sequences[0]}"
    assert "access.page_after" not in two.attributes
    assert said(denied) == {"query": "hello", "page_token": "not-a-token"}
    assert attribute(denied, "page") is True

    # Shown as a filter is: not to a reader without content.read.
    seen = search_suite.as_role("analyst").GetEvent(
        pb.GetEventRequest(tenant_id=tenant, event_id=two.event_id)
    )
    assert [m.name for m in seen.event.input.messages] == ["filter", "page_after"]
    assert all(not m.parts[0].text for m in seen.event.input.messages)
    shown = search_suite.as_role("compliance_officer").GetEvent(
        pb.GetEventRequest(tenant_id=tenant, event_id=two.event_id)
    )
    assert said(shown.event) == said(two)


def test_an_export_records_its_format_refused_too(search_suite: SearchSuite, tenant: str) -> None:
    """A refused export's record held no format (the granted one's did): what was asked
    for, CSV or a proof bundle, could not be told (review)."""
    search_suite.append([interaction(tenant, "e-1")])
    search_suite.wait_indexed(tenant, 1)
    with pytest.raises(grpc.RpcError) as refused:  # the analyst may not export
        list(
            search_suite.as_role("analyst").Export(
                pb.ExportRequest(tenant_id=tenant, filter=NOT_ACCESS, format=pb.EXPORT_FORMAT_CSV)
            )
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as unset:  # no format set, refused first
        list(search_suite.as_role("analyst").Export(pb.ExportRequest(tenant_id=tenant)))
    assert unset.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as bundle:  # a proof bundle carries PII
        list(
            search_suite.as_role("auditor").Export(
                pb.ExportRequest(
                    tenant_id=tenant, format=pb.EXPORT_FORMAT_JSONL, include_proofs=True
                )
            )
        )
    assert bundle.value.code() == grpc.StatusCode.PERMISSION_DENIED
    exported = search_suite.search.Export(
        pb.ExportRequest(tenant_id=tenant, filter=NOT_ACCESS, format=pb.EXPORT_FORMAT_XML)
    )
    assert b"e-1" in b"".join(chunk.data for chunk in exported)

    csv, unset_format, proofs, xml = records(search_suite, tenant, "search.export")
    assert said(csv) == {"filter": NOT_ACCESS, "format": "csv"}
    assert attribute(csv, "include_proofs") is False
    assert said(unset_format) == {"format": "EXPORT_FORMAT_UNSPECIFIED"}
    assert said(proofs) == {"format": "jsonl"}
    assert attribute(proofs, "include_proofs") is True
    assert attribute(proofs, "permission") == "pii.read"
    assert said(xml) == {"filter": NOT_ACCESS}
    assert (attribute(xml, "format"), attribute(xml, "include_proofs")) == ("xml", False)
