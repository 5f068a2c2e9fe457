"""What an event and a batch may take once stored (canonical form plus content).

Every content value stores a 76-character commitment and its path however short it is: an
event of 4 MiB made of 838,000 one-character parts stored 110 MB, and a request of 8 such
events (33 MB, within ``max_message_bytes``) was not committed within 30 s on PostgreSQL,
answered ``UNAVAILABLE`` "retry", and every retry was as slow (probed 2026-12-07). Real
server (``max_event_bytes`` 256 KiB, ``max_message_bytes`` 4 MiB) on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import grpc
import pytest

from aiaudit.common import client
from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from tests.conftest import Postgres, Running, serve_suite
from tests.helpers import field_violations, interaction

EVENT_MOST = 8 * 256 * 1024
BATCH_MOST = 8 * 4 * 1024 * 1024


def _parts(tenant: str, event_id: str, n: int) -> ev.Event:
    """An interaction whose prompt is ``n`` one-character parts (about 5 bytes each sent)."""
    e = interaction(tenant, event_id)
    e.input.messages[0].parts.extend(ev.Part(text="a") for _ in range(n))
    return e


def _stored(server: Running, tenant: str) -> int:
    return server.suite.store.log_sizes().get(tenant, 0)  # type: ignore[attr-defined]


def test_an_event_of_many_short_parts_past_the_stored_limit_is_refused(
    server: Running, tenant: str
) -> None:
    stub = pb_grpc.IngestServiceStub(server.channel)
    over = _parts(tenant, "over", 20_000)
    assert over.ByteSize() < 256 * 1024  # within max_event_bytes as sent
    with pytest.raises(grpc.RpcError) as err:
        stub.Append(pb.AppendRequest(events=[interaction(tenant, "fine"), over]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    (field, why), *more = field_violations(err.value).items()
    assert field == "events[1]" and not more
    assert "20002 content values" in why
    assert why.endswith(f"the limit is {EVENT_MOST} (8 x max_event_bytes)")
    assert int(why.split()[1]) > EVENT_MOST
    assert _stored(server, tenant) == 0  # nothing of the batch, "fine" included

    under = _parts(tenant, "under", 12_000)
    assert stub.Append(pb.AppendRequest(events=[under])).receipts[0].sequence == 0


def test_a_batch_past_the_stored_limit_together_is_refused_and_its_halves_are_taken(
    server: Running, tenant: str
) -> None:
    """Each event within its own limit, 19 together past the batch's: the SDK halves a batch
    refused with no event named, and each half is taken."""
    stub = pb_grpc.IngestServiceStub(server.channel)
    batch = [_parts(tenant, f"e{i}", 14_000) for i in range(19)]
    assert pb.AppendRequest(events=batch).ByteSize() < 4 * 1024 * 1024
    with pytest.raises(grpc.RpcError) as err:
        stub.Append(pb.AppendRequest(events=batch))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    (field, why), *more = field_violations(err.value).items()
    assert field == "events" and not more
    assert why.endswith(f"the limit is {BATCH_MOST} (8 x max_message_bytes): send fewer at once")
    assert _stored(server, tenant) == 0

    for half in (batch[:9], batch[9:]):
        stub.Append(pb.AppendRequest(events=half))
    assert _stored(server, tenant) == 19


def test_an_event_past_postgresqls_1_gb_once_stored_is_refused_not_retried_for_good(
    postgres: Postgres, tmp_path: Path
) -> None:
    """``max_event_bytes`` may be raised to nearly 2 GiB: an event of 170 MB of control
    characters (1.02 GB of content as JSON, each ``\\u0001``) lost the store's connection at
    every try and was answered UNAVAILABLE "retry" for good."""
    suite, keys = serve_suite(
        tmp_path,
        database_url=postgres.app_url,
        max_event_bytes=200 * 1024 * 1024,
        max_message_bytes=256 * 1024 * 1024,
    )
    try:
        with client.channel(f"127.0.0.1:{suite.port}", keys["admin"]) as channel:
            e = interaction("t-gb", f"gb-{uuid.uuid4().hex}", text="\x01" * 170_000_000)
            e.output.ClearField("messages")
            with pytest.raises(grpc.RpcError) as err:
                pb_grpc.IngestServiceStub(channel).Append(pb.AppendRequest(events=[e]))
    finally:
        suite.stop()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(err.value)["events[0]"].endswith(
        "the limit is 1000000000 (PostgreSQL's 1 GB)"
    )
