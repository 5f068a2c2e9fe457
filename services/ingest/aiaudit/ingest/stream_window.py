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
committed request's answer weighs far less: a client that reads its answers
late is held only once its requests not yet answered hold
:data:`MAX_UNANSWERED_EVENTS` events. Until later on 2026-12-07 those did not
count, and a client that never read its answers kept each committed request's
receipts queued for it, about 600 bytes an event: its server grew by 2 MB a
second for as long as the stream stayed open (review).
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

MAX_UNANSWERED_EVENTS = 100_000
"""Events of one stream's requests read and not yet answered (their answers not yet taken by
gRPC): a committed event's receipt and ids waiting for its answer take about 600 bytes, so
about 60 MB; ten windows of :data:`MAX_PENDING_EVENTS`, so a client reading its answers
somewhat late is not held."""


class StreamWindow:
    """The requests a stream has read and not yet settled by the store, or not yet answered."""

    def __init__(self, max_bytes: int, max_events: int = MAX_PENDING_EVENTS) -> None:
        """Unsettled requests under ``max_events`` events and ``max_bytes``.

        Unanswered ones under :data:`MAX_UNANSWERED_EVENTS` events.
        """
        self._max_bytes = max_bytes
        self._max_events = max_events
        self._events = 0
        self._bytes = 0
        self._unanswered = 0
        self._closed = False
        self._changed = threading.Condition()

    def read(self, size: int, events: int) -> None:
        """A request of ``size`` bytes and ``events`` was read; waits until another may be.

        Returns at once once the window is closed (the stream ended).
        """
        with self._changed:
            self._events += events
            self._bytes += size
            self._unanswered += events
            if self._full():
                log.debug(
                    "append stream holds %d events (%d bytes) not yet committed, %d not yet "
                    "answered: it reads no more requests until some are",
                    self._events,
                    self._bytes,
                    self._unanswered,
                )
            self._changed.wait_for(lambda: self._closed or not self._full())

    def settled(self, size: int, events: int) -> None:
        """A request of ``size`` bytes and ``events`` was committed, refused or answered."""
        with self._changed:
            self._events -= events
            self._bytes -= size
            self._changed.notify_all()

    def answered(self, events: int) -> None:
        """A request of ``events`` was answered (its answer taken by gRPC)."""
        with self._changed:
            self._unanswered -= events
            self._changed.notify_all()

    def close(self) -> None:
        """The stream ended: its reader waits no more."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def _full(self) -> bool:
        return (
            self._events >= self._max_events
            or self._bytes >= self._max_bytes
            or self._unanswered >= MAX_UNANSWERED_EVENTS
        )
