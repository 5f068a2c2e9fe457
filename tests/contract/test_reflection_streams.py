"""Reflection's and health's streams on the main port are capped like the services' own.

Each open ``ServerReflectionInfo`` held one of the server's 64 RPC threads, uncapped: a
review's ``auditor`` key held 64 reflection streams open and a gateway's unary ``Append``
got no thread (DEADLINE_EXCEEDED). They are now capped per process and per principal and
counted in the 48 streams a process holds. A ``Health/Watch`` holds no thread (grpcio's
non-blocking health servicer): its caps are for memory, large enough for a fleet.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from aiaudit.cli import server
from aiaudit.common import client, stream_slots
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from tests.conftest import Running, serve_suite
from tests.contract.test_append_stream_limits import Stream, limits_file
from tests.helpers import interaction, wait_until

HELD = 120.0
"""Deadline of a held stream: far beyond the test, so none ends before it is released."""

ANSWERED = 10.0


@pytest.fixture
def running(store_url: str, tmp_path: Path) -> Iterator[Running]:
    """The suite (ingest), services' stream limits as configured by default."""
    suite, keys = serve_suite(tmp_path, None, database_url=store_url, services=("ingest",))
    address = f"127.0.0.1:{suite.port}"
    out = Running(client.channel(address, keys["gateway"]), suite, address, keys)
    yield out
    out.channel.close()
    suite.stop()


def refusal(err: grpc.RpcError) -> tuple[grpc.StatusCode, str, str]:
    """The refusal's code, ErrorInfo reason and message."""
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, err
    info = error_details_pb2.ErrorInfo()
    assert status.details and status.details[0].Unpack(info)
    return err.code(), info.reason, status.message


def first_answer(
    call: Iterator[Any], close: Callable[[], None], expected: Callable[[Any], bool]
) -> tuple[grpc.StatusCode, str, str] | None:
    """None once a stream's first answer came (and is ``expected``); else, closed, its refusal."""
    try:
        first = next(call)
    except grpc.RpcError as err:
        close()
        return refusal(err)
    assert expected(first), first
    return None


class Reflection:
    """A ServerReflectionInfo stream of one role, left open after its first answer."""

    def __init__(self, server: Running, role: str) -> None:
        self._channel = server.as_role(role)
        self._requests: queue.SimpleQueue[reflection_pb2.ServerReflectionRequest | None] = (
            queue.SimpleQueue()
        )
        stub = reflection_pb2_grpc.ServerReflectionStub(self._channel)  # type: ignore[no-untyped-call]
        self._requests.put(reflection_pb2.ServerReflectionRequest(list_services=""))
        self.call = stub.ServerReflectionInfo(iter(self._requests.get, None), timeout=HELD)

    def opened(self) -> tuple[grpc.StatusCode, str, str] | None:
        """None once the server answered (the stream runs, holding its thread); else the refusal."""
        return first_answer(self.call, self.close, lambda r: bool(r.list_services_response.service))

    def close(self) -> None:
        """Cancels the stream."""
        self._requests.put(None)
        self.call.cancel()
        self._channel.close()


class Watch:
    """A Health/Watch stream of one role, left open after its first status."""

    def __init__(self, server: Running, role: str) -> None:
        self._channel = server.as_role(role)
        stub = health_pb2_grpc.HealthStub(self._channel)  # type: ignore[no-untyped-call]
        self.call = stub.Watch(health_pb2.HealthCheckRequest(), timeout=HELD)

    def opened(self) -> tuple[grpc.StatusCode, str, str] | None:
        """None once the server answered the status; else the refusal."""
        serving = health_pb2.HealthCheckResponse.SERVING
        return first_answer(self.call, self.close, lambda r: r.status == serving)

    def close(self) -> None:
        """Cancels the stream."""
        self.call.cancel()
        self._channel.close()


