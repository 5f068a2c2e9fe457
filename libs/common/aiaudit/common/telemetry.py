"""Traces and metrics of every RPC through OpenTelemetry, exported over OTLP when configured.

On when an OTLP endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT``, or the
per-signal ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` /
``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT``), or when ``OTEL_TRACES_EXPORTER`` /
``OTEL_METRICS_EXPORTER`` asks for ``console``; ``none`` for a signal, or
``OTEL_SDK_DISABLED=true``, turns it off. Every other ``OTEL_*`` variable
(service name, resource attributes, headers, TLS, batch delay, export
interval) is read by the SDK as the specification says.

Inside a call, a component opens spans of its own phases (a search's query,
store read, rebuild and access record) from :attr:`Telemetry.tracer_provider`,
handed to it in its ``Context``: they nest under the call's span. The
provider is this server's, not the process-wide one, so two servers started
in one process (tests) keep theirs apart. Off (the embedded default), no
interceptor is installed at all and those spans are the API's no-op ones
(~5 us each): an RPC pays next to nothing for telemetry nobody collects.
The spec's default exporter would otherwise send to ``localhost:4317`` and
log a failure for every batch. Health's ``Watch`` is neither traced nor timed
(:class:`Threaded`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.grpc import server_interceptor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from aiaudit.common import wrapping

DEFAULT_SERVICE_NAME = "aiaudit"


def exporter_kind(env: Mapping[str, str], signal: str) -> str | None:
    """``otlp``, ``console`` or None (off) for ``traces`` or ``metrics``."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    chosen = env.get(f"OTEL_{signal.upper()}_EXPORTER", "").strip().lower()
    if chosen in ("none", "console"):
        return None if chosen == "none" else "console"
    if chosen not in ("", "otlp"):
        raise ValueError(
            f"OTEL_{signal.upper()}_EXPORTER={chosen!r}: this build exports otlp, console or none"
        )
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(
        f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"
    )
    return "otlp" if endpoint else None


def _span_exporter(kind: str) -> SpanExporter:
    if kind == "console":
        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _metric_exporter(kind: str) -> MetricExporter:
    if kind == "console":
        return ConsoleMetricExporter()
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter()


@dataclass
class Telemetry:
    """The interceptors to install, and how to flush what is left when the server stops."""

    interceptors: list[grpc.ServerInterceptor[Any, Any]] = field(default_factory=list)
    providers: list[TracerProvider | MeterProvider] = field(default_factory=list)
    tracer_provider: trace.TracerProvider = field(default_factory=trace.NoOpTracerProvider)
    """Where the components' spans go (no-op while traces are off)."""
    meter_provider: metrics.MeterProvider = field(default_factory=metrics.NoOpMeterProvider)
    """Where the components' gauges go (no-op while metrics are off)."""

    def shutdown(self) -> None:
        """Exports what is buffered (spans of the last calls, the last metrics)."""
        for provider in self.providers:
            provider.shutdown()


def configure(env: Mapping[str, str]) -> Telemetry:
    """Providers and interceptors for the signals the environment turns on (none: nothing)."""
    traces, measured = exporter_kind(env, "traces"), exporter_kind(env, "metrics")
    out = Telemetry()
    if traces is None and measured is None:
        return out
    resource = Resource.create({SERVICE_NAME: env.get("OTEL_SERVICE_NAME", DEFAULT_SERVICE_NAME)})
    if traces is not None:
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(BatchSpanProcessor(_span_exporter(traces)))
        out.providers.append(tracer_provider)
        out.interceptors.append(
            Threaded(server_interceptor(tracer_provider=tracer_provider))  # type: ignore[no-untyped-call]
        )
        out.tracer_provider = tracer_provider
    if measured is not None:
        reader = PeriodicExportingMetricReader(_metric_exporter(measured))
        meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        out.providers.append(meter_provider)
        out.interceptors.append(Threaded(RpcMetrics(meter_provider.get_meter("aiaudit.rpc"))))
        out.meter_provider = meter_provider
    return out


class Threaded(grpc.ServerInterceptor):  # type: ignore[type-arg]  # generic in the stubs only
    """``inner`` on every method but the non-blocking ones (health's ``Watch``), left as they are.

    Its wrapper calls a behaviour as a blocking one, and grpcio's health servicer then
    waits in its RPC thread for the next status: each open watch held a thread, with
    telemetry on. A watch lasts as long as its client's channel: its span and duration
    would say nothing.
    """

    def __init__(self, inner: grpc.ServerInterceptor) -> None:  # type: ignore[type-arg]
        """Traces or times what ``inner`` does."""
        self.inner = inner

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        """The handler, through ``inner`` unless it is non-blocking."""
        handler = continuation(details)
        if handler is None or wrapping.non_blocking(handler):
            return handler
        wrapped: grpc.RpcMethodHandler[Any, Any] | None = self.inner.intercept_service(
            lambda _: handler, details
        )
        return wrapped


class RpcMetrics(grpc.ServerInterceptor):  # type: ignore[type-arg]  # generic in the stubs only
    """``rpc.server.duration`` (ms) of every call, by service, method and status code.

    Names and attributes as the OpenTelemetry semantic conventions for RPC have
    them; a streaming call lasts until its last response.
    """

    def __init__(self, meter: metrics.Meter) -> None:
        """Records into one histogram of ``meter``."""
        self._duration = meter.create_histogram(
            "rpc.server.duration", unit="ms", description="Duration of inbound RPCs"
        )

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        """The handler with its behaviour timed."""
        handler = continuation(details)
        if handler is None:
            return None
        service, _, method = details.method.lstrip("/").rpartition("/")
        base = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}

        def record(start: float, context: grpc.ServicerContext, raised: bool) -> None:
            # Set by abort or set_code; else OK, or UNKNOWN for an exception gRPC will map so.
            code = context.code() or (  # type: ignore[attr-defined]  # grpc >= 1.38, not in stubs
                grpc.StatusCode.UNKNOWN if raised else grpc.StatusCode.OK
            )
            self._duration.record(
                (time.perf_counter() - start) * 1000,
                {**base, "rpc.grpc.status_code": code.value[0]},
            )

        def unary(behaviour: Callable[[Any, grpc.ServicerContext], Any]) -> Any:
            def timed(request: Any, context: grpc.ServicerContext) -> Any:
                start = time.perf_counter()
                try:
                    response = behaviour(request, context)
                except BaseException:
                    record(start, context, raised=True)
                    raise
                record(start, context, raised=False)
                return response

            return timed

        def streaming(behaviour: Callable[[Any, grpc.ServicerContext], Iterator[Any]]) -> Any:
            def timed(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                start = time.perf_counter()
                try:
                    yield from behaviour(request, context)
                except BaseException:
                    record(start, context, raised=True)
                    raise
                record(start, context, raised=False)

            return timed

        wrap = streaming if handler.response_streaming else unary
        kind = (
            ("stream" if handler.request_streaming else "unary")
            + "_"
            + ("stream" if handler.response_streaming else "unary")
        )
        behaviour = getattr(handler, kind)
        timed: grpc.RpcMethodHandler[Any, Any] = getattr(grpc, f"{kind}_rpc_method_handler")(
            wrap(behaviour),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        return timed
