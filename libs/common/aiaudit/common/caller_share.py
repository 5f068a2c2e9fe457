"""One principal's calls hold at most a share of the server's RPC threads.

grpcio's synchronous server gives each call one of its ``rpc_threads`` and, for a method
of one request, waits there for the request before any handler runs. The credential gate
refuses unknown callers before that; a caller with a valid key that opened 64 calls and
never sent their requests still held every thread, and every other caller's calls waited
(review, 2026-12-06).

Here each method of one request is served as one of a request stream: grpcio then calls
the behaviour as soon as the call has a thread, without waiting for anything. It counts
the call for its principal, then reads the request and calls the method's own behaviour,
and gives the count back when it returns, however it ends: answered, refused, or ended
while the request was awaited (cancelled, past its deadline, a client gone that keepalive
found: reading the request raises). A call over the principal's share is refused at
once, ``RESOURCE_EXHAUSTED`` with reason :data:`REASON`, before it waits for anything.

The count starts when the call has its thread, not when it is dispatched: grpcio refuses
a call over ``max_concurrent_rpcs`` after the interceptors have run, and calls nothing
then that could give a count taken there back; a call queued for a thread holds none.
A response stream is counted until its handler has the request: from then its own
per-caller limit counts it (:class:`aiaudit.common.stream_slots.StreamSlots`), and
health's non-blocking ``Watch`` holds no thread at all. Methods of a request stream
(``AppendStream``, reflection) run their handler at once, which takes its stream slot
first: they are not counted here.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator
from typing import Any

import grpc
from google.rpc import code_pb2

from aiaudit.common import status, wrapping
from aiaudit.common.auth import Authenticator

REASON = "CALLER_SHARE_EXHAUSTED"


def calls_per_caller(share: float, rpc_threads: int) -> int:
    """The calls one principal may have in progress at once: ``share`` of ``rpc_threads``."""
    return max(1, int(share * rpc_threads))


class CallerShare(wrapping.BehaviourWrapper):
    """Counts each principal's calls of one request, from their thread to their answer."""

    def __init__(self, auth: Authenticator, most: int, setting: str) -> None:
        """``most`` calls a principal; ``setting`` (what sets it) is named in refusals."""
        super().__init__()
        self._auth = auth
        self.most = most
        self._setting = setting
        self._lock = threading.Lock()
        self._held: collections.Counter[str] = collections.Counter()

    def held(self, principal: str) -> int:
        """The calls of ``principal`` counted now."""
        with self._lock:
            return self._held[principal]

    def applies(self, method: str, handler: wrapping.Handler) -> bool:
        """Methods of one request (grpcio would wait for it in the call's thread)."""
        return not handler.request_streaming

    def wrap(self, handler: wrapping.Handler, method: str) -> wrapping.Handler:
        """The handler as one of a request stream, counting the call until it returns."""
        serve = wrapping.behaviour(handler)

        def counted(requests: Iterator[Any], context: grpc.ServicerContext, *more: Any) -> Any:
            principal = self._auth.authenticate(context).principal
            self._take_or_abort(context, principal)
            try:
                request = next(requests, None)  # raises if the call ends first
                if request is None:  # what grpcio answers for a method of one request
                    context.abort(
                        grpc.StatusCode.UNIMPLEMENTED,
                        f'"{method}" requires exactly one request message.',
                    )
                return serve(request, context, *more)  # a stream's iterator, unread
            finally:
                self._give_back(principal)

        return wrapping.rewrapped(handler, counted, request_streaming=True)

    def _take_or_abort(self, context: grpc.ServicerContext, principal: str) -> None:
        with self._lock:
            if self._held[principal] < self.most:
                self._held[principal] += 1
                return
        status.abort(
            context,
            status.error(
                code_pb2.RESOURCE_EXHAUSTED,
                f"caller {principal!r} has {self.most} calls in progress on this server, its "
                f"share of the RPC threads ({self._setting}); wait for one to end",
                REASON,
                limit=str(self.most),
            ),
        )

    def _give_back(self, principal: str) -> None:
        with self._lock:
            self._held[principal] -= 1
            if not self._held[principal]:
                del self._held[principal]
