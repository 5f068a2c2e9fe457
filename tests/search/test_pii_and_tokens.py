"""``actor.ip_address`` needs ``pii.read`` to be read, matched or grouped on; page tokens
are bound to the request that issued them.

Mutation review (2026-12-05): the redaction of the address, the ``pii.read`` check of a
filter or ``group_by`` on it, and the query's part of a token's binding could each be
removed with every search test still passing.
"""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import json_format

from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.search.v1 import search_service_pb2 as pb
from aiaudit.search.v1 import search_service_pb2_grpc as pb_grpc
from tests.helpers import field_violations, interaction, whole_log
from tests.search.conftest import NOT_ACCESS, SearchSuite

IP = "198.51.100.77"
FORMATS = [pb.EXPORT_FORMAT_JSONL, pb.EXPORT_FORMAT_CSV, pb.EXPORT_FORMAT_XML]


def _from(tenant: str, event_id: str) -> ev.Event:
    event = interaction(tenant, event_id, text="my address is not in this text")
    event.actor.ip_address = IP
    return event


def _exported(stub: pb_grpc.SearchServiceStub, tenant: str, fmt: int) -> bytes:
    request = pb.ExportRequest(tenant_id=tenant, format=fmt, filter=NOT_ACCESS)
    return b"".join(c.data for c in stub.Export(request))


def _seen(stub: pb_grpc.SearchServiceStub, tenant: str) -> dict[str, str]:
    """The address as GetEvent, SearchEvents and a JSONL export show it to this caller."""
    got = stub.GetEvent(pb.GetEventRequest(tenant_id=tenant, event_id="e-1")).event
    page = stub.SearchEvents(pb.SearchEventsRequest(tenant_id=tenant, filter=NOT_ACCESS))
    (found,) = page.results
    (line,) = _exported(stub, tenant, pb.EXPORT_FORMAT_JSONL).decode().splitlines()
    exported = json_format.Parse(line, ev.Event())
    assert got.event_id == found.event.event_id == exported.event_id == "e-1"
    assert got.actor.user_id == found.event.actor.user_id == exported.actor.user_id == "alice"
    return {
        "get": got.actor.ip_address,
        "search": found.event.actor.ip_address,
        "export": exported.actor.ip_address,
    }


def test_the_address_is_shown_only_with_pii_read(search_suite: SearchSuite, tenant: str) -> None:
    search_suite.append([_from(tenant, "e-1")])
    search_suite.wait_indexed(tenant, 1)
    auditor = search_suite.as_role("auditor")  # content.read, export; no pii.read
    assert _seen(auditor, tenant) == {"get": "", "search": "", "export": ""}
    for fmt in FORMATS:
        assert IP.encode() not in _exported(auditor, tenant, fmt), pb.ExportFormat.Name(fmt)
    officer = search_suite.as_role("compliance_officer")  # pii.read
    assert _seen(officer, tenant) == {"get": IP, "search": IP, "export": IP}
    for fmt in FORMATS:
        assert IP.encode() in _exported(officer, tenant, fmt), pb.ExportFormat.Name(fmt)


def test_matching_or_grouping_on_the_address_needs_pii_read_and_is_recorded(
    search_suite: SearchSuite, tenant: str
) -> None:
    search_suite.append([_from(tenant, "e-1")])
    search_suite.wait_indexed(tenant, 1)
    auditor = search_suite.as_role("auditor")
    by_ip = f'actor.ip_address = "{IP}"'
    with pytest.raises(grpc.RpcError) as searched:
        auditor.SearchEvents(pb.SearchEventsRequest(tenant_id=tenant, filter=by_ip))
    with pytest.raises(grpc.RpcError) as grouped:
        auditor.Aggregate(pb.AggregateRequest(tenant_id=tenant, group_by=["actor.ip_address"]))
    for refused in (searched.value, grouped.value):
        assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "pii.read" in str(refused.details())

    # Each refusal is an access record, durable before the answer: read from the store.
    records = [
        e
        for e in (s.to_event() for s in whole_log(search_suite.suite.store, tenant))
        if e.event_type == ev.EVENT_TYPE_AUDIT_ACCESS
        and e.attributes["access.outcome"].string_value == "denied"
    ]
    assert [
        (
            r.actor.user_id,
            r.attributes["access.action"].string_value,
            r.attributes["access.permission"].string_value,
        )
        for r in records
    ] == [
        ("test-auditor", "search.events", "pii.read"),
        ("test-auditor", "search.aggregate", "pii.read"),
    ]
    said = [{m.name: m.parts[0].text for m in r.input.messages} for r in records]
    assert said[0]["filter"] == by_ip
    assert said[1]["group_by"] == "actor.ip_address"

    # With pii.read both are answered.
    officer = search_suite.as_role("compliance_officer")
    page = officer.SearchEvents(pb.SearchEventsRequest(tenant_id=tenant, filter=by_ip))
    assert [r.event.event_id for r in page.results] == ["e-1"]
    groups = officer.Aggregate(
        pb.AggregateRequest(tenant_id=tenant, filter=NOT_ACCESS, group_by=["actor.ip_address"])
    )
    assert [(list(b.keys), b.count) for b in groups.buckets] == [([IP], 1)]


def test_a_page_token_is_refused_with_another_tenant_filter_query_or_order(
    search_suite: SearchSuite, tenant: str
) -> None:
    other = f"{tenant}-b"
    for t in (tenant, other):
        search_suite.append(
            [interaction(t, f"e-{i}", text=f"alpha bravo number{i}") for i in range(3)]
        )
        search_suite.wait_indexed(t, 3)
    first = pb.SearchEventsRequest(
        tenant_id=tenant,
        filter=NOT_ACCESS,
        query="alpha",
        order_by="occurred_time",
        page_size=1,
    )
    page = search_suite.search.SearchEvents(first)
    assert len(page.results) == 1 and page.next_page_token
    token = page.next_page_token

    changed = {
        "query": {"query": "bravo"},
        "filter": {"filter": f'actor.user_id = "alice" AND {NOT_ACCESS}'},
        "order_by": {"order_by": "occurred_time desc"},
        "tenant_id": {"tenant_id": other},
    }
    for what, fields in changed.items():
        request = pb.SearchEventsRequest()
        request.CopyFrom(first)
        request.page_token = token
        for name, value in fields.items():
            setattr(request, name, value)
        with pytest.raises(grpc.RpcError) as caught:
            search_suite.search.SearchEvents(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, what
        assert "belongs to a different" in field_violations(caught.value)["page_token"], what

    # The request that issued it takes it.
    request = pb.SearchEventsRequest()
    request.CopyFrom(first)
    request.page_token = token
    second = search_suite.search.SearchEvents(request)
    assert len(second.results) == 1
    assert second.results[0].event.event_id != page.results[0].event.event_id
