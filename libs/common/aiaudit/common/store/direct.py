"""Driver connections of the store's own: small-group commits and stored-event reads.

A small group (a single-event Append, an access record) is one statement in
autocommit, and a read of stored events needs no transaction either. Through
a pooled SQLAlchemy connection each also paid the checkout, a BEGIN (or two
autocommit switches), and the ROLLBACK or COMMIT on return: about 0.25 ms of
Python per commit, three round trips more per read. These connections stay in
autocommit with one prepared cursor each. They are opened by the engine (same
URL, role, TLS and connect hooks), then detached from its pool, and are kept
while idle.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.pq import TransactionStatus

IDLE_KEPT = 4
"""Most idle connections kept (one per thread writing or reading at once)."""


class ConnectionLostError(Exception):
    """The driver connection died mid-statement; the next attempt opens another one."""


class DirectConnections:
    """Autocommit driver connections, one cursor each, taken by one thread at a time."""

    def __init__(self, engine: sa.Engine) -> None:
        """Connections will be opened through ``engine`` (a PostgreSQL engine)."""
        self._engine = engine
        self._idle: list[psycopg.Cursor[Any]] = []
        self._lock = threading.Lock()
        self._closed = False

    def _open(self) -> psycopg.Cursor[Any]:
        proxied = self._engine.raw_connection()
        raw = proxied.driver_connection
        assert isinstance(raw, psycopg.Connection)
        proxied.detach()  # ours from now on: the pool neither counts nor resets it
        raw.autocommit = True
        return raw.cursor(binary=True)

    @contextlib.contextmanager
    def cursor(self) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor on an idle connection (opened if none is); errors propagate.

        A statement error leaves the connection idle and reusable; a connection
        that died is dropped and reported as :class:`ConnectionLostError`.
        """
        with self._lock:
            cur = self._idle.pop() if self._idle else None
        if cur is None:
            cur = self._open()
        conn = cur.connection
        try:
            yield cur
        except psycopg.Error as exc:
            if conn.closed or conn.info.transaction_status != TransactionStatus.IDLE:
                conn.close()
                self._forget_all()
                raise ConnectionLostError(f"store connection lost: {exc}") from exc
            self._keep(cur)
            raise
        except BaseException:
            conn.close()
            raise
        self._keep(cur)

    def _keep(self, cur: psycopg.Cursor[Any]) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < IDLE_KEPT:
                self._idle.append(cur)
                return
        cur.connection.close()

    def _forget_all(self) -> None:
        """After a lost connection, every other one is suspect (the database restarted).

        Drops the idle connections and the engine's pooled ones, so that the
        retry that follows opens a live connection instead of taking a dead one.
        """
        with self._lock:
            idle, self._idle = self._idle, []
        for cur in idle:
            cur.connection.close()
        self._engine.dispose(close=False)

    def close(self) -> None:
        """Closes the idle connections; those in use close when they come back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for cur in idle:
            cur.connection.close()
