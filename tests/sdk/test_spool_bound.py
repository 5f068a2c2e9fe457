"""The spool's bound (``max_spool_bytes``) against a real server process: held, and no loss.

While the service is down a busy gateway filled its host's disk; then the
spool's writes failed and ``log`` blocked, with no bound chosen and no
signal but the disk's errors.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.sdk import AuditLogger
from aiaudit.sdk import spool as spool_module
from tests.helpers import sized_interaction, wait_until
from tests.sdk.test_concurrency_limit import HELD, Append, AroundAppend, SdkServer
from tests.sdk.test_logger import Server, spooled, stored_ids

MIB = 1 << 20
EVENT_BYTES = 10_000
"""Batches of 10 such events: five files (987,240 bytes) fit in 1 MiB, not six
(``sized_interaction`` puts its text twice: about 19,700 bytes an event)."""
LINGER = 2.0
"""Every batch waits for its ten events, however slowly the test's thread logs them."""


def on_disk(spool: Path) -> int:
    """The batch files' total size, as the disk has them."""
    with os.scandir(spool) as entries:
        return sum(e.stat().st_size for e in entries if e.name.endswith(".batch"))


def spool_logs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == spool_module.__name__]


def events(tenant: str, n: int) -> list[ev.Event]:
    return [sized_interaction(tenant, EVENT_BYTES) for _ in range(n)]


