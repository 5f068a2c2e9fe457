"""The main port's health servicer: ``Check``, and ``Watch`` without holding an RPC thread.

``Watch`` is marked non-blocking for grpcio (every wrapper keeps the mark,
:mod:`aiaudit.common.wrapping`): it is called with a ``send_response_callback`` and
returns at once, and each later status goes out from :meth:`Health.set`. An open watch
holds memory only (about 22 KB), so a fleet doing gRPC client-side health checking on
one key (a watch per connection) fits.

grpc_health's own servicer serves it so too, but sends each status holding its lock,
and a send waits for grpcio's completion-queue thread, which takes that lock to drop a
watch that closed: with 128 watches both soon waited for each other, and the whole
server with them (grpc/grpc#43403). It also sends every ``set``, changed or not, and the
notary reports each attempt. Here the lock guards the maps only, never a send; a
watch is sent only a status it has not sent, and always the latest, so a send that
waited is not followed by an older status.

No send runs in the thread that sets a status, or in the one that opens a watch: a
send waits until its bytes leave, and a client that gives no flow-control window (an
HTTP/2 client announcing a window of 0 and never raising it, with any valid key) held
``set`` for as long as its watch stayed open. The setters are the services' own
workers (the search indexer, the notary, alerting, each reporting an outage or its
end): until 2026-12-06 such a watch stopped them for good (review). Each watch's sends
run in a pool (:data:`SENDERS` threads at most: one is made whenever a status goes to
more watches at once than threads are idle, and kept), one at a time per watch; a watch
whose client takes nothing holds one of them until its call ends.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeAlias

import grpc
from grpc_health.v1 import health, health_pb2

Status: TypeAlias = health_pb2.HealthCheckResponse.ServingStatus

SENDERS = 512
"""Threads that send watches their statuses, at most: one per watch a process holds
(``aiaudit.cli.server.HEALTH_WATCHES``), so watches whose clients take nothing never
leave the others without one."""


TELL_STOPPING = 1.0
"""Seconds the server's stop waits at most for its watches to be told NOT_SERVING."""


class _Watch:
    """One open ``Watch``: the last status it sent, and whether a send is under way."""

    def __init__(
        self, service: str, send: Callable[[Any], object], senders: ThreadPoolExecutor
    ) -> None:
        self.service = service
        self._send = send
        self._senders = senders
        self._lock = threading.Lock()
        self._sent: Status | None = None
        self._idle = threading.Event()
        """Clear while a send of this watch is under way (queued or sending)."""
        self._idle.set()

    def offer(self, current: Callable[[str], Status]) -> None:
        """Has the service's current status sent, unless it is the last one sent; at once.

        While a send of this watch is under way, it sends the latest status after its own.
        """
        with self._lock:
            if not self._idle.is_set():
                return
            self._idle.clear()
        self._senders.submit(self._deliver, current)

    def wait_sent(self, timeout: float) -> bool:
        """Waits until no send of this watch is under way; whether none is."""
        return self._idle.wait(timeout)

    def _deliver(self, current: Callable[[str], Status]) -> None:
        while True:
            with self._lock:
                status = current(self.service)
                if status == self._sent:
                    self._idle.set()
                    return
                self._sent = status
            self._send(health_pb2.HealthCheckResponse(status=status))


class Health(health.HealthServicer):
    """Each service's status, for ``Check``, ``Watch`` and the health port."""

    def __init__(self) -> None:
        """No status yet (``Check`` answers NOT_FOUND, ``Watch`` SERVICE_UNKNOWN)."""
        super().__init__(experimental_non_blocking=True)  # marks Watch (below) for grpcio
        self._guard = threading.Lock()
        self._statuses: dict[str, Status] = {}
        self._watches: dict[str, set[_Watch]] = collections.defaultdict(set)
        self._stopping = False
        self._senders = ThreadPoolExecutor(SENDERS, thread_name_prefix="health-watch-send")

    def status_of(self, service: str) -> Status | None:
        """The service's status, None if it never reported one."""
        with self._guard:
            return self._statuses.get(service)

    def _current(self, service: str) -> Status:
        status = self.status_of(service)
        return health_pb2.HealthCheckResponse.SERVICE_UNKNOWN if status is None else status

    def set(self, service: str, status: Status) -> None:
        """Records the status and sends it to the service's watches (ignored once stopping)."""
        with self._guard:
            if self._stopping:
                return
            self._statuses[service] = status
            watches = list(self._watches.get(service, ()))
        for watch in watches:
            watch.offer(self._current)

    def enter_graceful_shutdown(self) -> None:
        """Every service NOT_SERVING, for good; each watch is told before this returns.

        At most :data:`TELL_STOPPING` seconds in all (a watch whose client takes nothing is
        not waited for longer): the server's stop, which may cancel every call at once
        (``shutdown_grace_seconds: 0``), comes after. Without the wait a stop with no grace
        cut some watches off before they were told (review, 2026-12-06).
        """
        with self._guard:
            self._stopping = True
            self._statuses = dict.fromkeys(
                self._statuses, health_pb2.HealthCheckResponse.NOT_SERVING
            )
            watches = [watch for each in self._watches.values() for watch in each]
        for watch in watches:
            watch.offer(self._current)
        deadline = time.monotonic() + TELL_STOPPING
        for watch in watches:
            watch.wait_sent(max(0.0, deadline - time.monotonic()))

    def Check(  # noqa: N802 (gRPC method name)
        self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        """The service's status; NOT_FOUND if it never reported one."""
        status = self.status_of(request.service)
        if status is None:
            context.set_code(grpc.StatusCode.NOT_FOUND)
            return health_pb2.HealthCheckResponse()
        return health_pb2.HealthCheckResponse(status=status)

    def Watch(  # noqa: N802 (gRPC method name)
        self,
        request: health_pb2.HealthCheckRequest,
        context: grpc.ServicerContext,
        send_response_callback: Callable[[Any], object] | None = None,
    ) -> Iterator[health_pb2.HealthCheckResponse] | None:
        """The status now, then each change, until the call ends; returns at once.

        Without ``send_response_callback`` (a wrapper that lost the mark) it is a
        blocking stream again, holding its thread.
        """
        answers: queue.SimpleQueue[health_pb2.HealthCheckResponse | None] | None = None
        if send_response_callback is None:
            answers = queue.SimpleQueue()
            send_response_callback = answers.put
        watch = _Watch(request.service, send_response_callback, self._senders)
        with self._guard:
            self._watches[watch.service].add(watch)

        def end() -> None:  # in grpcio's completion-queue thread: takes the guard only
            with self._guard:
                self._watches[watch.service].discard(watch)
                if not self._watches[watch.service]:
                    del self._watches[watch.service]
            if answers is not None:
                answers.put(None)

        if not context.add_callback(end):
            end()  # the call has ended already
        watch.offer(self._current)
        return None if answers is None else iter(answers.get, None)
