"""An index of each log's erasure records, for searches served from the index.

A search page is built from the copies of the events in OpenSearch unless
the log has an erasure record the indexer has not yet made searchable
(:func:`aiaudit.common.erasure.recorded_since`), asked on every page. Partial:
it holds only the erasure records, so the question is one probe per partition
whatever the log's size, and appends of other events pay nothing for it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ERASURES = sa.text("event_type = 'EVENT_TYPE_PRIVACY_ERASURE'")


def upgrade() -> None:
    """Creates ``events_erasures`` (on PostgreSQL on every partition, through the parent)."""
    op.create_index(
        "events_erasures",
        "events",
        ["log_id", "seq"],
        postgresql_where=_ERASURES,
        sqlite_where=_ERASURES,
    )
