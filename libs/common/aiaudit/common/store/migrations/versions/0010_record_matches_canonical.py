"""``aiaudit_record`` also holds every column of a record to its canonical form.

0008 checked a row's ``event_type`` and leaf hash against its canonical JSON
but took the event id, the log and the search columns as the caller sent them
(review, 2026-12-05). A compromised recorder could therefore:

- pre-claim a gateway's event id in a tenant's log (idempotency is per log
  and event id): a record whose ``eventId`` was, say, ``req-42`` made the
  gateway's real interaction ``req-42`` a conflict, never stored, and the log
  still verified. A record's event id is now the one its kind is given
  (``access-<uuid>``, ``rule-change-<uuid>``, lowercase UUID), so it cannot be
  one an SDK or a gateway chooses (any other id a client picks stays free);
- put a record whose canonical ``tenantId`` names another tenant into a log
  (the search index files a document under its canonical tenant), or an
  ``eventId``, receive or occurred time, actor, model or correlation column
  that disagrees with the committed event (search filters on the columns).

Each is now what ``verify`` derives from the canonical JSON
(``aiaudit.integrity.checks``): ``eventId`` and ``tenantId`` the row's, each
text column the committed field (NULL when absent or empty), the times those
committed (absent: 1970-01-01), the canonical a JSON object. All arrays are
unnested together, so arrays of different lengths leave NULLs that fail the
check. The rest of the function is 0008's.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

RECORD_IDS = {
    "EVENT_TYPE_AUDIT_ACCESS": "access",
    "EVENT_TYPE_RULE_CHANGE": "rule-change",
}
"""Each record type and the prefix of its event ids (``access.py``, alerting's service)."""

_TEXT = {
    "user_id": ("actor", "userId"),
    "application": ("actor", "application"),
    "environment": ("actor", "environment"),
    "model_provider": ("model", "provider"),
    "model_name": ("model", "name"),
    "session_id": ("correlation", "sessionId"),
    "conversation_id": ("correlation", "conversationId"),
    "correlation_id": ("correlation", "correlationId"),
    "trace_id": ("correlation", "traceId"),
}
"""The text search columns of ``events`` in 0008's argument order, with their JSON fields."""

_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_ARGS = ", ".join(f"{c}s text[]" for c in _TEXT)
_COLUMNS = ", ".join(_TEXT)
_COLUMN_ARGS = ", ".join(f"{c}s" for c in _TEXT)
_TEXT_CHECKS = "\n".join(
    f"      AND {c} IS NOT DISTINCT FROM NULLIF(j -> '{m}' ->> '{f}', '')"
    for c, (m, f) in _TEXT.items()
)
_ID_CHECKS = " OR ".join(
    f"(t = '{t}' AND i ~ '^{prefix}-{_UUID}$')" for t, prefix in RECORD_IDS.items()
)
_NAMES = ", ".join(RECORD_IDS)

_SQL = f"""
CREATE OR REPLACE FUNCTION aiaudit_record(
  log_ids text[], seqs bigint[], receive_times timestamptz[], event_ids text[],
  leaf_hashes bytea[], canonicals bytea[], salts bytea[], contents bytea[],
  event_types text[], occurred_times timestamptz[], {_ARGS}
) RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF EXISTS (
    SELECT FROM unnest(
      log_ids, seqs, receive_times, event_ids, leaf_hashes, canonicals, salts, contents,
      event_types, occurred_times, {_COLUMN_ARGS}
    ) AS r(l, s, rt, i, h, c, salt, content, t, ot, {_COLUMNS})
    CROSS JOIN LATERAL (SELECT convert_from(c, 'UTF8')::jsonb AS j) AS parsed
    WHERE (
      ({_ID_CHECKS})
      AND jsonb_typeof(j) = 'object'
      AND j ->> 'eventType' = t
      AND j ->> 'eventId' = i
      AND j ->> 'tenantId' = l
      AND h = sha256('\\x00'::bytea || c)
      AND rt = COALESCE(j ->> 'receiveTime', '1970-01-01T00:00:00Z')::timestamptz
      AND ot = COALESCE(j ->> 'occurredTime', '1970-01-01T00:00:00Z')::timestamptz
{_TEXT_CHECKS}
    ) IS NOT TRUE
  ) THEN
    RAISE EXCEPTION 'aiaudit_record: records only ({_NAMES}), each as its canonical form says'
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
"""
"""``CREATE OR REPLACE`` of the same signature keeps 0008's owner, grants and revoke."""


def upgrade() -> None:
    """On PostgreSQL (SQLite has no roles); running it again changes nothing."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text(_SQL))
