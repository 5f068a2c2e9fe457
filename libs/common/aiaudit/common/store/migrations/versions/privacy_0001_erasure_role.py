"""Privacy: the NOLOGIN role ``aiaudit_privacy``, the only one that may delete content.

``aiaudit erase`` logs in with a member of this role. It is a member of
``aiaudit_writer`` (it appends the erasure record to the log like any
event) and holds DELETE on ``event_content`` alone: no role can delete a log
entry, an event's canonical form, a node or a checkpoint.
"""

import sqlalchemy as sa
from alembic import op

revision = "privacy_0001"
down_revision = "0001"
branch_labels = ("privacy",)
depends_on = None

_ROLE = """
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'aiaudit_privacy') THEN
    CREATE ROLE aiaudit_privacy NOLOGIN IN ROLE aiaudit_writer;
  END IF;
END
$$;
GRANT DELETE ON event_content TO aiaudit_privacy;
"""


def upgrade() -> None:
    """On PostgreSQL: the privacy role and its one extra grant."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text(_ROLE))
