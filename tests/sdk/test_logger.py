"""The gateway SDK against a real server process: no event lost, none stored twice.

The server is stopped, killed with -9 and started again around the logger;
what it stored is read back from the store (SQLite and PostgreSQL).
"""

from __future__ import annotations

import base64
import errno
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from aiaudit.common.store import open_store
from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.sdk import AuditLogger
from aiaudit.sdk import logger as logger_module
from aiaudit.sdk import spool as spool_module
from tests.conftest import REPO, subprocess_env, write_keys
from tests.helpers import (
    clear_on_postgres_env,
    free_port,
    interaction,
    serve_process,
    sized_interaction,
    this_hosts_other_address,
    wait_until,
)


class Server:
    """``aiaudit serve`` on a fixed port, stopped and started at will."""

    def __init__(self, store_url: str, data_dir: Path) -> None:
        self.store_url, self.data_dir = store_url, data_dir
        self.port = free_port()
        self.key = write_keys(data_dir / "keys.yaml")["gateway"]
        self.proc: subprocess.Popen[bytes] | None = None
        self.loggers: list[AuditLogger] = []
        self.env: dict[str, str] = {}
        """More of the server's environment (settings)."""

    def start(self) -> None:
        self.proc = serve_process(
            ["--address", f"127.0.0.1:{self.port}", "--data-dir", str(self.data_dir)],
            {
                **subprocess_env(),
                "AIAUDIT_DATABASE_URL": self.store_url,
                **clear_on_postgres_env(self.store_url),
                "AIAUDIT_API_KEYS_FILE": str(self.data_dir / "keys.yaml"),
                **self.env,
            },
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, sig)
            self.proc.wait()
            self.proc = None

    @property
    def spool(self) -> Path:
        return self.data_dir / "spool"

    def logger(self, **kw: object) -> AuditLogger:
        """A logger on the test's spool directory (closed, if not yet, at teardown)."""
        logger = AuditLogger(
            f"127.0.0.1:{self.port}",
            self.spool,
            api_key=self.key,
            max_backoff=0.2,
            **kw,  # type: ignore[arg-type]
        )
        self.loggers.append(logger)
        return logger


def stored_ids(store_url: str, tenant: str) -> list[str]:
    store = open_store(store_url)
    try:
        return [e.event_id for e in store.read_log(tenant, 0, 100_000, content=False)]
    finally:
        store.close()


def spooled(spool: Path) -> int:
    return sum(len(spool_module.decode_batch(p.read_bytes()).events) for p in spool.glob("*.batch"))


def test_events_logged_through_outages_are_all_stored_once(server: Server, tenant: str) -> None:
    logger = server.logger(batch_size=50)
    # Down from the start: everything goes to the spool.
    ids = [logger.log(interaction(tenant, text=f"before {i}")) for i in range(120)]
    wait_until(lambda: spooled(server.spool) == 120)
    server.start()
    assert logger.flush(timeout=60)
    assert spooled(server.spool) == 0

    # Killed while events stream in; restarted a moment later.
    for i in range(400):
        ids.append(logger.log(interaction(tenant, text=f"during {i}")))
        if i == 150:
            server.stop(signal.SIGKILL)
        if i == 250:
            server.start()
    assert logger.flush(timeout=60)
    assert sorted(stored_ids(server.store_url, tenant)) == sorted(ids)  # each logged event, once


def test_a_closed_loggers_spool_is_sent_by_the_next(server: Server, tenant: str) -> None:
    first = server.logger()
    ids = [first.log(interaction(tenant, text=f"n{i}")) for i in range(30)]
    first.close(timeout=0.5)  # the service is down: it keeps them on disk
    assert spooled(server.spool) == 30
    server.start()
    second = server.logger()
    assert second.flush(timeout=60)
    assert sorted(stored_ids(server.store_url, tenant)) == sorted(ids)
    assert spooled(server.spool) == 0


