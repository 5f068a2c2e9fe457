"""Which erasure or retention record names which event: the table ``erasure_names``.

``VerifyEvent`` of an event whose content is present must say so when a record
after it in the log names it (content put back from a backup taken before the
erasure, which every reader serves again; ``aiaudit verify`` names it). Finding
such a record meant reading every later record, up to ~1.3 MB each and one per
retention sweep. ``erasure_names`` maps (log, event id) to the sequence of each
record naming it, written in the transaction that appends the record, so the
lookup is one range of its primary key. It is only an index: the records are the
truth, ``VerifyEvent`` checks the record a row points at, and ``aiaudit verify``
names a row missing, extra or pointing elsewhere.

The rows of the records already stored are written here: each intact record
(its entry within the log's head, its bytes hashing to the entry's leaf) is
read once, a few at a time along ``events_records``, and parsed. A record that
is not intact (``verify`` names it) gets none. On PostgreSQL readers may read
the table and the privacy role (erasures, retention sweeps) may add to it
(``privacy_0003`` grants that when this revision comes first); no role may
change or delete a row. Replicas older than this revision write no rows: stop
them before the next erasure or retention sweep, or ``verify`` names the rows
of their records as missing.
"""

from __future__ import annotations

import hashlib
import json
import logging

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql, sqlite

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

log = logging.getLogger(__name__)

# Written out, not imported: a revision applies what it applied when it was written.
_TABLE = sa.Table(
    "erasure_names",
    sa.MetaData(),
    sa.Column("log_id", sa.String(64), primary_key=True),
    sa.Column("event_id", sa.String(128), primary_key=True),
    sa.Column("record_seq", sa.BigInteger, primary_key=True),
    sqlite_with_rowid=False,  # the key is the table: one B-tree to write, not two
)
_WHERE = "e.event_type IN ('EVENT_TYPE_PRIVACY_ERASURE', 'EVENT_TYPE_RETENTION_APPLIED')"
_GRANTS = """
GRANT SELECT ON erasure_names TO aiaudit_reader;
DO $$
BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'aiaudit_privacy') THEN
    GRANT INSERT ON erasure_names TO aiaudit_privacy;
  END IF;
END
$$;
"""
_PAGE = 16
"""Records read a query (each up to ~1.3 MB)."""


def upgrade() -> None:
    """Creates the table (and grants), and writes the rows of the records already stored."""
    bind = op.get_bind()
    _TABLE.create(bind, checkfirst=True)
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        bind.execute(sa.text(_GRANTS))
    written = _backfill(bind, "e.canonical" if postgres else "CAST(e.canonical AS BLOB)")
    if written:
        log.info("0014: %d rows of erasure_names written from the stored records", written)


def _backfill(bind: sa.Connection, canonical: str) -> int:
    """Writes the rows of every intact record; how many (a row already there is kept)."""
    page = sa.text(
        f"SELECT e.log_id, e.seq, {canonical}, le.leaf_hash FROM events e"
        " JOIN log_entries le ON le.log_id = e.log_id AND le.seq = e.seq"
        " AND le.receive_time = e.receive_time"
        " JOIN logs l ON l.log_id = e.log_id AND e.seq < l.size"
        f" WHERE {_WHERE} AND (e.log_id, e.seq) > (:log_id, :seq)"
        f" ORDER BY e.log_id, e.seq LIMIT {_PAGE}"
    )
    dialect = postgresql if bind.dialect.name == "postgresql" else sqlite
    insert = dialect.insert(_TABLE).on_conflict_do_nothing()
    after: dict[str, object] = {"log_id": "", "seq": -1}
    written = 0
    while rows := bind.execute(page, after).all():
        for log_id, seq, stored, leaf in rows:
            ids = _named(bytes(stored), leaf)
            for i in range(0, len(ids), 10_000):
                chunk = ids[i : i + 10_000]
                bind.execute(
                    insert, [{"log_id": log_id, "event_id": e, "record_seq": seq} for e in chunk]
                )
                written += len(chunk)
        after = {"log_id": rows[-1][0], "seq": rows[-1][1]}
    return written


def _named(stored: bytes, leaf: object) -> list[str]:
    """The ids an intact record names ([] for one whose bytes are not its leaf's, or damaged)."""
    if not isinstance(leaf, bytes | memoryview):  # SQLite: a leaf rewritten as text
        return []
    if hashlib.sha256(b"\x00" + stored).digest() != bytes(leaf):
        return []
    try:
        node = json.loads(stored)
    except ValueError:
        return []
    if not isinstance(node, dict) or node.get("eventType") not in (
        "EVENT_TYPE_PRIVACY_ERASURE",
        "EVENT_TYPE_RETENTION_APPLIED",
    ):
        return []
    action = node.get("privacyAction")
    named = action.get("eventIds") if isinstance(action, dict) else None
    if not isinstance(named, list):
        return []
    # Not an id no event can have (longer than the column, or U+0000: ``aiaudit erase`` took
    # any before 2026-12-06): it names no content, and PostgreSQL refused the row, failing
    # the whole upgrade (review, 2026-12-07). As ``erasure_index.owed``.
    ids = dict.fromkeys(str(n) for n in named)
    return [e for e in ids if len(e) <= 128 and "\x00" not in e]
