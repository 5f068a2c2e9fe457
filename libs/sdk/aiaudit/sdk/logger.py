"""AuditLogger: how an AI gateway logs every interaction without losing one or sending it twice.

ARCHITECTURE promise 1 on the client's side. ``log`` returns at once; a
sender thread sends the buffered events in batches (``Append``, at most
``batch_size`` events) and settles each event one of two ways:

- **acknowledged**: committed by the service (its receipt came back);
- **rejected**: refused for good, because of the event itself
  (``INVALID_ARGUMENT``; ``ALREADY_EXISTS``: its id is taken by different
  content; ``PERMISSION_DENIED``: a tenant the key may not write;
  ``DATA_LOSS``: its subject's data key is damaged; ``RESOURCE_EXHAUSTED``:
  larger than the service takes). Events the answer names (one or several)
  are set aside at once; an answer that names none is halved until the single
  event is found. Each is appended once to ``<spool_dir>/rejected.jsonl`` with
  the reason (logged instead if that file cannot be written) and passed once
  to ``on_rejected``; the rest of its batch is sent again.

Anything else (the service down or overloaded, its concurrent-call limit
and the key's share of its threads included, a timeout, a credential not
accepted yet) is transient, never halved: what is left of the batch goes,
in order, to the disk spool (``Spool``), new batches follow it there while
the service stays down, and the logger
retries with exponential backoff (full jitter), the oldest spooled batch its
probe. Delivery is in the order events were logged: the spool oldest first,
then a batch kept in memory (one the spool refused), then new events. Once a
call succeeds the replay goes on, consecutive spooled batches together up to
``batch_size`` events and 4 MiB of files a call (one a file until 2026-12-07); meanwhile new
events wait in memory, full batches spooled behind the backlog (``log`` does
not block for its length), and a batch the spool's bound refused follows the
backlog into the spool once the replay has freed a quarter of its bound (sent
from memory if the spool empties first), the events behind it waiting in
memory meanwhile. Until 2026-12-07 new events and the kept batch went before
the backlog, the kept batch only after ``max_backoff``; then, until the same
day's review, the kept batch waited for the spool to be empty, ``log``
blocked for the whole replay. What
part of a spooled batch is settled leaves its file, rewritten in place. Every
resend carries the same event ids, so the service stores each event once and
answers a resend with its original receipt (after a crash between writing
``rejected.jsonl`` and rewriting a spool file, a refusal may be recorded a
second time, the same event id on two lines). ``close`` (also run at
interpreter exit) spools what it could not send in time, and a logger opened
later on the same ``spool_dir`` sends it.
The spool holds at most ``max_spool_bytes`` (1 GiB unless told): a batch
that would pass it waits in memory as one the disk refuses, ``log`` blocking
at ``max_buffered``, until the replay has freed a quarter of the spool's bound
(or the service takes it from memory); close spools what is still in memory
past the bound rather than lose it.
What is lost in a crash of the gateway is only what was still in memory:
events logged since the last send or spool, at most ``batch_size`` plus
what waits in the buffer.

With ``receipts_dir`` every ``Append`` asks for signed receipts and each note
that comes back is appended there (``ReceiptFiles``, one file per log and day)
and synced before the batch counts as acknowledged (``flush``, its spool file
removed). A crash between the service's commit and that write loses the
receipt of a batch sent from memory (the events are stored); a spooled batch
is sent again and answered with its receipts signed again. A receipt the disk
refuses is logged and lost, never the events: delivery goes on. A service that cannot sign
(ingest without integrity in its process: ``FAILED_PRECONDITION``, nothing
written) is transient here: the events are spooled, none set aside, until it
can or a logger without ``receipts_dir`` sends them.
"""

from __future__ import annotations

import atexit
import base64
import dataclasses
import hashlib
import logging
import os
import random
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path

import grpc
import orjson
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from aiaudit.common import client, config
from aiaudit.common.v1 import event_pb2
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from aiaudit.sdk.receipts import ReceiptFiles
from aiaudit.sdk.spool import Spool, SpoolFullError, SpoolUsage, write_all

log = logging.getLogger(__name__)

_EVENT_INDEX = re.compile(r"^events\[(\d+)\]")
_CLOSE_GRACE = 2.0
"""How long past its deadline ``close`` waits for what is in memory to be spooled."""
_MIN_SPOOL_BYTES = 1 << 20
"""The least ``max_spool_bytes``: below a batch or so, nothing would ever be spooled (a
value meant in KiB or MiB, say), found only once the service is down."""
_RUN_BYTES = 4 << 20
"""The most spooled bytes a replay call carries, unless one file alone holds more (it goes
alone, as it was sent live). The service's default ``max_event_bytes``: a server that takes
its events takes a message this large (its ``max_message_bytes`` is at least that plus
framing), and calls this large cost as little a byte as larger ones."""


