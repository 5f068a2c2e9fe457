"""The store: the log (hub and outbox), events and erasable content."""

from __future__ import annotations

from typing import Literal

import sqlalchemy as sa

from aiaudit.common.keys.kek import FileKek, beside_database
from aiaudit.common.keys.keyring import Keyring
from aiaudit.common.store.migrate import migrate
from aiaudit.common.store.sql import SqlEventStore

__all__ = ["SqlEventStore", "embedded_keys", "migrate", "open_store"]


def embedded_keys(url: str) -> Keyring | None:
    """What the embedded mode seals a store's content with: for a SQLite file, the KEK beside it."""
    on_disk = url.startswith("sqlite:///") and ":memory:" not in url
    return Keyring(FileKek(beside_database(url))) if on_disk else None


def open_store(
    url: str,
    *,
    run_migrations: bool = False,
    pool_size: int = 10,
    keys: Keyring | Literal["embedded"] | None = "embedded",
) -> SqlEventStore:
    """Opens the store at a SQLAlchemy URL (``sqlite:///...`` or ``postgresql+psycopg://...``).

    ``keys``: seal content under data keys (see :mod:`aiaudit.common.keys`);
    None stores it in clear. By default as the embedded mode does: a SQLite
    store with the file KEK beside it, PostgreSQL in clear.
    """
    if keys == "embedded":
        keys = embedded_keys(url)
    options: dict[str, object] = {}
    if url.startswith("postgresql"):
        # No pre-ping (a round trip on every checkout): a connection that died
        # with a database restart is detected by the write itself and retried once.
        options = {"pool_size": pool_size, "max_overflow": pool_size}
    engine = sa.create_engine(url, **options)
    store = SqlEventStore(engine, keys)
    if run_migrations:
        migrate(engine)
    return store