def unary_calls_answer(server: Running, tenant: str) -> None:
    """A gateway's Append and a health Check, each on a channel of its own."""
    with server.as_role("gateway") as channel:
        stub = pb_grpc.IngestServiceStub(channel)  # type: ignore[no-untyped-call]
        answer = stub.Append(pb.AppendRequest(events=[interaction(tenant)]), timeout=ANSWERED)
        assert len(answer.receipts) == 1
    with server.as_role("auditor") as channel:
        health = health_pb2_grpc.HealthStub(channel)  # type: ignore[no-untyped-call]
        checked = health.Check(health_pb2.HealthCheckRequest(), timeout=ANSWERED)
        assert checked.status == health_pb2.HealthCheckResponse.SERVING


def grpcurl_list(server: Running, role: str) -> list[str]:
    """What ``grpcurl list`` and ``describe`` do: a few requests, half-closed, read to the end."""
    with server.as_role(role) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)  # type: ignore[no-untyped-call]
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(
                file_containing_symbol="aiaudit.ingest.v1.IngestService"
            ),
        ]
        answers = list(stub.ServerReflectionInfo(iter(requests), timeout=ANSWERED))
    assert len(answers) == 2
    assert answers[1].file_descriptor_response.file_descriptor_proto
    return [s.name for s in answers[0].list_services_response.service]


def test_reflection_streams_are_capped_per_caller_and_per_process(
    running: Running, tenant: str
) -> None:
    before = stream_slots.PROCESS.open
    most = 4  # per_caller 2 (server.REFLECTION_STREAMS...)
    opened: list[Reflection] = []

    def open_stream(role: str) -> tuple[grpc.StatusCode, str, str] | None:
        stream = Reflection(running, role)
        refused = stream.opened()
        if refused is None:
            opened.append(stream)
        return refused

    try:
        assert open_stream("auditor") is None and open_stream("auditor") is None
        assert open_stream("auditor") == (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "REFLECTION_STREAMS_EXHAUSTED",
            "caller 'test-auditor' has 2 ServerReflectionInfo streams open; close one",
        )
        assert open_stream("developer") is None and open_stream("developer") is None
        # The server is full: a third caller is refused for that.
        assert open_stream("gateway") == (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "REFLECTION_STREAMS_EXHAUSTED",
            "4 ServerReflectionInfo streams are open on this server, its limit; close one",
        )
        assert stream_slots.PROCESS.open == before + most  # counted with the services' streams
        unary_calls_answer(running, tenant)  # with the most held, the other calls have threads

        opened.pop(
            0
        ).close()  # cancelled by its client: its slot comes back when the server sees it

        def reopened() -> bool:
            stream = Reflection(running, "auditor")
            if stream.opened() is not None:
                return False
            opened.append(stream)
            return True

        wait_until(reopened)
        assert open_stream("gateway") is not None  # full again
        for stream in opened:
            stream.close()
        opened.clear()
        wait_until(lambda: stream_slots.PROCESS.open == before)  # none left counted
        services = grpcurl_list(running, "auditor")  # one at a time, as grpcurl uses it
        assert "aiaudit.ingest.v1.IngestService" in services
        assert grpcurl_list(running, "auditor") == services
        assert stream_slots.PROCESS.open == before
    finally:
        for stream in opened:
            stream.close()