def test_the_spool_keeps_its_bound_log_blocks_and_every_event_is_stored_once(
    server: Server,
    tenant: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The batch files never pass the bound, exactly; 30 events wait in memory and the producer
    blocks on the 81st; one ERROR however many retries fail, none lost, all in order.

    The service's retries try the spool's oldest batch; the kept batch waits behind the spool,
    not put again (until 2026-12-07 it was refused again at each retry, then sent first)."""
    caplog.set_level(logging.INFO, logger=spool_module.__name__)
    tries: list[int] = []
    encode = spool_module.encode_batch

    def counted(request: pb.AppendRequest) -> bytes:  # each batch the spool is asked to take
        tries.append(len(request.events))
        return encode(request)

    monkeypatch.setattr(spool_module, "encode_batch", counted)
    probes: list[Path] = []
    read = spool_module.Spool.read

    def probed(spool: spool_module.Spool, path: Path) -> pb.AppendRequest | None:
        probes.append(path)  # each spooled batch the sender reads to send
        return read(spool, path)

    monkeypatch.setattr(spool_module.Spool, "read", probed)
    logger = server.logger(batch_size=10, max_buffered=20, max_spool_bytes=MIB, linger=LINGER)
    logged = events(tenant, 120)
    accepted: list[str] = []
    producer = threading.Thread(target=lambda: [accepted.append(logger.log(e)) for e in logged])
    producer.start()  # the service is down: never started yet
    # Five batches spooled, one kept (refused: the spool is full), twenty events buffered.
    wait_until(lambda: logger.spool_usage().full and len(accepted) == 80)
    refused_at, probed_at = len(tries), len(probes)
    wait_until(lambda: len(probes) >= probed_at + 3)  # the service retried three times more
    assert len(tries) == refused_at  # the kept batch was not put again
    assert len(accepted) == 80 and producer.is_alive()  # blocked at max_buffered, none dropped
    usage = logger.spool_usage()
    assert usage.spooled_files == 5 and usage.spooled_bytes == on_disk(server.spool) <= MIB
    assert spooled(server.spool) == 50
    full = [r for r in spool_logs(caplog) if r.levelno == logging.ERROR]
    assert len(full) == 1 and "would pass max_spool_bytes 1048576" in full[0].getMessage()

    server.start()
    producer.join(timeout=60)
    assert not producer.is_alive()
    assert logger.flush(timeout=60)
    assert sorted(stored_ids(server.store_url, tenant)) == sorted(e.event_id for e in logged)
    assert not logger.spool_usage().full and on_disk(server.spool) == 0
    assert [  # the replay made room for the refused batch, which then went after the spool
        r.getMessage().split(":")[0] for r in spool_logs(caplog) if r.levelno < logging.ERROR
    ] == [f"audit spool {server.spool} has room again"]
    assert stored_ids(server.store_url, tenant) == [e.event_id for e in logged]  # in order


def test_files_an_earlier_logger_spooled_count_against_the_bound_from_open(
    server: Server, tenant: str
) -> None:
    """An unbounded logger left 1.2 MB: a logger bounded at 1 MiB spools nothing more."""
    first = server.logger(batch_size=10, max_spool_bytes=None, linger=LINGER)
    earlier = events(tenant, 60)
    for e in earlier:
        first.log(e)
    first.close(timeout=0.5)  # the service is down: six files of ten on disk
    left = sorted(server.spool.glob("*.batch"))
    assert len(left) == 6 and on_disk(server.spool) > MIB

    second = server.logger(batch_size=10, max_spool_bytes=MIB, linger=LINGER)
    usage = second.spool_usage()
    assert (usage.spooled_bytes, usage.spooled_files) == (on_disk(server.spool), 6)
    later = events(tenant, 10)
    for e in later:
        second.log(e)
    wait_until(lambda: second.spool_usage().full)
    assert sorted(server.spool.glob("*.batch")) == left  # the ten wait in memory

    server.start()
    assert second.flush(timeout=60)
    assert sorted(stored_ids(server.store_url, tenant)) == sorted(
        e.event_id for e in earlier + later
    )
    assert not second.spool_usage().full and on_disk(server.spool) == 0


def test_close_spools_what_waits_in_memory_past_the_bound_rather_than_lose_it(
    server: Server, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing would send those events once the logger is closed: the next logger sends them."""
    first = server.logger(batch_size=10, max_buffered=20, max_spool_bytes=MIB, linger=LINGER)
    logged = events(tenant, 70)  # 50 spooled, 10 refused by the bound, 10 buffered
    for e in logged:
        first.log(e)
    wait_until(lambda: first.spool_usage().full)
    first.close(timeout=0.5)
    assert spooled(server.spool) == 70 and on_disk(server.spool) > MIB
    assert any("past max_spool_bytes" in r.getMessage() for r in caplog.records)

    server.start()
    second = server.logger(max_spool_bytes=MIB)
    assert second.flush(timeout=60)
    assert sorted(stored_ids(server.store_url, tenant)) == sorted(e.event_id for e in logged)


@pytest.mark.parametrize("value", [0, -1, 1000, MIB - 1, 1.5e9, True, "1G"])
def test_a_bound_that_is_no_whole_number_of_bytes_of_at_least_1_mib_is_refused(
    server: Server, value: object
) -> None:
    """0 could mean no spool or no bound, 1000 is below a batch (KiB meant?): refused at once,
    not found once the service is down. The spool directory is not left locked."""
    with pytest.raises(ValueError, match=rf"max_spool_bytes={value!r}: give a whole number"):
        AuditLogger(f"127.0.0.1:{server.port}", server.spool, max_spool_bytes=value)  # type: ignore[arg-type]
    assert server.logger(max_spool_bytes=MIB).spool_usage().max_spool_bytes == MIB


def test_a_refused_batch_the_service_then_takes_leaves_the_spool_not_full(
    server: Server, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An event alone larger than the bound (about 1.2 MB) is refused with the spool empty, then
    sent from memory once the service is back: the spool is no longer full, says so once, and
    the next outage that fills it logs its ERROR again.

    ``full`` stayed True for good (nothing the spool does cleared it once the batch left
    memory by the service), no line said the spool was usable again, and the next outage's
    refusal logged nothing (review, 2026-12-07).
    """
    caplog.set_level(logging.INFO, logger=spool_module.__name__)
    logger = server.logger(batch_size=10, max_spool_bytes=MIB, linger=LINGER)
    logged = [sized_interaction(tenant, 600_000)]
    for e in logged:
        logger.log(e)
    wait_until(lambda: logger.spool_usage().full)
    assert on_disk(server.spool) == 0

    server.start()
    assert logger.flush(timeout=60)
    assert sorted(stored_ids(server.store_url, tenant)) == sorted(e.event_id for e in logged)
    assert not logger.spool_usage().full
    infos = [r.getMessage() for r in spool_logs(caplog) if r.levelno < logging.ERROR]
    assert len(infos) == 1 and infos[0].startswith(f"audit spool {server.spool} no longer full")

    server.stop()
    again = [sized_interaction(tenant, 600_000)]
    for e in again:
        logger.log(e)
    wait_until(lambda: logger.spool_usage().full)
    errors = [r for r in spool_logs(caplog) if r.levelno == logging.ERROR]
    assert len(errors) == 2 and "larger than the bound itself" in errors[1].getMessage()


def test_close_spools_a_batch_refused_in_its_last_round_rather_than_lose_it(
    server: Server, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A round of close that spools the refused batch and ends past the deadline (here the
    spool's encoding is held until then; in a gateway, a replay call to a slow service in the
    same round) loses nothing: the batch and the buffered events are spooled past the bound.

    The round checked the bound before the deadline and the sender gave up after it with the
    batch kept: "neither sent nor spooled by close", the refused batch and the buffered events
    lost (review, 2026-12-07).
    """
    first = server.logger(batch_size=10, max_buffered=20, max_spool_bytes=MIB, linger=LINGER)
    logged = events(tenant, 70)  # 50 spooled, 10 refused by the bound, 10 buffered
    for e in logged:
        first.log(e)
    wait_until(lambda: first.spool_usage().full)
    encode = spool_module.encode_batch

    def held(request: pb.AppendRequest) -> bytes:  # close's round: until its deadline passes
        if first._closed and not first._late():
            wait_until(first._late)
        return encode(request)

    monkeypatch.setattr(spool_module, "encode_batch", held)
    first.close(timeout=2.0)
    assert spooled(server.spool) == 70

    server.start()
    second = server.logger(max_spool_bytes=MIB)
    assert second.flush(timeout=60)
    assert sorted(stored_ids(server.store_url, tenant)) == sorted(e.event_id for e in logged)


def test_close_spools_what_waits_for_the_bound_at_once_not_in_its_last_seconds(
    server: Server, tenant: str
) -> None:
    """With the spool full, close spools the refused batch and the buffer as it starts, then
    replays within its timeout; the service back meanwhile takes everything.

    The sender waited for close's deadline, then had ``_CLOSE_GRACE`` (2 s) to spool up to
    ``max_buffered`` events: 10,000 events of 20 KB (the defaults, a full spool's usual
    buffer) took 2.5 s, and close gave up with them in memory, lost at the interpreter's
    exit (review, 2026-12-07).
    """
    logger = server.logger(batch_size=10, max_buffered=20, max_spool_bytes=MIB, linger=LINGER)
    logged = events(tenant, 70)  # 50 spooled, 10 refused by the bound, 10 buffered
    for e in logged:
        logger.log(e)
    wait_until(lambda: logger.spool_usage().full)
    closing = threading.Thread(target=logger.close, kwargs={"timeout": 120.0})
    closing.start()
    wait_until(lambda: spooled(server.spool) == 70, timeout=60)  # long before the deadline
    assert on_disk(server.spool) > MIB
    # Nothing waits in memory: not full (it stayed full, the refused batch past the bound).
    wait_until(lambda: not logger.spool_usage().full)

    server.start()
    closing.join(timeout=60)  # returns once the replay sent everything
    assert not closing.is_alive()
    assert spooled(server.spool) == 0
    assert sorted(stored_ids(server.store_url, tenant)) == sorted(e.event_id for e in logged)


def test_a_batch_alone_larger_than_the_bound_is_spooled_in_parts_that_fit(
    server: Server, tenant: str
) -> None:
    """Batches of ten events of about 118 KB (1.18 MB) and a 1 MiB bound: the spool takes what
    fits, in order, and the rest waits in memory; all stored once the service is back.

    Such a batch was refused whole, however empty the spool: with the service down nothing
    ever reached the disk, ``log`` blocked on an empty spool and a crash lost every event
    (``batch_size`` 500, the default, of 3 KB events passes 1 MiB; review, 2026-12-07).
    """
    logger = server.logger(batch_size=10, max_buffered=10, max_spool_bytes=MIB, linger=LINGER)
    logged = [sized_interaction(tenant, 60_000) for _ in range(20)]
    for e in logged:
        logger.log(e)
    wait_until(lambda: logger.spool_usage().full)
    usage = logger.spool_usage()
    assert 0 < usage.spooled_bytes == on_disk(server.spool) <= MIB
    assert spooled(server.spool) >= 5  # the batch's first half, at least

    server.start()
    assert logger.flush(timeout=60)
    assert sorted(stored_ids(server.store_url, tenant)) == sorted(e.event_id for e in logged)
    assert not logger.spool_usage().full and on_disk(server.spool) == 0


def test_events_logged_before_during_and_after_an_outage_are_stored_in_the_order_logged(
    server: Server, tenant: str
) -> None:
    """Ten sent before the outage; during it fifty spooled, ten kept in memory (the spool full)
    and ten buffered; ten more once the service is back: the log holds the eighty in the
    order they were logged.

    The kept batch went first, then new events between the spooled batches: the outage's
    first fifty reached the log after events logged later (review, 2026-12-07).
    """
    server.start()
    logger = server.logger(batch_size=10, max_buffered=20, max_spool_bytes=MIB, linger=LINGER)
    before = events(tenant, 10)
    for e in before:
        logger.log(e)
    assert logger.flush(timeout=60)
    server.stop()
    during = events(tenant, 70)  # 50 spooled, 10 refused by the bound, 10 buffered
    for e in during:
        logger.log(e)
    wait_until(lambda: logger.spool_usage().full)
    assert spooled(server.spool) == 50

    server.start()
    after = events(tenant, 10)  # buffered behind the ten, within max_buffered
    for e in after:
        logger.log(e)
    assert logger.flush(timeout=60)
    assert stored_ids(server.store_url, tenant) == [e.event_id for e in before + during + after]
    assert on_disk(server.spool) == 0


def test_a_batch_kept_for_the_bound_is_sent_once_the_service_is_back_not_after_max_backoff(
    server: Server, tenant: str
) -> None:
    """With ``max_backoff`` at 120 s and a short outage, the service's return is found at the
    next retry (the backoff has grown to a few seconds) and everything is sent at once.

    The kept batch was tried again only ``max_backoff`` after the spool refused it, and the
    spool not at all meanwhile: the outage lasted two minutes more for the logger
    (review, 2026-12-07).
    """
    logger = AuditLogger(
        f"127.0.0.1:{server.port}",
        server.spool,
        api_key=server.key,
        batch_size=10,
        max_buffered=20,
        max_spool_bytes=MIB,
        linger=LINGER,
        max_backoff=120.0,
    )
    server.loggers.append(logger)
    logged = events(tenant, 70)  # 50 spooled, 10 refused by the bound, 10 buffered
    for e in logged:
        logger.log(e)
    wait_until(lambda: logger.spool_usage().full)
    server.start()
    assert logger.flush(timeout=60)  # not 120 s after the refusal
    assert stored_ids(server.store_url, tenant) == [e.event_id for e in logged]


def test_log_is_not_held_for_the_whole_replay_of_a_full_spool(
    server: Server, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service back, the kept batch follows the backlog into the spool once the replay has
    freed a quarter of its bound, and ``log`` goes on before the backlog's last file is sent;
    every event is stored once, in the order logged.

    The kept batch waited for the spool to be empty, and the events behind it in memory: ``log``
    blocked for the whole replay of the spool, up to 1 GiB, with the service answering (review,
    2026-12-07).
    """
    logger = server.logger(batch_size=10, max_buffered=20, max_spool_bytes=MIB, linger=LINGER)
    logged = events(tenant, 120)
    accepted: list[str] = []
    past_buffer = threading.Event()

    def produce() -> None:
        for e in logged:
            accepted.append(logger.log(e))
            if len(accepted) == 81:  # blocked at max_buffered, behind the kept batch, until then
                past_buffer.set()

    producer = threading.Thread(target=produce)
    producer.start()  # the service is down
    wait_until(lambda: logger.spool_usage().full and len(accepted) == 80)
    backlog = sorted(server.spool.glob("*.batch"))
    assert len(backlog) == 5 and not past_buffer.is_set()
    went_on: list[bool] = []
    remove = spool_module.Spool.remove

    def removed(spool: spool_module.Spool, *paths: Path) -> None:
        if backlog[-1] in paths:  # the backlog's last file is acknowledged: has log gone on?
            went_on.append(past_buffer.wait(timeout=10))
        remove(spool, *paths)

    monkeypatch.setattr(spool_module.Spool, "remove", removed)
    server.start()
    producer.join(timeout=60)
    assert not producer.is_alive()
    assert logger.flush(timeout=60)
    assert went_on == [True]
    assert stored_ids(server.store_url, tenant) == [e.event_id for e in logged]  # in order
    assert not logger.spool_usage().full and on_disk(server.spool) == 0


class Outage(AroundAppend):
    """The service down (``Append`` answered ``UNAVAILABLE``) until ``back``; then its second
    call held, before it is served, until ``release``."""

    def __init__(self) -> None:
        self.up = threading.Event()
        self.second = threading.Event()
        """The second call since ``back`` has come and waits."""
        self.release = threading.Event()
        self._since = 0
        self._count = threading.Lock()

    def back(self) -> None:
        self.up.set()

    def around(
        self, append: Append, request: bytes, context: grpc.ServicerContext
    ) -> pb.AppendResponse:
        if not self.up.is_set():
            context.abort(grpc.StatusCode.UNAVAILABLE, "the service is down (test)")
        with self._count:
            self._since += 1
            second = self._since == 2
        if second:
            self.second.set()
            self.release.wait(HELD)
        response: pb.AppendResponse = append(request, context)
        return response


def test_the_spool_stays_full_until_the_batch_it_refused_leaves_memory(
    in_process: Callable[..., SdkServer], tenant: str
) -> None:
    """Once the replay has freed room for the kept batch (one file of five), the batch still
    waits in memory for a quarter of the bound (two files): ``spool_usage().full`` says so
    until it is spooled. Until 2026-12-07 it turned False with the room, while the batch was
    still in memory (the spool's own flag)."""
    outage = Outage()
    server = in_process(interceptors=[outage])
    logger = server.logger(batch_size=10, max_buffered=20, max_spool_bytes=MIB, linger=LINGER)
    logged = events(tenant, 70)  # 50 spooled, 10 refused by the bound, 10 buffered
    for e in logged:
        logger.log(e)
    wait_until(lambda: logger.spool_usage().full and spooled(server.spool) == 50)
    outage.back()
    try:
        assert outage.second.wait(HELD)  # the first file acknowledged, the second on its way
        usage = logger.spool_usage()
        assert usage.spooled_files == 4 and spooled(server.spool) == 40  # the batch not spooled
        assert usage.spooled_bytes * 5 // 4 <= MIB  # room for it, a file's size
        assert usage.spooled_bytes > MIB - MIB // 4  # not a quarter of the bound free
        assert usage.full
    finally:
        outage.release.set()
    assert logger.flush(timeout=60)
    assert stored_ids(server.store_url, tenant) == [e.event_id for e in logged]  # in order
    assert not logger.spool_usage().full and on_disk(server.spool) == 0
