"""The ``events`` columns ingest writes beside the canonical form."""

from __future__ import annotations

import datetime as dt

from aiaudit.common.store.schema import TEXT_COLUMNS
from aiaudit.common.store.sql import SEARCH_COLUMNS, search_values
from aiaudit.common.v1 import event_pb2 as ev
from tests.helpers import interaction


def search_columns(e: ev.Event) -> dict[str, object]:
    return dict(zip(SEARCH_COLUMNS, search_values(e), strict=True))


def test_every_text_column_comes_from_its_field() -> None:
    e = interaction("t", user="u1")
    for n, (message, field) in enumerate(TEXT_COLUMNS.values()):
        setattr(getattr(e, message), field, f"v{n}")
    e.occurred_time.FromDatetime(dt.datetime(2026, 3, 4, 5, 6, 7, 890123))
    columns = search_columns(e)
    assert columns == {
        "event_type": "EVENT_TYPE_INTERACTION",
        "occurred_time": dt.datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=dt.UTC),
        **{column: f"v{n}" for n, column in enumerate(TEXT_COLUMNS)},
    }


def test_empty_text_is_null() -> None:
    columns = search_columns(ev.Event(event_type=ev.EVENT_TYPE_FEEDBACK))
    assert all(columns[c] is None for c in TEXT_COLUMNS)
