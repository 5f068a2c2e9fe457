"""Alerting: the pending outbox rows get an index by sink, tenant and due time.

A deliverer's pass took the 100 rows due longest, whatever their tenant, so a
tenant with thousands of alerts queued held every other tenant's fresh alert
until its backlog was sent. A pass now takes turns between tenants
(``aiaudit.alerting.sinks.Deliverer``): it walks the tenants with pending rows
of its sinks, one index probe each, and reads a few due rows of each. Ranking
the due rows per tenant without an index read every due row: 240-460 ms a pass
on PostgreSQL and ~820 ms on SQLite at 100,000 due rows (review, 2026-12-07).
Through this index such a pass (100,000 rows due of one tenant, one of another)
takes 0.9 ms on PostgreSQL and 0.2 ms on SQLite (2026-12-07).

``alerting_deliveries_waiting`` (sink, due time; pending rows too) tells a pass whether
any row of its sinks is due before it walks their tenants: asked of every sink's rows
(``alerting_deliveries_due``), one row due of a sink the process has no address for had
each poll walk all tenants (review, 2026-12-07).

Partial (``status = 'pending'``): delivered and dead rows, which are kept for
good, are not in it. No grant changes: the deliverer only reads it through
SELECT, which ``aiaudit_alerting`` holds already (``alerting_0002``).

Building it reads ``alerting_deliveries`` once and, on PostgreSQL, holds writes
to the outbox until it is built (a SHARE lock). A database created from scratch
has it already (``alerting_0001`` creates the tables from the current
definitions): then nothing is done.
"""

import sqlalchemy as sa
from alembic import op

revision = "alerting_0007"
down_revision = "alerting_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Creates the indexes where missing (written out: what this revision applied)."""
    for name, columns in (
        ("alerting_deliveries_turns", "sink, tenant, next_attempt_time"),
        ("alerting_deliveries_waiting", "sink, next_attempt_time"),
    ):
        op.execute(
            sa.text(
                f"CREATE INDEX IF NOT EXISTS {name}"
                f" ON alerting_deliveries ({columns}) WHERE status = 'pending'"
            )
        )
