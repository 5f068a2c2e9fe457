"""The NOLOGIN role ``aiaudit_recorder``: appends the suite's own records, nothing else.

Search, alerting and integrity append access records (alerting also its rule
changes) to tenants' logs; they ran as ``aiaudit_writer``, so a compromised
pod could append forged interactions to any log, which the notary then signs
(security review, 2026-12-05). The recorder is a member of ``aiaudit_reader``
and may INSERT into ``content_keys`` (a record's quoted details are sealed),
but write none of ``logs``, ``log_entries``, ``events`` or ``event_content``:
it appends through two SECURITY DEFINER functions, which run as the owner
(the migration login):

- ``aiaudit_record_head(log)``: creates the log's head if new and locks it,
  as ``_lock_logs`` does for a writer; the head's size and key epoch.
- ``aiaudit_record(columns...)``: a batch's rows, one array per column, all
  refused unless each is a record (:data:`RECORD_TYPES`) whose canonical JSON
  says the same ``eventType`` (``verify`` compares the two) and whose leaf
  hash is that of its canonical form (``SHA-256(0x00 || canonical)``), so the
  notary signs only what the event row says; and unless each log's rows are
  exactly the next sequences at its head (so no content goes to an entry
  already there, an erased one included). Then it writes the three tables
  from the same arrays (matching log id, sequence, receive time and event id
  by construction) and moves the heads.

The writer's path (and its COPY) is untouched: no row-level security.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

RECORD_TYPES = ("EVENT_TYPE_AUDIT_ACCESS", "EVENT_TYPE_RULE_CHANGE")
"""The event types the suite's services other than ingest append."""

_TEXT = (
    "user_id",
    "application",
    "environment",
    "model_provider",
    "model_name",
    "session_id",
    "conversation_id",
    "correlation_id",
    "trace_id",
)
"""The text search columns of ``events``, in the order the store sends them."""

_ARGS = ", ".join(f"{c}s text[]" for c in _TEXT)
_COLUMNS = ", ".join(_TEXT)
_COLUMN_ARGS = ", ".join(f"{c}s" for c in _TEXT)
_SIGNATURE = (
    "aiaudit_record(text[], bigint[], timestamptz[], text[], bytea[], bytea[], bytea[], "
    f"bytea[], text[], timestamptz[], {', '.join(['text[]'] * len(_TEXT))})"
)
_TYPES = ", ".join(f"'{t}'" for t in RECORD_TYPES)
_NAMES = ", ".join(RECORD_TYPES)

# search_path: public, then pg_temp explicitly last; otherwise the caller's own
# temporary tables (any login may create them) would be found before public's.
_SQL = f"""
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'aiaudit_recorder') THEN
    CREATE ROLE aiaudit_recorder NOLOGIN IN ROLE aiaudit_reader;
  END IF;
END
$$;
GRANT aiaudit_reader TO aiaudit_recorder;
GRANT SELECT, INSERT ON content_keys TO aiaudit_recorder;

CREATE OR REPLACE FUNCTION aiaudit_record_head(head text, OUT size bigint, OUT key_epoch bigint)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  INSERT INTO logs AS l (log_id, size) VALUES (head, 0)
  ON CONFLICT (log_id) DO UPDATE SET size = l.size
  RETURNING l.size, l.key_epoch
$$;

CREATE OR REPLACE FUNCTION aiaudit_record(
  log_ids text[], seqs bigint[], receive_times timestamptz[], event_ids text[],
  leaf_hashes bytea[], canonicals bytea[], salts bytea[], contents bytea[],
  event_types text[], occurred_times timestamptz[], {_ARGS}
) RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF EXISTS (
    SELECT FROM unnest(event_types, canonicals, leaf_hashes) AS r(t, c, h)
    WHERE (
      t IN ({_TYPES})
      AND convert_from(c, 'UTF8')::jsonb ->> 'eventType' = t
      AND h = sha256('\\x00'::bytea || c)
    ) IS NOT TRUE
  ) THEN
    RAISE EXCEPTION 'aiaudit_record: records only ({_NAMES}), each with its own leaf hash'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  -- The heads, in the order _lock_logs takes them (already held if it did).
  PERFORM FROM logs WHERE log_id = ANY (log_ids) ORDER BY log_id COLLATE "C" FOR UPDATE;
  -- Each log's rows are its next sequences: with the primary key, n distinct
  -- sequences from the head's size to size + n - 1.
  IF EXISTS (
    SELECT FROM (
      SELECT l, min(s) AS lo, max(s) AS hi, count(*) AS n FROM unnest(log_ids, seqs) AS r(l, s)
      GROUP BY l
    ) g LEFT JOIN logs ON logs.log_id = g.l
    WHERE (g.lo = logs.size AND g.hi = logs.size + g.n - 1) IS NOT TRUE
  ) THEN
    RAISE EXCEPTION 'aiaudit_record: rows only at the head of an existing log'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  INSERT INTO log_entries (log_id, seq, event_id, leaf_hash, receive_time)
  SELECT * FROM unnest(log_ids, seqs, event_ids, leaf_hashes, receive_times);
  INSERT INTO events (log_id, seq, receive_time, event_id, canonical, event_type,
    occurred_time, {_COLUMNS})
  SELECT * FROM unnest(log_ids, seqs, receive_times, event_ids, canonicals, event_types,
    occurred_times, {_COLUMN_ARGS});
  INSERT INTO event_content (log_id, seq, receive_time, salt, content)
  SELECT * FROM unnest(log_ids, seqs, receive_times, salts, contents);
  UPDATE logs SET size = g.hi + 1
  FROM (SELECT l, max(s) AS hi FROM unnest(log_ids, seqs) AS r(l, s) GROUP BY l) g
  WHERE logs.log_id = g.l;
END
$$;

REVOKE ALL ON FUNCTION aiaudit_record_head(text), {_SIGNATURE} FROM PUBLIC;
GRANT EXECUTE ON FUNCTION aiaudit_record_head(text), {_SIGNATURE} TO aiaudit_recorder;
"""
"""Idempotent, as the other revisions: the role if absent, functions replaced, grants again.
EXECUTE is revoked from PUBLIC, which PostgreSQL grants it on every new function."""


def upgrade() -> None:
    """On PostgreSQL: the role, its grants and the functions (SQLite has no roles)."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text(_SQL))
