"""AuditLogger: how an AI gateway logs every interaction without losing one or sending it twice.

ARCHITECTURE promise 1 on the client's side. ``log`` returns at once; a
sender thread sends the buffered events in batches (``Append``, at most
``batch_size`` events) and settles each event one of two ways:

- **acknowledged**: committed by the service (its receipt came back);
- **rejected**: refused for good, because the event itself is wrong
  (``INVALID_ARGUMENT`` naming it, or ``ALREADY_EXISTS``: its id is taken by
  different content). It is appended to ``<spool_dir>/rejected.jsonl`` with
  the reason and passed to ``on_rejected``; the rest of its batch is sent again.

Anything else (the service down or overloaded, a timeout, a credential not
accepted yet) is transient: the batch goes to the disk spool (``Spool``),
new batches follow it there while the service stays down, and the logger
retries with exponential backoff, replaying the spool oldest first once a
call succeeds. A batch too large for the service is split. Every resend
carries the same event ids, so the service stores each event once and
answers a resend with its original receipt. ``close`` spools what it could
not send in time, and a logger opened later on the same ``spool_dir`` sends it.
What is lost in a crash of the gateway is only what was still in memory:
events logged since the last send or spool, at most ``batch_size`` plus
what waits in the buffer.
"""

from __future__ import annotations

import base64
import logging
import os
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import grpc
import orjson
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from aiaudit.common import client
from aiaudit.common.v1 import event_pb2
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from aiaudit.sdk.spool import Spool, write_all

log = logging.getLogger(__name__)

MAX_EVENT_BYTES = 4 * 1024 * 1024
"""The service's stated limit of one event: larger ones are refused, not retried."""
_EVENT_INDEX = re.compile(r"^events\[(\d+)\]")
_CLOSE = object()


