"""Privacy: erasing a subject also deletes its data key and raises its log's key epoch."""

import sqlalchemy as sa
from alembic import op

from aiaudit.common.store.migrate import PRIVACY_KEY_GRANTS

revision = "privacy_0002"
down_revision = "privacy_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """On PostgreSQL: the grants, if ``0005`` made the table already (SQLite has no roles)."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text(PRIVACY_KEY_GRANTS))
