"""The indexer's sweep of a held log finds its erasure records by their index.

``Indexer._records`` named the record types as bound parameters: neither
backend could use the partial index ``events_records`` with types it could
not see, so SQLite walked the log's primary key over the whole range and
PostgreSQL's generic plan walked the primary key of the log: 12 and 12.8 ms
a pass on a 30,000-event log, growing with it (2026-12-06). The plans of the
statement as issued are read, not a clock.
"""

from __future__ import annotations

from pathlib import Path

from aiaudit.common.store import SqlEventStore
from aiaudit.search import indexer
from aiaudit.search.backends.sqlite_fts import SqliteFtsBackend
from tests.integrity.test_erasure_records_index import RECORD, load
from tests.plans import Issued, index_names, partitions_of, scans


def test_a_held_logs_records_are_found_by_their_index_not_by_walking_the_log(
    store: SqlEventStore, tenant: str, tmp_path: Path
) -> None:
    load(store, tenant)
    backend = SqliteFtsBackend(tmp_path / "index.db")
    running = indexer.Indexer(store, backend, 100, 0.05, 1.0, lambda _: None)
    try:
        with Issued(store.engine, "events") as issued:
            found = running._records(tenant, 100, 2 * RECORD)
            assert [seq for seq, _ in found] == [RECORD]
            assert running._records(tenant, RECORD + 1, 2 * RECORD) == []
            assert running._records(tenant, 0, RECORD) == []
    finally:
        running._writer.shutdown(wait=True)  # never started: its bulk thread only
        backend.close()
    statement, params = issued.statements[0]
    read = scans(store.engine, statement, params)
    sqlite = store.engine.dialect.name == "sqlite"
    events = {"events"} if sqlite else partitions_of(store.engine, "events", tenant)
    records = index_names(store.engine, "events_records")
    assert {s.table for s in read} & events, read
    for scan in read:
        if scan.table in events:  # the records alone, not the log over the range
            assert scan.index in records, read
