"""One item read ahead of its writer, its call started: an export's next batch and its proofs.

An export with proofs spent a page's time in turn on the index page and the store
read (25 ms), the ``BatchGetInclusionProofs`` call (40 ms) and the lines (25 ms).
:func:`one_ahead` has the next batch read in a pool thread, its proofs call started
(a gRPC future, asked as the store read starts), while the current batch is written
and sent. One batch ahead at most: memory stays bounded by two batches.

What the writer sees is what reading in turn gave: an error reading the next batch
or starting its call is raised when the writer asks for that batch (the current
one was written and sent first, as before). When the writer stops (client gone,
error), the read ahead is waited for, so that no thread works on for an export
that ended, and its call, never written, is cancelled.
"""

from __future__ import annotations

import contextvars
from collections.abc import Generator, Iterator
from concurrent.futures import Executor, Future
from typing import Protocol, TypeVar


class Call(Protocol):
    """A call started for an item (``grpc.Future``): cancelled if its item is never written."""

    def cancel(self) -> bool:
        """Cancels the call if it is still running."""


T = TypeVar("T")
C = TypeVar("C", bound=Call)


def one_ahead(
    items: Iterator[tuple[T, C | None]], pool: Executor
) -> Generator[tuple[T, C | None], None, None]:
    """Each item of ``items`` (with its call, if any), the next one read in ``pool``.

    ``items`` is advanced by one thread at a time: each read is submitted once the
    one before was taken, in this thread's context (its trace).
    """
    upcoming = _read(items, pool)
    try:
        while (current := upcoming.result()) is not None:
            upcoming = _read(items, pool)
            yield current
    finally:
        _drop(upcoming)


def _read(items: Iterator[T], pool: Executor) -> Future[T | None]:
    """The next item (None after the last), read in ``pool`` in this thread's context."""
    return pool.submit(contextvars.copy_context().run, _next, items)


def _next(items: Iterator[T]) -> T | None:
    return next(items, None)


def _drop(upcoming: Future[tuple[T, C | None] | None]) -> None:
    """Waits for a read ahead nobody will take and cancels its call."""
    if upcoming.cancel():
        return
    try:
        got = upcoming.result()
    except Exception:  # an error about a batch nobody writes: the export ended already
        return
    if got is not None and got[1] is not None:
        got[1].cancel()
