"""In-process wake-ups on commits: how log consumers learn of new events without polling.

A consumer (search indexer, alerting engine) tails the log
with a short poll for commits made by other processes, and registers a callback
here to hear at once about commits made through the suite's engine in its own
process (ingest batches, rule changes, access records).

SQLAlchemy's ``commit`` event fires just *before* the COMMIT reaches the
database (the store's own small-group commits are reported after it), so a
consumer woken by it may look a moment too early and find nothing: it should
look again shortly rather than wait a whole poll interval (see :data:`RECHECKS`).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import sqlalchemy as sa

RECHECKS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
"""Pauses (seconds), in turn, before looking again while a wake-up has found nothing new:
the COMMIT lands within a millisecond on a quiet machine, later on a loaded one."""


_CALLBACKS: weakref.WeakKeyDictionary[sa.Engine, list[Callable[[], None]]] = (
    weakref.WeakKeyDictionary()
)


def on_commit(engine: sa.Engine, callback: Callable[[], None]) -> Callable[[], None]:
    """Calls ``callback`` on every commit through ``engine`` in this process.

    That is, every commit of a SQLAlchemy connection of the engine, and every
    commit the store makes on driver connections of its own and reports with
    :func:`committed`. Returns the function that removes the listener (call it
    when the consumer stops).
    """

    def listener(_conn: sa.Connection) -> None:
        callback()

    sa.event.listen(engine, "commit", listener)
    _CALLBACKS.setdefault(engine, []).append(callback)

    def remove() -> None:
        sa.event.remove(engine, "commit", listener)
        _CALLBACKS[engine].remove(callback)

    return remove


def committed(engine: sa.Engine) -> None:
    """Reports a commit made outside SQLAlchemy, on the engine's database, once it landed."""
    for callback in list(_CALLBACKS.get(engine, ())):
        callback()
