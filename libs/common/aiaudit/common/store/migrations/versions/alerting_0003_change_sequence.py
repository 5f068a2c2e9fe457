"""Alerting: a change sequence per tenant, so WatchAlerts sees changes made by any replica.

Adds ``alerting_alerts.change_seq`` (indexed with the tenant) and the lock row
table ``alerting_heads`` (tenant -> last change sequence). On PostgreSQL
``aiaudit_alerting`` gets SELECT, INSERT and UPDATE on ``alerting_heads``
(it creates a tenant's row and moves it); nothing deletes it.

A database created from scratch already has both (``alerting_0001`` creates
the tables from the current definitions), so each step checks first.
"""

import sqlalchemy as sa
from alembic import op

from aiaudit.alerting.tables import heads

revision = "alerting_0003"
down_revision = "alerting_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Adds the column, its index and the heads table where missing; grants on PostgreSQL."""
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    if "change_seq" not in {c["name"] for c in inspector.get_columns("alerting_alerts")}:
        op.add_column(
            "alerting_alerts",
            sa.Column("change_seq", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        )
    if "alerting_alerts_changes" not in {
        i["name"] for i in inspector.get_indexes("alerting_alerts")
    }:
        op.create_index("alerting_alerts_changes", "alerting_alerts", ["tenant", "change_seq"])
    heads.create(bind, checkfirst=True)
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text("GRANT SELECT, INSERT, UPDATE ON alerting_heads TO aiaudit_alerting"))
