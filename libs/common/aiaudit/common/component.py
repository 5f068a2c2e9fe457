"""What a service plugs into the shared server: its gRPC services and workers.

Each service package has a ``component`` module with ``start(ctx) -> Component``;
`aiaudit serve` starts the ones configured, on one port, sharing one store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import grpc
from grpc_health.v1 import health
from opentelemetry import trace

from aiaudit.common.access import AccessLog
from aiaudit.common.auth import Authenticator, Caller
from aiaudit.common.config import Settings
from aiaudit.common.receipts import ReceiptSigning
from aiaudit.common.store import SqlEventStore


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

    def audit(
        self, caller: Caller, tenant: str, action: str, details: Mapping[str, str | int | bool]
    ) -> None:
        """Records a read of audit data as an EVENT_TYPE_AUDIT_ACCESS event (before answering)."""
        self.access.record(caller, tenant, action, details)


class Component(Protocol):
    """A started service."""

    @property
    def service_names(self) -> list[str]:
        """Fully qualified gRPC service names it registered (for health and reflection)."""
        ...

    def stop(self) -> None:
        """Finishes in-flight work and releases resources; called after the server stopped."""
        ...
