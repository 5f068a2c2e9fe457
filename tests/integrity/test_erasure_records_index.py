"""``VerifyEvent`` of an erased event finds the erasure records after it by their index.

``storage.erasure_records`` named the record types as bound parameters and
joined the log's entries: neither backend could use the partial index
``events_records`` with types it could not see, so SQLite walked the log's
primary key from the event to the head, and PostgreSQL (on a partition
without statistics, or a generic plan) read every entry of the log into a
hash join: 26 and 14-22 ms a call on a 30,000-event log, growing with it
(2026-12-06). The plans of the statement as issued are read, not a clock.
"""

from __future__ import annotations

import datetime as dt

from aiaudit.common.store import SqlEventStore
from aiaudit.common.store.prepare import prepare_batch
from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.integrity import storage
from tests.helpers import interaction
from tests.plans import Issued, index_names, partitions_of, scans

RECORD = 1000


def load(store: SqlEventStore, tenant: str) -> None:
    """2,000 events, a retention record at RECORD: enough that a planner without statistics
    weighs a walk of the log as what it is (on a few hundred, any index is as cheap)."""
    batch = [interaction(tenant, f"e-{i}") for i in range(2 * RECORD)]
    batch[RECORD].event_type = ev.EVENT_TYPE_RETENTION_APPLIED
    store.append_group([prepare_batch(batch, dt.datetime.now(dt.UTC))])


def test_the_records_after_an_event_are_found_by_their_index_not_by_walking_the_log(
    store: SqlEventStore, tenant: str
) -> None:
    load(store, tenant)
    record = RECORD
    with Issued(store.engine, "events") as issued, store.engine.connect() as conn:
        found = list(storage.erasure_records(conn, tenant, 100))
        assert [seq for seq, _ in found] == [record]
        assert list(storage.erasure_records(conn, tenant, record)) == []
    statement, params = issued.statements[0]
    read = scans(store.engine, statement, params)
    sqlite = store.engine.dialect.name == "sqlite"
    events = {"e", "events"} if sqlite else partitions_of(store.engine, "events", tenant)
    entries = {"le", "log_entries"}
    records = index_names(store.engine, "events_records")
    assert {s.table for s in read} & events, read
    for scan in read:
        if scan.table in events:  # the records alone, not the log from the event on
            assert scan.index in records, read
        if scan.table in entries:  # each record's entry by its key, not the log's entries
            assert ("seq=?" in scan.keys) if sqlite else ("seq = " in scan.keys), read
