"""The store: the log (hub and outbox), events and erasable content."""

from __future__ import annotations

import sqlalchemy as sa

from aiaudit.common.keys.keyring import Keyring
from aiaudit.common.store.migrate import migrate
from aiaudit.common.store.sql import SqlEventStore

__all__ = ["SqlEventStore", "migrate", "open_store"]


def open_store(
    url: str, *, run_migrations: bool = False, pool_size: int = 10, keys: Keyring | None = None
) -> SqlEventStore:
    """Opens the store at a SQLAlchemy URL (``sqlite:///...`` or ``postgresql+psycopg://...``).

    ``keys``: seal content under data keys (see :mod:`aiaudit.common.keys`).
    """
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
