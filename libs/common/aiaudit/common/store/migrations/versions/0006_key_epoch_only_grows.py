"""A log's key epoch only grows too.

The privacy role may raise ``logs.key_epoch`` (an erasure destroying a
subject's data key does); lowering it back would let a writer that cached the
destroyed key pass the one-statement append's epoch check and seal new
events under it (found by a review). The head trigger of ``0003`` now refuses
that as well, whoever runs it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_SQL = """
CREATE OR REPLACE FUNCTION aiaudit_log_head_grows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.log_id <> OLD.log_id OR NEW.size < OLD.size OR NEW.key_epoch < OLD.key_epoch THEN
    RAISE EXCEPTION 'log % head may only grow (size % -> %, key epoch % -> %)',
      OLD.log_id, OLD.size, NEW.size, OLD.key_epoch, NEW.key_epoch
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END
$$;
"""


def upgrade() -> None:
    """On PostgreSQL: the trigger function again (SQLite has no roles to guard against)."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text(_SQL))
