"""The search indexer's cursor is written only by a consumer that is not the notary or alerting.

Revision ``0002`` kept the notary's and alerting's cursors to their roles,
but both roles are members of ``aiaudit_consumer``, which owned every other
cursor: their logins could move the search indexer's and make the index skip
events. A cursor that is neither the notary's nor alerting's is now written
only by a consumer login in neither of those roles.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_OWNER = """
CASE
  WHEN consumer = 'integrity' THEN pg_has_role(current_user, 'aiaudit_notary', 'MEMBER')
  WHEN consumer LIKE 'alerting%' THEN pg_has_role(current_user, 'aiaudit_alerting', 'MEMBER')
  ELSE pg_has_role(current_user, 'aiaudit_consumer', 'MEMBER')
    AND NOT pg_has_role(current_user, 'aiaudit_notary', 'MEMBER')
    AND NOT pg_has_role(current_user, 'aiaudit_alerting', 'MEMBER')
END
"""

_POLICIES = f"""
DROP POLICY cursors_insert ON consumer_cursors;
DROP POLICY cursors_update ON consumer_cursors;
CREATE POLICY cursors_insert ON consumer_cursors FOR INSERT WITH CHECK ({_OWNER});
CREATE POLICY cursors_update ON consumer_cursors FOR UPDATE USING ({_OWNER}) WITH CHECK ({_OWNER});
"""


def upgrade() -> None:
    """On PostgreSQL: the policies again, with the indexer's cursor kept to the indexer."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text(_POLICIES))
