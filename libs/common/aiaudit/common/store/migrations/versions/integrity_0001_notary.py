"""Integrity: Merkle tree nodes and signed checkpoints (append-only).

On PostgreSQL it creates the NOLOGIN role ``aiaudit_notary`` (a member of
``aiaudit_consumer``, so it reads the log and moves its own cursor) with
INSERT and SELECT on these tables and nothing more: nodes and checkpoints are
never updated or deleted, so no role gets UPDATE or DELETE. Readers
(``aiaudit_reader``) get SELECT, which is all proofs and ``verify`` need.
"""

import sqlalchemy as sa
from alembic import op

from aiaudit.integrity.tables import metadata

revision = "integrity_0001"
down_revision = "0001"
branch_labels = ("integrity",)
depends_on = None

_ROLES = """
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'aiaudit_notary') THEN
    CREATE ROLE aiaudit_notary NOLOGIN IN ROLE aiaudit_consumer;
  END IF;
END
$$;
GRANT SELECT, INSERT ON integrity_nodes, integrity_checkpoints TO aiaudit_notary;
GRANT SELECT ON integrity_nodes, integrity_checkpoints TO aiaudit_reader;
"""


def upgrade() -> None:
    """Creates the tables, and on PostgreSQL the notary role and grants."""
    bind = op.get_bind()
    metadata.create_all(bind)
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text(_ROLES))
