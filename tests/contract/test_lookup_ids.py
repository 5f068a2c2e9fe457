"""A lookup by something no event id can be is refused up front, naming the field.

On PostgreSQL an id holding U+0000 failed the lookup's statement: search's
GetEvent answered UNKNOWN with the database's error and SQL, integrity's
GetInclusionProof and VerifyEvent UNAVAILABLE, "retry" (review, 2026-12-04).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from aiaudit.common import client
from aiaudit.ingest.v1 import ingest_service_pb2 as ipb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as ipb_grpc
from aiaudit.integrity.v1 import integrity_service_pb2 as tpb
from aiaudit.integrity.v1 import integrity_service_pb2_grpc as tpb_grpc
from aiaudit.search.v1 import search_service_pb2 as spb
from aiaudit.search.v1 import search_service_pb2_grpc as spb_grpc
from tests.conftest import serve_suite
from tests.helpers import field_violations, interaction


@pytest.fixture
def channel(tmp_path: Path, store_url: str) -> Iterator[grpc.Channel]:
    suite, keys = serve_suite(tmp_path, database_url=store_url)
    with client.channel(f"127.0.0.1:{suite.port}", keys["admin"]) as chan:
        yield chan
    suite.stop()


@pytest.mark.parametrize("bad", ["a\x00b", "a b", "x" * 129, ""])
def test_an_id_no_event_can_have_is_invalid_everywhere(
    channel: grpc.Channel, tenant: str, bad: str
) -> None:
    ipb_grpc.IngestServiceStub(channel).Append(ipb.AppendRequest(events=[interaction(tenant)]))
    search = spb_grpc.SearchServiceStub(channel)
    integrity = tpb_grpc.IntegrityServiceStub(channel)
    calls: list[Callable[[], object]] = [
        lambda: search.GetEvent(spb.GetEventRequest(tenant_id=tenant, event_id=bad)),
        lambda: integrity.GetInclusionProof(
            tpb.GetInclusionProofRequest(log_id=tenant, event_id=bad)
        ),
        lambda: integrity.VerifyEvent(tpb.VerifyEventRequest(log_id=tenant, event_id=bad)),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value
        assert list(field_violations(err.value)) == ["event_id"]
        assert "[A-Za-z0-9._:-]" in field_violations(err.value)["event_id"]
