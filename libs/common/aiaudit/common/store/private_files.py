"""SQLite files readable by their owner alone (0600).

The embedded store (``aiaudit.db``: user ids, IP addresses, data keys) and the
search index (``search.db``: prompts and responses as plain FTS5 text) were
made 0644 under the usual umask, with their ``-wal`` and ``-shm`` files, so any
local user could read what the README says is sealed at rest (review,
2026-12-05).

SQLite makes a new database file 0644 (less the umask), and each ``-wal``,
``-shm`` and ``-journal`` with the mode of its database file. So the database
file is created here first, empty, with mode 0600 (an empty file is a new
database to SQLite); the files SQLite adds beside it follow. No umask is
changed: it is the whole process's, and other threads create files too.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import sqlalchemy as sa

log = logging.getLogger(__name__)

PRIVATE_MODE = 0o600
_COMPANIONS = ("-wal", "-shm", "-journal")
"""Files SQLite keeps beside a database file, with the database file's mode."""


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL; None for another database or a memory one."""
    parsed = sa.make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or database in (None, "", ":memory:"):
        return None
    if parsed.query.get("uri") or database.startswith("file:"):
        return None  # a URI filename (mode=memory, shared caches): left to SQLite
    return Path(database)


def private_sqlite_file(path: Path) -> None:
    """Makes the SQLite file ``path`` 0600 if it is missing; else narrows it to 0600.

    An existing file (and its ``-wal``, ``-shm``, ``-journal``) that others may
    read, made before this check, is narrowed to 0600 with a WARNING naming it.
    A directory that is missing or not writable is left to SQLite, whose error
    says so when the file is opened.
    """
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE))
        return
    except FileExistsError:
        pass
    except OSError:
        return  # SQLite's own open fails and says why
    for file in (path, *(path.with_name(path.name + end) for end in _COMPANIONS)):
        _narrow(file)


def _narrow(file: Path) -> None:
    try:
        mode = stat.S_IMODE(file.stat().st_mode)
    except OSError:  # not there (no -journal in WAL mode), or not ours to look at
        return
    if not mode & 0o077:
        return
    try:
        file.chmod(PRIVATE_MODE)
    except OSError as exc:  # another user's file: say so, the store still opens
        log.warning(
            "database file is readable by other users and could not be made 0600",
            extra={"path": str(file), "mode": oct(mode), "error": str(exc)},
        )
        return
    log.warning(
        "database file was readable by other users: made 0600",
        extra={"path": str(file), "mode": oct(mode)},
    )
