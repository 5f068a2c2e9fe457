"""Reads bounded by stored bytes as well as by count (``max_bytes``), on SQLite and PostgreSQL.

An event may be 4 MiB (``max_event_bytes``); the consumers read 1,000 to
4,096 a batch, so a batch of large events was gigabytes and the consumer was
killed for its memory, read the same batch again on restart, and stopped for
every tenant. A bounded read returns at least one entry, stops before the
stored size (canonical form and content) passes the budget, and says so
(``cut``); read on from its last entry, every entry comes once.
"""

from __future__ import annotations

import datetime as dt

from aiaudit.common.store import sql
from aiaudit.common.store.prepare import prepare
from aiaudit.common.store.sql import SqlEventStore
from aiaudit.common.v1 import event_pb2 as ev
from tests.helpers import interaction

BUDGET = 1 << 20
"""Two of :func:`big` fit (~400 KB stored each: the prompt and its answer), three do not."""


def big(tenant: str, i: int) -> ev.Event:
    return interaction(tenant, f"big-{i}", text=f"{i} " + "x" * 200_000)


def _log(store: SqlEventStore, tenant: str) -> None:
    """9 large events, then 3 small ones."""
    now = dt.datetime.now(dt.UTC)
    events = [big(tenant, i) for i in range(9)] + [interaction(tenant, f"s-{i}") for i in range(3)]
    store.append_group([[prepare(e, now) for e in events]])


def test_a_log_of_large_events_is_read_in_batches_within_the_budget(
    store: SqlEventStore, tenant: str
) -> None:
    _log(store, tenant)
    whole = store.read_log(tenant, 0, 100)
    batches, start = [], 0
    while got := store.read_log(tenant, start, 100, max_bytes=BUDGET):
        batches.append(([e.sequence for e in got], got.cut))
        assert got == whole[start : start + len(got)]  # the same events, content and all
        start = got[-1].sequence + 1
    assert batches == [
        ([0, 1], True),
        ([2, 3], True),
        ([4, 5], True),
        ([6, 7], True),
        ([8, 9, 10, 11], False),
    ]


def test_the_first_entry_comes_whatever_its_size_and_small_events_are_not_cut(
    store: SqlEventStore, tenant: str
) -> None:
    _log(store, tenant)
    alone = store.read_log(tenant, 3, 100, max_bytes=1000)
    assert [e.event_id for e in alone] == ["big-3"] and alone.cut
    assert alone[0].content == store.read_log(tenant, 3, 1)[0].content
    last = store.read_log(tenant, 8, 100, max_bytes=1000)
    assert [e.sequence for e in last] == [8] and last.cut
    small = store.read_log(tenant, 9, 100, max_bytes=sql.READ_BYTES)
    assert [e.sequence for e in small] == [9, 10, 11] and not small.cut
    counted = store.read_log(tenant, 0, 3, max_bytes=sql.READ_BYTES)  # the count ends it
    assert [e.sequence for e in counted] == [0, 1, 2] and not counted.cut
    without = store.read_log(tenant, 0, 100, content=False, max_bytes=BUDGET)
    assert [(e.sequence, e.content) for e in without] == [(0, None), (1, None)]


def test_read_sequences_within_a_budget_returns_a_prefix_and_says_so(
    store: SqlEventStore, tenant: str
) -> None:
    _log(store, tenant)
    wanted = [10, 0, 2, 4, 6, 8, 2]
    got = store.read_sequences(tenant, wanted, max_bytes=BUDGET)
    assert [e.sequence for e in got] == [0, 2] and got.cut
    got = store.read_sequences(tenant, [s for s in wanted if s > 2], max_bytes=BUDGET)
    assert [e.sequence for e in got] == [4, 6] and got.cut
    got = store.read_sequences(tenant, [8, 10], max_bytes=BUDGET)
    assert [e.sequence for e in got] == [8, 10] and not got.cut
    assert got == store.read_sequences(tenant, [8, 10])


def test_a_page_reads_the_longest_prefix_in_its_own_order_within_the_budget(
    store: SqlEventStore, tenant: str
) -> None:
    """``read_page``: search hits come in the query's order, not the log's."""
    _log(store, tenant)
    whole = {e.sequence: e for e in store.read_log(tenant, 0, 100)}
    order = [11, 7, 10, 2, 5, 0, 9]  # small, big, small, big, big, ...
    got = store.read_page(tenant, order, BUDGET)
    assert [e.sequence for e in got] == [2, 7, 10, 11] and got.cut  # two big ones fit
    assert all(e == whole[e.sequence] for e in got)  # content and all
    rest = store.read_page(tenant, [5, 0, 1, 9], BUDGET)
    assert [e.sequence for e in rest] == [0, 5] and rest.cut
    alone = store.read_page(tenant, [3, 11], 1000)  # the first, whatever its size
    assert [e.sequence for e in alone] == [3] and alone.cut
    assert alone[0] == whole[3]  # its canonical form too was past the page's inline share
    small = store.read_page(tenant, [11, 10, 9, 404], BUDGET)  # one not stored: passed over
    assert [e.sequence for e in small] == [9, 10, 11] and not small.cut
    assert all(e == whole[e.sequence] for e in small)
