"""``aiaudit verify``'s memory does not grow with the ids the erasure records name.

Its checks of the records (parts whole, ``erasure_names`` exact, no content put back)
held every id named, twice (id -> last record, id -> set of records: ~0.35 KB an id,
~35 MB for 100,000 erased events), so a log whose retention sweeps erased millions of
events needed gigabytes to verify. They now read the records beside ``erasure_names``
in sequence order, a batch at a time. Each batch's put-back query was built around its
ids, and its bound parameter (a reference cycle) kept them until a full garbage collection:
~72 bytes an id on SQLite. The ids are now the query's execution parameter.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aiaudit.common import erasure
from aiaudit.common.store import open_store
from tests.helpers import traced_peak
from tests.integrity.test_verify import Log, full_log, postgres  # noqa: F401 (the fixtures)

IDS = 10_000
"""Ids one erasure names."""
PER_RECORD = 100
"""Ids a record names: an erasure is 100 records, read 16 a query once there are more than
30, so what verify holds of the records' bytes at once does not grow with their number."""


def erase_ids(url: str, log: Log, first: int, records: int) -> None:
    """``records`` erasures of :data:`IDS` ids each, ids no event has (they owe their rows)."""
    store = open_store(url)
    try:
        for r in range(first, first + records):
            ids = [f"gone-{r}-{i:05d}" for i in range(IDS)]
            erasure.erase(store, log.tenant, "dsr", "dpo", ids, per_record=PER_RECORD)
    finally:
        store.close()


def peak(log: Log, mode: str, tmp_path: Path) -> int:
    """Peak bytes allocated by one ``aiaudit verify`` of the log (which must pass)."""
    setup = "from aiaudit.integrity import verify; verify.PAGE = 16"  # a page holds no more records
    code, top = traced_peak([*log.argv(), "--mode", mode], tmp_path / "peak.json", setup)
    assert code == 0, f"verify --mode {mode} failed"
    return top


@pytest.mark.parametrize("mode", ["leaves", "full"])
def test_memory_of_the_record_checks_does_not_grow_with_the_ids_named(
    full_log: Log,  # noqa: F811 (the fixture)
    privacy_url: str,
    mode: str,
    tmp_path: Path,
) -> None:
    """Two erasures, then four (200, then 400 records): the peak grew by ~0.35 KB an id
    in either mode (the record checks), and by ~0.15 KB (SQLite) and ~0.09 KB (PostgreSQL)
    more in ``full`` (the walk's id -> last record naming it); then by ~72 bytes on SQLite
    (5.4 to 6.9 MB, measured by the CLI in a process of its own) and ~39 on PostgreSQL
    (10.1 to 10.9 MB): each put-back query's ids, kept by a reference cycle. Now ~5 bytes
    an id on either store and mode (4.7 to 4.8 MB on SQLite, 9.3 to 9.4 MB on PostgreSQL
    in ``leaves``; then 2-3 bytes an id to 16 erasures).
    """
    erase_ids(privacy_url, full_log, 0, 2)
    two = peak(full_log, mode, tmp_path)
    erase_ids(privacy_url, full_log, 2, 2)
    four = peak(full_log, mode, tmp_path)
    assert four < two + 2 * IDS * 20, (two, four)  # under 20 bytes an id more, not 39-350
