"""The lag gauges as the OpenTelemetry SDK collects them: per consumer, silent once closed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from aiaudit.common.consumer_lag import ConsumerLag
from aiaudit.common.store import cursors, open_store
from aiaudit.common.store.prepare import prepare
from tests.helpers import interaction


def collected(reader: InMemoryMetricReader) -> dict[tuple[str, str], float]:
    """(metric, consumer) -> value of one collection (the SDK gives None for no point)."""
    data = reader.get_metrics_data()
    if data is None:
        return {}
    return {
        (m.name, str(p.attributes["aiaudit.consumer"])): p.value  # type: ignore[index]
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        for p in m.data.data_points  # type: ignore[union-attr]
    }


def test_each_consumer_is_reported_until_closed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'aiaudit.db'}"
    store = open_store(url, run_migrations=True)
    received = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    store.append_group([[prepare(interaction("t", f"e{i}"), received) for i in range(4)]])
    with store.engine.begin() as conn:
        cursors.advance(conn, "ahead", "t", 4)
        cursors.advance(conn, "behind", "t", 1)
    reader = InMemoryMetricReader()
    lag = ConsumerLag(MeterProvider(metric_readers=[reader]))
    for consumer in ("ahead", "behind"):
        lag.watch(consumer, store)

    def broken(conn: sa.Connection) -> dict[str, int]:
        raise sa.exc.OperationalError("SELECT", {}, Exception("no such table: elsewhere"))

    lag.watch("broken", store, broken)
    try:
        got = collected(reader)
        assert got[("aiaudit.consumer.lag.entries", "ahead")] == 0
        assert got[("aiaudit.consumer.lag.age", "ahead")] == 0
        assert got[("aiaudit.consumer.lag.entries", "behind")] == 3
        assert got[("aiaudit.consumer.lag.age", "behind")] >= 60
        assert ("aiaudit.consumer.lag.entries", "broken") not in got  # no figure, not a 0
        assert "lag of consumer broken not measured" in caplog.text
        lag.close()
        assert collected(reader) == {}
    finally:
        store.close()


def test_both_gauges_of_one_export_share_one_measurement(tmp_path: Path) -> None:
    """Each gauge measured the store on its own: two queries per consumer per export."""
    url = f"sqlite:///{tmp_path / 'aiaudit.db'}"
    store = open_store(url, run_migrations=True)
    store.append_group([[prepare(interaction("t", "e"), dt.datetime.now(dt.UTC))]])
    reads: list[int] = []

    def positions(conn: sa.Connection) -> dict[str, int]:
        reads.append(1)
        return {}

    reader = InMemoryMetricReader()
    lag = ConsumerLag(MeterProvider(metric_readers=[reader]))
    lag.watch("counted", store, positions)
    try:
        got = collected(reader)
        assert got[("aiaudit.consumer.lag.entries", "counted")] == 1
        assert ("aiaudit.consumer.lag.age", "counted") in got
        assert len(reads) == 1
    finally:
        lag.close()
        store.close()
