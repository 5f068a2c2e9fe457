"""``aiaudit db reindex-erasures``: the rows of ``erasure_names`` the intact records name.

The table is only an index to the signed records. A replica older than revision ``0014``
performing an erasure or a retention sweep writes no rows, and ``verify`` then names them
missing (exit 1) with no way to clear it. This writes each row an intact record (the one
``verify`` and ``VerifyEvent`` trust: its entry within the head, its bytes hashing to the
entry's leaf) owes and the table lacks. It never deletes or changes one: a row no record
names was forged, and stays for ``verify`` to name. Idempotent; each record's rows commit
together, so an interrupted run is simply run again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from aiaudit.common import erasure
from aiaudit.common.store import erasure_index
from aiaudit.common.store.schema import logs
from aiaudit.integrity import storage


class UnknownLogError(ValueError):
    """A log asked for is not in ``logs``: nothing was written."""


@dataclass
class Reindexed:
    """One log's outcome: intact records read, rows written."""

    log_id: str
    records: int = 0
    written: int = 0


def reindex_erasures(engine: sa.Engine, log_ids: Sequence[str] = ()) -> list[Reindexed]:
    """Writes the missing rows of ``log_ids`` (every log when empty); each log's outcome.

    Raises :class:`UnknownLogError` before writing anything when a log is unknown.
    """
    with engine.connect() as conn:
        known = [str(r) for r in conn.execute(sa.select(logs.c.log_id)).scalars()]
    unknown = [log_id for log_id in log_ids if log_id not in known]
    if unknown:
        raise UnknownLogError(unknown)
    done = []
    for log_id in list(dict.fromkeys(log_ids)) or sorted(known):
        outcome = Reindexed(log_id)
        with engine.connect() as conn:
            for seq, committed in storage.erasure_records(conn, log_id, after=-1):
                record = erasure.read_record(committed)
                if record is None:  # no JSON: verify names the record itself
                    continue
                outcome.records += 1
                ids = erasure_index.owed(record.ids)
                # The page's read ends first: on SQLite a read transaction turned writer
                # fails (SQLITE_BUSY) if another committed meanwhile; a fresh one waits.
                conn.commit()
                outcome.written += erasure_index.write(conn, log_id, seq, ids, missing=True)
                conn.commit()  # the record's rows together
        done.append(outcome)
    return done
