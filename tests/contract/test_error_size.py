"""Refusals fit in the trailers: past ~8 KiB a client gets RESOURCE_EXHAUSTED, not the error.

Found by a review (2026-12-04): errors echoed the caller's input in full, so a
4,000-character filter (the limit is 8,192) or a batch of 1,000 bad events came
back as "received metadata size exceeds limit" instead of INVALID_ARGUMENT naming
the field.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from aiaudit.common import client, status
from aiaudit.ingest.v1 import ingest_service_pb2 as ipb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as ipb_grpc
from aiaudit.search.v1 import search_service_pb2 as spb
from aiaudit.search.v1 import search_service_pb2_grpc as spb_grpc
from tests.conftest import serve_suite
from tests.helpers import interaction


@pytest.fixture
def channel(tmp_path: Path) -> Iterator[grpc.Channel]:
    suite, keys = serve_suite(tmp_path)
    with client.channel(f"127.0.0.1:{suite.port}", keys["admin"]) as chan:
        yield chan
    suite.stop()


def refusal(call: object) -> tuple[grpc.StatusCode, str, list[str]]:
    """(code, message, fields named) of a refused call."""
    with pytest.raises(grpc.RpcError) as err:
        call()  # type: ignore[operator]
    found = rpc_status.from_call(err.value)  # type: ignore[arg-type]
    assert found is not None, err.value
    fields = []
    for detail in found.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            fields = [v.field for v in bad.field_violations]
    return err.value.code(), found.message, fields


def test_a_long_filter_is_refused_naming_the_field(channel: grpc.Channel, tenant: str) -> None:
    stub = spb_grpc.SearchServiceStub(channel)
    request = spb.SearchEventsRequest(tenant_id=tenant, filter="x" * 4000 + " = 1")
    code, message, fields = refusal(lambda: stub.SearchEvents(request))
    assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["filter"])
    assert message.startswith("filter: unknown field 'xxx") and "more characters)" in message


def test_a_batch_of_bad_events_lists_what_fits_and_counts_the_rest(
    channel: grpc.Channel, tenant: str
) -> None:
    events = [interaction(tenant, event_id=f"bad id {i}") for i in range(1000)]
    stub = ipb_grpc.IngestServiceStub(channel)
    code, message, fields = refusal(lambda: stub.Append(ipb.AppendRequest(events=events)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert 10 < len(fields) < 1000 and fields[:2] == ["events[0].event_id", "events[1].event_id"]
    assert message.endswith(f"({len(fields)} of 1000 field violations listed)"), message


def test_a_field_path_that_echoes_a_long_key_is_clipped(channel: grpc.Channel, tenant: str) -> None:
    event = interaction(tenant)
    event.attributes["k" * 20_000].string_value = "x"
    stub = ipb_grpc.IngestServiceStub(channel)
    code, _, fields = refusal(lambda: stub.Append(ipb.AppendRequest(events=[event])))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    (field,) = fields
    assert field.startswith("events[0].attributes['kkk") and "more characters)" in field
    assert len(field.encode()) < status.VALUE_BYTES + 40


def test_clip_cuts_on_a_character_boundary_and_says_how_much_went() -> None:
    assert status.clip("short") == "short"
    cut = status.clip("é" * 300, 11)  # 2 bytes a character: 5 kept
    assert cut == "ééééé… (295 more characters)"
