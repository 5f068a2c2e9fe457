"""Schema migrations (Alembic), run by `aiaudit db migrate` or at embedded start-up."""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path

import psycopg
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from aiaudit.common.store.partitions import ensure_partitions
from aiaudit.common.store.schema import PARTITIONED

log = logging.getLogger(__name__)

_SCRIPTS = Path(__file__).with_name("migrations")

LOCK_WAIT = "500ms"
"""How long one try at a table's partitions waits for a lock (PostgreSQL ``lock_timeout``).

Attaching a month takes ACCESS EXCLUSIVE on the table's DEFAULT partition. While
that waits (behind a read in progress: a consumer's, an export's, a backup's),
every later read of ``events`` (each consumer's ``read_log``) or erasure of
``event_content`` queues behind it, as neither is pruned to its months: for as
long as the wait. Until 2026-12-06 it was 10 s, once, and the monthly CronJob
stalled every reader and eraser that long on each of its tries."""
LOCK_TRIES = 60
"""Tries at one table's partitions before migrate fails (``LOCK_PAUSE`` apart)."""
LOCK_PAUSE = 1.0
"""Seconds between two tries: the readers queued behind the last one go through."""
_PARTITIONS_LOCK = 0x61696175_6469_7470  # "aiaudit p": one migrate at a time per database
SCHEMA_LOCK = 0x61696175_6469_7473  # "aiaudit s"
"""Advisory lock of the schema step: two migrates of one database take turns."""

PRIVACY_KEY_GRANTS = """
DO $$
BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'aiaudit_privacy')
     AND to_regclass('content_keys') IS NOT NULL THEN
    GRANT DELETE ON content_keys TO aiaudit_privacy;
    GRANT UPDATE (key_epoch) ON logs TO aiaudit_privacy;
  END IF;
END
$$;
"""
"""What erasing a subject's data key needs (revisions ``0005`` and ``privacy_0002``).

The two are on different branches, applied in either order; both run this,
and the later one, when the role and the table both exist, grants."""


def migrate(engine: sa.Engine) -> None:
    """Upgrades the database to the newest schema, and on PostgreSQL tops up its partitions.

    Each service that owns tables keeps its migrations on its own Alembic
    branch (``branch_labels``) rooted at ``0001``; all heads are applied.
    The monthly partitions are not a revision: each run creates those of the
    next twelve months (:mod:`.partitions`), or after a year every event
    would land in DEFAULT.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Two at once (an upgrade's hook Job and one run by hand, two releases with
            # --no-hooks) both created the tables and the second failed (DuplicateTable,
            # until 2026-12-06); the second now finds the first's revisions applied.
            conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")
    top_up_partitions(engine)


def top_up_partitions(engine: sa.Engine) -> None:
    """Creates the monthly partitions of the next twelve months, schema untouched.

    What a schedule runs between upgrades (``aiaudit db partitions``): the
    schema moves only with ``migrate``, at an upgrade, so an image changed
    meanwhile, or a rolled-back release whose revisions the database is past,
    neither changes nor blocks it (Alembic refused the revision it did not
    know, and the partitions stopped). Nothing on SQLite, which has none.
    """
    if engine.dialect.name != "postgresql":
        return
    for table in PARTITIONED:  # one transaction each: see aiaudit.common.store.partitions
        _ensure_partitions(engine, table)


def _ensure_partitions(engine: sa.Engine, table: sa.Table) -> None:
    """One table's partitions (PostgreSQL): a transaction waiting briefly for locks, retried.

    Each try waits at most ``LOCK_WAIT`` for a lock, so the reads and erasures
    queued behind its ATTACH wait no longer than that; ``LOCK_PAUSE`` later it is
    tried again, ``LOCK_TRIES`` times. The transaction first takes an advisory
    lock, so that two migrates (the CronJob's and an upgrade's hook Job) do not
    both create a month: the second failed on the first's table (until 2026-12-06).
    """
    for attempt in range(1, LOCK_TRIES + 1):
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'"))
                conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({_PARTITIONS_LOCK})"))
                ensure_partitions(conn, dt.datetime.now(dt.UTC).date(), tables=[table])
            return
        except sa.exc.OperationalError as exc:
            if not isinstance(exc.orig, psycopg.errors.LockNotAvailable) or attempt == LOCK_TRIES:
                raise
            log.info(
                "partitions of %s: a lock not had within %s (try %d of %d), trying again",
                table.name,
                LOCK_WAIT,
                attempt,
                LOCK_TRIES,
            )
        time.sleep(LOCK_PAUSE)