class AuditLogger:
    """Buffers events, sends them in batches, spools them while the service is down.

    Create it in the process that logs: a logger does not survive ``fork()``
    (its sender thread stays in the parent), so ``log`` raises in a child.
    """

    def __init__(
        self,
        address: str,
        spool_dir: Path,
        *,
        api_key: str | None = None,
        ca_file: Path | None = None,
        client_cert: tuple[Path, Path] | None = None,
        batch_size: int = 500,
        linger: float = 0.05,
        max_buffered: int = 10_000,
        call_timeout: float = 10.0,
        max_backoff: float = 5.0,
        exit_timeout: float = 5.0,
        on_rejected: Callable[[event_pb2.Event, str], None] | None = None,
        allow_insecure: bool = False,
        receipts_dir: Path | None = None,
        max_spool_bytes: int | None = 1 << 30,
    ) -> None:
        """Starts the sender; batches spooled by an earlier logger on ``spool_dir`` go first.

        ``client_cert``: (certificate, key) files for a service that requires
        mTLS, with ``ca_file``.
        ``linger``: how long a batch waits for more events before it is sent.
        ``max_buffered``: events held in memory; ``log`` blocks when they are
        all waiting (back-pressure, rather than losing any).
        ``exit_timeout``: the ``close`` timeout run at interpreter exit if the
        logger was not closed (events still in memory are spooled, not lost).
        ``allow_insecure``: send plaintext (``api_key`` and events in clear) to a
        service on another host, without ``ca_file``: a trusted network only.
        Without it such a logger is refused (``ValueError``); on loopback
        plaintext needs no opt-in (a service in dev or embedded mode).
        ``receipts_dir``: ask for a signed receipt of every batch and append each
        note there, to one file per log and day, for ``aiaudit verify --receipt``
        (see ``aiaudit.sdk.receipts``). The receipts are evidence kept as long as
        the audit trail, apart from the spool, which is this process's working state; several
        loggers may share the directory.
        ``max_spool_bytes``: the most the spool's batch files may hold (at least
        1 MiB; None: as much as the disk takes), those left by an earlier logger
        included. A batch that would pass it stays in memory, as if the disk refused
        it: ``log`` blocks at ``max_buffered`` rather than losing an event. Logged
        once as an ERROR when it fills, once when it has room again or the batch it
        refused was sent; ``spool_usage``.
        """
        if ca_file is None and not allow_insecure and not config.local_target(address):
            # Until 2026-12-05 the key and every event went to any host in clear (review).
            raise ValueError(
                f"AuditLogger: {address} is another host and no ca_file is given, so the "
                "API key and every event would travel in clear; give ca_file (the service's "
                "CA), or allow_insecure=True for a trusted network"
            )
        _check_max_spool_bytes(max_spool_bytes)
        # gRPC's own reconnect backoff grows to 2 minutes: capped at ours, the first
        # retry after the service is back finds it connected.
        backoff_ms = int(max_backoff * 1000)
        options = [
            ("grpc.initial_reconnect_backoff_ms", min(100, backoff_ms)),
            ("grpc.min_reconnect_backoff_ms", min(100, backoff_ms)),
            ("grpc.max_reconnect_backoff_ms", backoff_ms),
        ]
        # First: refused if another logger holds the directory.
        self._spool = Spool(spool_dir, max_spool_bytes)
        try:
            self._receipts = ReceiptFiles(receipts_dir) if receipts_dir is not None else None
            self._channel = client.channel(address, api_key, ca_file, options, client_cert)
        except BaseException:  # a bad ca_file, say: the directory is not left locked
            self._spool.close()
            raise
        self._stub = pb_grpc.IngestServiceStub(self._channel)  # type: ignore[no-untyped-call]
        self._rejected_file = spool_dir / "rejected.jsonl"
        self._batch = batch_size
        self._linger = linger
        self._max_buffered = max_buffered
        self._call_timeout = call_timeout
        self._max_backoff = max_backoff
        self._exit_timeout = exit_timeout
        self._on_rejected = on_rejected
        self._pid = os.getpid()
        # One lock guards the buffer and the counts below; each condition is one kind of wait.
        self._lock = threading.Lock()
        self._has_work = threading.Condition(self._lock)
        """The sender waits: for events, for close."""
        self._has_room = threading.Condition(self._lock)
        """``log`` waits: for room in the buffer, for close (then it raises)."""
        self._settled = threading.Condition(self._lock)
        """``flush`` waits: the sender notifies after every round."""
        self._buffer: deque[event_pb2.Event] = deque()
        self._in_hand = 0
        """Events logged and not yet acknowledged, rejected or spooled."""
        self._closed = False
        self._deadline = float("inf")
        self._released = False
        # The sender's own state.
        self._carry: list[event_pb2.Event] = []
        """A batch the spool refused (its disk or its bound): sent or spooled again first."""
        self._carry_at = 0.0
        self._carry_full = False
        """The carry was refused for the spool's bound (not by its disk): spooled past it
        as soon as the logger closes."""
        self._kept_for_bound = False
        """A batch the spool's bound refused is in memory (the carry, or the batch being sent
        or spooled): ``spool_usage`` says full until it leaves, read from other threads."""
        self._settled_in: dict[Path, set[bytes]] = {}
        """Per spool file whose rewrite the disk refused: its events already settled."""
        self._call: grpc.Future[pb.AppendResponse] | None = None
        """The ``Append`` in flight, which ``close`` cancels at its deadline (then spooled)."""
        self._backoff = 0.0
        self._retry_at = 0.0
        self._thread = threading.Thread(target=self._run, name="aiaudit-logger", daemon=True)
        self._thread.start()
        atexit.register(self._at_exit)

    # ---- the caller's side ------------------------------------------------

    def log(self, event: event_pb2.Event) -> str:
        """Queues ``event`` (the logger's from now on); returns its id, assigned if it had none.

        The id is the idempotency key every resend carries. Blocks while
        ``max_buffered`` events wait; raises ``RuntimeError`` once closed (also
        when close comes while it blocks) and in a process forked after the
        logger was created, where nothing would ever send the event.
        """
        self._check_process()
        if not event.event_id:
            event.event_id = str(uuid.uuid4())
        with self._lock:
            while not self._closed and len(self._buffer) >= self._max_buffered:
                self._has_room.wait()
            if self._closed:
                raise RuntimeError("the audit logger is closed")
            self._buffer.append(event)
            self._in_hand += 1
            self._has_work.notify()
        return event.event_id

    def flush(self, timeout: float) -> bool:
        """Waits until every event logged so far, and every spooled one, is settled.

        Settled: acknowledged or rejected. False if some still wait after ``timeout`` seconds.
        True says nothing is left to this logger, not that every event is stored: False
        would say a longer wait could help, and a refusal is for good. Which events were
        refused is told by ``on_rejected`` and ``rejected.jsonl``, each as it happens.
        """
        self._check_process()
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._in_hand or self._spool.pending():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._settled.wait(left)
        return True

    def spool_usage(self) -> SpoolUsage:
        """The spool's size, files and whether it is full: for the gateway's metrics.

        Kept as the spool changes (no listing of the directory), read without
        waiting for the sender. Full until the batch the bound refused has left memory
        (spooled or sent): the spool alone has it full until it has room for that batch,
        which waits for a quarter of the bound (``_carry_due``); until 2026-12-07 ``full``
        turned False meanwhile, a gateway's metric saying no batch waits while one did.
        The logger's flag is read first: it is set after the spool's and cleared after it,
        so a reading between the two still says full.
        """
        kept = self._kept_for_bound
        usage = self._spool.usage()
        return dataclasses.replace(usage, full=True) if kept else usage

    def close(self, timeout: float = 10.0) -> None:
        """Sends what it can within ``timeout``; the rest stays spooled for the next logger.

        Returns within ``timeout`` plus the time to spool what is still in
        memory (at most ``_CLOSE_GRACE`` more). A ``log`` blocked on a full
        buffer raises instead of holding close up. Does nothing in a forked child.
        """
        if os.getpid() != self._pid:
            return  # the parent's logger: nothing of it runs here
        with self._lock:
            if not self._closed:
                self._closed = True
                self._deadline = time.monotonic() + timeout
                self._has_work.notify_all()
                self._has_room.notify_all()
            deadline = self._deadline
        self._thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            call = self._call
        if call is not None:  # a send started before close keeps its own timeout: cut it short
            call.cancel()
        self._thread.join(_CLOSE_GRACE)
        if self._thread.is_alive():
            log.error("audit logger's sender did not finish by close; events in memory may be lost")
            return
        with self._lock:
            if self._released:
                return
            self._released = True
        atexit.unregister(self._at_exit)
        self._channel.close()
        self._spool.close()
        usage = self._spool.usage()
        if usage.max_spool_bytes is not None and usage.spooled_bytes > usage.max_spool_bytes:
            log.error(
                "audit spool %s closed at %d bytes in %d files, past max_spool_bytes %d: the "
                "events still in memory were spooled rather than lost; the next logger on it "
                "sends them first",
                self._spool.directory,
                usage.spooled_bytes,
                usage.spooled_files,
                usage.max_spool_bytes,
            )

    def _at_exit(self) -> None:
        """The interpreter exits without ``close``: spool (or send) what is still in memory."""
        if os.getpid() == self._pid:
            self.close(self._exit_timeout)

    def _check_process(self) -> None:
        if os.getpid() != self._pid:
            raise RuntimeError(
                f"this AuditLogger was created in process {self._pid}, before fork(): it sends "
                "nothing from this one. Create a logger in each process after fork (e.g. in "
                "gunicorn's post_fork hook), each with its own spool_dir"
            )

    # ---- the sender thread ------------------------------------------------

    def _run(self) -> None:
        while True:
            backlog = bool(self._spool.pending())
            events, closing = self._take(backlog)
            if events:  # sent only if nothing older waits, else spooled behind it or kept
                self._settle(events)
            if backlog and self._up() and not (closing and events and self._buffered()):
                try:
                    self._replay_next()
                except Exception:  # the spool's disk refused: try again later, without spinning
                    log.exception("audit spool replay failed, retried in %.1f s", self._max_backoff)
                    self._retry_at = time.monotonic() + self._max_backoff
            with self._lock:
                self._settled.notify_all()
            if closing and self._finished():
                return

    def _buffered(self) -> bool:
        """Whether events wait in the buffer: once closing, spooled before the next replay call.

        Until the review of 2026-12-07 one batch a round went to the disk, between the
        replay's calls (each of up to ``batch_size`` files, and their removal): 10,000 events
        in memory waited 20 such rounds, and what close's ``_CLOSE_GRACE`` did not spool was
        lost at exit. Only after a round that took events: a batch the disk refuses stays
        the carry, and the replay goes on meanwhile.
        """
        with self._lock:
            return bool(self._buffer)

    def _take(self, backlog: bool) -> tuple[list[event_pb2.Event], bool]:
        """The next batch (none: a round of replay only), and whether the logger closes.

        Waits, never spins. Ready: the carry once its retry is due; new events
        (then up to ``linger`` for more, unless the backlog is being replayed or
        the logger closes); a backlog once a retry is due; close. While the
        backlog is replayed, new events are taken only as a full batch (or at
        close), to be spooled behind it: fewer wait in memory for the spool to
        empty, rather than each round spool a file of a few, which the replay of
        one file a round would never catch up with.
        """
        with self._lock:
            while True:
                now = time.monotonic()
                if self._carry:
                    carry_due = min(self._carry_due(now, backlog), self._deadline)
                    # Rounds of replay go on meanwhile: the older batches go first.
                    due = min(carry_due, self._retry_at) if backlog else carry_due
                    ready = now >= due
                else:
                    due = min(self._retry_at, self._deadline) if backlog else self._deadline
                    ready = bool(self._buffer) or now >= due or (self._closed and not backlog)
                if ready:
                    break
                self._has_work.wait(None if due == float("inf") else due - now)
            if self._carry:
                if now < carry_due:
                    return [], self._closed
                events, self._carry = self._carry, []
                return events, self._closed
            # No lingering while the backlog is replayed: a round takes a call anyway.
            replaying = backlog and time.monotonic() >= self._retry_at
            full = min(self._batch, self._max_buffered)
            if replaying and not self._closed and len(self._buffer) < full:
                return [], False
            end = time.monotonic() + self._linger
            while self._buffer and len(self._buffer) < self._batch:
                left = end - time.monotonic()
                if self._closed or replaying or left <= 0:
                    break
                self._has_work.wait(left)
            count = min(len(self._buffer), self._batch)
            events = [self._buffer.popleft() for _ in range(count)]
            if events:
                self._has_room.notify_all()
            return events, self._closed

    def _carry_due(self, now: float, backlog: bool) -> float:
        """When to try the carry again.

        Refused for the spool's bound: put behind the backlog once the replay has freed a
        quarter of the bound (``_spool_has_slack``), the events behind it then following
        as full batches; with the spool empty, at the service's next retry (at once while
        it answers). Until 2026-12-07 it waited for the spool to be empty, and ``log``
        blocked at ``max_buffered`` for the whole replay of up to ``max_spool_bytes`` with
        the service answering (review); put back as soon as one batch had room, new
        batches would fill the spool again, an ERROR and an INFO line a round, where a
        quarter of the bound is that much replay between two. Refused by the disk: after
        ``max_backoff``, not in a busy loop. Refused for the bound while closing: now, to
        be spooled past it, not in close's last seconds.
        """
        if self._carry_full and self._closed:
            return now
        if self._carry_full and backlog:
            return now if self._spool_has_slack() else float("inf")
        if self._carry_full:
            return self._retry_at
        return self._carry_at

    def _spool_has_slack(self) -> bool:
        """Whether a quarter of the spool's bound is free, and room for the batch it refused.

        A batch refused again counts the spool full: no round of puts refused in a loop.
        """
        usage = self._spool.usage()
        bound = usage.max_spool_bytes
        return not usage.full and (bound is None or usage.spooled_bytes <= bound - bound // 4)

    def _settle(self, events: list[event_pb2.Event]) -> None:
        """Sends the batch if nothing older waits, else spools it behind what does.

        Sent only with the spool empty and the service not backing off: a batch is
        never sent before the spooled batches logged earlier. If the disk refuses, or
        the spool is at ``max_spool_bytes`` (logged by the spool as it fills), the batch
        is kept (``_carry``, ``_carry_due``), spooled behind the backlog once the replay has
        freed a quarter of its bound, or sent once the spool is empty and the service back.
        Once the logger closes it is spooled past the bound, and so is what follows it:
        until 2026-12-07 only past close's deadline, ``_CLOSE_GRACE`` left to spool up to
        ``max_buffered`` events (10,000 of 20 KB took 2.5 s), the rest lost at exit (review).
        """
        left = events
        try:
            if self._up() and not self._spool.pending():
                left = self._deliver(events)
                if not left:
                    self._spool.sent()
            if left:
                left = self._spool_what_fits(left)
            if left:
                self._carry, self._carry_full = left, True
        except Exception:
            log.exception("audit events not sent nor spooled, %d kept to retry", len(left))
            self._carry, self._carry_full = left, False
            self._carry_at = time.monotonic() + self._max_backoff
        self._kept_for_bound = bool(self._carry) and self._carry_full
        with self._lock:
            self._in_hand -= len(events) - len(left)

    def _spool_what_fits(self, events: list[event_pb2.Event]) -> list[event_pb2.Event]:
        """Spools ``events``; returns those the spool's bound refused, in their order.

        A batch of several events larger than the bound itself is spooled in halves, each
        a file: refused whole, it never reached the disk, however empty (500 events, the
        default ``batch_size``, of 3 KB pass 1 MiB: ``log`` blocked on an empty spool and
        a crash lost them all; review, 2026-12-07). Raises what the disk raises: the whole
        batch is then kept, its parts already spooled sent twice, answered alike (same ids).
        """
        todo: deque[list[event_pb2.Event]] = deque([events])
        while todo:
            part = todo.popleft()
            try:
                self._spool.put(pb.AppendRequest(events=part), past_bound=self._closed)
            except SpoolFullError as full:
                if not full.divisible:
                    return _rest(part, todo)
                half = len(part) // 2
                todo.extendleft([part[half:], part[:half]])
        return []

    def _finished(self) -> bool:
        """Whether close's work is done: nothing in memory, the spool sent or the deadline past."""
        with self._lock:
            waiting = len(self._buffer)
        if self._late() and self._carry:
            log.error(
                "%d audit events neither sent nor spooled by close", len(self._carry) + waiting
            )
            return True
        return not waiting and not self._carry and (self._late() or not self._spool.pending())

    def _up(self) -> bool:
        """Whether to try the service now (not backing off, not past ``close``'s deadline)."""
        return time.monotonic() >= self._retry_at and not self._late()

    def _late(self) -> bool:
        return time.monotonic() >= self._deadline

    def _replay_next(self) -> None:
        """Sends the oldest spooled files together: one batch a round, so new events never wait.

        Consecutive files of at most ``batch_size`` events in all go in one call (``_next_run``).
        Until 2026-12-07 a round sent one file: an outage with light traffic (files of a few
        events, one per ``linger``) cost a call a file, 2,000 one-event files 12 s against a
        local server (review). The calls settle events, not files, each event as in a batch
        from memory (refused ones set aside alone, an answer naming none halved across the
        files): what of a file is settled leaves it only once ``_deliver`` has returned, i.e.
        the calls carrying those events were answered; it is rewritten in place with the rest,
        or removed once none is left. If the disk refuses that, the settled events are
        remembered (``_settled_in``) and left out of the file's next resend: a refused event is
        set aside once, not once per replay.
        """
        run = self._next_run()
        events = [e for _, _, unsettled in run for e in unsettled]
        left = self._deliver(events) if events else []
        kept = {id(e) for e in left}
        changed: list[tuple[Path, list[event_pb2.Event]]] = []
        for path, spooled, unsettled in run:
            rest = [e for e in unsettled if id(e) in kept]
            if len(rest) == len(spooled.events):
                continue  # nothing of it settled
            done = {_fingerprint(e) for e in unsettled if id(e) not in kept}
            self._settled_in[path] = self._settled_in.get(path, set()) | done
            changed.append((path, rest))
        for path, rest in changed:  # each file's settled events are remembered first
            if rest:
                self._spool.replace(path, pb.AppendRequest(events=rest))
                del self._settled_in[path]
        gone = [path for path, rest in changed if not rest]
        if gone:
            self._spool.remove(*gone)
        for path in gone:
            del self._settled_in[path]

    def _next_run(self) -> list[tuple[Path, pb.AppendRequest, list[event_pb2.Event]]]:
        """The oldest spooled files whose unsettled events make one batch, at least one file.

        Each file with its batch and its events still to send. Bounded by ``batch_size``
        events, as a batch from memory is, and by ``_RUN_BYTES`` of files, counted as kept
        before one is read. Bounded by events alone (until the review of 2026-12-07), 500
        one-event files of 200 KB went as one call of 100 MB: a server at its default
        ``max_message_bytes`` (64 MiB) refused it, every round, before halves went, and the
        replay held 500 files, their request and its bytes in memory at once, where it had
        held one file. The oldest readable file goes whatever its size (an earlier logger's,
        of a larger ``batch_size``).
        """
        run: list[tuple[Path, pb.AppendRequest, list[event_pb2.Event]]] = []
        count = total = 0
        for path, size in self._spool.pending_sizes():
            if run and total + size > _RUN_BYTES:
                break
            spooled = self._spool.read(path)
            if spooled is None:
                continue  # set aside (and logged) by the spool
            settled = self._settled_in.get(path)
            unsettled = (
                [e for e in spooled.events if _fingerprint(e) not in settled]
                if settled
                else list(spooled.events)
            )
            if run and count + len(unsettled) > self._batch:
                break
            run.append((path, spooled, unsettled))
            count += len(unsettled)
            total += size
            if count >= self._batch:
                break
        return run

    def _deliver(self, events: list[event_pb2.Event]) -> list[event_pb2.Event]:
        """Sends one batch; returns the events a transient failure left, in their order.

        A loop, not a recursion: each answer settles part of what is left (an
        acknowledged part, the events it names as refused, a half) and the rest
        is sent again. A batch of 500 events each refused on its own took 500
        nested calls, passed Python's recursion limit, and the whole batch was
        kept to retry, its refused events set aside again on every try, for good
        (review, 2026-12-05). Never raises: what is settled stays settled, the rest
        is returned (spooled by the caller).
        """
        todo: deque[list[event_pb2.Event]] = deque([events])
        while todo:
            chunk = todo.popleft()
            if self._late():  # close's deadline: what is left is spooled
                return _rest(chunk, todo)
            try:
                response = self._send(chunk)
            except grpc.FutureCancelledError:  # close's deadline came: spooled instead
                return _rest(chunk, todo)
            except grpc.RpcError as err:
                settled = self._failed(chunk, err)
                if settled is None:
                    self._gone_down(err.code(), err.details(), _reason(err))
                    return _rest(chunk, todo)
                todo.extendleft(reversed(settled))
            except Exception as exc:  # a fault of this process: the batch is kept, not lost
                log.exception("audit batch of %d events not sent", len(chunk))
                self._gone_down(None, repr(exc))
                return _rest(chunk, todo)
            else:
                self._recovered()
                if self._receipts is not None:  # before the batch counts as acknowledged
                    self._receipts.keep(response.signed_receipts)
        return []

    def _send(self, events: list[event_pb2.Event]) -> pb.AppendResponse:
        """One ``Append`` of ``events`` (signed receipts asked with ``receipts_dir``); its answer.

        Raises what the call raised.
        """
        timeout = min(self._call_timeout, max(0.1, self._deadline - time.monotonic()))
        request = pb.AppendRequest(events=events, sign_receipts=self._receipts is not None)
        call = self._stub.Append.future(request, timeout=timeout)
        with self._lock:
            self._call = call
        try:
            response: pb.AppendResponse = call.result()
            return response
        finally:
            with self._lock:
                self._call = None

    def _failed(
        self, events: list[event_pb2.Event], err: grpc.RpcError
    ) -> list[list[event_pb2.Event]] | None:
        """Settles what the answer refuses; the parts to send next, or None if transient.

        Events the answer names (``events[i]``, one or several, in an ErrorInfo or a
        BadRequest; a tenant the key may not write) are set aside at once. An answer
        about the batch that names none is halved until the single event is found,
        which is then set aside: ``INVALID_ARGUMENT``, ``PERMISSION_DENIED``,
        ``DATA_LOSS`` (a subject's damaged data key: until 2026-12-05 the whole batch
        was retried for good, other subjects' events with it), ``RESOURCE_EXHAUSTED``
        when gRPC says the message is too large, whatever the event's size (a server
        with a lower ``max_message_bytes`` held every batch behind such an event,
        review 2026-12-05). An unlabelled ``RESOURCE_EXHAUSTED`` is halved alike, then
        transient for the single event, however large: it is kept and sent again.

        The server's concurrent-call limit (gRPC's ``Concurrent RPC limit exceeded!``,
        refused before any handler runs) is transient at once, the whole batch kept:
        until 2026-12-05 it was halved too, about 9 more calls for a batch of 500 to a
        server already full, from every gateway at once (review). So is the key's share
        of the server's threads (:data:`_LOAD_REASONS`), halved until 2026-12-06.
        """
        code = err.code()
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and (
            _AT_LIMIT in (err.details() or "") or _reason(err) in _LOAD_REASONS
        ):
            return None  # the server's load, not the batch: halving only adds calls
        refused, listed = _refused_events(err, events)
        if refused:
            for i, why in sorted(refused.items()):
                self._reject(events[i], f"{code.name}: {why}")
            rest = [e for i, e in enumerate(events) if i not in refused]
            if listed or len(rest) < 2:
                return [rest] if rest else []
            # A server that names one conflict a reply: the rest is sent in halves, so a
            # batch of 500 conflicts costs the server about 500 x 9 events checked, not
            # 500 x 250 (the calls are one a conflict either way).
            half = len(rest) // 2
            return [rest[:half], rest[half:]]
        if code not in _HALVED:
            return None
        if len(events) > 1:  # too many or too large together, or one the service refuses
            half = len(events) // 2
            return [events[:half], events[half:]]
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and not _too_large(err):
            return None  # not said to be its size: kept, as a load refusal would be
        self._reject(events[0], f"{code.name}: {err.details()}")
        return []

    def _gone_down(
        self, code: grpc.StatusCode | None, details: str | None, reason: str = ""
    ) -> None:
        if not self._backoff and reason == _NO_SIGNER:
            log.error(
                "audit service cannot sign receipts and this logger keeps them (receipts_dir): "
                "events are spooled, none set aside, until it can (ingest served with "
                "integrity in its process) or a logger without receipts_dir sends them: %s",
                details,
            )
        elif not self._backoff:
            log.warning("audit service unavailable, spooling: %s %s", code, details)
        self._backoff = min(max(self._backoff * 2, 0.1), self._max_backoff)
        # Full jitter: gateways cut off together do not all come back at the same instant.
        self._retry_at = time.monotonic() + random.uniform(0, self._backoff)

    def _recovered(self) -> None:
        if self._backoff:
            log.info("audit service reachable again")
        self._backoff = 0.0
        self._retry_at = 0.0

    def _reject(self, event: event_pb2.Event, why: str) -> None:
        """Sets a refused event aside: in ``rejected.jsonl``, then ``on_rejected``.

        If the file cannot be written (a full disk), the refusal is logged and
        delivery goes on: holding the batch would hold every event behind it.
        """
        line = {
            "event_id": event.event_id,
            "reason": why,
            "event": base64.b64encode(event.SerializeToString()).decode(),
        }
        try:
            _append_line(self._rejected_file, orjson.dumps(line) + b"\n")
        except OSError as err:
            log.error(
                "audit event %s refused for good: %s; not recorded in %s: %s",
                event.event_id,
                why,
                self._rejected_file,
                err,
            )
        else:
            log.error("audit event %s refused for good: %s", event.event_id, why)
        if self._on_rejected is not None:
            try:
                self._on_rejected(event, why)
            except Exception:
                log.exception("on_rejected failed for audit event %s", event.event_id)


def _check_max_spool_bytes(value: object) -> None:
    """Refuses a bound that is no whole number of bytes, or below ``_MIN_SPOOL_BYTES``."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < _MIN_SPOOL_BYTES:
        raise ValueError(
            f"AuditLogger: max_spool_bytes={value!r}: give a whole number of bytes of at "
            f"least {_MIN_SPOOL_BYTES} (1 MiB), e.g. {1 << 30} for 1 GiB, or None for a "
            "spool bounded only by its disk"
        )


def _append_line(path: Path, line: bytes) -> None:
    """Appends ``line``; after a torn last line, on a line of its own.

    A write cut short (the disk full mid-write, the process killed) leaves part
    of a line: the next record was glued to it, and both read as neither
    (review, 2026-12-07).
    """
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        write_all(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


_HALVED = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.DATA_LOSS,
)
"""Answers about the batch, not the service: halved until the event is found, then set aside
(``RESOURCE_EXHAUSTED`` except the server's concurrent-call limit, ``_AT_LIMIT``, and the
key's thread share, ``_LOAD_REASONS``). One the key may not write (another tenant's) held
every batch spooled behind it, for good (review, 2026-12-05); so did one of a subject whose
data key is damaged (``DATA_LOSS``, ``DATA_KEY_DAMAGED``) and one above a server's lower
``max_message_bytes``."""
_PER_EVENT = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.DATA_LOSS,
)
"""Answers whose ``events[i]`` are the refused events themselves."""
_NO_SIGNER = "RECEIPT_SIGNING_NOT_AVAILABLE"
"""The reason of ingest's ``FAILED_PRECONDITION`` to ``sign_receipts`` without integrity in its
process (nothing written): transient to the SDK like any other code not about the batch, so
the events wait in the spool rather than being set aside, and the error says why."""
_TOO_LARGE = "larger than max"
"""What gRPC says of a message above the receiver's limit (``Received message larger than
max (N vs. M)``): set aside once halving finds the event."""
_AT_LIMIT = "Concurrent RPC limit exceeded"
"""What gRPC's server says of a call beyond its ``maximum_concurrent_rpcs`` (1024 for
``aiaudit serve``): the server's load, so the batch is retried whole, never halved nor set
aside."""


_LOAD_REASONS = frozenset({"CALLER_SHARE_EXHAUSTED"})
"""``ErrorInfo`` reasons of a ``RESOURCE_EXHAUSTED`` that is the server's load on this key,
not the batch: the key's calls in progress at its share of the server's threads
(``caller_thread_share``). Retried whole, as :data:`_AT_LIMIT`."""


def _too_large(err: grpc.RpcError) -> bool:
    """Whether a ``RESOURCE_EXHAUSTED`` is about the message's size: what gRPC says, only.

    An event above 4 MiB (the service's default ``max_event_bytes``) was taken as too
    large whatever the answer said: refused at the server's concurrent-call limit, it
    was set aside for good although a server with a larger ``max_event_bytes`` takes
    it (review, 2026-12-05). One the server does not take is refused ``INVALID_ARGUMENT``
    naming it, or with this message above its ``max_message_bytes``.
    """
    return _TOO_LARGE in (err.details() or "")


def _reason(err: grpc.RpcError) -> str:
    """The ``ErrorInfo`` reason of a refusal, if it carries one."""
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    return ""


def _rest(
    chunk: list[event_pb2.Event], todo: deque[list[event_pb2.Event]]
) -> list[event_pb2.Event]:
    return [*chunk, *(e for part in todo for e in part)]


def _fingerprint(event: event_pb2.Event) -> bytes:
    return hashlib.blake2b(event.SerializeToString(), digest_size=16).digest()


def _refused_events(
    err: grpc.RpcError, events: list[event_pb2.Event]
) -> tuple[dict[int, str], bool]:
    """The batch's events the answer refuses, each with why; whether it lists them all.

    ``events[3]...`` named in a BadRequest's violations or an ErrorInfo's ``field``
    (one or several: a server that lists every conflict of a batch at once, or one
    a reply), for the codes whose named events are the refused ones; for
    ``PERMISSION_DENIED`` on ``events.write``, every event of the tenant it names.
    Listed: the answer holds a BadRequest naming events (as many as its trailers
    hold), or names a tenant; an ErrorInfo alone names the first refused event only.
    """
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    if status is None:
        return {}, False
    code = err.code()
    found: dict[int, str] = {}
    listed = False
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            for v in bad.field_violations:
                if code in _PER_EVENT and (m := _EVENT_INDEX.match(v.field)):
                    found.setdefault(int(m[1]), f"{v.field}: {v.description}")
                    listed = True
        elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            field = info.metadata.get("field", "")
            if code in _PER_EVENT and (m := _EVENT_INDEX.match(field)):
                found.setdefault(int(m[1]), f"{info.reason}: {status.message}")
            tenant = info.metadata.get("tenant")
            if (
                code == grpc.StatusCode.PERMISSION_DENIED
                and info.metadata.get("permission") == "events.write"
                and tenant
            ):
                listed = True
                for i, event in enumerate(events):
                    if event.tenant_id == tenant:
                        found.setdefault(i, f"{info.reason}: {status.message}")
    return {i: why for i, why in found.items() if i < len(events)}, listed