def test_refused_events_are_set_aside_and_the_rest_of_their_batch_is_stored(
    server: Server, tenant: str
) -> None:
    server.start()
    refused: list[tuple[str, str]] = []
    logger = server.logger(on_rejected=lambda e, why: refused.append((e.event_id, why)))
    taken = logger.log(interaction(tenant, "taken", text="the original"))
    assert logger.flush(timeout=30)
    # One batch: eight good events, one whose id is taken by other content, one invalid.
    events = [interaction(tenant, text=f"ok {i}") for i in range(8)]
    events.insert(3, interaction(tenant, "taken", text="same id, other content"))
    events.insert(6, interaction(tenant, "bad-model", model="x" * 5000))
    for e in events:
        logger.log(e)
    assert logger.flush(timeout=30)

    good = [e.event_id for e in events if e.event_id not in ("taken", "bad-model")]
    assert sorted(stored_ids(server.store_url, tenant)) == sorted([taken, *good])
    why = dict(refused)
    assert sorted(why) == ["bad-model", "taken"]
    assert "ALREADY_EXISTS" in why["taken"] and "model.name" in why["bad-model"]
    lines = (server.spool / "rejected.jsonl").read_bytes().splitlines()
    kept = {x["event_id"]: x for x in map(orjson.loads, lines)}
    assert sorted(kept) == ["bad-model", "taken"]
    event = ev.Event.FromString(base64.b64decode(kept["taken"]["event"]))
    assert event.input.messages[0].parts[0].text == "same id, other content"


def test_an_event_the_key_may_not_write_is_set_aside_and_holds_nothing_up(
    server: Server, tenant: str
) -> None:
    """PERMISSION_DENIED was taken for the service being down: the batch went to the spool,
    was replayed first, refused again, for good, and every batch spooled after it waited
    behind it (review, 2026-12-05)."""
    server.key = write_keys(server.data_dir / "keys.yaml", tenants=[tenant])["gateway"]
    server.start()
    refused: list[tuple[str, str]] = []
    logger = server.logger(on_rejected=lambda e, why: refused.append((e.event_id, why)))
    events = [interaction(tenant, f"ok-{i}") for i in range(6)]
    events.insert(2, interaction(f"{tenant}-other", "elsewhere"))
    for e in events:
        logger.log(e)
    assert logger.flush(timeout=30)
    later = logger.log(interaction(tenant, "later"))
    assert logger.flush(timeout=30)
    assert sorted(stored_ids(server.store_url, tenant)) == sorted(
        [*(f"ok-{i}" for i in range(6)), later]
    )
    assert [e for e, _ in refused] == ["elsewhere"]
    assert refused[0][1].startswith("PERMISSION_DENIED: ")
    assert spooled(server.spool) == 0


def test_a_batch_of_many_refused_events_sets_each_aside_once_and_stores_the_rest(
    server: Server, tenant: str
) -> None:
    """A reply lists only what fits in gRPC's trailers (about 3.5 KB of violations).

    When it listed one event's forty fields, the SDK learnt of one refused event a
    reply, and its resend of the rest recursed once per event: past Python's limit
    the whole batch was kept to retry, its refused events set aside again and again
    and the valid ones never stored (review, 2026-12-04).
    """
    server.start()
    refused: list[str] = []
    logger = server.logger(batch_size=1000, on_rejected=lambda e, why: refused.append(e.event_id))
    bad = [interaction(tenant, f"bad-{i}") for i in range(990)]
    for event in bad:
        for k in range(40):
            event.attributes[f"BAD-KEY-{k:03d}"].string_value = "v"
    good = [interaction(tenant, f"good-{i}") for i in range(10)]
    for event in [*bad, *good]:
        logger.log(event)
    assert logger.flush(timeout=120)
    assert sorted(stored_ids(server.store_url, tenant)) == sorted(e.event_id for e in good)
    assert sorted(refused) == sorted(e.event_id for e in bad)  # each once


def test_a_spool_that_refuses_writes_keeps_the_events_in_memory(
    server: Server, tenant: str
) -> None:
    logger = server.logger()
    (server.spool / ".lock").unlink()
    server.spool.rmdir()
    server.spool.write_bytes(b"")  # a file where the spool's directory was: every write fails
    ids = [logger.log(interaction(tenant, text=f"m{i}")) for i in range(20)]
    assert not logger.flush(timeout=1)  # the service is down and the disk refuses
    server.spool.unlink()
    server.spool.mkdir()
    wait_until(lambda: spooled(server.spool) == 20)  # kept, then spooled once the disk takes them
    server.start()
    assert logger.flush(timeout=60)
    assert sorted(stored_ids(server.store_url, tenant)) == sorted(ids)


