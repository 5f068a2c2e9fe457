"""The Go load generator the benchmarks time their calls with (``bench/load.py``).

Its figures go into the README, so what it reports must be what happened:
one result per timed request, in request order, with the server's status code
and the exact reply bytes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from bench import load
from bench.ingest_bench import APPEND
from tests.conftest import Running
from tests.helpers import sized_interaction


@pytest.fixture(scope="module")
def loadgen() -> Iterator[Path]:
    yield load.build()


def appends(n: int) -> tuple[list[bytes], list[str]]:
    """``n`` single-event Append requests of a new tenant, and their event ids."""
    tenant = f"load-{uuid.uuid4().hex[:8]}"
    events = [sized_interaction(tenant, 512) for _ in range(n)]
    return (
        [pb.AppendRequest(events=[e]).SerializeToString() for e in events],
        [e.event_id for e in events],
    )


@pytest.mark.parametrize(("rate", "connections"), [(0.0, 1), (400.0, 3)])
def test_every_timed_call_gets_its_own_reply_in_order(
    loadgen: Path, server: Running, rate: float, connections: int
) -> None:
    # The first request warms every connection up (a retry of one event: idempotent).
    requests, ids = appends(31)
    calls = load.run(
        server.address, APPEND, server.keys["gateway"], requests, rate=rate, connections=connections
    )
    assert len(calls) == 30
    sequences = []
    for call, event_id in zip(calls, ids[1:], strict=True):
        assert call.code == 0, call
        assert call.seconds > 0
        (receipt,) = pb.AppendResponse.FromString(call.body).receipts
        assert receipt.event_id == event_id
        sequences.append(receipt.sequence)
    assert len(set(sequences)) == len(sequences)


def test_a_refused_call_reports_the_status_code_and_message(loadgen: Path, server: Running) -> None:
    good, _ = appends(1)
    calls = load.run(
        server.address,
        APPEND,
        server.keys["gateway"],
        [good[0], pb.AppendRequest().SerializeToString()],
    )
    assert [c.code for c in calls] == [3]  # INVALID_ARGUMENT: an empty batch
    assert b"nothing was written" in calls[0].body


def test_a_warm_up_failure_stops_the_run(loadgen: Path, server: Running) -> None:
    requests, _ = appends(2)
    with pytest.raises(RuntimeError, match="code 16"):  # UNAUTHENTICATED
        load.run(server.address, APPEND, "not-a-key", requests)


@pytest.mark.parametrize(("rate", "connections"), [(0.0, 1), (400.0, 3)])
def test_the_floor_times_one_health_check_per_asked_call(
    loadgen: Path, server: Running, rate: float, connections: int
) -> None:
    floor = load.floor(
        server.address, server.keys["gateway"], 20, rate=rate, connections=connections
    )
    assert len(floor) == 20
    assert all(s > 0 for s in floor)


def test_the_floor_reports_a_server_that_does_not_answer_health_checks(loadgen: Path) -> None:
    with pytest.raises(RuntimeError):  # nothing listens there: the run fails, not a zero floor
        load.floor("127.0.0.1:1", "any", 2)
