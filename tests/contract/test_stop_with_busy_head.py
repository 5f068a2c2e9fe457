"""A server stops within its grace while a log head is held elsewhere (PostgreSQL).

The batches of a log whose head another session holds wait in a lane, as
long as it takes; ``close`` waited for the lanes with no limit, so a head held
by an operator's open transaction held SIGTERM until Kubernetes killed the
process (review, 2026-12-05). Now the lanes give up shortly before the grace
ends: the statement waiting for the head is cancelled (nothing of its
transaction written), the batches are answered UNAVAILABLE, saying nothing was
written, and the client's retry stores them once.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from aiaudit.common import client
from aiaudit.common.store import open_store
from aiaudit.common.store.sql import AppendInterruptedError, HeadWait, SqlEventStore
from aiaudit.ingest import committer as committing
from aiaudit.ingest.committer import GroupCommitter, StoppingError
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from tests.conftest import Postgres, serve_suite
from tests.contract.test_busy_heads import HELD, batch, head_locked, pg_store  # noqa: F401
from tests.contract.test_busy_records import heads_locked, waiting_for_heads
from tests.helpers import interaction, wait_until

GRACE = 2.0
"""The stop's grace in these tests: far shorter than the head is held (HELD)."""

STOPPED_WITHIN = GRACE + committing.GIVE_UP_SECONDS + 5.0
"""A stop returns within this: the grace, then the components' bounded stop (their lanes
given up within GIVE_UP_SECONDS), and room for a machine that stalls the process for
seconds; far short of HELD, which the old code waited."""

LANE = 1.5
"""A session waiting for a head longer than this is a lane's: the writer waits at most 1 s."""


def _sequences(store: SqlEventStore, log_id: str) -> list[tuple[int, str]]:
    return [(s.sequence, s.event_id) for s in store.read_log(log_id, 0, 100)]


def test_a_stop_answers_the_batches_waiting_for_a_held_head_within_its_grace(
    tmp_path: Path, postgres: Postgres, tenant: str
) -> None:
    a = f"{tenant}-a"
    first = [interaction(a, "a-1"), interaction(a, "a-2")]
    second = [interaction(a, "a-3")]
    suite, keys = serve_suite(tmp_path, database_url=postgres.app_url, services=("ingest",))
    channel = client.channel(f"127.0.0.1:{suite.port}", keys["admin"])
    ingest = pb_grpc.IngestServiceStub(channel)
    committer: GroupCommitter = suite.components["ingest"].committer
    stopper = threading.Thread(target=suite.stop, args=(GRACE,))
    try:
        ingest.Append(pb.AppendRequest(events=[interaction(a, "a-0")]), timeout=10)
        with head_locked(postgres, a):
            waiting = ingest.Append.future(pb.AppendRequest(events=first), timeout=HELD)
            # its lane waits in PostgreSQL for the head (the writer gave up after 1 s)
            wait_until(lambda: waiting_for_heads(postgres, longer_than=LANE) >= 1)
            queued = ingest.Append.future(pb.AppendRequest(events=second), timeout=HELD)
            wait_until(lambda: len(committer.lanes[a].queue) == 1)  # behind it, in the lane
            started = time.monotonic()
            stopper.start()
            stopper.join(STOPPED_WITHIN)  # the old code waited for the head: HELD
            assert not stopper.is_alive()
            assert time.monotonic() - started < STOPPED_WITHIN
            for answer in (waiting, queued):
                # Answered before the stop returned; it may reach this client just after
                # (a fresh clone's CI once read it too early with timeout=0). Unanswered, the
                # call would end at HELD, DEADLINE_EXCEEDED.
                refused = answer.exception(timeout=HELD / 2)
                assert isinstance(refused, grpc.RpcError)
                assert refused.code() == grpc.StatusCode.UNAVAILABLE
                text = refused.details() or ""  # not gRPC's "Cancelling all calls"
                assert "the server is stopping" in text
                assert "nothing of this batch was written" in text
                assert "SERVER_STOPPING" in str(refused.trailing_metadata())
            assert not committer.lanes  # every lane ended: none can commit after this answer
    finally:
        channel.close()
        stopper.join(HELD)  # the old code, once the head went
    store = open_store(postgres.admin_url)
    try:
        assert _sequences(store, a) == [(0, "a-0")]  # nothing of either batch
        suite, keys = serve_suite(tmp_path, database_url=postgres.app_url, services=("ingest",))
        channel = client.channel(f"127.0.0.1:{suite.port}", keys["admin"])
        try:
            ingest = pb_grpc.IngestServiceStub(channel)
            for retry, duplicate in ((1, False), (2, True)):  # the retry stores them, once
                got = [
                    (r.event_id, r.sequence, r.duplicate)
                    for events in (first, second)
                    for r in ingest.Append(pb.AppendRequest(events=events), timeout=10).receipts
                ]
                assert got == [
                    ("a-1", 1, duplicate),
                    ("a-2", 2, duplicate),
                    ("a-3", 3, duplicate),
                ], f"retry {retry}"
        finally:
            channel.close()
            suite.stop()
        assert _sequences(store, a) == [(0, "a-0"), (1, "a-1"), (2, "a-2"), (3, "a-3")]
    finally:
        store.close()


