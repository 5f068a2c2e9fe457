"""The plaintext health port, for probes that cannot speak TLS, on grpc.aio.

A synchronous grpcio server waits for a call's request message in one of its
threads: two Check calls that never sent theirs held both threads of the old
health-only server, and the kubelet's probes timed out for as long as they
stayed open, restarting a healthy pod (review, 2026-12-05). On grpc.aio a call
waiting for its message holds no thread. The port serves ``Check``, what the
kubelet's gRPC probes call, from the main server's health statuses.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2


class HealthPort:
    """A grpc.aio server on a thread of its own, answering ``grpc.health.v1.Health/Check``."""

    def __init__(
        self,
        address: str,
        status_of: Callable[[str], health_pb2.HealthCheckResponse.ServingStatus | None],
        shared_port: bool,
    ) -> None:
        """Binds and starts; OSError if the address cannot be bound."""
        self._status_of = status_of
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="health-port", daemon=True
        )
        self._thread.start()
        try:
            self._server = asyncio.run_coroutine_threadsafe(
                self._start(address, shared_port), self._loop
            ).result()
        except BaseException:
            self._end_loop()
            raise

    async def _start(self, address: str, shared_port: bool) -> grpc.aio.Server:
        server = grpc.aio.server(options=[("grpc.so_reuseport", int(shared_port))])
        check = grpc.unary_unary_rpc_method_handler(
            self._check,
            request_deserializer=health_pb2.HealthCheckRequest.FromString,
            response_serializer=health_pb2.HealthCheckResponse.SerializeToString,
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("grpc.health.v1.Health", {"Check": check}),)
        )
        try:
            port = server.add_insecure_port(address)
        except RuntimeError:  # what grpcio raises when the bind fails
            port = 0
        if port == 0:
            raise OSError(f"cannot bind health_address {address} (in use, or not an address here)")
        await server.start()
        return server

    async def _check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> health_pb2.HealthCheckResponse:
        found = self._status_of(request.service)
        if found is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=found)

    def stop(self) -> None:
        """Stops answering at once (probes then see the port closed)."""
        asyncio.run_coroutine_threadsafe(self._server.stop(0), self._loop).result()
        self._end_loop()

    def _end_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