@pytest.mark.parametrize("telemetry", [False, True], ids=["telemetry-off", "telemetry-on"])
def test_health_watches_of_a_fleet_on_one_key_hold_no_thread(
    store_url: str, tmp_path: Path, tenant: str, telemetry: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each Health/Watch held an RPC thread: the request parsing's wrapper (and telemetry's)
    dropped the non-blocking mark of grpcio's health servicer, which then waited in the
    call's thread for the next status. Capped at 2 a caller for that, the third connection
    of a fleet doing client-side health checking on one key was refused."""
    if telemetry:  # printed, to pytest's capture
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
        monkeypatch.setenv("OTEL_METRICS_EXPORTER", "console")
    suite, keys = serve_suite(
        tmp_path,
        database_url=store_url,
        services=("ingest",),
        rpc_threads=64,
        max_concurrent_rpcs=64,  # a call holding a thread counts here too
    )
    address = f"127.0.0.1:{suite.port}"
    running = Running(client.channel(address, keys["gateway"]), suite, address, keys)
    most = server.HEALTH_WATCHES_PER_CALLER
    assert most > 64
    fleet = running.as_role("auditor")  # one connection; a fleet's would each carry one
    before = stream_slots.PROCESS.open
    try:
        stub = health_pb2_grpc.HealthStub(fleet)  # type: ignore[no-untyped-call]
        watches: list[Any] = []
        for _ in range(most):  # one after another, as a fleet's connections come
            watches.append(stub.Watch(health_pb2.HealthCheckRequest(), timeout=HELD))
            assert next(watches[-1]).status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as refused:
            next(stub.Watch(health_pb2.HealthCheckRequest(), timeout=HELD))
        assert refusal(refused.value) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "HEALTH_WATCHES_EXHAUSTED",
            f"caller 'test-auditor' has {most} Health/Watch streams open; close one, or call Check",
        )
        other = Watch(running, "developer")  # another caller's
        assert other.opened() is None
        other.close()
        unary_calls_answer(running, tenant)  # 129 watches open, 64 threads
        assert stream_slots.PROCESS.open == before  # not among the streams holding threads

        suite.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)  # reaches every one
        assert {next(w).status for w in watches} == {health_pb2.HealthCheckResponse.NOT_SERVING}
        suite.health.set("", health_pb2.HealthCheckResponse.SERVING)
        assert {next(w).status for w in watches} == {health_pb2.HealthCheckResponse.SERVING}

        watches.pop().cancel()  # its slot comes back when the server sees it

        def reopened() -> bool:
            watch = stub.Watch(health_pb2.HealthCheckRequest(), timeout=HELD)
            try:
                next(watch)
            except grpc.RpcError:
                return False
            watches.append(watch)
            return True

        wait_until(reopened)

        # Watches closing while the status changes: grpc_health's own servicer sent under its
        # lock, waiting for the completion-queue thread, which waited for that lock to drop a
        # closed watch: the server stopped (grpc/grpc#43403).
        changes = [
            health_pb2.HealthCheckResponse.NOT_SERVING,
            health_pb2.HealthCheckResponse.SERVING,
        ]
        changing = threading.Thread(target=lambda: [suite.health.set("", s) for s in changes * 50])
        changing.start()
        for watch in watches:
            watch.cancel()
        changing.join(timeout=ANSWERED)
        assert not changing.is_alive()
        unary_calls_answer(running, tenant)
    finally:
        fleet.close()
        running.channel.close()
        suite.stop()


def test_reflection_streams_count_in_the_process_ceiling(
    store_url: str, tmp_path: Path, tenant: str
) -> None:
    """With the services' streams at the 48 a process holds, reflection is refused for that,
    and a stream the server cancels as it stops gives its slot back."""
    before = stream_slots.PROCESS.open
    most = stream_slots.CEILING - before
    suite, keys = serve_suite(
        tmp_path,
        limits_file(tmp_path, max_append_streams=48, max_append_streams_per_caller=48),
        database_url=store_url,
        services=("ingest",),
    )
    address = f"127.0.0.1:{suite.port}"
    running = Running(client.channel(address, keys["gateway"]), suite, address, keys)
    appends: list[Stream] = []
    reflections: list[Reflection] = []
    stopped = False
    try:
        for _ in range(most - 2):
            appends.append(Stream(running, "gateway"))
            assert appends[-1].refusal(tenant) is None
        for _ in range(2):
            reflections.append(Reflection(running, "auditor"))
            assert reflections[-1].opened() is None
        late = Reflection(running, "developer")
        assert late.opened() == (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "REFLECTION_STREAMS_EXHAUSTED",
            "48 streams of this server's RPCs are open, the most its threads allow; close one",
        )
        refused = Stream(running, "gateway").refusal(tenant)  # the reflections count for appends
        assert refused is not None and refused[0] == "APPEND_STREAMS_EXHAUSTED"
        unary_calls_answer(running, tenant)
        suite.stop(grace=0.0)  # cancels every stream still open
        stopped = True
        wait_until(lambda: stream_slots.PROCESS.open == before)
    finally:
        for stream in appends:
            stream.close()
        for reflection in reflections:
            reflection.close()
        running.channel.close()
        if not stopped:
            suite.stop()