def test_a_damaged_spool_file_is_set_aside_and_delivery_goes_on(
    server: Server, tenant: str
) -> None:
    server.spool.mkdir(parents=True, exist_ok=True)
    (server.spool / "00000000000000000001.batch").write_bytes(b"\xff torn by a crash")
    server.start()
    logger = server.logger()
    ids = [logger.log(interaction(tenant, text=f"m{i}")) for i in range(30)]
    assert logger.flush(timeout=60)
    assert sorted(stored_ids(server.store_url, tenant)) == sorted(ids)
    assert [p.name[:21] for p in server.spool.glob("*.damaged")] == ["00000000000000000001-"]


def test_a_spool_file_changed_on_disk_is_set_aside_not_stored_as_other_events(
    server: Server, tenant: str
) -> None:
    """A flipped bit in a spooled event's id stored it a second time under the other id, and
    a file cut between two events lost the rest unnoticed (review, 2026-12-07)."""
    first = server.logger(batch_size=5)
    events = [interaction(tenant, f"spooled-{i}") for i in range(15)]
    ids = [first.log(e) for e in events]
    first.close(timeout=0.5)  # the service is down: three files of five
    flipped, cut, _whole = sorted(server.spool.glob("*.batch"))
    data = flipped.read_bytes()
    at = data.index(b"spooled-3")
    flipped.write_bytes(data[:at] + b"r" + data[at + 1 :])  # "s" ^ 1: another id, still parsing
    data = cut.read_bytes()
    # Cut where event 7 began: before its tag and length, and its id's tag and length.
    head = 1 + (events[7].ByteSize().bit_length() + 6) // 7
    cut.write_bytes(data[: data.index(b"spooled-7") - 2 - head])
    server.start()
    second = server.logger()
    assert second.flush(timeout=60)
    assert sorted(stored_ids(server.store_url, tenant)) == sorted(ids[10:])  # `_whole`
    assert sorted(p.name[:20] for p in server.spool.glob("*.damaged")) == sorted(
        p.name[:20] for p in (flipped, cut)
    )


