"""``VerifyEvent`` of an erased event reads the records up to its erasure's end, not the log's.

Since 7bf828e it checks that every part of the erasure naming the event is there
(``checks.erasure_problems``), and so read and parsed every erasure and retention
record after the event to the log's end: one a retention sweep, up to 1.4 MB each,
for as long as the log lives (148 ms on SQLite, 416 ms on PostgreSQL with 100
records of 10,000 ids after the event; 0.2 and 145 ms before, which stopped at the
first record naming it). The records are now read in sequence order, a few a query,
and the check stops at the first record of another erasure after the one naming the
event. Counted by the records the check takes from the store, not by a clock.
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa

from aiaudit.common.erasure import erase
from aiaudit.common.store import SqlEventStore, open_store
from aiaudit.integrity import checks, storage
from tests.integrity.conftest import append


def _read(
    conn: sa.Connection, log_id: str, after: int, taken: list[int]
) -> Iterator[tuple[int, bytes]]:
    """``storage.erasure_records``, noting the sequence of each record taken."""
    for seq, committed in storage.erasure_records(conn, log_id, after):
        taken.append(seq)
        yield seq, committed


def test_verify_event_reads_the_records_up_to_the_end_of_the_erasure_naming_the_event(
    store: SqlEventStore, privacy_url: str, tenant: str
) -> None:
    ids = [r.event_id for r in append(store, tenant, 4)]
    privacy = open_store(privacy_url)
    try:
        first = erase(privacy, tenant, "data subject request", "dpo", ids[:2], per_record=1)
        later = [
            erase(privacy, tenant, "data subject request", "dpo", [f"other-{i}"]) for i in range(6)
        ]
    finally:
        privacy.close()
    with store.engine.connect() as conn:
        seqs = [seq for seq, _ in storage.erasure_records(conn, tenant, -1)]
        assert seqs == list(range(4, 4 + 2 + len(later)))  # in sequence order, every page
        taken: list[int] = []
        named, missing = checks.erasure_problems(_read(conn, tenant, 0, taken), ids[0])
        assert (named, missing) == (True, [])
        # Both parts of the erasure naming it, and the first record of the next one.
        assert taken == [4, 5, 6]
        taken.clear()
        named, missing = checks.erasure_problems(_read(conn, tenant, 1, taken), ids[1])
        assert (named, missing, taken) == (True, [], [4, 5, 6])
        taken.clear()  # named by none: every record is read
        assert checks.erasure_problems(_read(conn, tenant, 2, taken), ids[2]) == (False, [])
        assert taken == seqs
        assert [seq for seq, _ in storage.erasure_records(conn, tenant, -1, most=1)] == seqs
    assert len(first.record_ids) == 2
