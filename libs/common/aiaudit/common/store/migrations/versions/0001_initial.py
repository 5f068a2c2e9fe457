"""Initial schema: logs, log entries, partitioned events and content, roles.

On PostgreSQL it also creates two NOLOGIN roles that login users are granted:
``aiaudit_writer`` (ingest: INSERT/SELECT on event tables, the log head only
updatable), ``aiaudit_reader`` (SELECT only) and ``aiaudit_consumer`` (a reader
that may move its cursors; each service's own migrations grant it their
tables). No role may UPDATE or DELETE an event or a log entry; erasure is a
separate, audited privilege.
"""

import datetime as dt

import sqlalchemy as sa
from alembic import op

from aiaudit.common.store.partitions import ensure_partitions
from aiaudit.common.store.schema import metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ROLES = """
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'aiaudit_writer') THEN
    CREATE ROLE aiaudit_writer NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'aiaudit_reader') THEN
    CREATE ROLE aiaudit_reader NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'aiaudit_consumer') THEN
    CREATE ROLE aiaudit_consumer NOLOGIN IN ROLE aiaudit_reader;
  END IF;
END
$$;
GRANT USAGE ON SCHEMA public TO aiaudit_writer, aiaudit_reader;
GRANT SELECT, INSERT ON log_entries, events, event_content TO aiaudit_writer;
GRANT SELECT, INSERT, UPDATE ON logs TO aiaudit_writer;
GRANT SELECT ON logs, log_entries, events, event_content TO aiaudit_reader;
GRANT SELECT, INSERT, UPDATE ON consumer_cursors TO aiaudit_consumer;
"""


def upgrade() -> None:
    """Creates the tables, and on PostgreSQL the partitions and roles."""
    bind = op.get_bind()
    metadata.create_all(
        bind,
        tables=[
            metadata.tables[n]
            for n in ("logs", "log_entries", "events", "event_content", "consumer_cursors")
        ],
    )
    if bind.dialect.name == "postgresql":
        ensure_partitions(bind, dt.datetime.now(dt.UTC).date())
        bind.execute(sa.text(_ROLES))
