"""Privacy: erasures and retention sweeps write the rows of ``erasure_names`` they record.

Revision ``0014`` grants it when the role exists already; this one, when the
table does (the two are on different branches, applied in either order).
"""

import sqlalchemy as sa
from alembic import op

revision = "privacy_0003"
down_revision = "privacy_0002"
branch_labels = None
depends_on = None

_GRANT = """
DO $$
BEGIN
  IF to_regclass('erasure_names') IS NOT NULL THEN
    GRANT INSERT ON erasure_names TO aiaudit_privacy;
  END IF;
END
$$;
"""


def upgrade() -> None:
    """On PostgreSQL: the grant, if ``0014`` made the table already (SQLite has no roles)."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text(_GRANT))
