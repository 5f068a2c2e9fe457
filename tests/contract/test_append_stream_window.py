"""An AppendStream reads no further ahead of the store than its window (both stores).

Its reader used to take every request as fast as the client sent it, each
validated, prepared and queued for the committer at once: a client sending
faster than the store commits grew the server's memory without bound (one
stream of 200 requests of 1,000 events of 3 KB took an embedded server to
3.5 GB, 141 batches queued at once). Here the store's commits are held (a
write lock on SQLite, the log's head on PostgreSQL) while a stream sends more
than its window: the reader must stop, then go on once commits resume.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import grpc
import psycopg
import pytest

from aiaudit.common.auth import Authenticator
from aiaudit.common.store import open_store
from aiaudit.common.store.private_files import sqlite_path
from aiaudit.common.store.sql import BatchOutcome, NewEvent, SqlEventStore
from aiaudit.common.stream_slots import StreamSlots
from aiaudit.ingest.committer import GroupCommitter
from aiaudit.ingest.handlers import SERVICE_NAME, IngestHandlers
from aiaudit.ingest.stream_window import MAX_PENDING_EVENTS, MAX_UNANSWERED_EVENTS
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from aiaudit.ingest.validation import Limits
from tests.helpers import interaction, wait_until

WAITS = "it reads no more requests until some are"
"""What the stream's window logs (DEBUG) when its reader stops."""
UNANSWERED = re.compile(r"(\d+) not yet answered")
"""How many events of its requests it has read and not yet answered, as it logs that."""


class Watched(GroupCommitter):
    """The real committer, noting at each batch handed to it those still uncommitted."""

    def __init__(self, store: SqlEventStore) -> None:
        super().__init__(store, lock_timeout=0.2)
        self.futures: list[Future[BatchOutcome]] = []
        self.pending_at: list[list[int]] = []
        """For each batch submitted, the earlier ones (by index) not yet committed then."""

    def submit(self, batch: Sequence[NewEvent]) -> Future[BatchOutcome]:
        self.pending_at.append([i for i, f in enumerate(self.futures) if not f.done()])
        future = super().submit(batch)
        self.futures.append(future)
        return future


@contextlib.contextmanager
def commits_held(store_url: str, admin_dsn: str | None, tenant: str) -> Iterator[None]:
    """No batch of the tenant commits meanwhile: SQLite's write lock, or the log's head."""
    path = sqlite_path(store_url)
    if path is not None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")  # the writer waits for it (busy_timeout, 10 s)
        try:
            yield
        finally:
            conn.rollback()
            conn.close()
        return
    assert admin_dsn is not None
    with psycopg.connect(admin_dsn) as pg:
        pg.execute("SET idle_in_transaction_session_timeout = 60000")
        pg.execute("SELECT size FROM logs WHERE log_id = %s FOR UPDATE", (tenant,))
        try:
            yield
        finally:
            pg.rollback()


def requests(tenant: str, count: int, events: int, text: str) -> list[pb.AppendStreamRequest]:
    return [
        pb.AppendStreamRequest(
            request_id=r, events=[interaction(tenant, text=text) for _ in range(events)]
        )
        for r in range(count)
    ]


@contextlib.contextmanager
def stream_server(
    store_url: str, limits: Limits, channel_options: list[tuple[str, int]]
) -> Iterator[tuple[pb_grpc.IngestServiceStub, Watched]]:
    """An in-process server of AppendStream alone, on the watched committer, and its stub."""
    store = open_store(store_url)
    committer = Watched(store)
    handlers = IngestHandlers(
        committer, limits, Authenticator(None), StreamSlots("AppendStream", 4, 4)
    )
    server = grpc.server(ThreadPoolExecutor(max_workers=8))
    stream = grpc.stream_stream_rpc_method_handler(
        handlers.append_stream, response_serializer=pb.AppendStreamResponse.SerializeToString
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE_NAME, {"AppendStream": stream}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=channel_options)
    try:
        yield pb_grpc.IngestServiceStub(channel), committer  # type: ignore[no-untyped-call]
    finally:
        channel.close()
        server.stop(None)
        committer.close()
        store.close()


