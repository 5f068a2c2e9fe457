"""The server's concurrent-call limit and its RPC threads are settings, taken by the real server.

``maximum_concurrent_rpcs`` (1024) and the thread pool (64) were fixed in the server's
builder: a deployment could neither lower the limit (so a full server refuses at once
instead of queueing) nor give its calls more threads. Held here by streams of a method
of the test's own on the suite's server (``/test.Held/Hold``, behind the suite's
interceptors), answered once and left open: each holds a thread and counts against the
limit until it ends, and its first answer says it is running on the server. Every
stream of the suite's own is capped (reflection's too since 2026-12-06,
``tests/contract/test_reflection_streams.py``), to 48 in all: they could not hold 64.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aiaudit.common import client, config, stream_slots
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from tests.conftest import Running, serve_suite
from tests.contract.test_append_stream_limits import Stream, limits_file
from tests.helpers import interaction

ANSWERED = 10.0
"""Bounds a wait that only a failing test reaches."""

HELD = 12 * ANSWERED
"""How long a held call lasts at most, unless released (the test ends): far beyond any
wait for an answer, so none of them frees a thread while one is awaited."""


HOLD = "/test.Held/Hold"


class Held:
    """Calls held open on one server: streams answered once, waiting for more."""

    def __init__(self, server: grpc.Server, channel: grpc.Channel) -> None:
        self._release = threading.Event()
        release = self._release

        def hold(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
            yield b"held"
            release.wait(HELD)  # then the stream ends

        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "test.Held", {"Hold": grpc.unary_stream_rpc_method_handler(hold)}
                ),
            )
        )
        self._hold = channel.unary_stream(HOLD)
        self._calls: list[Iterator[bytes]] = []

    def open(self) -> None:
        """One more stream, returned once the server answered it: running, thread held."""
        answers = self._hold(b"", timeout=HELD)
        self._calls.append(answers)
        first: list[bytes] = []

        def read() -> None:
            with contextlib.suppress(grpc.RpcError):  # cancelled when the test ends
                first.append(next(answers))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(ANSWERED)  # the server answers at once when it has a thread for the call
        assert first == [b"held"], f"stream {len(self._calls)} was not answered: no thread ran it"

    def release(self) -> None:
        """Ends every stream."""
        self._release.set()
        for answers in self._calls:
            answers.cancel()  # type: ignore[attr-defined]  # a grpc.Call too


@contextlib.contextmanager
def running(tmp_path: Path, store_url: str, **settings: object) -> Iterator[tuple[Held, str, str]]:
    """The suite (ingest only) with these settings; (held calls, address, an API key)."""
    suite, keys = serve_suite(
        tmp_path,
        None,
        database_url=store_url,
        services=("ingest",),
        **settings,
    )
    address = f"127.0.0.1:{suite.port}"
    channel = client.channel(address, keys["auditor"])
    held = Held(suite.server, channel)
    try:
        yield held, address, keys["auditor"]
    finally:
        held.release()
        channel.close()
        suite.stop()


def check(address: str, key: str) -> health_pb2.HealthCheckResponse:
    """A unary call on a channel of its own, beside the held ones."""
    with client.channel(address, key) as channel:
        stub = health_pb2_grpc.HealthStub(channel)  # type: ignore[no-untyped-call]
        answer: health_pb2.HealthCheckResponse = stub.Check(
            health_pb2.HealthCheckRequest(), timeout=ANSWERED
        )
        return answer


def test_the_call_beyond_max_concurrent_rpcs_is_refused_resource_exhausted(
    tmp_path: Path, store_url: str
) -> None:
    limit = config.MIN_CONCURRENT_RPCS  # the least taken; held by uncapped streams here
    with running(tmp_path, store_url, max_concurrent_rpcs=limit) as (held, address, key):
        for _ in range(limit):
            held.open()  # each answered: as many calls in progress as the limit
        with pytest.raises(grpc.RpcError) as refused:
            check(address, key)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert refused.value.details() == "Concurrent RPC limit exceeded!"


def test_the_server_runs_as_many_calls_at_once_as_rpc_threads(
    tmp_path: Path, store_url: str
) -> None:
    """One more than the 64 threads the server had: each stream is answered, so each runs on
    a thread of its own (with 64, the 65th waited for one to end)."""
    threads = config.MIN_RPC_THREADS + 1
    with running(tmp_path, store_url, rpc_threads=threads) as (held, _, _):
        for _ in range(threads):
            held.open()


def test_the_capped_streams_leave_calls_for_the_others_under_any_call_limit_taken(
    tmp_path: Path, store_url: str, tenant: str
) -> None:
    """Open streams count against ``max_concurrent_rpcs``. Under a limit of 24 (then taken),
    the 24 ``AppendStream`` ingest allowed refused a gateway's every ``Append``
    "Concurrent RPC limit exceeded!" (review, 2026-12-06): such a limit stops ``serve``, and
    under the least taken the 48 streams a process may hold leave calls for the others."""
    streams = {"max_append_streams": 48, "max_append_streams_per_caller": 48}
    with pytest.raises(config.ConfigError, match=r"^setting 'max_concurrent_rpcs': 24; "):
        serve_suite(
            tmp_path,
            limits_file(tmp_path, **streams),
            database_url=store_url,
            services=("ingest",),
            max_concurrent_rpcs=24,
        )
    suite, keys = serve_suite(
        tmp_path,
        limits_file(tmp_path, **streams),
        database_url=store_url,
        services=("ingest",),
        max_concurrent_rpcs=config.MIN_CONCURRENT_RPCS,
    )
    address = f"127.0.0.1:{suite.port}"
    server = Running(client.channel(address, keys["gateway"]), suite, address, keys)
    opened: list[Stream] = []
    try:
        for _ in range(stream_slots.CEILING):
            opened.append(Stream(server, "gateway"))
            assert opened[-1].refusal(tenant) is None  # answered: open, holding its thread
        refused = Stream(server, "gateway").refusal(tenant)  # the streams' own limit
        assert refused is not None and refused[0] == "APPEND_STREAMS_EXHAUSTED"
        stub = pb_grpc.IngestServiceStub(server.channel)  # type: ignore[no-untyped-call]
        for _ in range(16):  # the calls the streams leave, one at a time here
            answer = stub.Append(pb.AppendRequest(events=[interaction(tenant)]), timeout=ANSWERED)
            assert len(answer.receipts) == 1
        assert check(address, keys["auditor"]).status == health_pb2.HealthCheckResponse.SERVING
    finally:
        for stream in opened:
            stream.close()
        server.channel.close()
        suite.stop()
