"""Deleting a data key raises its log's key epoch, however it is deleted.

``erase()`` raises the epoch itself; a key row deleted any other way (the
privacy role holds DELETE) left writers sealing new events under the deleted
key, acknowledged and unreadable (found by a review). The trigger runs as its
owner, so the deleting login needs no UPDATE on ``logs``.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_SQL = """
CREATE FUNCTION aiaudit_key_deleted() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public AS $$
BEGIN
  UPDATE logs SET key_epoch = key_epoch + 1 WHERE log_id = OLD.log_id;
  RETURN OLD;
END
$$;
CREATE TRIGGER content_keys_deleted AFTER DELETE ON content_keys
  FOR EACH ROW EXECUTE FUNCTION aiaudit_key_deleted();
"""


def upgrade() -> None:
    """On PostgreSQL (SQLite has no roles: only ``erase()`` deletes keys there)."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text(_SQL))
