"""One leader per database for a job that must not run twice: lock, then work.

Jobs: ``integrity.notary`` (integrates and signs; two would sign diverging
checkpoints), ``search.indexer`` (bulk-indexes into the shared OpenSearch;
two would each send every document) and ``ingest.retention`` (deletes expired
content; two would do the same work twice, the second finding nothing left).
The other replicas stand by and ask for the lock again once a poll interval.

PostgreSQL: a session advisory lock (``pg_try_advisory_lock``, its key derived
from the job's name) held by one connection, through which the notary also
does all its writes. If that session dies, the lock is released *and* any
write in flight on it fails, so a deposed leader can never commit after a new
one took over. SQLite (embedded, one host): an exclusive ``flock`` on a file
beside the database.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa

NOTARY = "integrity.notary"
INDEXER = "search.indexer"
RETENTION = "ingest.retention"


def lock_key(job: str) -> int:
    """The advisory lock id (64-bit) that the replicas running ``job`` contend for."""
    return int.from_bytes(
        hashlib.sha256(f"aiaudit.{job}".encode()).digest()[:8], "big", signed=True
    )


class Leadership(Protocol):
    """Try to lead; the connection returned is where the leader writes."""

    def acquire(self) -> sa.Connection | None:
        """The leader's connection, or None while another replica leads."""
        ...

    def release(self) -> None:
        """Gives up leadership (also after any error on the connection)."""
        ...


_DEAD_PEER_SETTINGS = (
    "SET tcp_keepalives_idle = 20; SET tcp_keepalives_interval = 5; "
    "SET tcp_keepalives_count = 4; SET tcp_user_timeout = 40000"
)
"""How soon the server gives up on a leader that vanished without closing its
socket (host lost, network cut): about 40 s instead of the operating system's
two hours of keepalive, during which no other replica could take the lock."""


class AdvisoryLock:
    """PostgreSQL session advisory lock."""

    def __init__(self, engine: sa.Engine, job: str) -> None:
        """Contends for ``job``'s lock with connections from ``engine``."""
        self._engine = engine
        self._key = lock_key(job)
        self._conn: sa.Connection | None = None

    def acquire(self) -> sa.Connection | None:
        """Takes the lock if free; once held, keeps it while its session is alive.

        A session that died (the database restarted, the connection was cut)
        took the lock with it, and another replica may have led since: this
        call answers None, so the caller drops what it knew as the leader, and
        the next call asks for the lock afresh.
        """
        if self._conn is not None:
            try:
                self._conn.exec_driver_sql("SELECT 1")
                self._conn.rollback()
                return self._conn
            except sa.exc.DBAPIError:
                self.release()
                return None
        conn = self._engine.connect()
        try:
            conn.exec_driver_sql(_DEAD_PEER_SETTINGS)
            got = conn.execute(
                sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key}
            ).scalar()
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
    """Exclusive lock on ``<database file>.<job's last word>.lock``, e.g. ``.notary.lock``."""

    def __init__(self, engine: sa.Engine, job: str) -> None:
        """Locks the file beside the SQLite database of ``engine``."""
        self._engine = engine
        database = engine.url.database or ""
        self._path = Path(f"{database}.{job.rpartition('.')[2]}.lock")
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


def for_engine(engine: sa.Engine, job: str) -> Leadership:
    """The leadership of ``job`` (:data:`NOTARY`, :data:`INDEXER`) on the engine's database."""
    if engine.dialect.name == "postgresql":
        return AdvisoryLock(engine, job)
    return FileLock(engine, job)
