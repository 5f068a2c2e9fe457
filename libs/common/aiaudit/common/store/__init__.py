"""The store: the log (hub and outbox), events and erasable content."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Literal

import sqlalchemy as sa

from aiaudit.common.keys.kek import FileKek, KekError, beside_database
from aiaudit.common.keys.keyring import Keyring
from aiaudit.common.store.migrate import migrate
from aiaudit.common.store.private_files import private_sqlite_file, sqlite_path
from aiaudit.common.store.schema import content_keys
from aiaudit.common.store.sql import SqlEventStore

__all__ = ["SqlEventStore", "embedded_keys", "file_kek", "migrate", "open_store", "utc_sessions"]


def embedded_keys(url: str) -> Keyring | None:
    """What the embedded mode seals a store's content with: for a SQLite file, the KEK beside it."""
    on_disk = url.startswith("sqlite:///") and ":memory:" not in url
    return Keyring(file_kek(beside_database(url), url)) if on_disk else None


def file_kek(path: Path, url: str) -> FileKek:
    """The file KEK at ``path``; made only if the store at ``url`` holds no file-wrapped key.

    A store restored without its key file would otherwise get a new one, and
    the events acknowledged under it would be lost to whoever restores the
    real one (found by a review).
    """
    wrapped = None
    if not path.exists() and _may_hold_keys(url):
        engine = sa.create_engine(url, hide_parameters=True)
        try:
            with engine.connect() as conn:
                if sa.inspect(conn).has_table("content_keys"):
                    query = sa.select(content_keys.c.kek).where(content_keys.c.kek.like("file:%"))
                    wrapped = conn.execute(query.limit(1)).scalar()
        except sa.exc.OperationalError:  # out of reach: whatever uses the store will say so
            pass
        finally:
            engine.dispose()
    if wrapped:
        raise KekError(
            f"the store's data keys are wrapped by KEK {wrapped}, and its key file {path} "
            "is missing: restore that file (a new key would seal events its holder "
            "could never read)"
        )
    return FileKek(path)


def _may_hold_keys(url: str) -> bool:
    """False for a SQLite file that does not exist yet (connecting would create it)."""
    if not url.startswith("sqlite"):
        return True
    on_disk = url.startswith("sqlite:///") and ":memory:" not in url
    return on_disk and Path(urllib.parse.unquote(url.split(":///", 1)[1])).is_file()


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

    A SQLite file is made (or narrowed to) 0600, its ``-wal`` and ``-shm`` alike:
    it holds user ids, addresses and the wrapped data keys.
    """
    if keys == "embedded":
        keys = embedded_keys(url)
    if (path := sqlite_path(url)) is not None:
        private_sqlite_file(path)
    # Parameters stay out of error texts: a failed statement's are the events'
    # user ids, addresses and content, which logs would keep past any erasure.
    options: dict[str, object] = {"hide_parameters": True}
    if url.startswith("postgresql"):
        # No pre-ping (a round trip on every checkout): a connection that died
        # with a database restart is detected by the write itself and retried once.
        options |= {"pool_size": pool_size, "max_overflow": pool_size, **utc_sessions(url)}
    engine = sa.create_engine(url, **options)
    store = SqlEventStore(engine, keys)
    if run_migrations:
        migrate(engine)
    return store


def utc_sessions(url: str | sa.URL) -> dict[str, object]:
    """PostgreSQL engine options that set each session's TimeZone to UTC (the URL's options kept).

    Times come back in ``datetime.UTC`` whatever the server's default zone:
    under a named zone (``Etc/UTC`` on Debian) psycopg built and hashed every
    timestamp through ``zoneinfo``, about half of the CPU a consumer spent reading a
    batch of the log. The code names UTC wherever a zone matters, so nothing else changes.
    """
    given = sa.make_url(url).query.get("options", "")
    given = given if isinstance(given, str) else " ".join(given)
    return {"connect_args": {"options": f"{given} -c TimeZone=UTC".strip()}}