class AuditLogger:
    """Buffers events, sends them in batches, spools them while the service is down."""

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
        on_rejected: Callable[[event_pb2.Event, str], None] | None = None,
    ) -> None:
        """Starts the sender; batches spooled by an earlier logger on ``spool_dir`` go first.

        ``client_cert``: (certificate, key) files for a service that requires
        mTLS, with ``ca_file``.
        ``linger``: how long a batch waits for more events before it is sent.
        ``max_buffered``: events held in memory; ``log`` blocks when they are
        all waiting (back-pressure, rather than losing any).
        """
        # gRPC's own reconnect backoff grows to 2 minutes: capped at ours, the first
        # retry after the service is back finds it connected.
        backoff_ms = int(max_backoff * 1000)
        options = [
            ("grpc.initial_reconnect_backoff_ms", min(100, backoff_ms)),
            ("grpc.min_reconnect_backoff_ms", min(100, backoff_ms)),
            ("grpc.max_reconnect_backoff_ms", backoff_ms),
        ]
        self._spool = Spool(spool_dir)  # first: refused if another logger holds the directory
        self._channel = client.channel(address, api_key, ca_file, options, client_cert)
        self._stub = pb_grpc.IngestServiceStub(self._channel)  # type: ignore[no-untyped-call]
        self._rejected_file = spool_dir / "rejected.jsonl"
        self._batch = batch_size
        self._linger = linger
        self._call_timeout = call_timeout
        self._max_backoff = max_backoff
        self._on_rejected = on_rejected
        self._queue: queue.Queue[object] = queue.Queue(max_buffered)
        self._settled = threading.Condition()
        self._in_hand = 0
        """Events logged and not yet acknowledged, rejected or spooled."""
        self._carry: list[event_pb2.Event] = []
        """A batch the spool's disk refused: sent or spooled again first."""
        self._backoff = 0.0
        self._retry_at = 0.0
        self._deadline = float("inf")
        self._closed = False
        self._closing = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="aiaudit-logger", daemon=True)
        self._thread.start()

    # ---- the caller's side ------------------------------------------------

    def log(self, event: event_pb2.Event) -> str:
        """Queues ``event`` (the logger's from now on); returns its id, assigned if it had none.

        The id is the idempotency key every resend carries.
        """
        if not event.event_id:
            event.event_id = str(uuid.uuid4())
        with self._closing:  # never queued behind close's marker, where nothing reads
            if self._closed:
                raise RuntimeError("the audit logger is closed")
            with self._settled:
                self._in_hand += 1
            self._queue.put(event)
        return event.event_id

    def flush(self, timeout: float) -> bool:
        """Waits until every event logged so far, and every spooled one, is settled.

        Settled: acknowledged or rejected. False if some still wait after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._settled:
            while self._in_hand or self._spool.pending():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._settled.wait(left)  # the sender notifies after every batch it handles
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Sends what it can within ``timeout``; the rest stays spooled for the next logger."""
        with self._closing:
            if self._closed:
                return
            self._closed = True
        self._deadline = time.monotonic() + timeout
        self._queue.put(_CLOSE)
        self._thread.join()
        self._channel.close()
        self._spool.close()

    # ---- the sender thread ------------------------------------------------

    def _run(self) -> None:
        closing = False
        while True:
            events, closing = self._take(closing)
            try:
                if self._up() and self._spool.pending():
                    self._replay()  # if the service fails again, the new batch is spooled below
                if events:
                    left = self._deliver(events) if self._up() else events
                    if left:
                        self._spool.put(pb.AppendRequest(events=left))
                    self._let_go(len(events))
            except Exception:  # the spool's disk refused (or worse): nothing is dropped
                log.exception("audit events not sent nor spooled, %d kept to retry", len(events))
                self._carry = events
                self._retry_at = time.monotonic() + self._max_backoff
            with self._settled:
                self._settled.notify_all()
            if closing and self._late() and self._carry:
                log.error("%d audit events neither sent nor spooled by close", len(self._carry))
                return
            done = not self._spool.pending() or self._late()
            if closing and self._queue.empty() and not self._carry and done:
                return

    def _take(self, closing: bool) -> tuple[list[event_pb2.Event], bool]:
        """The next batch: waits for a first event (or the next retry), then ``linger`` more."""
        events, self._carry = self._carry, []
        wait: float | None = None
        if closing or events or self._spool.pending():
            wait = max(0.0, min(self._retry_at - time.monotonic(), self._max_backoff))
        end = float("inf")
        while len(events) < self._batch:
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                break
            if item is _CLOSE:
                closing = True
                break
            assert isinstance(item, event_pb2.Event)
            events.append(item)
            if end == float("inf"):
                end = time.monotonic() + (0.0 if closing else self._linger)
            wait = max(0.0, end - time.monotonic())
        return events, closing

    def _up(self) -> bool:
        """Whether to try the service now (not backing off, not past ``close``'s deadline)."""
        return time.monotonic() >= self._retry_at and not self._late()

    def _late(self) -> bool:
        return time.monotonic() >= self._deadline

    def _replay(self) -> None:
        """Sends the spooled batches oldest first, until the service fails again."""
        for path in self._spool.pending():
            spooled = self._spool.read(path)
            if spooled is None:
                log.error("audit spool file %s is damaged: set aside as .damaged", path)
                continue
            events = list(spooled.events)
            left = self._deliver(events)
            if left and len(left) < len(events):  # part settled: keep only the rest
                self._spool.put(pb.AppendRequest(events=left))
            if len(left) < len(events):
                self._spool.remove(path)
            if left or not self._up():
                return

    def _deliver(self, events: list[event_pb2.Event]) -> list[event_pb2.Event]:
        """Sends one batch; returns the events a transient failure left (refused ones set aside)."""
        timeout = min(self._call_timeout, max(0.1, self._deadline - time.monotonic()))
        try:
            self._stub.Append(pb.AppendRequest(events=events), timeout=timeout)
        except grpc.RpcError as err:
            return self._failed(events, err)
        self._recovered()
        return []

    def _failed(self, events: list[event_pb2.Event], err: grpc.RpcError) -> list[event_pb2.Event]:
        code = err.code()
        refused = _refused_events(err) if code in _PER_EVENT else {}
        refused = {i: why for i, why in refused.items() if i < len(events)}
        if refused:
            for i, why in sorted(refused.items()):
                self._reject(events[i], f"{code.name}: {why}")
            rest = [e for i, e in enumerate(events) if i not in refused]
            return self._deliver(rest) if rest else []
        if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED):
            if len(events) > 1:  # too many or too large together: halve
                half = len(events) // 2
                left = self._deliver(events[:half])
                return left + events[half:] if left else self._deliver(events[half:])
            if code == grpc.StatusCode.INVALID_ARGUMENT or events[0].ByteSize() > MAX_EVENT_BYTES:
                self._reject(events[0], f"{code.name}: {err.details()}")
                return []
        self._gone_down(err)
        return events

    def _gone_down(self, err: grpc.RpcError) -> None:
        if not self._backoff:
            log.warning("audit service unavailable, spooling: %s %s", err.code(), err.details())
        self._backoff = min(max(self._backoff * 2, 0.1), self._max_backoff)
        self._retry_at = time.monotonic() + self._backoff

    def _recovered(self) -> None:
        if self._backoff:
            log.info("audit service reachable again")
        self._backoff = 0.0
        self._retry_at = 0.0

    def _reject(self, event: event_pb2.Event, why: str) -> None:
        line = {
            "event_id": event.event_id,
            "reason": why,
            "event": base64.b64encode(event.SerializeToString()).decode(),
        }
        fd = os.open(self._rejected_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            write_all(fd, orjson.dumps(line) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        log.error("audit event %s refused for good: %s", event.event_id, why)
        if self._on_rejected is not None:
            try:
                self._on_rejected(event, why)
            except Exception:
                log.exception("on_rejected failed for audit event %s", event.event_id)

    def _let_go(self, count: int) -> None:
        """Events logged here are now acknowledged, rejected or spooled."""
        with self._settled:
            self._in_hand -= count


_PER_EVENT = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.ALREADY_EXISTS)


def _refused_events(err: grpc.RpcError) -> dict[int, str]:
    """The batch's events the error names (``events[3]...``), each with why."""
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    found: dict[int, str] = {}
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            for v in bad.field_violations:
                if m := _EVENT_INDEX.match(v.field):
                    found.setdefault(int(m[1]), f"{v.field}: {v.description}")
        elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            if m := _EVENT_INDEX.match(info.metadata.get("field", "")):
                found.setdefault(int(m[1]), f"{info.reason}: {status.message}")
    return found
