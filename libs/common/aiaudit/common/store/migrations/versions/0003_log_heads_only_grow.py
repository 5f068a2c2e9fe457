"""A log's head only grows, and the writer may change nothing else of it.

``aiaudit_writer`` held UPDATE on every column of ``logs``: its login could
rename a log or set its size back, after which every append of the tenant
collided with its own entries (and ``verify`` reported inserted rows). Now it
may update ``size`` alone (what an append and the head lock need), and a
trigger refuses any update that lowers a size or changes a log id, whoever
runs it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_SQL = """
REVOKE UPDATE ON logs FROM aiaudit_writer;
GRANT UPDATE (size) ON logs TO aiaudit_writer;
CREATE FUNCTION aiaudit_log_head_grows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.log_id <> OLD.log_id OR NEW.size < OLD.size THEN
    RAISE EXCEPTION 'log % head may only grow (size % -> %)', OLD.log_id, OLD.size, NEW.size
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER logs_head_grows BEFORE UPDATE ON logs
  FOR EACH ROW EXECUTE FUNCTION aiaudit_log_head_grows();
"""


def upgrade() -> None:
    """On PostgreSQL: the column grant and the trigger (SQLite has no roles)."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text(_SQL))
