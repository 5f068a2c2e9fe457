"""Single notary per database: only the holder of the lock integrates and signs.

PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) held by one
connection, through which the leader also does all its writes. If that
session dies, the lock is released *and* any write in flight on it fails,
so a deposed leader can never commit after a new one took over.
SQLite (embedded, one host): an exclusive ``flock`` on a file beside the
database.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa

LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"aiaudit.integrity.notary").digest()[:8], "big", signed=True
)
"""The advisory lock id (64-bit) that the notaries of one database contend for."""


class Leadership(Protocol):
    """Try to lead; the connection returned is where the leader writes."""

    def acquire(self) -> sa.Connection | None:
        """The leader's write connection, or None while another notary leads."""
        ...

    def release(self) -> None:
        """Gives up leadership (also after any error on the connection)."""
        ...


class AdvisoryLock:
    """PostgreSQL session advisory lock."""

    def __init__(self, engine: sa.Engine) -> None:
        """Contends for the lock with connections from ``engine``."""
        self._engine = engine
        self._conn: sa.Connection | None = None

    def acquire(self) -> sa.Connection | None:
        """Takes the lock if free; keeps holding it once taken."""
        if self._conn is not None:
            return self._conn
        conn = self._engine.connect()
        try:
            got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar()
            conn.commit()
        except Exception:
            conn.invalidate()
            conn.close()
            raise
        if not got:
            conn.close()
            return None
        self._conn = conn
        return conn

    def release(self) -> None:
        """Closes the session for real (not back to the pool), which frees the lock."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.invalidate()
            conn.close()


class FileLock:
    """Exclusive lock on ``<database file>.notary.lock`` (embedded SQLite)."""

    def __init__(self, engine: sa.Engine) -> None:
        """Locks the file beside the SQLite database of ``engine``."""
        self._engine = engine
        database = engine.url.database or ""
        self._path = Path(f"{database}.notary.lock")
        self._fd: int | None = None
        self._conn: sa.Connection | None = None

    def acquire(self) -> sa.Connection | None:
        """Takes the file lock if free and opens a write connection."""
        if self._conn is not None:
            return self._conn
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        self._fd = fd
        self._conn = self._engine.connect().execution_options(sqlite_immediate=True)
        return self._conn

    def release(self) -> None:
        """Closes the connection and unlocks."""
        conn, self._conn = self._conn, None
        fd, self._fd = self._fd, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
        if fd is not None:
            os.close(fd)


def for_engine(engine: sa.Engine) -> Leadership:
    """The leadership mechanism of the engine's database."""
    if engine.dialect.name == "postgresql":
        return AdvisoryLock(engine)
    return FileLock(engine)
