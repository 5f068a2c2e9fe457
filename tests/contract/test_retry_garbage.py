"""A retried append leaves no reference cycle behind: its batch goes with the call.

The optimistic insert of a retry fails on the unique id index; the caught SQLAlchemy
error and the frames it passed (one holds it) were a cycle holding the batch's events,
rows and receipts, and the idempotency check's statement, built around the batch's ids,
another. Both waited for a full garbage collection, which a server running steadily
seldom does: on SQLite each retried batch of 500 events held ~1.3 MB until then.
"""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Iterator

import pytest

from aiaudit.common.store.prepare import prepare_batch
from aiaudit.common.store.sql import SqlEventStore
from tests.helpers import interaction

RETRIES = 5


@pytest.fixture
def collector_off() -> Iterator[None]:
    """Automatic collection off: what a forced ``gc.collect()`` frees is all the cycles made."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_retried_appends_leave_no_cyclic_garbage(
    store: SqlEventStore, tenant: str, collector_off: None
) -> None:
    """Five retries of 100 events: 7,555 objects freed only by a collection on SQLite (the
    batch, by the error's frames), 40 on PostgreSQL (the check's statements); now none."""
    batch = [interaction(tenant) for _ in range(100)]
    (first,) = store.append_group([prepare_batch(batch, dt.datetime.now(dt.UTC))])
    assert isinstance(first, list)
    gc.collect()
    for _ in range(RETRIES):
        (again,) = store.append_group([prepare_batch(batch, dt.datetime.now(dt.UTC))])
        assert again == [r._replace(duplicate=True) for r in first]
    freed = gc.collect()
    assert freed < RETRIES, freed  # under one object a retry
