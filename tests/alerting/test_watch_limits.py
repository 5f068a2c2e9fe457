"""WatchAlerts streams are capped: each holds one of the server's 64 RPC threads while open.

Found by a review (2026-12-03): 64 streams opened by a ``developer`` key starved
every other RPC of the process, a gateway's ``Append`` included (DEADLINE_EXCEEDED).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from aiaudit.alerting.settings import AlertingSettings
from aiaudit.alerting.v1 import alerting_service_pb2 as pb
from aiaudit.alerting.v1 import alerting_service_pb2_grpc as pb_grpc
from aiaudit.common import client
from aiaudit.common.config import ConfigError
from tests.alerting.conftest import serving
from tests.alerting.test_service import Server, send
from tests.helpers import interaction, wait_until


@pytest.fixture
def small_server(store_url: str, alerting_url: str, tmp_path: Path) -> Iterator[Server]:
    """Three streams at most, two a caller."""
    with serving(
        store_url, alerting_url, tmp_path, max_watch_streams=3, max_watch_streams_per_caller=2
    ) as running:
        yield running


def open_watch(server: Server, role: str, tenant: str) -> grpc.Future:  # type: ignore[type-arg]
    """A stream, subscribed (its initial metadata came) or refused (it raises on reading)."""
    _, keys, address = server
    stub = pb_grpc.AlertingServiceStub(client.channel(address, keys[role]))  # type: ignore[no-untyped-call]
    stream = stub.WatchAlerts(pb.WatchAlertsRequest(parent=f"tenants/{tenant}"))
    stream.initial_metadata()
    return stream


def refusal(stream: grpc.Future) -> str:  # type: ignore[type-arg]
    """The ErrorInfo reason a refused stream ends with ("" while it is open)."""
    if stream.running():
        return ""
    with pytest.raises(grpc.RpcError) as info:
        next(stream)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, info.value
    status = rpc_status.from_call(info.value)
    assert status is not None
    reason = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(reason)
    return reason.reason


def test_streams_beyond_the_limits_are_refused_and_freed_when_closed(
    small_server: Server, tenant: str
) -> None:
    channel, _, _ = small_server
    mine = [open_watch(small_server, "developer", tenant) for _ in range(2)]
    assert [refusal(s) for s in mine] == ["", ""]
    assert refusal(open_watch(small_server, "developer", tenant)) == "WATCH_STREAMS_EXHAUSTED"
    theirs = open_watch(small_server, "admin", tenant)  # another caller: the third slot
    assert refusal(theirs) == ""
    assert refusal(open_watch(small_server, "admin", tenant)) == "WATCH_STREAMS_EXHAUSTED"
    send(channel, [interaction(tenant)])  # the other RPCs still have threads
    mine[0].cancel()  # its slot comes back once the server sees the stream end

    def reopened() -> bool:
        stream = open_watch(small_server, "admin", tenant)
        if refusal(stream):
            return False
        stream.cancel()
        return True

    wait_until(reopened)
    for stream in (mine[1], theirs):
        stream.cancel()


@pytest.mark.parametrize(
    ("most", "per_caller", "named"),
    [
        (0, 1, "max_watch_streams"),
        (49, 4, "max_watch_streams"),
        (4, 5, "max_watch_streams_per_caller"),
        (4, 0, "max_watch_streams_per_caller"),
    ],
)
def test_stream_limits_that_cannot_work_are_refused_at_start(
    most: int, per_caller: int, named: str
) -> None:
    settings = AlertingSettings(max_watch_streams=most, max_watch_streams_per_caller=per_caller)
    with pytest.raises(ConfigError, match=f"'alerting.{named}': "):
        settings.validate()
