"""Content rows carry their event's classification: retention by classification finds them.

``ingest.content_retention_days_by_classification`` keeps content for a number
of days per ``DataClassification``. The classification was only in the
canonical form, so a sweep of one classification would have parsed every
older event's canonical form on every pass. ``event_content`` gets
``data_classification`` (the enum's number, NULL for UNSPECIFIED), filled at
insert, and the partial index ``event_content_classified`` of the classified
rows alone (UNSPECIFIED costs an append nothing but the predicate). The
column sits beside the content: it leaves with the content it governs, so
the index holds only what may still expire.

Rows stored before: their classification is read from their canonical form
here, once (the events whose canonical form names one at its top level and
whose content is still held and not empty), so older events are kept as
their classification says, not as UNSPECIFIED. This reads ``events`` once,
in pages, and on PostgreSQL the index build then holds appends until it is
built (a SHARE lock; a partitioned table has no concurrent build): upgrade a
large store in a quiet hour. A canonical form that is not JSON (damaged:
``verify`` names it) is left NULL. A database created from scratch has the
column and index already (``0001`` creates the tables from the current
definitions): then the backfill finds nothing to do.
"""

from __future__ import annotations

import json
import logging

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

log = logging.getLogger(__name__)

# Written out, not imported: a revision applies what it applied when it was written.
_CLASSES = {
    "DATA_CLASSIFICATION_PUBLIC": 1,
    "DATA_CLASSIFICATION_INTERNAL": 2,
    "DATA_CLASSIFICATION_CONFIDENTIAL": 3,
    "DATA_CLASSIFICATION_RESTRICTED": 4,
}
_INDEX = (
    "CREATE INDEX IF NOT EXISTS event_content_classified "
    "ON event_content (log_id, data_classification, receive_time) "
    "WHERE data_classification IS NOT NULL"
)
_PAGE = 1_000


def upgrade() -> None:
    """Adds the column where it is missing, fills it for the rows already there, indexes it."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.execute(
            sa.text(
                "ALTER TABLE event_content ADD COLUMN IF NOT EXISTS data_classification smallint"
            )
        )
        named = "position('\"dataClassification\"'::bytea in e.canonical) > 0"
        empty = "'\\x7b7d'::bytea"
        canonical = "e.canonical"
    else:
        columns = {r[1] for r in bind.execute(sa.text("PRAGMA table_info(event_content)"))}
        if "data_classification" not in columns:
            bind.execute(
                sa.text("ALTER TABLE event_content ADD COLUMN data_classification SMALLINT")
            )
        named = "instr(e.canonical, CAST('\"dataClassification\"' AS BLOB)) > 0"
        empty = "X'7b7d'"
        # SQLite keeps any type in any column: one rewritten as text reads as a str, or
        # (not UTF-8) not at all; the store reads it as bytes (``sql._blob``), so does this.
        canonical = "CAST(e.canonical AS BLOB)"
    filled = _backfill(bind, named, empty, canonical)
    if filled:
        log.info("0013: %d stored events' classification read from their canonical form", filled)
    bind.execute(sa.text(_INDEX))


def _backfill(bind: sa.Connection, named: str, empty: str, canonical: str) -> int:
    """Sets the column of held, non-empty content from its event's canonical form; how many.

    Candidates are the events whose canonical bytes hold the key at all; the
    key counts only at the top level (an attribute may be called so too).
    Pages in (log, sequence) order from the last row of the page before, along the
    primary key, so each event is read once.
    """
    page = sa.text(
        f"SELECT e.log_id, e.seq, e.receive_time, {canonical} FROM events e "
        "JOIN event_content c ON c.log_id = e.log_id AND c.seq = e.seq "
        "AND c.receive_time = e.receive_time "
        f"WHERE {named} AND c.content <> {empty} AND c.data_classification IS NULL "
        "AND (e.log_id, e.seq) > (:log_id, :seq) "
        f"ORDER BY e.log_id, e.seq LIMIT {_PAGE}"
    )
    update = sa.text(
        "UPDATE event_content SET data_classification = :value "
        "WHERE log_id = :log_id AND seq = :seq AND receive_time = :receive_time"
    )
    after: dict[str, object] = {"log_id": "", "seq": -1}
    filled = 0
    while rows := bind.execute(page, after).all():
        updates = []
        for log_id, seq, receive_time, stored in rows:
            value = _classification(bytes(stored))
            if value is not None:
                updates.append(
                    {"value": value, "log_id": log_id, "seq": seq, "receive_time": receive_time}
                )
        if updates:
            bind.execute(update, updates)
            filled += len(updates)
        after = {"log_id": rows[-1][0], "seq": rows[-1][1]}
    return filled


def _classification(stored: bytes) -> int | None:
    """The classification a canonical form names at its top level (None: none, or not JSON)."""
    try:
        form = json.loads(stored)
    except ValueError:
        return None
    name = form.get("dataClassification") if isinstance(form, dict) else None
    return _CLASSES.get(name) if isinstance(name, str) else None
