"""The gateway SDK against a server at its concurrent-call limit: events kept, none set aside.

gRPC's server refuses a call beyond its ``maximum_concurrent_rpcs`` (1024 for
``aiaudit serve``) with ``RESOURCE_EXHAUSTED`` "Concurrent RPC limit exceeded!",
the code it also gives a message larger than the server takes, which the SDK sets
aside for good. The refusal is the server's load, not the event nor the batch: the
SDK must keep the events and send each batch again whole, one call an attempt, never
halved into more calls, until the limit frees. Here the real server (ingest,
on SQLite and PostgreSQL) serves one call at a time, and an ``AppendStream``
answered once and left open is that call, so every ``Append`` of the SDK is refused
until the stream ends.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from aiaudit.common import client
from aiaudit.ingest.handlers import SERVICE_NAME
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from aiaudit.sdk import AuditLogger
from tests.conftest import serve_suite
from tests.contract.test_caller_share import Silent
from tests.helpers import interaction, wait_until
from tests.sdk.test_logger import rejected_lines, spooled, stored_ids

if TYPE_CHECKING:  # generic in the stubs only
    _Interceptor = grpc.ServerInterceptor[Any, Any]
    _ClientInterceptor = grpc.UnaryUnaryClientInterceptor[Any, Any]
else:
    _Interceptor = grpc.ServerInterceptor
    _ClientInterceptor = grpc.UnaryUnaryClientInterceptor

HELD = 60.0
"""Bounds a wait that only a failing test reaches."""

Append = Callable[[bytes, grpc.ServicerContext], pb.AppendResponse]
"""The service's own ``Append`` handler, as an interceptor gets it."""


class AroundAppend(_Interceptor):
    """Runs :meth:`around` in place of each ``Append`` the server gets (a test's outage,
    gate or hold); other calls go through."""

    @abc.abstractmethod
    def around(
        self, append: Append, request: bytes, context: grpc.ServicerContext
    ) -> pb.AppendResponse:
        """What the server does with an ``Append``: ``append`` is its own handler."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        if handler is None or handler_call_details.method != f"/{SERVICE_NAME}/Append":
            return handler
        append = handler.unary_unary
        assert append is not None
        return grpc.unary_unary_rpc_method_handler(
            lambda request, context: self.around(append, request, context),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class AppendCalls(_Interceptor):
    """Counts the ``Append`` calls that reach the server, those it refuses for its limit too.

    gRPC runs a server's interceptors before it checks the limit.
    """

    def __init__(self) -> None:
        self.count = 0
        self._arrived = threading.Condition()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        if handler_call_details.method == f"/{SERVICE_NAME}/Append":
            with self._arrived:
                self.count += 1
                self._arrived.notify_all()
        return continuation(handler_call_details)

    def wait_for(self, count: int) -> None:
        """Returns once ``count`` calls have arrived."""
        with self._arrived:
            assert self._arrived.wait_for(lambda: self.count >= count, HELD), self.count


class SentAppends(_ClientInterceptor):
    """The event ids of each ``Append`` the loggers send (their only call), in the order sent.

    What the server cannot tell of a call it refuses at its limit: it never reads the request.
    """

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Any], Any],
        client_call_details: grpc.ClientCallDetails,
        request: Any,
    ) -> Any:
        self.batches.append([e.event_id for e in request.events])
        return continuation(client_call_details, request)


class SdkServer:
    """The suite's server, ingest only, serving one call at a time (unless ``one_call`` is
    False); its loggers."""

    def __init__(
        self,
        store_url: str,
        tmp_path: Path,
        one_call: bool = True,
        interceptors: Sequence[_Interceptor] = (),
        **overrides: object,
    ) -> None:
        """``interceptors``: more of the server's, innermost (after ``appends``)."""
        self.store_url = store_url
        self.spool = tmp_path / "spool"
        self.appends = AppendCalls()
        self.sent = SentAppends()
        real = grpc.server

        def one_at_a_time(*args: Any, **kwargs: Any) -> grpc.Server:
            if one_call:
                kwargs["maximum_concurrent_rpcs"] = 1
            kwargs["interceptors"] = [*kwargs.get("interceptors", ()), self.appends, *interceptors]
            return real(*args, **kwargs)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(grpc, "server", one_at_a_time)
            self.suite, self.keys = serve_suite(
                tmp_path, None, database_url=store_url, services=("ingest",), **overrides
            )
        self.address = f"127.0.0.1:{self.suite.port}"
        self.loggers: list[AuditLogger] = []
        self.refused: list[tuple[str, str]] = []
        """What the loggers passed to ``on_rejected``."""

    def logger(self, **kw: Any) -> AuditLogger:
        """A logger on this server whose calls ``sent`` records."""
        real = client.channel

        def recorded(*args: Any, **kwargs: Any) -> grpc.Channel:
            return grpc.intercept_channel(real(*args, **kwargs), self.sent)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(client, "channel", recorded)
            logger = AuditLogger(
                self.address,
                self.spool,
                api_key=self.keys["gateway"],
                max_backoff=0.2,
                on_rejected=lambda e, why: self.refused.append((e.event_id, why)),
                **kw,
            )
        self.loggers.append(logger)
        return logger

    @contextlib.contextmanager
    def call_held_open(self, tenant: str) -> Iterator[None]:
        """An ``AppendStream`` answered once and left open: the server's one call in progress.

        Ends (half-closed by this client) when the block does, and the limit frees.
        """
        release = threading.Event()

        def requests() -> Iterator[pb.AppendStreamRequest]:
            yield pb.AppendStreamRequest(request_id=1, events=[interaction(tenant)])
            release.wait(HELD)

        channel = client.channel(self.address, self.keys["gateway"])
        stub = pb_grpc.IngestServiceStub(channel)  # type: ignore[no-untyped-call]
        answers = stub.AppendStream(requests(), timeout=2 * HELD)
        try:
            first = next(answers)  # answered: the call is in progress on the server
            assert first.status.code == 0 and len(first.receipts) == 1, first
            yield
        finally:
            release.set()
            assert list(answers) == []  # the stream ended as asked, not refused or cut
            channel.close()

    def stop(self) -> None:
        for logger in self.loggers:
            logger.close(timeout=1)
        self.suite.stop()