def test_every_event_logged_while_the_logger_closes_is_stored_or_refused_at_once(
    server: Server, tenant: str
) -> None:
    """``log`` either raises (closed) or its event is sent or spooled: none left in a queue."""
    server.start()
    logger = server.logger()
    accepted: list[str] = []

    def keep_logging(n: int) -> None:
        for i in range(200):
            try:
                accepted.append(logger.log(interaction(tenant, text=f"t{n}-{i}")))
            except RuntimeError:
                return

    threads = [threading.Thread(target=keep_logging, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    logger.close(timeout=60)
    for t in threads:
        t.join()
    sent = set(stored_ids(server.store_url, tenant))
    assert sent | {e for p in server.spool.glob("*.batch") for e in batch_ids(p)} >= set(accepted)


def batch_ids(path: Path) -> list[str]:
    return [e.event_id for e in spool_module.decode_batch(path.read_bytes()).events]


def no_space(fd: int, data: bytes) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_an_event_refused_while_the_disk_is_full_holds_nothing_up(
    server: Server, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rejected.jsonl cannot be written: the refusal is logged, the events behind it still sent."""
    server.start()
    refused: list[str] = []
    logger = server.logger(
        batch_size=10, max_buffered=20, on_rejected=lambda e, why: refused.append(e.event_id)
    )
    monkeypatch.setattr(logger_module, "write_all", no_space)  # what writes rejected.jsonl
    ids = [logger.log(interaction(tenant, text=f"a{i}")) for i in range(5)]
    logger.log(interaction(tenant, "bad-model", model="x" * 5000))
    ids += [logger.log(interaction(tenant, text=f"b{i}")) for i in range(100)]
    assert logger.flush(timeout=20)
    assert sorted(stored_ids(server.store_url, tenant)) == sorted(ids)
    assert refused == ["bad-model"]
    logger.close(timeout=5)  # returns


def test_a_refusal_after_a_torn_line_of_rejected_jsonl_is_a_line_of_its_own(
    server: Server, tenant: str
) -> None:
    """A write of rejected.jsonl cut short (the disk full mid-write, the process killed) left
    part of a line; the next refusal was glued to it and neither line read (review,
    2026-12-07)."""
    server.spool.mkdir(parents=True)
    torn = b'{"event_id":"earlier","reason":"INVALID_ARGUMENT: ev'
    (server.spool / "rejected.jsonl").write_bytes(torn)
    server.start()
    logger = server.logger()
    logger.log(interaction(tenant, "bad-model", model="x" * 5000))
    assert logger.flush(timeout=30)
    first, *rest = (server.spool / "rejected.jsonl").read_bytes().splitlines()
    assert first == torn
    assert [orjson.loads(line)["event_id"] for line in rest] == ["bad-model"]


def test_a_full_disk_with_the_service_down_neither_spins_nor_holds_close(
    server: Server, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch kept in memory is tried again after ``max_backoff``, not in a busy loop; a
    ``log`` blocked on the full buffer raises at close, which returns near its timeout."""
    tries: list[float] = []

    def full(fd: int, data: bytes) -> None:
        tries.append(time.monotonic())
        no_space(fd, data)

    monkeypatch.setattr(spool_module, "write_all", full)
    logger = server.logger(batch_size=2, max_buffered=4)  # the service is down: never started
    outcome: list[str] = []

    def keep_logging() -> None:
        try:
            for i in range(20):
                logger.log(interaction(tenant, text=f"m{i}"))
        except RuntimeError as err:
            outcome.append(str(err))

    producer = threading.Thread(target=keep_logging, daemon=True)
    producer.start()
    wait_until(lambda: len(tries) >= 3)
    start = time.monotonic()
    closing = threading.Thread(target=logger.close, kwargs={"timeout": 1.0}, daemon=True)
    closing.start()
    closing.join(timeout=15)
    producer.join(timeout=15)
    assert not closing.is_alive() and time.monotonic() - start < 5  # 1 s, and a little
    assert outcome == ["the audit logger is closed"]
    first = tries[0]
    # max_backoff is 0.2 s: one try per 0.2 s at most, and a last one at close.
    assert len(tries) <= (time.monotonic() - first) / 0.2 + 3, len(tries)


def test_events_logged_while_a_spool_backlog_is_replayed_are_stored_after_it_in_order(
    server: Server, tenant: str
) -> None:
    """The backlog goes first, one file a call; events logged meanwhile follow it in the order
    logged, and ``log`` does not wait for the backlog (full batches spooled behind it).

    New events were sent at once, between the backlog's batches: a gateway's log held them
    before the events of the outage logged earlier (review, 2026-12-07).
    """
    server.spool.mkdir(parents=True)
    backlog = [f"old-{n}" for n in range(1, 301)]
    for n, event_id in enumerate(backlog, 1):
        request = pb.AppendRequest(events=[interaction(tenant, event_id)])
        (server.spool / f"{n:020d}.batch").write_bytes(request.SerializeToString())
    last = server.spool / f"{len(backlog):020d}.batch"
    server.start()
    logger = server.logger(batch_size=5, max_buffered=5)
    new = [logger.log(interaction(tenant, text=f"new {i}")) for i in range(20)]
    assert last.exists()  # all logged while the backlog is still being replayed
    assert logger.flush(timeout=120)
    assert stored_ids(server.store_url, tenant) == backlog + new


def test_a_spool_backlog_is_listed_once_not_once_a_round(
    server: Server, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listed on every call, two or more times a round of the sender (one spooled file sent a
    round), a spool of 50,000 files cost 1.2 s a listing: replayed at one file a second, 14
    hours, and ``log`` waiting up to 0.6 s meanwhile (review, 2026-12-07)."""
    server.spool.mkdir(parents=True)
    backlog = [f"old-{n}" for n in range(1, 201)]
    for n, event_id in enumerate(backlog, 1):
        request = pb.AppendRequest(events=[interaction(tenant, event_id)])
        (server.spool / f"{n:020d}.batch").write_bytes(spool_module.encode_batch(request))
    listings: list[str] = []
    real = Path.glob

    def glob(path: Path, pattern: str) -> object:
        if path == server.spool:
            listings.append(pattern)
        return real(path, pattern)

    monkeypatch.setattr(Path, "glob", glob)
    server.start()
    logger = server.logger()
    new = [logger.log(interaction(tenant, text=f"new {i}")) for i in range(50)]
    assert logger.flush(timeout=120)
    assert sorted(stored_ids(server.store_url, tenant)) == sorted([*backlog, *new])
    assert listings.count("*.batch") == 1  # at open


def test_an_unreadable_spool_entry_is_set_aside_and_delivery_goes_on(
    server: Server, tenant: str
) -> None:
    """An entry that fails to read (here EISDIR; EACCES, EIO alike) no longer stops delivery."""
    server.spool.mkdir(parents=True)
    (server.spool / "00000000000000000001.batch").mkdir()
    server.start()
    logger = server.logger()
    ids = [logger.log(interaction(tenant, text=f"m{i}")) for i in range(30)]
    assert logger.flush(timeout=60)
    assert sorted(stored_ids(server.store_url, tenant)) == sorted(ids)
    (aside,) = server.spool.glob("00000000000000000001-*.damaged")
    assert aside.is_dir()


def test_a_logger_used_in_a_forked_child_raises_there(server: Server, tenant: str) -> None:
    """Nothing would send the child's events (the sender thread stays in the parent)."""
    server.start()
    logger = server.logger()
    ids = [logger.log(interaction(tenant, text="before fork"))]
    assert logger.flush(timeout=30)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what log did, and leave at once
        try:
            logger.log(interaction(tenant, text="child"))
            os.write(write_end, b"logged")
        except RuntimeError as err:
            os.write(write_end, str(err).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        said = pipe.read().decode()
    os.waitpid(pid, 0)
    assert "before fork()" in said and "post_fork" in said
    ids.append(logger.log(interaction(tenant, text="parent after fork")))
    assert logger.flush(timeout=30)
    assert sorted(stored_ids(server.store_url, tenant)) == sorted(ids)


def test_events_in_memory_at_interpreter_exit_are_sent_or_spooled(
    server: Server, tenant: str
) -> None:
    """A process that exits normally without ``close`` loses none (the exit hook closes)."""
    server.start()
    script = f"""
import sys
from pathlib import Path
from aiaudit.sdk import AuditLogger
from tests.helpers import interaction
logger = AuditLogger("127.0.0.1:{server.port}", Path({str(server.spool)!r}), api_key={server.key!r})
for i in range(2000):
    logger.log(interaction({tenant!r}, f"exit-{{i}}"))
sys.exit(0)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=subprocess_env(), timeout=120
    )
    assert done.returncode == 0
    kept = stored_ids(server.store_url, tenant)
    kept += [e for p in server.spool.glob("*.batch") for e in batch_ids(p)]
    assert sorted(kept) == sorted(f"exit-{i}" for i in range(2000))


def test_close_spools_a_batch_whose_send_the_service_never_answers(
    server: Server, tenant: str
) -> None:
    """A send started before ``close`` kept its own 10 s timeout, past close's deadline: close
    gave up on the sender and, at interpreter exit, the batch and the buffer were lost."""
    server.start()
    logger = server.logger(call_timeout=30.0)
    logger.log(interaction(tenant, text="warm-up"))
    assert logger.flush(30)
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)  # connected, never answers
    try:
        ids = [logger.log(interaction(tenant, text=f"m{i}")) for i in range(50)]
        wait_until(lambda: logger._call is not None)  # the send is in flight
        start = time.monotonic()
        logger.close(timeout=1.0)
        # The deadline, and spooling 50 events (fsynced: seconds on a loaded machine's
        # disk); far short of the send's own 30 s, which the close must not wait for.
        assert time.monotonic() - start < 1.0 + 10
        assert spooled(server.spool) == 50
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    again = server.logger()
    assert again.flush(30)
    stored = stored_ids(server.store_url, tenant)
    assert sorted(stored[1:]) == sorted(ids) and len(stored) == 51


def test_a_logger_that_fails_to_start_leaves_its_spool_directory_free(
    server: Server, tmp_path: Path
) -> None:
    """The spool's lock was taken before the channel: a missing CA file left the directory
    locked, and the corrected logger was refused (SpoolInUseError) until a restart."""
    with pytest.raises(FileNotFoundError):
        AuditLogger(f"127.0.0.1:{server.port}", server.spool, ca_file=tmp_path / "missing.pem")
    server.logger().close(timeout=1)  # the same directory, opened at once


def test_a_logger_refuses_to_send_its_key_in_clear_to_another_host(
    tmp_path: Path, tenant: str
) -> None:
    """Without ``ca_file`` the key and every event went in clear to any host (review,
    2026-12-05). Now refused at construction unless ``allow_insecure=True``, before the spool
    is locked; a server on loopback needs no opt-in (every other test here)."""
    from tests.conftest import serve_suite

    host = this_hosts_other_address()
    suite, keys = serve_suite(
        tmp_path, address=f"{host}:0", allow_insecure=True, data_dir=tmp_path / "data"
    )
    try:
        target = f"{host}:{suite.port}"
        with pytest.raises(ValueError) as err:
            AuditLogger(target, tmp_path / "spool", api_key=keys["gateway"])
        message = str(err.value)
        assert target in message and "ca_file" in message and "allow_insecure" in message
        assert keys["gateway"] not in message
        assert suite.store.log_sizes().get(tenant, 0) == 0
        # The opt-in, on the same spool directory (the refused logger did not lock it).
        logger = AuditLogger(
            target, tmp_path / "spool", api_key=keys["gateway"], allow_insecure=True
        )
        try:
            ids = [logger.log(interaction(tenant, text=f"m{i}")) for i in range(3)]
            assert logger.flush(timeout=30)
        finally:
            logger.close(timeout=5)
        assert [e.event_id for e in suite.store.read_log(tenant, 0, 10)] == ids
    finally:
        suite.stop()


def rejected_lines(spool: Path) -> list[str]:
    """The event ids in ``rejected.jsonl``, a line each, as written."""
    path = spool / "rejected.jsonl"
    if not path.exists():
        return []
    return [orjson.loads(line)["event_id"] for line in path.read_bytes().splitlines()]


def test_a_batch_whose_every_id_is_taken_sets_each_aside_once_and_holds_nothing_up(
    server: Server, tenant: str
) -> None:
    """A server that names one conflict a reply: the resend of the rest recursed once per
    conflict, past Python's limit at about 490; the whole batch was kept and sent again, its
    events set aside again each time (1742 ``on_rejected`` calls for 491 events), and the
    kept batch held every event behind it (review, 2026-12-05). A server that names every
    conflict at once is answered alike."""
    server.start()
    refused: list[str] = []
    logger = server.logger(on_rejected=lambda e, why: refused.append(e.event_id))
    taken = [f"c-{i}" for i in range(500)]
    for event_id in taken:
        logger.log(interaction(tenant, event_id, text="first"))
    assert logger.flush(timeout=60)
    for event_id in taken:
        logger.log(interaction(tenant, event_id, text="second"))
    good = logger.log(interaction(tenant, "good-1"))
    assert logger.flush(timeout=30)
    assert sorted(refused) == sorted(taken)  # each once
    assert sorted(rejected_lines(server.spool)) == sorted(taken)  # 500 lines
    assert sorted(stored_ids(server.store_url, tenant)) == sorted([*taken, good])
    assert spooled(server.spool) == 0


def test_a_spooled_batch_whose_every_id_is_taken_is_replayed_once(
    server: Server, tenant: str
) -> None:
    """The replay of a spooled batch recursed alike; the file stayed, and every replay set
    its events aside again."""
    server.start()
    first = server.logger()
    taken = [f"c-{i}" for i in range(500)]
    for event_id in taken:
        first.log(interaction(tenant, event_id, text="first"))
    assert first.flush(timeout=60)
    first.close(timeout=5)
    events = [interaction(tenant, event_id, text="second") for event_id in taken]
    events.insert(250, interaction(tenant, "good-1"))
    (server.spool / f"{1:020d}.batch").write_bytes(
        pb.AppendRequest(events=events).SerializeToString()
    )
    refused: list[str] = []
    logger = server.logger(on_rejected=lambda e, why: refused.append(e.event_id))
    assert logger.flush(timeout=30)
    assert sorted(refused) == sorted(taken)
    assert sorted(rejected_lines(server.spool)) == sorted(taken)
    assert sorted(stored_ids(server.store_url, tenant)) == sorted([*taken, "good-1"])
    assert spooled(server.spool) == 0


def test_a_subjects_damaged_data_key_sets_aside_only_that_subjects_events(
    tmp_path: Path, tenant: str
) -> None:
    """``DATA_LOSS`` (``DATA_KEY_DAMAGED``) was taken for the service being down: the batch,
    other subjects' events with it, was spooled and retried for good, holding every batch
    behind it (review, 2026-12-05). Whether the answer names the event or not (a server that
    does not is halved down to it), only that subject's events are set aside."""
    url = f"sqlite:///{tmp_path / 'sdk.db'}"  # sealed under the KEK file beside the store
    open_store(url, run_migrations=True).close()
    server = Server(url, tmp_path)
    server.start()
    try:
        before = server.logger()
        before.log(interaction(tenant, "first", user="alice"))
        assert before.flush(timeout=30)
        before.close(timeout=5)
        server.stop()
        engine = sa.create_engine(url)
        with engine.begin() as conn:  # alice's data key no longer opens
            conn.execute(
                sa.text(
                    "UPDATE content_keys SET wrapped = x'00' "
                    "WHERE log_id = :log AND subject = 'alice'"
                ),
                {"log": tenant},
            )
        engine.dispose()
        server.start()
        refused: list[tuple[str, str]] = []
        logger = server.logger(on_rejected=lambda e, why: refused.append((e.event_id, why)))
        events = [interaction(tenant, f"bob-{i}", user="bob") for i in range(40)]
        events.insert(5, interaction(tenant, "alice-1", user="alice"))
        events.insert(30, interaction(tenant, "alice-2", user="alice"))
        for e in events:
            logger.log(e)
        assert logger.flush(timeout=30)
        later = logger.log(interaction(tenant, "bob-later", user="bob"))
        assert logger.flush(timeout=30)
        assert sorted(e for e, _ in refused) == ["alice-1", "alice-2"]
        assert all(why.startswith("DATA_LOSS: ") for _, why in refused)
        assert sorted(rejected_lines(server.spool)) == ["alice-1", "alice-2"]
        bobs = [e.event_id for e in events if e.event_id.startswith("bob-")]
        assert sorted(stored_ids(url, tenant)) == sorted(["first", *bobs, later])
        assert spooled(server.spool) == 0
    finally:
        for each in server.loggers:
            each.close(timeout=1)
        server.stop()


def test_an_event_above_a_lowered_message_limit_is_set_aside_and_holds_nothing_up(
    server: Server, tenant: str
) -> None:
    """A single event refused ``RESOURCE_EXHAUSTED`` was set aside only above the SDK's own
    4 MiB: against a server with a lower ``max_message_bytes`` it was spooled, replayed first
    and refused again, for good, and every spooled batch waited behind it (review,
    2026-12-05)."""
    server.env = {
        "AIAUDIT_MAX_EVENT_BYTES": str(256 * 1024),
        "AIAUDIT_MAX_MESSAGE_BYTES": str(320 * 1024),
    }
    server.start()
    refused: list[tuple[str, str]] = []
    logger = server.logger(on_rejected=lambda e, why: refused.append((e.event_id, why)))
    ids = [logger.log(interaction(tenant, text=f"a{i}")) for i in range(10)]
    big = logger.log(sized_interaction(tenant, 1024 * 1024))
    ids += [logger.log(interaction(tenant, text=f"b{i}")) for i in range(10)]
    assert logger.flush(timeout=30)
    ids += [logger.log(interaction(tenant, text=f"c{i}")) for i in range(10)]
    assert logger.flush(timeout=30)
    assert [e for e, _ in refused] == [big]
    assert refused[0][1].startswith("RESOURCE_EXHAUSTED: ")
    assert rejected_lines(server.spool) == [big]
    assert sorted(stored_ids(server.store_url, tenant)) == sorted(ids)
    assert spooled(server.spool) == 0
