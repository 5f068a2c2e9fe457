"""How far an AppendStream's reading may run ahead of the store.

A stream reads its requests in a thread of its own and answers them, in
order, as their batches commit. Until 2026-12-07 that reader took every
request as fast as the client sent it: each was validated, prepared and
queued for the committer at once, so a client sending faster than the store
commits grew the server's memory without bound. One stream of 200 requests
of 1,000 events of 3 KB each took an embedded server to 3.5 GB, 141 batches
queued at once (review). Now the reader takes a request only while the
stream's requests not yet committed (a refused one: not yet answered) hold
fewer than :data:`MAX_PENDING_EVENTS` events and fewer bytes than the window's
bound (``max_message_bytes``, as received: one request, however large, always
goes); otherwise it waits, and gRPC's flow control holds the client. A
committed request's answer no longer counts: a client that reads its answers
late is not held, as before.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)

MAX_PENDING_EVENTS = 10_000
"""Events of one stream's requests read and not yet committed (a refused request counts as
one until it is answered): two group commits' worth (``max_group_events``, 5,000 by
default), so one group is prepared while the other commits, as before the bound. A queued
event of 3 KB of text takes about 27 KB of the server's memory (its forms and copies)."""


class StreamWindow:
    """The requests a stream has read and the store not yet settled, by events and bytes."""

    def __init__(self, max_bytes: int, max_events: int = MAX_PENDING_EVENTS) -> None:
        """Pending requests together under ``max_events`` events and ``max_bytes``."""
        self._max_bytes = max_bytes
        self._max_events = max_events
        self._events = 0
        self._bytes = 0
        self._closed = False
        self._changed = threading.Condition()

    def read(self, size: int, events: int) -> None:
        """A request of ``size`` bytes and ``events`` was read; waits until another may be.

        Returns at once once the window is closed (the stream ended).
        """
        with self._changed:
            self._events += events
            self._bytes += size
            if self._full():
                log.debug(
                    "append stream holds %d events (%d bytes) not yet committed: it reads no "
                    "more requests until some are",
                    self._events,
                    self._bytes,
                )
            self._changed.wait_for(lambda: self._closed or not self._full())

    def settled(self, size: int, events: int) -> None:
        """A request of ``size`` bytes and ``events`` was committed, refused or answered."""
        with self._changed:
            self._events -= events
            self._bytes -= size
            self._changed.notify_all()

    def close(self) -> None:
        """The stream ended: its reader waits no more."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def _full(self) -> bool:
        return self._events >= self._max_events or self._bytes >= self._max_bytes
