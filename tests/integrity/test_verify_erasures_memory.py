"""``aiaudit verify``'s memory does not grow with the ids the erasure records name.

Its checks of the records (parts whole, ``erasure_names`` exact, no content put back)
held every id named, twice (id -> last record, id -> set of records: ~0.35 KB an id,
~35 MB for 100,000 erased events), so a log whose retention sweeps erased millions of
events needed gigabytes to verify. They now read the records beside ``erasure_names``
in sequence order, a batch at a time.
"""

from __future__ import annotations

import dataclasses
import tracemalloc

from aiaudit.common import erasure
from aiaudit.common.store import open_store
from tests.integrity.test_verify import Log, full_log, postgres  # noqa: F401 (the fixtures)

IDS = erasure.RECORD_IDS
"""Ids one record names: one erasure of them is one record, whole alone."""


def erase_ids(url: str, log: Log, first: int, records: int) -> None:
    """``records`` erasures of :data:`IDS` ids each, ids no event has (they owe their rows)."""
    store = open_store(url)
    try:
        for r in range(first, first + records):
            ids = [f"gone-{r}-{i:05d}" for i in range(IDS)]
            erasure.erase(store, log.tenant, "data subject request", "dpo", ids)
    finally:
        store.close()


def peak(log: Log) -> int:
    """Peak bytes allocated by one verify of the log (which must pass)."""
    tracemalloc.start()
    try:
        report = log.verify()
        top = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.ok, report.problems
    return top


def test_memory_of_the_record_checks_does_not_grow_with_the_ids_named(
    full_log: Log,  # noqa: F811 (the fixture)
    privacy_url: str,
) -> None:
    """Twice the ids named, about the same peak: before, it grew by ~0.35 KB an id (from
    10.1 to 17.0 MB on SQLite, 18.2 to 25.3 MB on PostgreSQL; now 5.1 to 5.7, 9.9 to 9.9).

    Two records, then four: either way the records are read two a query (the second
    query reads up to four), so what verify holds of them at once is the same.
    """
    log = dataclasses.replace(full_log, mode="leaves")  # the walk keeps nothing per record
    erase_ids(privacy_url, log, 0, 2)
    two = peak(log)
    erase_ids(privacy_url, log, 2, 2)
    four = peak(log)
    assert four < two + 2 * IDS * 100, (two, four)  # under 100 bytes an id more, not ~350
