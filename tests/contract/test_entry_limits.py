"""How many entries an event's multi-valued fields may hold: limit+1 refused, the limit taken.

The search index makes each value of ``attributes``, ``trust_signals``, ``safety_flags`` (five
per flag), ``output.tool_calls`` and ``output.finish_reasons`` a nested object of its
document, and OpenSearch refuses a document of more than 10,000 of them for ever. Before
these limits an event with 10,001 attributes was stored and held search indexing (review,
2026-12-05). Real server on SQLite and PostgreSQL, and a real OpenSearch node.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from opensearchpy import OpenSearch

from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from tests.conftest import Running, _script_env
from tests.helpers import field_violations, interaction
from tests.search.conftest import start_suite


@pytest.fixture(scope="module")
def opensearch_url() -> str:
    return _script_env("opensearch.sh")["AIAUDIT_TEST_OPENSEARCH_URL"]


def _attributes(e: ev.Event, n: int) -> None:
    for i in range(n):
        e.attributes[f"k{i}"].int_value = i


def _trust_signals(e: ev.Event, n: int) -> None:
    e.trust_signals.extend(
        ev.TrustSignal(name=f"s{i}", value=ev.AttributeValue(double_value=0.5)) for i in range(n)
    )


def _safety_flags(e: ev.Event, n: int) -> None:
    e.safety_flags.extend(
        ev.SafetyFlag(category=f"c{i}", severity=ev.SEVERITY_LOW, score=0.25, source="guard")
        for i in range(n)
    )


def _tool_calls(e: ev.Event, n: int) -> None:
    e.output.tool_calls.extend(ev.ToolCall(id=f"call-{i}", name="lookup") for i in range(n))


def _finish_reasons(e: ev.Event, n: int) -> None:
    e.output.finish_reasons.extend("stop" for _ in range(n))


FIELDS: list[tuple[str, int, Callable[[ev.Event, int], None]]] = [
    ("attributes", 1000, _attributes),
    ("trust_signals", 1000, _trust_signals),
    ("safety_flags", 200, _safety_flags),
    ("output.tool_calls", 1000, _tool_calls),
    ("output.finish_reasons", 1000, _finish_reasons),
]
"""(field, its limit, fill the event with n items): the numbers the README states."""


def _stub(server: Running) -> pb_grpc.IngestServiceStub:
    return pb_grpc.IngestServiceStub(server.channel)


def _stored(server: Running, tenant: str) -> int:
    return server.suite.store.log_sizes().get(tenant, 0)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("field", "limit", "fill"), FIELDS, ids=[f for f, _, _ in FIELDS])
def test_one_entry_over_the_limit_is_refused_the_limit_is_taken(
    server: Running, tenant: str, field: str, limit: int, fill: Callable[[ev.Event, int], None]
) -> None:
    over = interaction(tenant, "over")
    fill(over, limit + 1)
    with pytest.raises(grpc.RpcError) as err:
        _stub(server).Append(pb.AppendRequest(events=[interaction(tenant, "fine"), over]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(err.value) == {
        f"events[1].{field}": f"has {limit + 1} entries; the limit is {limit}"
    }
    assert _stored(server, tenant) == 0  # nothing of the batch, "fine" included

    at = interaction(tenant, "at-limit")
    fill(at, limit)
    receipt = _stub(server).Append(pb.AppendRequest(events=[at])).receipts[0]
    assert receipt.sequence == 0 and _stored(server, tenant) == 1
    stored = server.suite.store.get_event(tenant, "at-limit").to_event()  # type: ignore[attr-defined]
    stored.ClearField("receive_time")
    assert stored == at


def test_far_too_many_attributes_are_one_violation_not_one_per_key(
    server: Running, tenant: str
) -> None:
    """10,001 attributes with bad keys: the count is the answer, no check of every key
    (their violations would crowd the error)."""
    e = interaction(tenant)
    for i in range(10_001):
        e.attributes[f"BAD KEY {i}"].int_value = i
    with pytest.raises(grpc.RpcError) as err:
        _stub(server).Append(pb.AppendRequest(events=[e]))
    assert field_violations(err.value) == {
        "events[0].attributes": "has 10001 entries; the limit is 1000"
    }
    assert _stored(server, tenant) == 0


def test_a_stream_request_over_a_limit_is_refused_and_the_stream_goes_on(
    server: Running, tenant: str
) -> None:
    over = interaction(tenant, "over")
    _attributes(over, 1001)
    requests = [
        pb.AppendStreamRequest(request_id=1, events=[over]),
        pb.AppendStreamRequest(request_id=2, events=[interaction(tenant, "next")]),
    ]
    first, second = _stub(server).AppendStream(iter(requests))
    assert first.status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    detail = error_details_pb2.BadRequest()
    assert first.status.details[0].Unpack(detail)
    assert [(v.field, v.description) for v in detail.field_violations] == [
        ("events[0].attributes", "has 1001 entries; the limit is 1000")
    ]
    assert second.status.code == 0 and second.receipts[0].sequence == 0
    assert _stored(server, tenant) == 1


def test_an_event_with_every_field_at_its_limit_is_indexed_by_opensearch(
    tmp_path: Path, opensearch_url: str
) -> None:
    """5,000 nested objects, half OpenSearch's limit: the document is indexed and found."""
    prefix = f"aiaudit-limits-{uuid.uuid4().hex[:8]}"
    tenant = f"t-{uuid.uuid4().hex[:12]}"
    s = start_suite(
        tmp_path,
        "opensearch",
        {"opensearch_url": opensearch_url, "index_prefix": prefix, "refresh_interval": "100ms"},
    )
    direct = OpenSearch(hosts=[opensearch_url])
    try:
        full = interaction(tenant, "full")
        for _, limit, fill in FIELDS:
            fill(full, limit)
        s.append([full])
        s.wait_indexed(tenant, 1)
        assert s.all_ids(tenant, "attributes.k999 = 999 AND safety_flags.category = c199") == [
            "full"
        ]
        assert s.all_ids(tenant, "trust_signals.s999 = 0.5") == ["full"]
    finally:
        s.channel.close()
        s.suite.stop()
        direct.indices.delete(index=f"{prefix}-*", params={"ignore_unavailable": "true"})
        direct.indices.delete_index_template(name=prefix, params={"ignore": 404})
        direct.close()