@pytest.mark.parametrize(
    ("events", "text", "max_message_bytes"),
    [
        (1000, "hi", 64 * 1024 * 1024),  # the events' bound: 10 requests of 1,000
        (1, "x" * 40_000, 256 * 1024),  # the bytes' bound: 7 requests of ~40 KB
    ],
)
def test_a_stream_reads_no_further_ahead_of_the_store_than_its_window(
    store_url: str,
    request: pytest.FixtureRequest,
    tenant: str,
    caplog: pytest.LogCaptureFixture,
    events: int,
    text: str,
    max_message_bytes: int,
) -> None:
    admin_dsn = (
        None if store_url.startswith("sqlite") else request.getfixturevalue("postgres").admin_dsn
    )
    limits = Limits(max_message_bytes=max_message_bytes)
    options = [("grpc.max_receive_message_length", max_message_bytes)]
    with stream_server(store_url, limits, options) as (ingest, committer):
        first = ingest.AppendStream(iter(requests(tenant, 1, 1, "opens the log")), timeout=30)
        assert [a.status.code for a in first] == [0]
        sent = requests(tenant, 15, events, text)
        sizes = [0] + [r.ByteSize() for r in sent]  # by submit: the log's first, then these
        counts = [1] + [events] * len(sent)
        with (
            caplog.at_level(logging.DEBUG, logger="aiaudit.ingest.stream_window"),
            commits_held(store_url, admin_dsn, tenant),
        ):
            call = ingest.AppendStream(iter(sent), timeout=60)
            # The window full (the reader waits), or on the old code every request taken.
            wait_until(lambda: WAITS in caplog.text or len(committer.futures) == 1 + len(sent))
            # Nothing commits while held: what the reader took, it took ahead of the store.
            taken = len(committer.futures) - 1
            assert taken < len(sent), f"all {taken} requests read while none could commit"
        answers = list(call)  # released: the rest is read as the store commits
        assert [a.request_id for a in answers] == list(range(len(sent)))
        assert all(a.status.code == 0 and len(a.receipts) == events for a in answers), answers[0]
        sequences = [r.sequence for a in answers for r in a.receipts]
        assert sequences == list(range(1, 1 + len(sent) * events))
        for at, earlier in enumerate(committer.pending_at):
            if at == 0:
                continue
            ahead = [i for i in earlier if i > 0]  # this stream's requests, not the first's
            assert sum(counts[i] for i in ahead) < MAX_PENDING_EVENTS, (at, ahead)
            assert sum(sizes[i] for i in ahead) < max_message_bytes, (at, ahead)
        # A stream cancelled while its reader waits ends, its reader too.
        before = caplog.text.count(WAITS)
        with (
            caplog.at_level(logging.DEBUG, logger="aiaudit.ingest.stream_window"),
            commits_held(store_url, admin_dsn, tenant),
        ):
            held = ingest.AppendStream(iter(requests(tenant, 15, events, text)), timeout=60)
            wait_until(lambda: caplog.text.count(WAITS) > before)
            held.cancel()
        wait_until(lambda: not any(t.name == "append-stream-reader" for t in threading.enumerate()))


def test_a_stream_whose_client_reads_no_answers_stops_reading_its_requests(
    store_url: str, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that never reads its answers is held once ``MAX_UNANSWERED_EVENTS`` wait.

    Until then a committed request weighed nothing: its receipts waited for a client
    that never took them, about 600 bytes an event, for as long as the stream stayed
    open (the server grew by 2 MB a second, review).
    """
    sent = requests(tenant, MAX_UNANSWERED_EVENTS // 1000 + 10, 1000, "hi")

    def held() -> bool:
        """The reader waits for answers to be read (not for the store)."""
        found = (UNANSWERED.search(r.getMessage()) for r in caplog.records)
        return any(m is not None and int(m[1]) >= MAX_UNANSWERED_EVENTS for m in found)

    # Without BDP probing the client's receive window stays at 64 KB: its transport
    # takes no more than an answer of those it does not read (one is ~110 KB).
    with stream_server(store_url, Limits(), [("grpc.http2.bdp_probe", 0)]) as (ingest, committer):
        with caplog.at_level(logging.DEBUG, logger="aiaudit.ingest.stream_window"):
            call = ingest.AppendStream(iter(sent), timeout=120)  # its answers not read yet
            wait_until(lambda: held() or len(committer.futures) == len(sent), timeout=90)
            taken = len(committer.futures)
            assert taken < len(sent), f"all {taken} requests read while no answer was"
        answers = list(call)  # read now: the rest is read
        assert [a.request_id for a in answers] == list(range(len(sent)))
        assert all(a.status.code == 0 and len(a.receipts) == 1000 for a in answers), answers[0]
