"""Data keys of the subjects (envelope encryption of content) and the logs' key epoch.

``content_keys`` holds each subject's data key wrapped by the KEK; writers
read and add keys, readers read them, and only the privacy role deletes them
(``PRIVACY_KEY_GRANTS``). ``logs.key_epoch`` rises when an erasure deletes
a key; ``aiaudit_stale_keys`` is what a one-statement append calls when the
epoch it expected has moved, failing the statement with SQLSTATE ``AKEY1``
so that nothing is written with a destroyed key.
"""

import sqlalchemy as sa
from alembic import op

from aiaudit.common.store.migrate import PRIVACY_KEY_GRANTS
from aiaudit.common.store.schema import metadata

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_SQL = """
CREATE FUNCTION aiaudit_stale_keys(log text) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'data keys of log % changed (a subject was erased)', log
    USING ERRCODE = 'AKEY1';
END
$$;
GRANT SELECT, INSERT ON content_keys TO aiaudit_writer;
GRANT SELECT ON content_keys TO aiaudit_reader;
"""


def upgrade() -> None:
    """Creates the table and the column (new databases got the column from ``0001``)."""
    bind = op.get_bind()
    metadata.create_all(bind, tables=[metadata.tables["content_keys"]])
    if "key_epoch" not in {c["name"] for c in sa.inspect(bind).get_columns("logs")}:
        op.add_column(
            "logs", sa.Column("key_epoch", sa.BigInteger, nullable=False, server_default="0")
        )
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text(_SQL))
        bind.execute(sa.text(PRIVACY_KEY_GRANTS))
