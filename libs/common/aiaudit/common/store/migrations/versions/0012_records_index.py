"""The erasure and retention records get an index of their own: ``events_records``.

Every search, aggregate and export that reads content first asks for its
log's latest such record (``SqlEventStore.last_record``). The only index naming
``event_type`` ends in ``occurred_time``, so ``max(seq)`` either read every
record or walked the log's primary key backwards through every event, which
PostgreSQL chose on a partition without statistics (a new month's, or any
right after a bulk load) and SQLite always: 4-8 and 13 ms a call on a
20,000-event log, growing with it (2026-12-06). The partial index holds the
records alone, a few rows per tenant, and costs an append nothing but the
predicate.

Building it reads ``events`` once and, on PostgreSQL, holds appends until it
is built (a SHARE lock; a partitioned table has no concurrent build). A
database created from scratch has it already (``0001`` creates the tables
from the current definitions): then nothing is done.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# Written out, not imported: a revision applies what it applied when it was written.
_WHERE = "event_type IN ('EVENT_TYPE_PRIVACY_ERASURE', 'EVENT_TYPE_RETENTION_APPLIED')"


def upgrade() -> None:
    """Creates the index where it is missing (on PostgreSQL, on every partition too)."""
    op.execute(
        sa.text(f"CREATE INDEX IF NOT EXISTS events_records ON events (log_id, seq) WHERE {_WHERE}")
    )
