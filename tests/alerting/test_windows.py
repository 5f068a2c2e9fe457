"""Sliding-window arithmetic and the stored form of window samples (pure logic)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from aiaudit.alerting.evaluate import Sample, add_sample, window_fires
from aiaudit.alerting.rules import Window, compile_rule
from aiaudit.alerting.store import pack_samples, unpack_samples

finite = st.floats(allow_nan=False, allow_infinity=False)


@given(st.lists(st.tuples(finite, finite), max_size=200))
def test_packed_samples_round_trip_exactly(samples: list[Sample]) -> None:
    assert unpack_samples(pack_samples(samples)) == samples


def test_samples_stored_as_json_by_earlier_versions_still_load() -> None:
    assert unpack_samples("[[1700000000.5,1.0],[1700000001.25,42]]") == [
        (1700000000.5, 1.0),
        (1700000001.25, 42.0),
    ]


def _window(aggregate: str, threshold: float) -> Window:
    extra = "field: timing.latency\n    " if aggregate != "count" else ""
    window = compile_rule(
        "id: w\nseverity: low\nwindow:\n"
        f"    duration: 60s\n    aggregate: {aggregate}\n    {extra}"
        f"threshold: {{gt: {threshold}}}\n"
    ).window
    assert window is not None
    return window


def test_aggregates_cover_only_samples_inside_the_window() -> None:
    samples: list[Sample] = []
    for t, v in [(0.0, 100.0), (30.0, 5.0), (70.0, 7.0), (80.0, 9.0)]:
        add_sample(samples, (t, v), 3600)
    # At t=80 the window is (20, 80]: samples at 30, 70 and 80.
    assert window_fires(_window("count", 2), samples, 80.0) == (True, 3.0)
    assert window_fires(_window("count", 3), samples, 80.0) == (False, 3.0)
    fires, avg = window_fires(_window("avg", 6), samples, 80.0)
    assert fires and math.isclose(avg, 7.0)
    assert window_fires(_window("sum", 21), samples, 80.0) == (False, 21.0)
    assert window_fires(_window("max", 8), samples, 80.0) == (True, 9.0)
