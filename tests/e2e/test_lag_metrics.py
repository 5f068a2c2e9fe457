"""Each consumer's lag and ingest's commit queue reach a real OTLP/gRPC collector as gauges."""

from __future__ import annotations

import fcntl
import os
import threading
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)

from aiaudit.common import client
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from tests.conftest import subprocess_env, write_keys
from tests.helpers import free_port, interaction, serve_process, wait_until

Series = tuple[str, tuple[tuple[str, str], ...]]
"""A metric's name and its point's attributes."""


class Gauges(metrics_service_pb2_grpc.MetricsServiceServicer):
    """Keeps the last value of every gauge point it is sent."""

    def __init__(self) -> None:
        self.last: dict[Series, float] = {}
        self.lock = threading.Lock()

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        with self.lock:
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        for p in m.gauge.data_points:
                            attrs = tuple(
                                sorted((a.key, a.value.string_value) for a in p.attributes)
                            )
                            value = p.as_int if p.WhichOneof("value") == "as_int" else p.as_double
                            self.last[(m.name, attrs)] = value
        return metrics_service_pb2.ExportMetricsServiceResponse()

    def value(self, name: str, **attrs: str) -> float | None:
        with self.lock:
            return self.last.get((name, tuple(sorted(attrs.items()))))


def lag(gauges: Gauges, consumer: str) -> tuple[float | None, float | None]:
    """(entries, age) of one consumer, as last exported."""
    named = {"aiaudit.consumer": consumer}
    return (
        gauges.value("aiaudit.consumer.lag.entries", **named),
        gauges.value("aiaudit.consumer.lag.age", **named),
    )


def test_a_consumer_that_cannot_lead_reports_its_lag_until_it_catches_up(
    tmp_path: Path, tenant: str
) -> None:
    """The notary's lock is held elsewhere (a leader that is not processing): its entries and
    their age grow while the indexer and alerting, which did process them, report none; once
    the lock is free it catches up and reports none either."""
    gauges = Gauges()
    sink = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(gauges, sink)
    otlp_port = sink.add_insecure_port("127.0.0.1:0")
    sink.start()
    # The embedded notary leads by an flock on this file (aiaudit.common.leader.FileLock).
    held = os.open(tmp_path / "aiaudit.db.notary.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    port = free_port()
    key = write_keys(tmp_path / "keys.yaml")["gateway"]
    proc = serve_process(
        ["--address", f"127.0.0.1:{port}", "--data-dir", str(tmp_path)],
        {
            **subprocess_env(),
            "AIAUDIT_API_KEYS_FILE": str(tmp_path / "keys.yaml"),
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": f"http://127.0.0.1:{otlp_port}",
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_METRIC_EXPORT_INTERVAL": "100",
        },
    )
    try:
        channel = client.channel(f"127.0.0.1:{port}", key)
        pb_grpc.IngestServiceStub(channel).Append(
            pb.AppendRequest(events=[interaction(tenant, f"lag-{i}") for i in range(3)])
        )
        channel.close()
        wait_until(lambda: lag(gauges, "search-indexer")[0] == 0 == lag(gauges, "alerting")[0])
        first = wait_until(lambda: (a := lag(gauges, "integrity"))[0] == 3 and a[1] and a)
        later = wait_until(lambda: (a := lag(gauges, "integrity"))[1] and a[1] > first[1] and a)
        assert later[0] == 3
        assert lag(gauges, "search-indexer")[1] == lag(gauges, "alerting")[1] == 0
        stages = [
            gauges.value("aiaudit.ingest.commit.queue", **{"aiaudit.commit.stage": s})
            for s in ("keys", "ready")
        ]
        assert stages == [0, 0]  # every batch acknowledged

        fcntl.flock(held, fcntl.LOCK_UN)
        wait_until(lambda: lag(gauges, "integrity") == (0, 0))
    finally:
        os.close(held)
        proc.terminate()
        proc.wait()
        sink.stop(None)
