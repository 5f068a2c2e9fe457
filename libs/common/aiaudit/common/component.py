"""What a service plugs into the shared server: its gRPC services and workers.

Each service package has a ``component`` module with ``start(ctx) -> Component``;
`aiaudit serve` starts the ones configured, on one port, sharing one store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import grpc
from grpc_health.v1 import health
from opentelemetry import metrics, trace

from aiaudit.common.access import AccessLog
from aiaudit.common.auth import Authenticator
from aiaudit.common.config import Settings
from aiaudit.common.consumer_lag import ConsumerLag
from aiaudit.common.receipts import ReceiptSigning
from aiaudit.common.store import SqlEventStore


class Stopping:
    """When the suite's stop cancels the calls still in flight: announced as the stop begins.

    What a call may wait on without a limit (ingest's lanes: a log head another
    session holds) gives up before then, so that the call is answered, not
    cancelled, and the component stops within the grace.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deadline: float | None = None
        self._listeners: list[Callable[[float], None]] = []

    def on_stop(self, listener: Callable[[float], None]) -> None:
        """``listener(deadline)`` once the stop begins (now, if it has); ``time.monotonic``."""
        with self._lock:
            deadline = self._deadline
            if deadline is None:
                self._listeners.append(listener)
                return
        listener(deadline)

    def begin(self, deadline: float) -> None:
        """The stop begins; the calls still in flight at ``deadline`` are cancelled."""
        with self._lock:
            if self._deadline is not None:
                return
            self._deadline = deadline
            listeners, self._listeners = self._listeners, []
        for listener in listeners:
            listener(deadline)


@dataclass(frozen=True)
class Context:
    """What a component gets at start-up."""

    settings: Settings
    store: SqlEventStore
    server: grpc.Server
    health: health.HealthServicer
    """Where components report health (NOT_SERVING while a dependency is down)."""
    auth: Authenticator
    """Turns request metadata into a Caller; ``access.require`` checks its permissions."""
    access: AccessLog
    receipts: ReceiptSigning = field(default_factory=ReceiptSigning)
    """Where the integrity component installs its receipt signer for ingest (same process)."""
    tracer_provider: trace.TracerProvider = field(default_factory=trace.NoOpTracerProvider)
    """Where spans of a call's phases go: this server's traces (no-op while they are off)."""
    stopping: Stopping = field(default_factory=Stopping)
    """Announces when the server's stop cancels the calls in flight."""
    meter_provider: metrics.MeterProvider = field(default_factory=metrics.NoOpMeterProvider)
    """Where a component's own gauges go: this server's metrics (no-op while they are off)."""
    lag: ConsumerLag = field(default_factory=lambda: ConsumerLag(metrics.NoOpMeterProvider()))
    """Where a component that consumes the log registers it, for the lag gauges."""


class Component(Protocol):
    """A started service."""

    @property
    def service_names(self) -> list[str]:
        """Fully qualified gRPC service names it registered (for health and reflection)."""
        ...

    def stop(self) -> None:
        """Finishes in-flight work and releases resources; called after the server stopped."""
        ...
