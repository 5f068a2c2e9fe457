"""A caller with a valid key holds at most its share of the server's RPC threads.

grpcio's synchronous server waits for a unary call's request in one of its RPC threads.
The credential gate refuses unknown callers before that, but a known key could open 64
calls, never send their requests and hold every thread: every other caller's calls
waited (review, 2026-12-06). A principal's calls now hold at most ``caller_thread_share``
of ``rpc_threads`` (32 of 64); the next is refused at once, and a call that ends before
its request arrives (cancelled, past its deadline) gives its count back.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aiaudit.common import caller_share, client
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from tests.conftest import Running, serve_suite
from tests.contract.test_reflection_streams import refusal
from tests.helpers import interaction, wait_until

APPEND = "/aiaudit.ingest.v1.IngestService/Append"
THREADS = 64
ANSWERED = 10.0


class Silent:
    """Unary calls of one key on one raw connection, their requests never sent."""

    def __init__(self, address: str, key: str, method: str = APPEND) -> None:
        """``method``: the unary method called, ``Append`` unless the server serves another."""
        self._channel = grpc.insecure_channel(address)
        self._method = method
        self.metadata = (("authorization", f"Bearer {key}"),)
        self._release = threading.Event()
        self.calls: list[Any] = []

    def open(self, count: int, timeout: float = 120.0) -> list[Any]:
        """``count`` more calls of the method, each waiting for a request that does not come."""

        def nothing() -> Iterator[bytes]:
            self._release.wait()
            yield from ()

        append = self._channel.stream_unary(self._method, lambda b: b, lambda b: b)
        opened = [
            append.future(nothing(), timeout=timeout, metadata=self.metadata) for _ in range(count)
        ]
        self.calls += opened
        return opened

    def close(self) -> None:
        """Ends the requests (the server answers what is left) and the connection."""
        self._release.set()
        self._channel.close()


@pytest.fixture
def running(store_url: str, tmp_path: Path) -> Iterator[Running]:
    """The suite (ingest) with 64 RPC threads, caller_thread_share as by default."""
    suite, keys = serve_suite(
        tmp_path, database_url=store_url, services=("ingest",), rpc_threads=THREADS
    )
    address = f"127.0.0.1:{suite.port}"
    out = Running(client.channel(address, keys["gateway"]), suite, address, keys)
    yield out
    out.channel.close()
    suite.stop()


def appended(server: Running, role: str, tenant: str) -> None:
    """An Append of one event by ``role``, answered."""
    with server.as_role(role) as channel:
        stub = pb_grpc.IngestServiceStub(channel)  # type: ignore[no-untyped-call]
        answer = stub.Append(pb.AppendRequest(events=[interaction(tenant)]), timeout=ANSWERED)
    assert len(answer.receipts) == 1


def test_silent_calls_of_one_key_leave_the_other_callers_served(
    running: Running, tenant: str
) -> None:
    most = THREADS // 2
    silent = Silent(running.address, running.keys["gateway"])
    try:
        calls = silent.open(THREADS + 8)  # every thread and more, on the old server
        # Those over the share are refused at once; the others wait for their requests.
        wait_until(lambda: sum(call.done() for call in calls) == len(calls) - most)
        share = running.suite.share  # type: ignore[attr-defined]
        limit = (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            caller_share.REASON,
            f"caller 'test-gateway' has {most} calls in progress on this server, its share of "
            f"the RPC threads (caller_thread_share 0.5 of rpc_threads {THREADS}); wait for one "
            "to end",
        )
        assert {refusal(call.exception()) for call in calls if call.done()} == {limit}
        assert share.held("test-gateway") == most

        appended(running, "admin", tenant)  # another caller is served meanwhile
        with running.as_role("auditor") as channel:
            health = health_pb2_grpc.HealthStub(channel)  # type: ignore[no-untyped-call]
            checked = health.Check(health_pb2.HealthCheckRequest(), timeout=ANSWERED)
        assert checked.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as refused:
            appended(running, "gateway", tenant)
        assert refusal(refused.value) == limit

        for call in calls:  # cancelled before their requests came: counted no more
            call.cancel()
        wait_until(lambda: share.held("test-gateway") == 0)
        appended(running, "gateway", tenant)
    finally:
        silent.close()


def test_calls_past_their_deadline_before_their_request_are_counted_no_more(
    running: Running, tenant: str
) -> None:
    share = running.suite.share  # type: ignore[attr-defined]
    silent = Silent(running.address, running.keys["gateway"])
    try:
        calls = silent.open(share.most, timeout=2.0)
        wait_until(lambda: all(call.done() for call in calls))
        assert {call.exception().code() for call in calls} == {grpc.StatusCode.DEADLINE_EXCEEDED}
        wait_until(lambda: share.held("test-gateway") == 0)
        silent.open(share.most - 1)  # all but one taken again: the count was given back whole
        wait_until(lambda: share.held("test-gateway") == share.most - 1)
        appended(running, "gateway", tenant)

        # Half-closed without its request: UNIMPLEMENTED, as grpcio answers, and not counted.
        bare = grpc.insecure_channel(running.address)
        with bare, pytest.raises(grpc.RpcError) as refused:
            bare.stream_unary(APPEND)(iter(()), timeout=ANSWERED, metadata=silent.metadata)
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert refused.value.details() == f'"{APPEND}" requires exactly one request message.'
        assert share.held("test-gateway") == share.most - 1
    finally:
        silent.close()
