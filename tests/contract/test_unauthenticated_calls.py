"""A caller without credentials cannot hold the server's threads (review, 2026-12-05).

grpcio's synchronous server waits for a call's request in one of its 64 RPC
threads, and the handlers authenticated only once it had arrived: 64 calls with
no key that never sent their request (any method, health and reflection too)
stopped every gateway's ``Append``, and a 64 MiB request was read whole before
it was refused. The credential gate refuses them before a thread is taken, and
the plaintext health port (two threads, for the kubelet) now runs on grpc.aio.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aiaudit.common import client
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from tests.conftest import Running, serve_suite
from tests.helpers import free_port, interaction

METHODS = (
    "/aiaudit.search.v1.SearchService/GetEvent",
    "/aiaudit.ingest.v1.IngestService/Append",
    "/grpc.health.v1.Health/Check",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
)


def _silent(address: str, method: str) -> tuple[grpc.Future, queue.Queue[None]]:  # type: ignore[type-arg]
    """A call on a connection of its own that never sends its request (until released)."""
    release: queue.Queue[None] = queue.Queue()

    def nothing() -> Iterator[bytes]:
        release.get()
        yield from ()

    channel = grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
    call = channel.stream_unary(method, lambda b: b, lambda b: b).future(nothing())
    return call, release


@pytest.mark.parametrize("method", METHODS)
def test_a_call_without_credentials_is_refused_before_its_request_arrives(
    server: Running, method: str
) -> None:
    call, release = _silent(server.address, method)
    try:
        error = call.exception(timeout=10)  # the old server waited for the request for good
        assert isinstance(error, grpc.RpcError)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        release.put(None)


def test_silent_calls_without_credentials_leave_appends_working(
    server: Running, tenant: str
) -> None:
    held = [_silent(server.address, METHODS[i % len(METHODS)]) for i in range(80)]
    try:
        gateway = pb_grpc.IngestServiceStub(server.as_role("gateway"))
        done = gateway.Append(pb.AppendRequest(events=[interaction(tenant)]), timeout=10)
        assert len(done.receipts) == 1
        assert all(
            c.exception(timeout=10).code() == grpc.StatusCode.UNAUTHENTICATED for c, _ in held
        )  # type: ignore[union-attr]
    finally:
        for _, release in held:
            release.put(None)


def test_silent_checks_on_the_health_port_leave_probes_answered(
    store_url: str, tmp_path: Path
) -> None:
    health_port = free_port()
    suite, _ = serve_suite(
        tmp_path,
        database_url=store_url,
        health_address=f"127.0.0.1:{health_port}",
        services=["ingest"],
    )
    address = f"127.0.0.1:{health_port}"
    held = [_silent(address, "/grpc.health.v1.Health/Check") for _ in range(8)]
    try:
        probe = health_pb2_grpc.HealthStub(client.channel(address))
        # Held by the silent checks, a probe would wait for as long as they stay: any
        # deadline tells it, and one of 10 s is not missed by a loaded machine (2 s could).
        for service in ("", "aiaudit.ingest.v1.IngestService"):
            reply = probe.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING  # as the kubelet's
        with pytest.raises(grpc.RpcError) as unknown:
            probe.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=10)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        for _, release in held:
            release.put(None)
        suite.stop()
