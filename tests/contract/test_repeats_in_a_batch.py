"""The same event id twice in one batch, through real gRPC on SQLite and PostgreSQL.

An identical repeat is answered as an identical retry in a later batch is: stored once,
the first copy's receipt. A repeat with other content is an id taken by different
content (``ALREADY_EXISTS``, ``EVENT_ID_CONFLICT``), nothing written. Until 2026-12-05
any repeat was refused as a duplicate id: the gateway SDK set it aside as refused and
sent the rest of the batch again, its first copy included, which was then stored.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.common.v1 import proof_pb2
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from aiaudit.sdk import AuditLogger
from tests.conftest import Running
from tests.helpers import interaction


def stub(server: Running) -> pb_grpc.IngestServiceStub:
    return pb_grpc.IngestServiceStub(server.channel)


def stored_count(server: Running, tenant: str) -> int:
    return server.suite.store.log_sizes().get(tenant, 0)  # type: ignore[attr-defined]


def copy(e: ev.Event) -> ev.Event:
    out = ev.Event()
    out.CopyFrom(e)
    return out


def same_place(a: proof_pb2.Receipt, b: proof_pb2.Receipt) -> bool:
    """The same receipt but for ``duplicate``."""
    return (a.event_id, a.log_id, a.sequence, a.leaf_hash, a.receive_time) == (
        b.event_id,
        b.log_id,
        b.sequence,
        b.leaf_hash,
        b.receive_time,
    )


def conflict(err: grpc.RpcError) -> dict[str, str]:
    """The ErrorInfo of an ALREADY_EXISTS answer: its reason and metadata."""
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return {"reason": info.reason, **info.metadata}


def test_an_identical_repeat_is_stored_once_and_answered_with_the_first_receipt(
    server: Running, tenant: str
) -> None:
    a, b = interaction(tenant, "a"), interaction(tenant, "b")
    receipts = stub(server).Append(pb.AppendRequest(events=[a, b, copy(a), copy(a)])).receipts
    assert [(r.event_id, r.sequence, r.duplicate) for r in receipts] == [
        ("a", 0, False),
        ("b", 1, False),
        ("a", 0, True),
        ("a", 0, True),
    ]
    assert same_place(receipts[2], receipts[0]) and same_place(receipts[3], receipts[0])
    assert stored_count(server, tenant) == 2
    stored = server.suite.store.get_event(tenant, "a")  # type: ignore[attr-defined]
    assert stored.leaf_hash == receipts[0].leaf_hash

    # Sent again, repeat and all: every copy gets the original receipt, nothing is added.
    again = stub(server).Append(pb.AppendRequest(events=[copy(a), copy(a), b])).receipts
    assert all(r.duplicate for r in again)
    assert same_place(again[0], receipts[0]) and same_place(again[1], receipts[0])
    assert same_place(again[2], receipts[1])
    assert stored_count(server, tenant) == 2


def test_an_identical_repeat_on_a_stream_is_answered_like_the_first(
    server: Running, tenant: str
) -> None:
    a = interaction(tenant, "a")
    requests = [
        pb.AppendStreamRequest(request_id=1, events=[a, interaction(tenant, "b"), copy(a)]),
        pb.AppendStreamRequest(request_id=2, events=[copy(a), copy(a)]),
    ]
    answers = list(stub(server).AppendStream(iter(requests)))
    assert [(r.request_id, r.status.code) for r in answers] == [(1, 0), (2, 0)]
    first, second = answers[0].receipts, answers[1].receipts
    assert [(r.sequence, r.duplicate) for r in first] == [(0, False), (1, False), (0, True)]
    assert same_place(first[2], first[0])
    assert all(r.duplicate and same_place(r, first[0]) for r in second)
    assert stored_count(server, tenant) == 2


def test_a_repeat_with_other_content_is_a_conflict_and_nothing_is_written(
    server: Running, tenant: str
) -> None:
    events = [
        interaction(tenant, "a", text="one"),
        interaction(tenant, "b"),
        interaction(tenant, "a", text="two"),
    ]
    with pytest.raises(grpc.RpcError) as err:
        stub(server).Append(pb.AppendRequest(events=events))
    assert conflict(err.value) == {
        "reason": "EVENT_ID_CONFLICT",
        "field": "events[2].event_id",
        "event_id": "a",
    }
    assert "events[0].event_id" in err.value.details()
    assert stored_count(server, tenant) == 0

    answers = list(
        stub(server).AppendStream(iter([pb.AppendStreamRequest(request_id=3, events=events)]))
    )
    assert answers[0].status.code == grpc.StatusCode.ALREADY_EXISTS.value[0]
    assert stored_count(server, tenant) == 0


def test_a_conflict_with_a_stored_event_names_the_first_copy_in_the_batch(
    server: Running, tenant: str
) -> None:
    """The store sees each event once: its answer is mapped back to the batch as sent."""
    stub(server).Append(pb.AppendRequest(events=[interaction(tenant, "a", text="stored")]))
    b, other = interaction(tenant, "b"), interaction(tenant, "a", text="other")
    with pytest.raises(grpc.RpcError) as err:
        stub(server).Append(pb.AppendRequest(events=[b, copy(b), other, copy(other)]))
    assert conflict(err.value) == {
        "reason": "EVENT_ID_CONFLICT",
        "field": "events[2].event_id",
        "event_id": "a",
    }
    assert stored_count(server, tenant) == 1


def test_the_sdk_settles_a_repeated_event_as_acknowledged(
    server: Running, tenant: str, tmp_path: Path
) -> None:
    """The SDK set the repeat aside in rejected.jsonl, although the event was stored."""
    refused: list[tuple[str, str]] = []
    logger = AuditLogger(
        server.address,
        tmp_path / "spool",
        api_key=server.keys["gateway"],
        batch_size=4,
        linger=60.0,  # the batch goes when its four events are in, as one Append
        on_rejected=lambda e, why: refused.append((e.event_id, why)),
    )
    try:
        a = interaction(tenant, "a")
        for e in (a, copy(a), interaction(tenant, "b", text="one"), interaction(tenant, "b")):
            logger.log(e)
        assert logger.flush(timeout=30)
    finally:
        logger.close(timeout=5)
    assert stored_count(server, tenant) == 2
    # Only the repeat with other content is refused; the rest of its batch is stored.
    assert [(event_id, why.split(":")[0]) for event_id, why in refused] == [("b", "ALREADY_EXISTS")]
    assert "EVENT_ID_CONFLICT" in refused[0][1]
    rejected = (tmp_path / "spool" / "rejected.jsonl").read_text().splitlines()
    assert len(rejected) == 1 and '"event_id":"b"' in rejected[0]
    stored = server.suite.store.get_event(tenant, "b")  # type: ignore[attr-defined]
    assert stored.to_event().input.messages[0].parts[0].text == "one"
