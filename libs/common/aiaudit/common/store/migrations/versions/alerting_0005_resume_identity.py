"""Alerting: resume tokens name the store and the history they followed.

A ``WatchAlerts`` resume token held a bare change sequence: given to another
database (another deployment or region, a new one) or to this one restored
from a backup and written since, it was taken as a position there, and the
client silently missed alerts or got another history's. This adds:

- ``alerting_store``: one row, the store's random id (made here, once). On
  PostgreSQL ``aiaudit_alerting`` may only read it.
- ``alerting_epochs`` (tenant, epoch, last_seq) and ``alerting_heads.epoch``:
  the writer epoch that last moved each head, and how far each epoch got.
  ``aiaudit_alerting`` gets SELECT and INSERT on it and UPDATE of
  ``last_seq`` only; nothing deletes a row.

The changes made before this revision belong to the epoch ``''``: its row per
tenant holds the head found here, so the tokens the new code gives for those
positions are accepted. Tokens of the previous code name no store and are
refused (``aiaudit.alerting.service``).

A database created from scratch already has the tables and the column
(``alerting_0001`` creates them from the current definitions), so each step
checks first.
"""

import uuid

import sqlalchemy as sa
from alembic import op

from aiaudit.alerting.tables import epochs, store

revision = "alerting_0005"
down_revision = "alerting_0004"
branch_labels = None
depends_on = None

_GRANTS = """
GRANT SELECT ON alerting_store TO aiaudit_alerting;
GRANT SELECT, INSERT ON alerting_epochs TO aiaudit_alerting;
GRANT UPDATE (last_seq) ON alerting_epochs TO aiaudit_alerting;
"""


def upgrade() -> None:
    """Adds the column and tables where missing, the store id, the epoch ``''`` rows; grants."""
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    if "epoch" not in {c["name"] for c in inspector.get_columns("alerting_heads")}:
        op.add_column(
            "alerting_heads",
            sa.Column("epoch", sa.String(32), nullable=False, server_default=sa.text("''")),
        )
    store.create(bind, checkfirst=True)
    epochs.create(bind, checkfirst=True)
    if bind.execute(sa.select(sa.func.count()).select_from(store)).scalar_one() == 0:
        bind.execute(sa.insert(store).values(store_id=uuid.uuid4().hex))
    bind.execute(
        sa.text(
            "INSERT INTO alerting_epochs (tenant, epoch, last_seq) "
            "SELECT h.tenant, '', h.change_seq FROM alerting_heads h WHERE NOT EXISTS "
            "(SELECT 1 FROM alerting_epochs e WHERE e.tenant = h.tenant AND e.epoch = '')"
        )
    )
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text(_GRANTS))
