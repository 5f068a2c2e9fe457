"""Traces and metrics reach a real OTLP/gRPC collector; without one, nothing is installed."""

from __future__ import annotations

import threading
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from aiaudit.common import client, telemetry
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from aiaudit.search.v1 import search_service_pb2 as spb
from aiaudit.search.v1 import search_service_pb2_grpc as spb_grpc
from tests.conftest import subprocess_env, write_keys
from tests.helpers import free_port, interaction, open_log, serve_process, wait_until

APPEND = "/aiaudit.ingest.v1.IngestService/Append"


class Collector(
    trace_service_pb2_grpc.TraceServiceServicer, metrics_service_pb2_grpc.MetricsServiceServicer
):
    """Keeps what it is sent; ``wanted`` is set once both kinds of the Append call arrived."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str]] = []  # (service.name, span name)
        self.raw: list[Any] = []  # the spans themselves
        self.durations: dict[int, int] = {}  # Append's rpc.grpc.status_code -> calls
        self.lock = threading.Lock()
        self.wanted = threading.Event()

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        with self.lock:
            if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
                for rs in request.resource_spans:
                    service = _attributes(rs.resource.attributes)["service.name"]
                    for ss in rs.scope_spans:
                        self.spans.extend((service, s.name) for s in ss.spans)
                        self.raw.extend(ss.spans)
                answer: Any = trace_service_pb2.ExportTraceServiceResponse()
            else:
                for rm in request.resource_metrics:
                    for sm in rm.scope_metrics:
                        for m in sm.metrics:
                            if m.name != "rpc.server.duration":
                                continue
                            for point in m.histogram.data_points:
                                attrs = _attributes(point.attributes)
                                if attrs["rpc.method"] == "Append":
                                    code = attrs["rpc.grpc.status_code"]
                                    self.durations[code] = int(point.count)
                answer = metrics_service_pb2.ExportMetricsServiceResponse()
            appended = [s for s in self.spans if s[1] == APPEND]
            if len(appended) >= 2 and self.durations.get(0) and self.durations.get(3):
                self.wanted.set()
        return answer


def _attributes(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        value = kv.value
        out[kv.key] = getattr(value, value.WhichOneof("value"))
    return out


def _collecting() -> tuple[Collector, grpc.Server, int]:
    """An OTLP/gRPC collector on a free loopback port: (collector, its server, the port)."""
    collector = Collector()
    sink = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, sink)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(collector, sink)
    otlp_port = sink.add_insecure_port("127.0.0.1:0")
    sink.start()
    return collector, sink, otlp_port


def test_rpc_spans_and_durations_are_exported_over_otlp(tmp_path: Path, tenant: str) -> None:
    collector, sink, otlp_port = _collecting()
    port = free_port()
    key = write_keys(tmp_path / "keys.yaml")["gateway"]
    proc = serve_process(
        ["--address", f"127.0.0.1:{port}", "--data-dir", str(tmp_path), "--services", "ingest"],
        {
            **subprocess_env(),
            "AIAUDIT_API_KEYS_FILE": str(tmp_path / "keys.yaml"),
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_port}",
            "OTEL_SERVICE_NAME": "aiaudit-under-test",
            "OTEL_BSP_SCHEDULE_DELAY": "50",
            "OTEL_METRIC_EXPORT_INTERVAL": "200",
        },
    )
    try:
        channel = client.channel(f"127.0.0.1:{port}", key)
        stub = pb_grpc.IngestServiceStub(channel)
        stub.Append(pb.AppendRequest(events=[interaction(tenant, "traced")]))
        with pytest.raises(grpc.RpcError) as refused:
            stub.Append(pb.AppendRequest())  # an empty batch: INVALID_ARGUMENT (3)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        channel.close()
        assert collector.wanted.wait(30), (collector.spans, collector.durations)
    finally:
        proc.terminate()
        proc.wait()
        sink.stop(None)
    assert ("aiaudit-under-test", APPEND) in collector.spans
    assert collector.durations[0] == 1 and collector.durations[3] == 1


def test_nothing_is_installed_unless_an_exporter_is_configured() -> None:
    assert telemetry.configure({}).interceptors == []
    assert telemetry.configure({"OTEL_TRACES_EXPORTER": "otlp"}).interceptors == []
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}
    kind = telemetry.exporter_kind
    assert kind(endpoint, "traces") == kind(endpoint, "metrics") == "otlp"
    assert kind({"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://x:1"}, "traces") is None
    assert kind({**endpoint, "OTEL_SDK_DISABLED": "true"}, "traces") is None
    assert kind({**endpoint, "OTEL_METRICS_EXPORTER": "none"}, "metrics") is None
    with pytest.raises(ValueError, match="OTEL_TRACES_EXPORTER='zipkin'"):
        kind({**endpoint, "OTEL_TRACES_EXPORTER": "zipkin"}, "traces")
    console = telemetry.configure({"OTEL_METRICS_EXPORTER": "console"})
    assert [type(i.inner) for i in console.interceptors] == [telemetry.RpcMetrics]  # type: ignore[attr-defined]
    console.shutdown()


SEARCH = "/aiaudit.search.v1.SearchService/SearchEvents"
PHASES = {"search.query", "store.read", "search.rebuild", "access.record.wait"}


def test_a_search_traces_its_phases_under_its_call(tmp_path: Path, tenant: str) -> None:
    """Where a page's time goes, per call: the query, the store read, the rebuild, the record."""
    collector, sink, otlp_port = _collecting()
    port = free_port()
    keys = write_keys(tmp_path / "keys.yaml")
    proc = serve_process(
        [
            *("--address", f"127.0.0.1:{port}", "--data-dir", str(tmp_path)),
            *("--services", "ingest,search"),
        ],
        {
            **subprocess_env(),
            "AIAUDIT_API_KEYS_FILE": str(tmp_path / "keys.yaml"),
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{otlp_port}",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_BSP_SCHEDULE_DELAY": "50",
        },
    )
    try:
        channel = client.channel(f"127.0.0.1:{port}", keys["admin"])
        pb_grpc.IngestServiceStub(channel).Append(
            pb.AppendRequest(events=[interaction(tenant, "traced")])
        )
        search = spb_grpc.SearchServiceStub(channel)
        request = spb.SearchEventsRequest(tenant_id=tenant, filter='event_id = "traced"')
        wait_until(lambda: search.SearchEvents(request).total_size == 1)
        channel.close()

        def children(call: Any) -> list[Any]:
            return [s for s in collector.raw if s.parent_span_id == call.span_id]

        def found(phases: list[Any]) -> bool:  # the call that found the event
            return any(
                p.name == "search.query" and _attributes(p.attributes)["search.hits"] == 1
                for p in phases
            )

        def traced() -> list[Any]:
            with collector.lock:
                calls = [s for s in collector.raw if s.name == SEARCH]
                return [(c, children(c)) for c in calls if found(children(c))]

        (call, phases), *_ = wait_until(traced)
    finally:
        proc.terminate()
        proc.wait()
        sink.stop(None)
    assert all(p.trace_id == call.trace_id for p in phases)
    assert all(call.start_time_unix_nano <= p.start_time_unix_nano for p in phases)
    assert all(p.end_time_unix_nano <= call.end_time_unix_nano for p in phases)
    by_name = {p.name: p for p in phases}
    order = ["search.query", "store.read", "search.rebuild", "access.record.wait"]
    assert sorted(by_name) == sorted(PHASES)
    starts = [by_name[n].start_time_unix_nano for n in order]
    assert starts == sorted(starts)


