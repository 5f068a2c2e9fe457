"""Sliding-window arithmetic and the stored form of window samples (pure logic)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from aiaudit.alerting.rules import Window, compile_rule
from aiaudit.alerting.store import pack_samples, unpack_samples
from aiaudit.alerting.windows import MAX_SAMPLES, Sample, Series, aggregate, window_fires

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
    samples = Series()
    for t, v in [(0.0, 100.0), (30.0, 5.0), (70.0, 7.0), (80.0, 9.0)]:
        samples.add(t, v, 3600)
    # At t=80 the window is (20, 80]: samples at 30, 70 and 80.
    assert window_fires(_window("count", 2), samples, 80.0) == (True, 3.0)
    assert window_fires(_window("count", 3), samples, 80.0) == (False, 3.0)
    fires, avg = window_fires(_window("avg", 6), samples, 80.0)
    assert fires and math.isclose(avg, 7.0)
    assert window_fires(_window("sum", 21), samples, 80.0) == (False, 21.0)
    assert window_fires(_window("max", 8), samples, 80.0) == (True, 9.0)


def _naive(w: Window, samples: list[Sample], lo: float, hi: float) -> float:
    """The aggregate computed from scratch over the samples with lo < time <= hi."""
    values = [v for t, v in samples if lo < t <= hi]
    if w.aggregate == "count":
        return float(len(values))
    if not values:
        return 0.0
    if w.aggregate == "sum":
        return sum(values)
    if w.aggregate == "avg":
        return sum(values) / len(values)
    return max(values) if w.aggregate == "max" else min(values)


@given(
    st.lists(
        st.tuples(st.floats(0, 500), st.integers(0, 10_000).map(float)), min_size=1, max_size=300
    ),
    st.sampled_from(["count", "sum", "avg", "max", "min"]),
)
def test_running_sums_agree_with_recomputing_the_window(arrivals: list[Sample], kind: str) -> None:
    """Out-of-order arrivals and expiry included: every span aggregate equals a fresh one."""
    w = _window(kind, 0)
    series = Series()
    kept: list[Sample] = []
    for t, v in arrivals:
        series.add(t, v, 120.0)
        kept.append((t, v))
        newest = max(x for x, _ in kept)
        kept = sorted((x for x in kept if x[0] > newest - 120.0), key=lambda x: x[0])
        assert series.samples() == kept
        now = newest
        got = aggregate(w, series, series.after(now - 60.0), len(series), 60.0)
        assert math.isclose(got, _naive(w, kept, now - 60.0, math.inf), abs_tol=1e-6)
        base = aggregate(w, series, series.after(now - 120.0), series.after(now - 60.0), 60.0)
        assert math.isclose(base, _naive(w, kept, now - 120.0, now - 60.0), abs_tol=1e-6)


def test_a_slot_keeps_at_most_max_samples() -> None:
    series = Series()
    for i in range(MAX_SAMPLES + 5):
        series.add(float(i) / 1000, 1.0, 3600)
    assert len(series) == MAX_SAMPLES
    assert series.samples()[0] == (5 / 1000, 1.0)
    assert series.total(0, len(series)) == MAX_SAMPLES
