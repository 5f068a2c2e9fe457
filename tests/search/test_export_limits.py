"""Exports are capped: each holds one of the server's 64 RPC threads until its client read it all.

Export was the one uncapped stream until 2026-12-04: a caller who starts exports and
reads them slowly (or not at all) held a thread each, and 64 of them stopped every
other RPC of the process, a gateway's ``Append`` included.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from aiaudit.common.config import ConfigError
from aiaudit.search.settings import SearchSettings
from aiaudit.search.v1 import search_service_pb2 as pb
from tests.helpers import free_port, interaction, wait_until
from tests.search.conftest import SearchSuite, start_suite

EVENTS = 400
JSONL = partial(pb.ExportRequest, format=pb.EXPORT_FORMAT_JSONL)
TEXT = "x" * 20_000
"""~8 MB of export: far more than gRPC's transport buffers, so an export whose client
reads one chunk and stops stays open on the server."""


@pytest.fixture
def small(tmp_path: Path) -> Iterator[SearchSuite]:
    """Two exports at most, one a caller."""
    running = start_suite(
        tmp_path, "sqlite", {"max_export_streams": 2, "max_export_streams_per_caller": 1}
    )
    yield running
    running.channel.close()
    running.suite.stop()


def start_export(suite: SearchSuite, role: str, tenant: str) -> tuple[grpc.Future, bytes]:  # type: ignore[type-arg]
    """An export and its first chunk (the rest left unread), or a refused one and b""."""
    stream = suite.as_role(role).Export(JSONL(tenant_id=tenant))
    try:
        return stream, next(stream).data
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc
        found = rpc_status.from_call(exc)
        assert found is not None
        reason = error_details_pb2.ErrorInfo()
        assert found.details[0].Unpack(reason)
        assert reason.reason == "EXPORT_STREAMS_EXHAUSTED", reason
    return stream, b""


def refused(stream: grpc.Future) -> bool:  # type: ignore[type-arg]
    return not stream.running() and stream.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_exports_beyond_the_limits_are_refused_and_freed_when_they_end(
    small: SearchSuite, tenant: str
) -> None:
    for _ in range(EVENTS // 50):
        small.append([interaction(tenant, text=TEXT) for _ in range(50)])
    small.wait_indexed(tenant, EVENTS)
    mine, _ = start_export(small, "admin", tenant)
    assert not refused(mine)
    assert refused(start_export(small, "admin", tenant)[0])  # one a caller
    theirs, first = start_export(small, "auditor", tenant)  # another caller: the second slot
    assert not refused(theirs)
    assert refused(start_export(small, "compliance_officer", tenant)[0])  # two in all
    assert small.find(tenant, page_size=1).total_size == EVENTS  # other RPCs still served
    mine.cancel()  # its slot comes back once the server sees the stream end

    def reopened() -> bool:
        stream, _ = start_export(small, "compliance_officer", tenant)
        stream.cancel()
        return not refused(stream)

    wait_until(reopened)
    whole = first + b"".join(chunk.data for chunk in theirs)  # read to the end: freed
    assert whole.count(b"answer " + TEXT.encode()) == EVENTS
    again = small.as_role("auditor").Export(JSONL(tenant_id=tenant))
    assert b"".join(c.data for c in again).count(b"answer " + TEXT.encode()) == EVENTS


def test_a_cancelled_export_gives_its_slot_back_while_it_waits_for_the_index(
    tmp_path: Path, tenant: str
) -> None:
    """An export waits up to ``export_wait`` for the index; cancelled, it stops waiting.

    Until 2026-12-04 the wait went on after the client left, and the slot
    stayed taken for the whole ``export_wait``.
    """
    lagging = start_suite(  # an OpenSearch nobody listens on: the index never catches up
        tmp_path,
        "opensearch",
        {
            "opensearch_url": f"http://127.0.0.1:{free_port()}",
            "index_prefix": "aiaudit-test-unreachable",
            "export_wait": 600.0,
            "max_export_streams_per_caller": 1,
        },
    )
    try:
        lagging.append([interaction(tenant, "waits")])

        def slot_free() -> bool:
            """One export of the caller's own; refused while another holds the slot."""
            probe = lagging.as_role("admin").Export(JSONL(tenant_id=tenant), timeout=1.0)
            with pytest.raises(grpc.RpcError) as ended:
                next(probe)
            code = ended.value.code()
            assert code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED)
            return code == grpc.StatusCode.DEADLINE_EXCEEDED  # admitted, then waiting

        def waiting_export() -> grpc.Future | None:  # type: ignore[type-arg]
            """An export that holds the slot; None if a probe took it first (retried)."""
            held = lagging.as_role("admin").Export(JSONL(tenant_id=tenant))
            if slot_free():  # the probe was admitted: the held export was refused
                held.cancel()
                return None
            return held

        wait_until(waiting_export).cancel()
        wait_until(slot_free, timeout=20.0)
    finally:
        lagging.channel.close()
        lagging.suite.stop()


@pytest.mark.parametrize(
    ("most", "per_caller", "message"),
    [
        (49, 2, r"'search\.max_export_streams': 49 is invalid: 1 to 48"),
        (0, 1, r"'search\.max_export_streams': 0 is invalid"),
        (4, 5, r"'search\.max_export_streams_per_caller': 5 is invalid: 1 to max_export"),
        (4, 0, r"'search\.max_export_streams_per_caller': 0 is invalid"),
    ],
)
def test_export_limits_that_cannot_work_are_refused_at_start(
    most: int, per_caller: int, message: str
) -> None:
    settings = SearchSettings(max_export_streams=most, max_export_streams_per_caller=per_caller)
    with pytest.raises(ConfigError, match=message):
        settings.validate()
