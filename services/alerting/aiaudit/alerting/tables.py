"""Tables of the alerting service (own Alembic branch ``alerting``).

- ``alerting_rules``: per tenant rules and overrides of the default pack.
- ``alerting_alerts``: alerts and their lifecycle; never deleted.
- ``alerting_windows``: sliding-window samples per rule and group, saved every
  few thousand events together with the cursor ``alerting-windows`` (the log
  position they are as of); a restart replays the entries after it, so it
  resumes windows exactly. ``samples`` is bytes (``alerting_0006``; text before):
  the packed samples (``aiaudit.alerting.store.pack_samples``), or text of earlier
  versions as UTF-8, which still loads. Rows under the rule id ``~journal`` (never a
  rule's) keep, per batch since that save, the samples that rules reading
  content added: the replay adds them for events erased since.
- ``alerting_deliveries``: the sink outbox (one row per alert and sink), so
  delivery is at-least-once and keyed by alert id. ``next_attempt_time`` is
  the due time of a pending row (its lease while an attempt runs) and the time
  a ``dead`` row was dead-lettered (rows that died before this was so hold the
  lease of their last attempt instead: up to a minute and the attempt timeout later).
  ``alerting_deliveries_turns`` (``alerting_0007``) orders the pending rows by sink,
  tenant and due time, so a deliverer's pass walks the tenants with rows pending and
  takes a few of each in turn (:class:`aiaudit.alerting.sinks.Deliverer`);
  ``alerting_deliveries_waiting`` (``alerting_0007``) gives each sink's pending row due
  first, so a pass whose sinks have no row due walks no tenant.
- ``alerting_heads``: per tenant, the last change sequence given to an alert.
  Whoever changes a tenant's alerts (the engine of any replica, the
  acknowledge/resolve handlers) takes this row's lock first and stamps each
  changed alert with the next number, so numbers commit in order and
  ``WatchAlerts`` on any replica tails ``alerting_alerts.change_seq``.
  ``epoch`` names the writer epoch (below) of the transaction that last set it.
- ``alerting_store``: one row, the store's random id, made by migration
  ``alerting_0005``. Resume tokens carry it: a token of another database
  (another deployment or region, a new database) is refused.
- ``alerting_epochs``: per tenant, each writer epoch and the last change
  sequence it set. A writer epoch is a random id an :class:`AlertStore` takes
  for a tenant at its first change and keeps while the row still holds the
  sequence it last set (otherwise the database went back: a restore; it takes
  a new one). A resume token carries an (epoch, head) pair read with it; the
  store holds the history the token followed up to that head only if the
  epoch's row reached it. Epoch ``''``: the changes made before
  ``alerting_0005`` (its row holds the head the migration found).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()
TS = sa.DateTime(timezone=True)

rules = sa.Table(
    "alerting_rules",
    metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("rule_id", sa.String(64), primary_key=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("severity", sa.Integer, nullable=False),
    sa.Column("update_time", TS, nullable=False),
)

alerts = sa.Table(
    "alerting_alerts",
    metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("alert_id", sa.String(64), primary_key=True),
    sa.Column("rule_id", sa.String(64), nullable=False),
    sa.Column("dedup_key", sa.String(512), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("severity", sa.Integer, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("event_ids", sa.Text, nullable=False),
    sa.Column("evidence", sa.Text, nullable=False),
    sa.Column("labels", sa.Text, nullable=False),
    sa.Column("occurrence_count", sa.BigInteger, nullable=False),
    sa.Column("create_time", TS, nullable=False),
    sa.Column("last_seen_time", TS, nullable=False),
    sa.Column("acknowledged_by", sa.String(256)),
    sa.Column("acknowledge_time", TS),
    sa.Column("resolved_by", sa.String(256)),
    sa.Column("resolve_time", TS),
    sa.Column("resolve_reason", sa.Text),
    sa.Column("change_seq", sa.BigInteger, nullable=False, server_default=sa.text("0")),
)
sa.Index("alerting_alerts_open", alerts.c.tenant, alerts.c.dedup_key, alerts.c.state)
sa.Index("alerting_alerts_time", alerts.c.tenant, alerts.c.create_time)
sa.Index("alerting_alerts_changes", alerts.c.tenant, alerts.c.change_seq)

heads = sa.Table(
    "alerting_heads",
    metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("change_seq", sa.BigInteger, nullable=False),
    sa.Column("epoch", sa.String(32), nullable=False, server_default=""),
)

store = sa.Table(
    "alerting_store",
    metadata,
    sa.Column("store_id", sa.String(32), primary_key=True),
)

epochs = sa.Table(
    "alerting_epochs",
    metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("epoch", sa.String(32), primary_key=True),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
)

windows = sa.Table(
    "alerting_windows",
    metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("rule_id", sa.String(64), primary_key=True),
    sa.Column("group_key", sa.String(512), primary_key=True),
    sa.Column("samples", sa.LargeBinary, nullable=False),
)

deliveries = sa.Table(
    "alerting_deliveries",
    metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("alert_id", sa.String(64), primary_key=True),
    sa.Column("sink", sa.String(32), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_time", TS, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("delivered_time", TS),
    sa.Column("payload", sa.Text, nullable=False),
)
sa.Index("alerting_deliveries_due", deliveries.c.status, deliveries.c.next_attempt_time)
sa.Index(
    "alerting_deliveries_turns",
    deliveries.c.sink,
    deliveries.c.tenant,
    deliveries.c.next_attempt_time,
    postgresql_where=deliveries.c.status == "pending",
    sqlite_where=deliveries.c.status == "pending",
)
sa.Index(
    "alerting_deliveries_waiting",
    deliveries.c.sink,
    deliveries.c.next_attempt_time,
    postgresql_where=deliveries.c.status == "pending",
    sqlite_where=deliveries.c.status == "pending",
)
