"""Schema migrations (Alembic), run by `aiaudit db migrate` or at embedded start-up."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from aiaudit.common.store.partitions import ensure_partitions
from aiaudit.common.store.schema import PARTITIONED

_SCRIPTS = Path(__file__).with_name("migrations")

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
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")
    for table in PARTITIONED:  # one transaction each: see aiaudit.common.store.partitions
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SET LOCAL lock_timeout = '10s'"))
            ensure_partitions(conn, dt.datetime.now(dt.UTC).date(), tables=[table])
