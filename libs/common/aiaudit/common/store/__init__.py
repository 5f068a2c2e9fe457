"""The store: the log (hub and outbox), events and erasable content."""

from __future__ import annotations

import sqlalchemy as sa

from aiaudit.common.store.migrate import migrate
from aiaudit.common.store.sql import SqlEventStore

__all__ = ["SqlEventStore", "migrate", "open_store"]


def open_store(url: str, *, run_migrations: bool = False, pool_size: int = 10) -> SqlEventStore:
    """Opens the store at a SQLAlchemy URL (``sqlite:///...`` or ``postgresql+psycopg://...``)."""
    options: dict[str, object] = {}
    if url.startswith("postgresql"):
        options = {"pool_size": pool_size, "max_overflow": pool_size, "pool_pre_ping": True}
    engine = sa.create_engine(url, **options)
    store = SqlEventStore(engine)
    if run_migrations:
        migrate(engine)
    return store
