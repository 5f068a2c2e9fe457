"""The replay of a spool of small files: consecutive files go together, one ``Append`` a batch.

A gateway with light traffic during a long outage spools a file of a few events per
``linger``; until 2026-12-07 the replay sent one file a call (2,000 one-event files:
2,000 calls). Here the real server (ingest, in this process, on SQLite and PostgreSQL)
counts the calls that reach it; the files are left by an earlier logger, as after a
gateway's restart during the outage.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import grpc

from aiaudit.common.config import MESSAGE_HEADROOM_BYTES
from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.sdk.spool import Spool, decode_batch
from tests.helpers import interaction, sized_interaction, wait_until
from tests.sdk.test_concurrency_limit import HELD, Append, AroundAppend, SdkServer
from tests.sdk.test_logger import rejected_lines, spooled, stored_ids


def spool_files(directory: Path, files: list[list[ev.Event]]) -> None:
    """A spool left by an earlier logger: a file for each list of events, in this order."""
    spool = Spool(directory)
    try:
        for events in files:
            spool.put(pb.AppendRequest(events=events))
    finally:
        spool.close()


def test_consecutive_spooled_files_go_in_one_call_up_to_batch_size_in_order(
    in_process: Callable[..., SdkServer], tenant: str
) -> None:
    """Whole files, at most ``batch_size`` events a call; a file alone larger than that (an
    earlier logger's, with a larger ``batch_size``) goes alone. Until 2026-12-07 the 19
    files were 19 calls."""
    server = in_process()
    sizes = [1] * 10 + [45] + [1] * 5 + [70] + [1] * 3
    files = [[interaction(tenant, text=f"f{f}-{i}") for i in range(n)] for f, n in enumerate(sizes)]
    ids = [e.event_id for events in files for e in events]
    spool_files(server.spool, files)
    logger = server.logger(batch_size=50)
    assert logger.flush(timeout=60)
    assert [len(batch) for batch in server.sent.batches] == [10, 50, 70, 3]
    assert [i for batch in server.sent.batches for i in batch] == ids
    assert server.appends.count == 4  # every call that reached the server
    assert stored_ids(server.store_url, tenant) == ids  # each once, in the order logged
    assert spooled(server.spool) == 0 and list(server.spool.glob("*.batch")) == []
    assert server.refused == [] and rejected_lines(server.spool) == []


def test_events_refused_in_a_replay_of_many_files_are_set_aside_alone(
    in_process: Callable[..., SdkServer], tenant: str
) -> None:
    """Refused as in a batch from memory: each refused event set aside once, with the reason
    its own file's call would have got; the other files' events stored, in order. An answer
    naming the event sets it aside and the rest goes again (three calls for the 30 files,
    not 30); one naming none is halved across the files down to it (the next test)."""
    server = in_process()
    first = server.logger()
    first.log(interaction(tenant, "taken", text="the original"))
    assert first.flush(timeout=30)
    first.close(timeout=5)
    events = [interaction(tenant, text=f"ok {i}") for i in range(28)]
    events.insert(7, interaction(tenant, "taken", text="same id, other content"))
    events.insert(20, interaction(tenant, "bad-model", model="x" * 5000))
    spool_files(server.spool, [[e] for e in events])
    before = server.appends.count
    logger = server.logger(batch_size=500)
    assert logger.flush(timeout=60)
    why = dict(server.refused)
    assert sorted(why) == ["bad-model", "taken"] and len(server.refused) == 2  # each once
    assert why["bad-model"].startswith("INVALID_ARGUMENT: ") and "model.name" in why["bad-model"]
    assert why["taken"].startswith("ALREADY_EXISTS: ")
    assert sorted(rejected_lines(server.spool)) == ["bad-model", "taken"]
    good = [e.event_id for e in events if e.event_id not in ("taken", "bad-model")]
    assert stored_ids(server.store_url, tenant) == ["taken", *good]  # the original, then these
    assert server.appends.count - before == 3
    assert server.sent.batches[-3][0] == events[0].event_id and len(server.sent.batches[-3]) == 30
    assert spooled(server.spool) == 0


def test_an_event_refused_without_being_named_is_found_by_halving_across_the_files(
    in_process: Callable[..., SdkServer], tenant: str
) -> None:
    """gRPC's refusal of a message above ``max_message_bytes`` names no event: the call of the
    21 files is halved down to the one event too large, set aside as its own file's call would
    have had it; the halves without it are stored (9 calls, not 21), in order."""
    server = in_process(max_event_bytes=256 * 1024, max_message_bytes=320 * 1024)
    events = [interaction(tenant, text=f"m{i}") for i in range(20)]
    big = sized_interaction(tenant, 1024 * 1024)
    events.insert(10, big)
    spool_files(server.spool, [[e] for e in events])
    logger = server.logger(batch_size=500)
    assert logger.flush(timeout=60)
    assert [e for e, _ in server.refused] == [big.event_id]
    assert server.refused[0][1].startswith("RESOURCE_EXHAUSTED: ")
    assert rejected_lines(server.spool) == [big.event_id]
    good = [e.event_id for e in events if e is not big]
    assert stored_ids(server.store_url, tenant) == good
    assert [len(batch) for batch in server.sent.batches] == [21, 10, 11, 5, 2, 1, 1, 3, 6]
    assert server.appends.count == 9
    assert spooled(server.spool) == 0


def test_a_replay_call_carries_at_most_4_mib_of_files_so_no_server_refuses_its_size(
    in_process: Callable[..., SdkServer], tenant: str
) -> None:
    """24 one-event files of 256 KiB (a light producer of large events during an outage) go in
    calls of at most 4 MiB, which a server taking events of its default ``max_event_bytes``
    (4 MiB) takes whatever its ``max_message_bytes``: here the least it may be. Until the
    review of 2026-12-07 they went as one call of 6 MiB, refused for its size, then sent again
    halved (500 such files: 125 MiB, refused at the default 64 MiB every round)."""
    server = in_process(max_message_bytes=4 * 1024 * 1024 + MESSAGE_HEADROOM_BYTES)
    events = [interaction(tenant, text=f"{i:03d}" + "x" * (128 * 1024)) for i in range(24)]
    ids = [e.event_id for e in events]
    spool_files(server.spool, [[e] for e in events])
    logger = server.logger(batch_size=500)
    assert logger.flush(timeout=60)
    assert [i for batch in server.sent.batches for i in batch] == ids  # each sent once, in order
    assert server.appends.count == len(server.sent.batches) == 2  # none refused, still together
    assert stored_ids(server.store_url, tenant) == ids
    assert server.refused == [] and rejected_lines(server.spool) == []
    assert spooled(server.spool) == 0


class HeldAfterCommit(AroundAppend):
    """Holds the first ``Append`` once ingest has committed it, unanswered until ``release``:
    the service stopped between its commit and its answer."""

    def __init__(self) -> None:
        self.committed = threading.Event()
        self.release = threading.Event()
        self.events: list[str] = []
        """The event ids of the held call."""

    def around(
        self, append: Append, request: bytes, context: grpc.ServicerContext
    ) -> pb.AppendResponse:
        response: pb.AppendResponse = append(request, context)
        if not self.committed.is_set():
            self.events = [e.event_id for e in pb.AppendRequest.FromString(request).events]
            self.committed.set()
            self.release.wait(HELD)
        return response


class DownAfterFirst(AroundAppend):
    """Serves the first ``Append``; answers the second ``UNAVAILABLE`` (the service gone
    down); holds the third, before serving it, until ``release``."""

    def __init__(self) -> None:
        self.third = threading.Event()
        self.release = threading.Event()
        self._calls = 0
        self._count = threading.Lock()

    def around(
        self, append: Append, request: bytes, context: grpc.ServicerContext
    ) -> pb.AppendResponse:
        with self._count:
            self._calls += 1
            call = self._calls
        if call == 2:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the service is down (test)")
        if call == 3:
            self.third.set()
            self.release.wait(HELD)
        response: pb.AppendResponse = append(request, context)
        return response


def test_a_refusal_then_an_outage_leaves_each_file_with_what_of_it_is_unsettled(
    in_process: Callable[..., SdkServer], tenant: str
) -> None:
    """The replay's call of 12 files is refused naming one event, set aside; the resend of the
    rest meets the service down: that event's file is removed, the 11 others stay whole, and
    the event is set aside once, never sent again."""
    down = DownAfterFirst()
    server = in_process(interceptors=[down])
    events = [interaction(tenant, text=f"ok {i}") for i in range(11)]
    events.insert(4, interaction(tenant, "bad-model", model="x" * 5000))
    spool_files(server.spool, [[e] for e in events])
    files = sorted(server.spool.glob("*.batch"))
    logger = server.logger(batch_size=500)
    try:
        assert down.third.wait(HELD)  # the round of the refusal and the outage is over
        assert sorted(server.spool.glob("*.batch")) == files[:4] + files[5:]
        assert spooled(server.spool) == 11
        assert rejected_lines(server.spool) == ["bad-model"]
    finally:
        down.release.set()
    assert logger.flush(timeout=60)
    good = [e.event_id for e in events if e.event_id != "bad-model"]
    assert [len(batch) for batch in server.sent.batches] == [12, 11, 11]
    assert stored_ids(server.store_url, tenant) == good
    assert [e for e, _ in server.refused] == ["bad-model"] and rejected_lines(server.spool) == [
        "bad-model"
    ]
    assert spooled(server.spool) == 0


def test_files_whose_call_was_committed_but_never_answered_stay_and_are_stored_once(
    in_process: Callable[..., SdkServer], tenant: str, tmp_path: Path
) -> None:
    """The server stops after committing a replay's call of 25 files and before answering:
    not one of them is removed (a file leaves the spool only once the call that carried its
    events is answered); the next server is sent them again and answers with the original
    receipts, the events stored once, in order. Until 2026-12-07 a call carried one file."""
    hold = HeldAfterCommit()
    server = in_process(interceptors=[hold])
    events = [interaction(tenant, text=f"m{i}") for i in range(60)]
    ids = [e.event_id for e in events]
    spool_files(server.spool, [[e] for e in events])
    logger = server.logger(batch_size=25)
    try:
        assert hold.committed.wait(HELD)
        assert hold.events == ids[:25]
        assert stored_ids(server.store_url, tenant) == ids[:25]
        server.suite.stop(0)  # the held call is cut off, unanswered
    finally:
        hold.release.set()
    assert spooled(server.spool) == 60  # none removed: no answer came
    again = in_process(
        tmp_path / "again",
        address=f"127.0.0.1:{server.suite.port}",
        api_keys_file=tmp_path / "keys.yaml",  # the first server's: the logger's key
    )
    assert logger.flush(timeout=60)
    assert stored_ids(server.store_url, tenant) == ids  # each once, in order
    assert [len(batch) for batch in server.sent.batches][-3:] == [25, 25, 10]
    assert again.appends.count == 3  # the 25 again, answered as duplicates, then the rest
    assert spooled(server.spool) == 0
    assert server.refused == [] and rejected_lines(server.spool) == []


class Gate(AroundAppend):
    """Holds each ``Append`` before serving it until the test lets that many through."""

    def __init__(self) -> None:
        self._state = threading.Condition()
        self.arrived = 0
        self._allowed = 0

    def wait_arrived(self, count: int) -> None:
        with self._state:
            assert self._state.wait_for(lambda: self.arrived >= count, HELD), self.arrived

    def allow(self, count: int) -> None:
        with self._state:
            self._allowed = count
            self._state.notify_all()

    def around(
        self, append: Append, request: bytes, context: grpc.ServicerContext
    ) -> pb.AppendResponse:
        with self._state:
            self.arrived += 1
            call = self.arrived
            self._state.notify_all()
            assert self._state.wait_for(lambda: self._allowed >= call, HELD)
        response: pb.AppendResponse = append(request, context)
        return response


def test_close_spools_what_is_in_memory_before_it_replays_more_of_the_backlog(
    in_process: Callable[..., SdkServer], tenant: str
) -> None:
    """Closed while a replay's call is in flight, the logger spools the 30 events in memory
    before its next call: a gateway stopped during the replay loses none to a kill that
    follows close (a pod's grace period). Until the review of 2026-12-07 one batch went to
    the disk a round, between the replay's calls, each of up to ``batch_size`` files and
    their removal: 10,000 events in memory waited 20 such rounds, and what close's 2 s past
    its deadline did not spool was lost at exit."""
    gate = Gate()
    server = in_process(interceptors=[gate])
    backlog = [interaction(tenant, text=f"b{i}") for i in range(40)]
    spool_files(server.spool, [[e] for e in backlog])
    logger = server.logger(batch_size=10)
    new = [interaction(tenant, text=f"n{i}") for i in range(30)]
    try:
        gate.wait_arrived(1)  # the replay's first call, 10 files, in flight
        for e in new:
            logger.log(e)
        closer = threading.Thread(target=logger.close, kwargs={"timeout": 60})
        closer.start()
        wait_until(lambda: logger._closed)
        gate.allow(1)
        gate.wait_arrived(2)  # the replay's next call
        on_disk = {e.event_id for p in server.spool.glob("*.batch") for e in _batch(p).events}
        assert {e.event_id for e in new} <= on_disk
    finally:
        gate.allow(1000)
    closer.join(timeout=60)
    assert not closer.is_alive()
    ids = [e.event_id for e in [*backlog, *new]]
    assert stored_ids(server.store_url, tenant) == ids  # in the order logged
    assert spooled(server.spool) == 0


def _batch(path: Path) -> pb.AppendRequest:
    return decode_batch(path.read_bytes())