def test_close_gives_up_every_lane_at_once_when_no_stop_said_when(
    pg_store: SqlEventStore,  # noqa: F811
    postgres: Postgres,
    tenant: str,
) -> None:
    """A lane waiting for its head, and one waiting for a lane thread (one at a time here)."""
    a, b, c = f"{tenant}-a", f"{tenant}-b", f"{tenant}-c"
    committer = GroupCommitter(pg_store, max_lanes=1)
    closer = threading.Thread(target=committer.close)
    try:
        for f in [committer.submit(batch(x, f"{x}-0")) for x in (a, b, c)]:
            f.result(30)
        with heads_locked(postgres, a, c):
            of_a = committer.submit(batch(a, "a-1"))
            wait_until(lambda: waiting_for_heads(postgres, longer_than=LANE) >= 1)
            of_c = committer.submit(batch(c, "c-1"))
            wait_until(lambda: c in committer.lanes)  # its turn to come, no thread yet
            of_b = committer.submit(batch(b, "b-1"))
            closer.start()
            closer.join(STOPPED_WITHIN - GRACE)  # the old code waited for the heads (HELD)
            assert not closer.is_alive()
            for f in (of_a, of_c):
                with pytest.raises(StoppingError):
                    f.result(timeout=0)
            assert [r.sequence for r in of_b.result(timeout=0)] == [1]  # type: ignore[union-attr]
        sizes = pg_store.log_sizes()
        assert (sizes[a], sizes[b], sizes[c]) == (1, 2, 1)
    finally:
        closer.join(HELD)


def test_a_wait_for_a_head_given_up_writes_nothing_and_fails_for_good(
    pg_store: SqlEventStore,  # noqa: F811
    postgres: Postgres,
    tenant: str,
) -> None:
    """The cancelled statement's transaction rolls back; the session serves the next append."""
    a = f"{tenant}-a"
    pg_store.append_group([batch(a, "a-0")])
    wait = HeadWait()
    with head_locked(postgres, a), ThreadPoolExecutor(1) as pool:
        appending = pool.submit(pg_store.append_group, [batch(a, "a-1")], head_wait=wait)
        wait_until(lambda: waiting_for_heads(postgres) >= 1)
        assert wait.give_up(timeout=5.0)  # a statement was under way: cancelled
        with pytest.raises(AppendInterruptedError):
            appending.result(timeout=10)
        assert wait.ended.is_set()
    assert pg_store.log_sizes()[a] == 1
    with pytest.raises(AppendInterruptedError):  # given up for good: no statement sent
        pg_store.append_group([batch(a, "a-1")], head_wait=wait)
    assert not wait.give_up(timeout=5.0)  # none under way
    (receipts,) = pg_store.append_group([batch(a, "a-1")], head_wait=HeadWait())
    assert [r.sequence for r in receipts] == [1]  # type: ignore[union-attr]
    assert [(s.sequence, s.event_id) for s in pg_store.read_log(a, 0, 10)] == [
        (0, "a-0"),
        (1, "a-1"),
    ]