@pytest.fixture
def serve(store_url: str, tmp_path: Path) -> Iterator[Callable[..., SdkServer]]:
    """Starts a :class:`SdkServer` with the given settings; stopped after the test."""
    started: list[SdkServer] = []

    def start(**overrides: object) -> SdkServer:
        started.append(SdkServer(store_url, tmp_path, **overrides))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def test_events_refused_at_the_concurrent_call_limit_are_kept_and_each_stored_once(
    serve: Callable[..., SdkServer], tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Every ``Append`` refused while the limit holds, the live batches and the replays of the
    spooled ones: each batch is spooled whole, none set aside; once the limit frees, each
    event is stored once (until 2026-12-05 this classification was untested)."""
    server = serve()
    caplog.set_level(logging.WARNING, logger="aiaudit.sdk.logger")
    logger = server.logger(batch_size=10)
    with server.call_held_open(f"{tenant}-holder"):
        ids = [logger.log(interaction(tenant, text=f"m{i}")) for i in range(45)]
        wait_until(lambda: spooled(server.spool) == 45 or server.refused)
        assert server.refused == []
        # The spooled batches are sent again while the limit holds, refused each time, kept.
        server.appends.wait_for(server.appends.count + 3)
        assert spooled(server.spool) == 45
        assert stored_ids(server.store_url, tenant) == []
    warned = [r.getMessage() for r in caplog.records if "spooling" in r.getMessage()]
    assert warned, "the SDK met no refusal"
    assert "RESOURCE_EXHAUSTED" in warned[0] and "Concurrent RPC limit exceeded" in warned[0]
    assert logger.flush(timeout=60)
    assert sorted(stored_ids(server.store_url, tenant)) == sorted(ids)  # each once
    assert spooled(server.spool) == 0
    assert server.refused == [] and rejected_lines(server.spool) == []


@contextlib.contextmanager
def key_share_held(server: SdkServer) -> Iterator[None]:
    """The gateway key's calls at its share of the threads: one call waiting for its request
    (on a server started with ``caller_thread_share=0.02``, 1 of 64 threads)."""
    silent = Silent(server.address, server.keys["gateway"])
    try:
        silent.open(1)
        share = server.suite.share  # type: ignore[attr-defined]
        wait_until(lambda: share.held("test-gateway") == 1)
        yield
    finally:
        silent.close()


@pytest.mark.parametrize("load", ["concurrent_call_limit", "key_thread_share"])
def test_a_batch_refused_for_the_servers_load_is_sent_again_whole_never_halved(
    serve: Callable[..., SdkServer], tenant: str, load: str
) -> None:
    """One refused ``Append`` an attempt, carrying the whole batch in order, at the server's
    concurrent-call limit and at the key's share of its threads (``CALLER_SHARE_EXHAUSTED``).
    Until 2026-12-05 (the limit) and 2026-12-06 (the share) the refusal was halved like a
    batch too large, down to one event: a batch of 45 cost 6 calls an attempt (of 500, about
    9), from every gateway at once to a server already full."""
    if load == "concurrent_call_limit":
        server = serve()
        held = server.call_held_open(f"{tenant}-holder")
    else:
        server = serve(one_call=False, caller_thread_share=0.02)
        held = key_share_held(server)
    logger = server.logger(batch_size=45, linger=HELD)  # the 45 events make one batch
    with held:
        before = server.appends.count  # the key's own held call, if any
        ids = [logger.log(interaction(tenant, text=f"m{i}")) for i in range(45)]
        wait_until(lambda: spooled(server.spool) == 45 or server.refused)
        server.appends.wait_for(server.appends.count + 3)  # the spooled batch's replays
        assert stored_ids(server.store_url, tenant) == []
        refused = list(server.sent.batches)
    assert [len(batch) for batch in refused] == [45] * len(refused)
    assert all(batch == ids for batch in refused)
    assert logger.flush(timeout=60)
    assert stored_ids(server.store_url, tenant) == ids  # each once, in order
    assert spooled(server.spool) == 0
    assert server.refused == [] and rejected_lines(server.spool) == []
    assert server.sent.batches == [ids] * len(server.sent.batches)  # the accepted one too
    assert server.appends.count - before == len(server.sent.batches)  # every call it saw


def test_an_event_above_4_mib_refused_at_the_concurrent_call_limit_is_kept(
    serve: Callable[..., SdkServer], tenant: str
) -> None:
    """The SDK took any ``RESOURCE_EXHAUSTED`` for an event above its own 4 MiB for the event's
    size: against a server whose ``max_event_bytes`` takes it, an event refused at the limit
    (alone, or the first of a batch halved down to it) was set aside for good, never stored."""
    server = serve(max_event_bytes=6 * 1024 * 1024, max_message_bytes=8 * 1024 * 1024)
    logger = server.logger()
    with server.call_held_open(f"{tenant}-holder"):
        event = interaction(tenant, text="x" * (5 * 1024 * 1024 // 2))  # input and output
        assert 4 * 1024 * 1024 < event.ByteSize() < 6 * 1024 * 1024
        big = logger.log(event)
        ids = [big, *(logger.log(interaction(tenant, text=f"m{i}")) for i in range(9))]
        wait_until(lambda: spooled(server.spool) == 10 or server.refused)
        assert server.refused == []
        server.appends.wait_for(server.appends.count + 3)
        assert server.refused == [] and spooled(server.spool) == 10
    assert logger.flush(timeout=60)
    assert sorted(stored_ids(server.store_url, tenant)) == sorted(ids)
    assert spooled(server.spool) == 0
    assert server.refused == [] and rejected_lines(server.spool) == []
