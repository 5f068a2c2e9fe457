"""Alerting: the position the saved window state is as of, a cursor of its own.

The engine now saves window samples every few thousand events instead of
with every batch, and after a restart replays the events after that position
to rebuild them (``aiaudit.alerting.engine``). Before this revision windows
were saved with every batch, so they are as of the alerting cursor: the new
cursor ``alerting-windows`` starts there for every log.
"""

import sqlalchemy as sa
from alembic import op

revision = "alerting_0004"
down_revision = "alerting_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Starts the windows cursor of every log at its alerting cursor."""
    op.get_bind().execute(
        sa.text(
            "INSERT INTO consumer_cursors (consumer, log_id, position) "
            "SELECT 'alerting-windows', log_id, position FROM consumer_cursors c "
            "WHERE c.consumer = 'alerting' AND NOT EXISTS (SELECT 1 FROM consumer_cursors w "
            "WHERE w.consumer = 'alerting-windows' AND w.log_id = c.log_id)"
        )
    )


def downgrade() -> None:
    """Drops the windows cursor (the previous engine saves windows with every batch)."""
    op.get_bind().execute(
        sa.text("DELETE FROM consumer_cursors WHERE consumer = 'alerting-windows'")
    )
