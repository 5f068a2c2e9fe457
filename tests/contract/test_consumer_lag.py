"""What a consumer has yet to process, over every log: the lag gauges' figures, both backends."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest

from aiaudit.common.store import cursors, open_store
from aiaudit.common.store.prepare import prepare
from tests.conftest import Postgres
from tests.helpers import interaction


@dataclass(frozen=True)
class Logins:
    """One store as the roles these tests need (all one file on SQLite)."""

    writer: str
    consumer: str
    """What the gauges read as: the indexer's role (the notary's and alerting's include it)."""
    admin: str
    """What moves a consumer cursor here (the row policies keep each to its consumer's role)."""


@pytest.fixture(params=["sqlite", "postgresql"])
def logins(request: pytest.FixtureRequest, tmp_path: Path) -> Logins:
    """A store holding only this test's logs (the figures add up every log of a store)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'aiaudit.db'}"
        open_store(url, run_migrations=True).close()
        return Logins(url, url, url)
    pg: Postgres = request.getfixturevalue("own_postgres")
    return Logins(pg.app_url, pg.consumer_url, pg.admin_url)


def test_pending_counts_every_log_and_names_the_oldest_entry_not_processed(
    logins: Logins, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=5)
    times = {
        "a": [start + dt.timedelta(seconds=s) for s in (0, 1, 2)],
        "b": [start + dt.timedelta(seconds=s) for s in (30, 31)],
    }
    writer, reader = open_store(logins.writer), open_store(logins.consumer)
    try:
        for log_id, received in times.items():
            for i, at in enumerate(received):  # one transaction each: its own receive time
                writer.append_group([[prepare(interaction(log_id, f"{log_id}-{i}"), at)]])
        monkeypatch.setattr(cursors, "_FIRSTS_PER_QUERY", 1)  # each log in a query of its own
        with reader.engine.connect() as conn:
            assert cursors.pending(conn, {}) == cursors.Pending(5, times["a"][0])
            assert cursors.pending(conn, {"a": 1}) == cursors.Pending(4, times["a"][1])
            assert cursors.pending(conn, {"a": 3}) == cursors.Pending(2, times["b"][0])
            assert cursors.pending(conn, {"a": 2, "b": 1}) == cursors.Pending(2, times["a"][2])
            assert cursors.pending(conn, {"a": 3, "b": 2}) == cursors.Pending(0, None)
            assert cursors.pending(conn, {"a": 3, "b": 2, "gone": 7}) == cursors.Pending(0, None)
    finally:
        writer.close()
        reader.close()


def test_positions_are_one_consumers_cursors(logins: Logins) -> None:
    store = open_store(logins.admin)
    now = dt.datetime.now(dt.UTC)
    try:
        store.append_group([[prepare(interaction(t), now) for _ in range(3)] for t in "ab"])
        with store.engine.begin() as conn:
            cursors.advance(conn, "one", "a", 2)
            cursors.advance(conn, "one", "b", 3)
            cursors.advance(conn, "other", "a", 1)
        with store.engine.connect() as conn:
            assert cursors.positions(conn, "one") == {"a": 2, "b": 3}
            assert cursors.positions(conn, "other") == {"a": 1}
            assert cursors.positions(conn, "none") == {}
    finally:
        store.close()
