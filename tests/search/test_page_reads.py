"""A page of large events reads from the store only what its reply can hold, in the page's order.

A page read every one of its hits (up to 1,000) before the reply's 3 MiB cut
applied: 1,000 events of 4 MiB were gigabytes read for one query (review).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from aiaudit.common.store import open_store, sql
from aiaudit.common.store.prepare import prepare
from aiaudit.search.v1 import search_service_pb2 as pb
from tests.helpers import interaction
from tests.search.conftest import NOT_ACCESS, start_suite

BUDGET = 3 * 1024 * 1024
"""What a page reads stored, past its first event: what its reply holds (``_PAGE_BYTES``)."""
TIMES = [3, 0, 6, 1, 5, 2, 4]
"""Each event's occurred minute, by sequence: in time order the hits are out of sequence order."""


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        ("sequence", list(range(7))),
        ("sequence desc", list(range(6, -1, -1))),
        ("occurred_time", sorted(range(7), key=lambda s: TIMES[s])),
    ],
    ids=["sequence order", "newest first", "out of sequence order"],
)
def test_a_page_of_large_events_reads_at_most_its_budget_in_the_page_order(
    tmp_path: Path,
    tenant: str,
    monkeypatch: pytest.MonkeyPatch,
    order_by: str,
    expected: list[int],
) -> None:
    url = f"sqlite:///{tmp_path / 'aiaudit.db'}"
    store = open_store(url, run_migrations=True)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for seq, minute in enumerate(TIMES):  # ~1.4 MB each (prompt and answer): two fit 3 MiB
        e = interaction(tenant, f"big-{seq}", text=f"refund {seq} " + "x" * 700_000)
        e.occurred_time.FromDatetime(start + dt.timedelta(minutes=minute))
        store.append_group([[prepare(e, dt.datetime.now(dt.UTC))]])
    with store.engine.connect() as conn:
        rows = conn.execute(sql._SIZES_SEQS, {"log_id": tenant, "seqs": list(range(7))})
        sizes = {int(seq): int(size) for seq, size in rows}
    store.close()
    assert all(1_300_000 < size < BUDGET / 2 for size in sizes.values())

    reads: list[list[int]] = []  # what each read of the tenant's events held in memory

    def _recorded(read: Any) -> Any:
        def recorded(self: sql.SqlEventStore, log_id: str, *args: Any) -> Any:
            got = read(self, log_id, *args)
            if log_id == tenant:
                reads.append([e.sequence for e in got])
            return got

        return recorded

    for name in ("read_sequences", "read_page"):
        monkeypatch.setattr(sql.SqlEventStore, name, _recorded(getattr(sql.SqlEventStore, name)))
    running = start_suite(tmp_path, "sqlite", {})
    try:
        running.wait_indexed(tenant, 7)
        pages: list[list[int]] = []
        token = ""
        while True:
            reads.clear()
            page = running.search.SearchEvents(
                pb.SearchEventsRequest(
                    tenant_id=tenant,
                    filter=NOT_ACCESS,
                    order_by=order_by,
                    page_size=50,
                    page_token=token,
                )
            )
            pages.append([r.sequence for r in page.results])
            # The events of one page in memory at once: within the budget, or one alone.
            assert reads and all(
                len(each) == 1 or sum(sizes[s] for s in each) <= BUDGET for each in reads
            ), reads
            assert sorted(s for each in reads for s in each) == sorted(pages[-1])
            token = page.next_page_token
            if not token:
                break
    finally:
        running.channel.close()
        running.suite.stop()
    assert [s for p in pages for s in p] == expected  # each once, in the query's order
    assert [len(p) for p in pages] == [2, 2, 2, 1]
