"""Each consumer's cursor is moved only by its own role (row-level security).

``aiaudit_consumer`` held INSERT/UPDATE on every row of ``consumer_cursors``,
and the notary's and alerting's roles are its members: the search indexer's
login could move the notary's or alerting's cursor, so events would never be
signed or checked by any rule, or be checked twice. Every login still reads
every cursor (search waits on the indexer's, health reports lag); a row is
written only by a member of the role that owns that consumer:
``integrity`` by ``aiaudit_notary``, ``alerting*`` by ``aiaudit_alerting``,
any other (the search indexer's) by ``aiaudit_consumer``. The table's owner
(migrations, the embedded admin) is not bound by the policies.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = ("integrity_0001", "alerting_0002")

_OWNER = """
CASE
  WHEN consumer = 'integrity' THEN pg_has_role(current_user, 'aiaudit_notary', 'MEMBER')
  WHEN consumer LIKE 'alerting%' THEN pg_has_role(current_user, 'aiaudit_alerting', 'MEMBER')
  ELSE pg_has_role(current_user, 'aiaudit_consumer', 'MEMBER')
END
"""

_POLICIES = f"""
ALTER TABLE consumer_cursors ENABLE ROW LEVEL SECURITY;
CREATE POLICY cursors_read ON consumer_cursors FOR SELECT USING (true);
CREATE POLICY cursors_insert ON consumer_cursors FOR INSERT WITH CHECK ({_OWNER});
CREATE POLICY cursors_update ON consumer_cursors FOR UPDATE USING ({_OWNER}) WITH CHECK ({_OWNER});
"""


def upgrade() -> None:
    """On PostgreSQL: the policies (SQLite has no roles)."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text(_POLICIES))
