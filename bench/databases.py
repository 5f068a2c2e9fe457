"""A PostgreSQL database of a benchmark run's own, so no run measures another's leftovers."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg

from aiaudit.common.store import open_store


@dataclass(frozen=True)
class Database:
    """The same database as a libpq DSN (psycopg) and as a SQLAlchemy URL (the store)."""

    dsn: str
    url: str


@contextlib.contextmanager
def fresh_database() -> Iterator[Database]:
    """A migrated database on the test server (``AIAUDIT_TEST_PG_DSN``), dropped afterwards.

    The shared test database grows with every test and benchmark run (to ~10 GB
    on this machine): ingest into it measured 0.22-0.43x raw COPY where a fresh
    one gives 0.6-0.76x, and consumers that tail every log would work through
    the others' events.
    """
    admin = os.environ["AIAUDIT_TEST_PG_DSN"]
    name = f"aiaudit_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    dsn = admin.rsplit("/", 1)[0] + f"/{name}"
    try:
        db = Database(dsn, dsn.replace("postgresql://", "postgresql+psycopg://", 1))
        open_store(db.url, run_migrations=True).close()
        yield db
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def settle(dsn: str) -> None:
    """Writes out what the previous phase left dirty, so that the next one does not pay for it.

    Without it the phase after a bulk load shared the disk with that load's
    write-back (and the checkpoint it triggers): the order of the phases, not
    the code, decided part of their figures (ingest's batched phase after the
    COPY baseline: 0.44-0.47x COPY; after a CHECKPOINT: 0.62-0.68x).
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
