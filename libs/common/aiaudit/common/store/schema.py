"""Tables of the store: the log is the hub and doubles as the outbox.

- ``logs``: one row per log (one log per tenant) holding its size; updating it
  under a row lock is what makes sequence numbers gap-free and in commit order.
- ``log_entries``: the log itself, narrow (sequence, event id, leaf hash); what
  the notary and every consumer tail, and the idempotency index.
- ``events``: the canonical (committed) form plus the columns the PRD's search
  patterns filter on; partitioned by receive time on PostgreSQL.
- ``event_content``: the erasable part (salt and content); deleting a row
  erases content without touching any leaf.
- ``content_keys``: each data subject's data key, wrapped; content is stored
  sealed under it, and erasing the subject deletes it.
- ``consumer_cursors``: each consumer's position in each log (the outbox
  contract: a consumer that was down resumes from here, losing nothing).
"""

from __future__ import annotations

import sqlalchemy as sa

from aiaudit.common.v1 import event_pb2

metadata = sa.MetaData()

TS = sa.DateTime(timezone=True)

logs = sa.Table(
    "logs",
    metadata,
    sa.Column("log_id", sa.String(64), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("key_epoch", sa.BigInteger, nullable=False, server_default="0"),
)
"""``key_epoch`` rises with each erasure of a subject's data key, so that a
writer learns that data keys it holds of this log may be gone."""

log_entries = sa.Table(
    "log_entries",
    metadata,
    sa.Column("log_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("event_id", sa.String(128), nullable=False),
    sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("receive_time", TS, nullable=False),
    sa.UniqueConstraint("log_id", "event_id", name="log_entries_event_id_key"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("log_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("receive_time", TS, primary_key=True),
    sa.Column("event_id", sa.String(128), nullable=False),
    sa.Column("event_type", sa.String(48), nullable=False),
    sa.Column("occurred_time", TS, nullable=False),
    sa.Column("user_id", sa.String(256)),
    sa.Column("application", sa.String(256)),
    sa.Column("environment", sa.String(64)),
    sa.Column("model_provider", sa.String(128)),
    sa.Column("model_name", sa.String(256)),
    sa.Column("session_id", sa.String(256)),
    sa.Column("conversation_id", sa.String(256)),
    sa.Column("correlation_id", sa.String(256)),
    sa.Column("trace_id", sa.String(32)),
    sa.Column("canonical", sa.LargeBinary, nullable=False),
    postgresql_partition_by="RANGE (receive_time)",
)

event_content = sa.Table(
    "event_content",
    metadata,
    sa.Column("log_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("receive_time", TS, primary_key=True),
    sa.Column("salt", sa.LargeBinary(32), nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Column("data_classification", sa.SmallInteger),
    postgresql_partition_by="RANGE (receive_time)",
)
"""``data_classification``: the event's ``DataClassification`` number as committed, NULL for
UNSPECIFIED (revision ``0013``); what content retention by classification looks up. It lives
beside the content, not in ``events``, so it leaves with the content it governs and the
sweeper's index holds only what may still expire."""

content_keys = sa.Table(
    "content_keys",
    metadata,
    sa.Column("key_id", sa.BigInteger, primary_key=True),
    sa.Column("log_id", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(256), nullable=False),
    sa.Column("kek", sa.String(256), nullable=False),
    sa.Column("wrapped", sa.LargeBinary, nullable=False),
    sa.Column("create_time", TS, nullable=False),
    sa.UniqueConstraint("log_id", "subject", name="content_keys_subject_key"),
)
"""Each subject's data key, wrapped by the KEK named in ``kek`` (see ``aiaudit.common.keys``)."""

consumer_cursors = sa.Table(
    "consumer_cursors",
    metadata,
    sa.Column("consumer", sa.String(64), primary_key=True),
    sa.Column("log_id", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)
"""Per consumer and log: how many entries it has processed (the next sequence to read)."""

# Indexes for the PRD's search patterns: who (user), when (time range), which
# model, which session/conversation/request/trace. Every one is tenant-first.
sa.Index("events_user_time", events.c.log_id, events.c.user_id, events.c.occurred_time)
sa.Index("events_time", events.c.log_id, events.c.occurred_time)
sa.Index("events_model_time", events.c.log_id, events.c.model_name, events.c.occurred_time)
sa.Index("events_type_time", events.c.log_id, events.c.event_type, events.c.occurred_time)
sa.Index("events_session", events.c.log_id, events.c.session_id)
sa.Index("events_conversation", events.c.log_id, events.c.conversation_id)
sa.Index("events_correlation", events.c.log_id, events.c.correlation_id)
sa.Index("events_trace", events.c.trace_id)

RECORD_TYPES = (
    event_pb2.EventType.Name(event_pb2.EVENT_TYPE_PRIVACY_ERASURE),
    event_pb2.EventType.Name(event_pb2.EVENT_TYPE_RETENTION_APPLIED),
)
"""The records that delete content (:data:`aiaudit.common.erasure.RECORD_TYPES`)."""

RECORDS_WHERE = "event_type IN ({})".format(", ".join(f"'{t}'" for t in RECORD_TYPES))
"""The predicate of ``events_records``, written out: a query matches the partial
index only when it says the same (a bound parameter would not prove it)."""

sa.Index(
    "events_records",
    events.c.log_id,
    events.c.seq,
    postgresql_where=sa.text(RECORDS_WHERE),
    sqlite_where=sa.text(RECORDS_WHERE),
)
"""Each log's erasure and retention records alone: every read over content asks for
the latest (revision ``0012``), and no other index answers it without walking the log."""

CLASSIFIED_WHERE = "data_classification IS NOT NULL"
"""The predicate of ``event_content_classified``: UNSPECIFIED (most events) costs it nothing."""

sa.Index(
    "event_content_classified",
    event_content.c.log_id,
    event_content.c.data_classification,
    event_content.c.receive_time,
    postgresql_where=sa.text(CLASSIFIED_WHERE),
    sqlite_where=sa.text(CLASSIFIED_WHERE),
)
"""Content of the classified events still held, by log, classification and age: a retention
sweep of one classification reads what it erases, not every older event (revision ``0013``)."""

erasure_names = sa.Table(
    "erasure_names",
    metadata,
    sa.Column("log_id", sa.String(64), primary_key=True),
    sa.Column("event_id", sa.String(128), primary_key=True),
    sa.Column("record_seq", sa.BigInteger, primary_key=True),
    sqlite_with_rowid=False,  # the key is the table: one B-tree to write, not two
)
"""Which erasure or retention record names which event id: (log, event id) -> record's
sequence, written in the transaction that appends the record (revision ``0014``).

Only an index: the records, in the signed log, are the truth. ``VerifyEvent`` of an event
whose content is present finds here the records after it naming it (one range of the
primary key) and checks each record itself; ``aiaudit verify`` names a row missing, extra
or pointing elsewhere. Reading every later record instead cost up to ~1.3 MB a record."""

PARTITIONED = (events, event_content)

TEXT_COLUMNS: dict[str, tuple[str, str]] = {
    "user_id": ("actor", "user_id"),
    "application": ("actor", "application"),
    "environment": ("actor", "environment"),
    "model_provider": ("model", "provider"),
    "model_name": ("model", "name"),
    "session_id": ("correlation", "session_id"),
    "conversation_id": ("correlation", "conversation_id"),
    "correlation_id": ("correlation", "correlation_id"),
    "trace_id": ("correlation", "trace_id"),
}
"""Text columns of ``events`` copied from the event: column -> (message, field).

Ingest fills them from the proto; ``verify`` checks them against the canonical
JSON (where names are the lowerCamelCase JSON names of the same fields).
"""
