"""A log head held by another session holds that tenant's appends alone (PostgreSQL).

An erasure holds its tenant's log head for its whole transaction; so does a
session left open with the head locked. The group committer's one writer
waited on such a lock with no limit: every other tenant's appends on the
process stalled behind it, were answered UNAVAILABLE ("nothing was
acknowledged") after 30 s, and were committed anyway once the lock went
(review, 2026-12-05). Now the writer waits at most ``lock_timeout`` for a
head, and that log's batches wait in a lane of their own; an answer given up
on says the batch may still be committed, and a retry with the same ids is
answered with the original receipts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import psycopg
import pytest

from aiaudit.common.auth import Authenticator
from aiaudit.common.store import open_store, sql
from aiaudit.common.store.prepare import prepare_batch
from aiaudit.common.store.sql import Conflict, NewEvent, SqlEventStore
from aiaudit.common.stream_slots import StreamSlots
from aiaudit.ingest.committer import GroupCommitter
from aiaudit.ingest.handlers import SERVICE_NAME, IngestHandlers
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from aiaudit.ingest.validation import Limits
from tests.conftest import Postgres
from tests.helpers import interaction, wait_until

HELD = 60.0
"""How long a head may stay locked in these tests: far past any deadline they set."""


@pytest.fixture
def pg_store(postgres: Postgres) -> Iterator[SqlEventStore]:
    store = open_store(postgres.app_url)
    yield store
    store.close()


@contextlib.contextmanager
def head_locked(postgres: Postgres, log_id: str) -> Iterator[None]:
    """The log's head locked by another session, as an erasure of that tenant holds it."""
    with psycopg.connect(postgres.admin_dsn) as conn:
        conn.execute(f"SET idle_in_transaction_session_timeout = {int(HELD * 1000)}")
        row = conn.execute(
            "SELECT size FROM logs WHERE log_id = %s FOR UPDATE", (log_id,)
        ).fetchone()
        assert row is not None
        try:
            yield
        finally:
            conn.rollback()


def batch(tenant: str, *ids: str) -> list[NewEvent]:
    return prepare_batch([interaction(tenant, i) for i in ids], dt.datetime.now(dt.UTC))


def test_the_store_names_a_head_it_could_not_lock_in_time(
    pg_store: SqlEventStore, postgres: Postgres, tenant: str
) -> None:
    a, b = f"{tenant}-a", f"{tenant}-b"
    pg_store.append_group([batch(a, "a-0"), batch(b, "b-0")])
    with head_locked(postgres, a):
        # one log (one statement), and several (locked one by one): each names the busy one
        for group in ([batch(a, "a-1")], [batch(b, "b-1"), batch(a, "a-1")]):
            started = time.monotonic()
            with pytest.raises(sql.LogBusyError) as busy:
                pg_store.append_group(group, lock_timeout=0.2)
            assert busy.value.log_id == a
            assert time.monotonic() - started < 5
        # a group of many rows goes the multi-statement way
        with pytest.raises(sql.LogBusyError):
            pg_store.append_group([batch(a, *(f"m-{i}" for i in range(40)))], lock_timeout=0.2)
    assert pg_store.log_sizes()[a] == 1 and pg_store.log_sizes()[b] == 1  # nothing written
    out = pg_store.append_group([batch(b, "b-1"), batch(a, "a-1")], lock_timeout=0.2)
    assert not any(isinstance(o, Conflict) for o in out)


