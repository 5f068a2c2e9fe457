"""The key-deletion trigger's function looks up ``logs`` in ``public`` only, never in pg_temp.

0007 pinned ``search_path = public``; PostgreSQL then still searches the
session's temporary schema first, since it is not listed. A privacy login
that created ``CREATE TEMP TABLE logs (...)`` and deleted a data key moved the
epoch of its temporary table, not the log's: writers kept sealing new events
under the deleted key (review, 2026-12-05). Listed last, pg_temp is searched
last, as PostgreSQL advises for SECURITY DEFINER functions.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """On PostgreSQL (SQLite has no functions of its own); running it again changes nothing."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.execute(
            sa.text("ALTER FUNCTION aiaudit_key_deleted() SET search_path = public, pg_temp")
        )
