"""What `aiaudit demo` shows after sending: the alerts its suspicious prompts raised."""

from __future__ import annotations

import time
from collections.abc import Sequence

import grpc

from aiaudit.alerting.v1 import alerting_service_pb2 as pb
from aiaudit.alerting.v1 import alerting_service_pb2_grpc as pb_grpc
from aiaudit.common.v1 import event_pb2


def print_alerts(
    channel: grpc.Channel, tenant: str, event_ids: Sequence[str], deadline: float = 5.0
) -> None:
    """Polls ListAlerts until the alerts on these events stop changing (or the deadline)."""
    stub = pb_grpc.AlertingServiceStub(channel)  # type: ignore[no-untyped-call]
    wanted = set(event_ids)
    end = time.monotonic() + deadline
    found: list[pb.Alert] = []
    stable_since = time.monotonic()
    while time.monotonic() < end:
        try:
            listed = stub.ListAlerts(pb.ListAlertsRequest(parent=f"tenants/{tenant}"), timeout=5)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                return  # alerting is not hosted by this server
            raise
        now = [a for a in listed.alerts if wanted & set(a.event_ids)]
        if len(now) != len(found):
            found, stable_since = now, time.monotonic()
        elif found and time.monotonic() - stable_since > 0.5:
            break
        time.sleep(0.1)
    print(f"\n{len(found)} alert(s) raised by these events:")
    for a in reversed(found):
        sev = event_pb2.Severity.Name(a.severity).removeprefix("SEVERITY_").lower()
        print(f"  [{sev}] {a.rule.rsplit('/', 1)[-1]}: {a.summary}")
        for e in a.evidence[:3]:
            print(f"      {e.detector} {e.score:.2f} {e.field} {e.excerpt!r}")
