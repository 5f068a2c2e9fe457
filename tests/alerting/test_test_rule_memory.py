"""What a TestRule may hold in memory: its newest events within a byte budget, and a few
dry runs at once.

A dry run holds every event it evaluates at once (stored form, parsed event, wire
bytes), and events may be 4 MiB each: 10,000 of them were tens of gigabytes in the
alerting process, reachable by any caller with ``rules.read`` and ``events.read``; and
each of the server's 64 RPC threads could run one.
"""

from __future__ import annotations

import secrets
import threading

import grpc
import pytest

from aiaudit.alerting import service
from aiaudit.alerting.v1 import alerting_service_pb2 as pb
from aiaudit.alerting.v1 import alerting_service_pb2_grpc as pb_grpc
from aiaudit.common.v1 import event_pb2 as ev
from tests.alerting.test_service import Server, send
from tests.helpers import error_info, interaction

PER_USER = "id: per-user\nseverity: low\ndedup: {key: '{rule}:{actor.user_id}'}\n"


def test_test_rule_reads_its_newest_events_within_the_byte_budget(
    alerting_server: Server, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel, _, _ = alerting_server
    stub = pb_grpc.AlertingServiceStub(channel)  # type: ignore[no-untyped-call]
    parent = f"tenants/{tenant}"
    large: list[ev.Event] = []
    for i in range(8):  # ~400 KB stored each (random text does not compress)
        large.append(interaction(tenant, user=f"u{i}", text=secrets.token_hex(100_000)))
        send(channel, large[-1:])
    monkeypatch.setattr(service, "TEST_RULE_BYTES", 1 << 20)
    got = stub.TestRule(
        pb.TestRuleRequest(parent=parent, source=PER_USER, filter="event_type = interaction")
    )
    assert 1 <= got.evaluated_count < 8, got.evaluated_count
    newest = [f"per-user:u{i}" for i in range(8 - got.evaluated_count, 8)]
    assert [a.dedup_key for a in got.alerts] == newest
    # small events: all of them, as before
    send(channel, [interaction(tenant, user=f"s{i}") for i in range(20)])
    small = stub.TestRule(
        pb.TestRuleRequest(
            parent=parent, source=PER_USER, filter="event_type = interaction", max_events=20
        )
    )
    assert small.evaluated_count == 20
    assert [a.dedup_key for a in small.alerts] == [f"per-user:s{i}" for i in range(20)]


def test_test_rule_calls_past_the_process_limit_are_refused(
    alerting_server: Server, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel, _, _ = alerting_server
    stub = pb_grpc.AlertingServiceStub(channel)  # type: ignore[no-untyped-call]
    parent = f"tenants/{tenant}"
    send(channel, [interaction(tenant)])
    running = threading.BoundedSemaphore(1)
    monkeypatch.setattr(service, "DRY_RUNS", running)
    running.acquire()  # a dry run under way holds the process's only slot
    with pytest.raises(grpc.RpcError) as info:
        stub.TestRule(pb.TestRuleRequest(parent=parent, source=PER_USER))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, info.value
    assert error_info(info.value) == ("DRY_RUNS_EXHAUSTED", {"limit": "2"})
    running.release()
    again = pb.TestRuleRequest(parent=parent, source=PER_USER, filter="event_type = interaction")
    assert stub.TestRule(again).evaluated_count == 1
