"""Alerting: its own NOLOGIN role ``aiaudit_alerting``, so other consumers cannot write alerts.

``alerting_0001`` granted the alerting tables to ``aiaudit_consumer``, which
the search indexer and the notary also log in as: either could have raised,
changed or suppressed alerts. This moves those grants to ``aiaudit_alerting``
(a member of ``aiaudit_consumer``, so it still reads the log and moves its own
cursor) and revokes them from ``aiaudit_consumer``:

- SELECT, INSERT, UPDATE on ``alerting_rules``, ``alerting_alerts``,
  ``alerting_windows`` and ``alerting_deliveries``: the engine writes alerts,
  windows and the outbox; the handlers write rules and the alert lifecycle.
- DELETE only on ``alerting_rules`` (DeleteRule) and ``alerting_windows``
  (expired groups); alerts and delivery records are never deleted.

Readers (``aiaudit_reader``) keep SELECT on rules and alerts.
"""

import sqlalchemy as sa
from alembic import op

revision = "alerting_0002"
down_revision = "alerting_0001"
branch_labels = None
depends_on = None

_TABLES = "alerting_rules, alerting_alerts, alerting_windows, alerting_deliveries"
_ROLES = f"""
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'aiaudit_alerting') THEN
    CREATE ROLE aiaudit_alerting NOLOGIN IN ROLE aiaudit_consumer;
  END IF;
END
$$;
GRANT SELECT, INSERT, UPDATE ON {_TABLES} TO aiaudit_alerting;
GRANT DELETE ON alerting_rules, alerting_windows TO aiaudit_alerting;
REVOKE ALL ON {_TABLES} FROM aiaudit_consumer;
"""


def upgrade() -> None:
    """On PostgreSQL: the alerting role, its grants, and the consumer role's revoked."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text(_ROLES))