def test_a_failed_phase_is_an_error_naming_the_exception_type_only(
    tmp_path: Path, tenant: str
) -> None:
    """OpenSearch unreachable: `search.query` is marked failed, with no message that could
    quote the search (the phrase below must reach no span)."""
    collector, sink, otlp_port = _collecting()
    port = free_port()
    keys = write_keys(tmp_path / "keys.yaml")
    proc = serve_process(
        [
            *("--address", f"127.0.0.1:{port}", "--data-dir", str(tmp_path)),
            *("--services", "search"),
        ],
        {
            **subprocess_env(),
            "AIAUDIT_API_KEYS_FILE": str(tmp_path / "keys.yaml"),
            "AIAUDIT_SEARCH_BACKEND": "opensearch",
            "AIAUDIT_SEARCH_OPENSEARCH_URL": f"http://127.0.0.1:{free_port()}",  # nobody there
            "AIAUDIT_SEARCH_OPENSEARCH_TIMEOUT": "2",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{otlp_port}",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_BSP_SCHEDULE_DELAY": "50",
        },
    )
    secret = "iban DE89370400440532013000"
    try:
        channel = client.channel(f"127.0.0.1:{port}", keys["admin"])
        search = spb_grpc.SearchServiceStub(channel)
        open_log(f"sqlite:///{tmp_path / 'aiaudit.db'}", tenant)  # else NOT_FOUND, no query
        with pytest.raises(grpc.RpcError) as failed:
            search.SearchEvents(spb.SearchEventsRequest(tenant_id=tenant, query=f'"{secret}"'))
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        channel.close()

        def failed_query() -> list[Any]:
            with collector.lock:
                return [s for s in collector.raw if s.name == "search.query"]

        (phase,) = wait_until(failed_query)
    finally:
        proc.terminate()
        proc.wait()
        sink.stop(None)
    assert phase.status.code == phase.status.STATUS_CODE_ERROR
    assert phase.status.message == ""
    assert _attributes(phase.attributes)["error.type"] == "BackendUnavailableError"
    assert list(phase.events) == []  # no exception event, no stack trace
    assert "DE89" not in str(collector.raw)
