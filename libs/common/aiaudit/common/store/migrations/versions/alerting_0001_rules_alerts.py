"""Alerting: rules, alerts, window state and the delivery outbox.

On PostgreSQL these grants went to the consumer role (``aiaudit_consumer``);
``alerting_0002`` moves them to the alerting role ``aiaudit_alerting``: SELECT,
INSERT and UPDATE on these tables, DELETE only on rules (DeleteRule) and window
state (expired groups); alerts and delivery records are never deleted. Readers
get SELECT on rules and alerts.
"""

import sqlalchemy as sa
from alembic import op

from aiaudit.alerting.tables import metadata

revision = "alerting_0001"
down_revision = "0001"
branch_labels = ("alerting",)
depends_on = None

_GRANTS = """
GRANT SELECT, INSERT, UPDATE ON alerting_rules, alerting_alerts, alerting_windows,
  alerting_deliveries TO aiaudit_consumer;
GRANT DELETE ON alerting_rules, alerting_windows TO aiaudit_consumer;
GRANT SELECT ON alerting_rules, alerting_alerts TO aiaudit_reader;
"""


def upgrade() -> None:
    """Creates the tables, and on PostgreSQL the grants."""
    bind = op.get_bind()
    metadata.create_all(bind)
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text(_GRANTS))