def test_another_tenants_batches_commit_while_a_head_is_held(
    pg_store: SqlEventStore, postgres: Postgres, tenant: str
) -> None:
    a, b = f"{tenant}-a", f"{tenant}-b"
    committer = GroupCommitter(pg_store)
    try:
        for f in (committer.submit(batch(a, "a-0")), committer.submit(batch(b, "b-0"))):
            f.result(30)
        with head_locked(postgres, a):
            waiting = committer.submit(batch(a, "a-1"))
            both = committer.submit(batch(a, "a-2") + batch(b, "b-2"))  # A's too: it waits
            done = [committer.submit(batch(b, f"b-{i}")) for i in (1, 3, 4)]
            for f in done:
                outcome = f.result(timeout=10)  # TimeoutError on the old code: the writer waited
                assert not isinstance(outcome, Conflict)
            assert not waiting.done() and not both.done()
            assert pg_store.log_sizes()[a] == 1
        assert [r.sequence for r in waiting.result(30)] == [1]  # type: ignore[union-attr]
        assert [r.event_id for r in both.result(30)] == ["a-2", "b-2"]  # type: ignore[union-attr]
        sizes = pg_store.log_sizes()
        assert (sizes[a], sizes[b]) == (3, 5)
        # The lane drained and ended: A's batches go to the writer again.
        wait_until(lambda: not committer.lanes)
        assert [r.sequence for r in committer.submit(batch(a, "a-3")).result(10)] == [3]  # type: ignore[union-attr]
    finally:
        committer.close()


@pytest.fixture
def ingest(pg_store: SqlEventStore) -> Iterator[pb_grpc.IngestServiceStub]:
    """IngestService on PostgreSQL answering a batch not committed within 5 s (30 s served).

    A head is waited for 0.2 s (1 s served): another tenant's batch grouped with a held
    one commits after that wait, well within the 5 s on a loaded machine (with 1 s and
    2 s, a CI run once answered it UNAVAILABLE).
    """
    committer = GroupCommitter(pg_store, lock_timeout=0.2)
    handlers = IngestHandlers(
        committer, Limits(), Authenticator(None), StreamSlots("AppendStream", 4, 4), 5.0
    )
    server = grpc.server(ThreadPoolExecutor(max_workers=8))
    append = grpc.unary_unary_rpc_method_handler(
        handlers.append, response_serializer=pb.AppendResponse.SerializeToString
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE_NAME, {"Append": append}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield pb_grpc.IngestServiceStub(channel)
    finally:
        channel.close()
        server.stop(None)
        committer.close()


def test_an_append_given_up_on_may_still_commit_and_its_retry_gets_the_receipts(
    ingest: pb_grpc.IngestServiceStub, pg_store: SqlEventStore, postgres: Postgres, tenant: str
) -> None:
    a, b = f"{tenant}-a", f"{tenant}-b"
    ingest.Append(pb.AppendRequest(events=[interaction(a, "a-0"), interaction(b, "b-0")]))
    events = [interaction(a, "a-1"), interaction(a, "a-2")]
    answers: dict[str, object] = {}

    def send_a() -> None:
        try:
            answers["a"] = ingest.Append(pb.AppendRequest(events=events), timeout=HELD)
        except grpc.RpcError as err:
            answers["a"] = err

    with head_locked(postgres, a):
        sender = threading.Thread(target=send_a)
        sender.start()
        # B is not held behind A's head: answered within the call's deadline
        receipts = ingest.Append(pb.AppendRequest(events=[interaction(b, "b-1")]), timeout=10)
        assert [r.sequence for r in receipts.receipts] == [1]
        sender.join(HELD)
        refused = answers["a"]
        assert isinstance(refused, grpc.RpcError)
        assert refused.code() == grpc.StatusCode.UNAVAILABLE
        text = refused.details() or ""
        assert "may still be committed" in text and "retry with the same event ids" in text
        assert "nothing was acknowledged" not in text
    # Released: the batch its handler gave up on commits (it was waiting for the head) ...
    wait_until(lambda: pg_store.log_sizes().get(a) == 3)
    # ... and the retry the answer asked for is answered with its receipts.
    again = ingest.Append(pb.AppendRequest(events=events), timeout=10).receipts
    assert [(r.event_id, r.sequence, r.duplicate) for r in again] == [
        ("a-1", 1, True),
        ("a-2", 2, True),
    ]
    stored = pg_store.get_event(a, "a-1")
    assert stored is not None and again[0].leaf_hash == stored.leaf_hash
