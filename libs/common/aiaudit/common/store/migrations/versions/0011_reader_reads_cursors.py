"""Readers may read the consumers' cursors: ``aiaudit verify`` runs as ``aiaudit_reader``.

``aiaudit_reader`` was granted SELECT on the log's tables (``0001``), the data
keys (``0005``) and the notary's tables (``integrity_0001``), but not on
``consumer_cursors``, which only ``aiaudit_consumer`` read. ``verify`` reads
every cursor (the notary's says which nodes must be stored; any past the head
is a truncated tail; a log found only there was deleted): a read-only login
failed it at the first log with ``permission denied for table
consumer_cursors`` (2026-12-06). The table's row policy ``cursors_read``
(``0002``) lets every role read every row already; it writes nothing.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """On PostgreSQL (SQLite has no roles); granting again changes nothing."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text("GRANT SELECT ON consumer_cursors TO aiaudit_reader"))
