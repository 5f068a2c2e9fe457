"""Sliding windows: the time-ordered samples of one rule and group, and their aggregates.

A slot keeps ``(time, value)`` samples for its window plus its baseline, with
running sums beside them, so that count, rate, sum and average over any span
cost two binary searches whatever the number of samples (a spike rule grouped
by model sees every event of that model for an hour). Min, max and percentile
look at the values in the span. Pure logic; the engine stores the samples.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable

from aiaudit.alerting.rules import Window

Sample = tuple[float, float]
MAX_SAMPLES = 10_000
"""Per rule and group; beyond it the oldest samples go (the window is then approximate)."""
_REBASE = 2.0**40
"""Running sums start over once the expired samples behind them add up to this."""


class Series:
    """Samples of one slot in time order, with running sums for span aggregates."""

    __slots__ = ("sums", "times", "values")

    def __init__(self, samples: Iterable[Sample] = ()) -> None:
        """A series holding the given samples (in any order)."""
        ordered = sorted(samples)
        self.times = [t for t, _ in ordered]
        self.values = [v for _, v in ordered]
        self.sums: list[float] = []
        self._resum(0)

    def samples(self) -> list[Sample]:
        """The samples, oldest first."""
        return list(zip(self.times, self.values, strict=True))

    def __len__(self) -> int:
        return len(self.times)

    def _resum(self, start: int) -> None:
        """Recomputes the running sums from ``start`` on (from zero when ``start`` is 0)."""
        del self.sums[start:]
        total = self.sums[-1] if self.sums else 0.0
        for v in self.values[start:]:
            total += v
            self.sums.append(total)

    def add(self, time: float, value: float, horizon: float) -> None:
        """Adds a sample and drops those older than ``horizon`` before the newest one."""
        i = bisect.bisect_right(self.times, time)
        if i == len(self.times):
            self.times.append(time)
            self.values.append(value)
            self.sums.append((self.sums[-1] if self.sums else 0.0) + value)
        else:  # out of order (rare: receive times of concurrent batches interleave)
            self.times.insert(i, time)
            self.values.insert(i, value)
            self._resum(i)
        expired = bisect.bisect_right(self.times, self.times[-1] - horizon)
        drop = max(expired, len(self.times) - MAX_SAMPLES)
        if drop > 0:
            del self.times[:drop], self.values[:drop], self.sums[:drop]
        if self.sums and abs(self.sums[0] - self.values[0]) > _REBASE:
            self.sums.clear()
            self._resum(0)

    def after(self, time: float) -> int:
        """Index of the first sample later than ``time``."""
        return bisect.bisect_right(self.times, time)

    def total(self, lo: int, hi: int) -> float:
        """Sum of the values at indexes ``lo`` .. ``hi - 1``."""
        if hi <= lo:
            return 0.0
        before = self.sums[lo - 1] if lo > 0 else self.sums[0] - self.values[0]
        return self.sums[hi - 1] - before


def aggregate(w: Window, s: Series, lo: int, hi: int, seconds: float) -> float:
    """The window's aggregate over samples ``lo .. hi - 1`` spanning ``seconds``."""
    n = hi - lo
    if w.aggregate == "count":
        return float(n)
    if w.aggregate == "rate":
        return n / (seconds / 60.0)
    if n <= 0:
        return 0.0
    if w.aggregate == "sum":
        return s.total(lo, hi)
    if w.aggregate == "avg":
        return s.total(lo, hi) / n
    values = s.values[lo:hi]
    if w.aggregate == "min":
        return min(values)
    if w.aggregate == "max":
        return max(values)
    ordered = sorted(values)
    rank = max(0, math.ceil(w.percentile / 100 * n) - 1)
    return ordered[rank]


def _compare(op: str, a: float, b: float) -> bool:
    return (
        (op == "gt" and a > b)
        or (op == "gte" and a >= b)
        or (op == "lt" and a < b)
        or (op == "lte" and a <= b)
    )


def window_fires(w: Window, s: Series, now: float) -> tuple[bool, float]:
    """Whether the aggregate crosses the threshold (and the baseline factor), and its value.

    The window holds the samples later than ``now - duration``; the baseline
    those in the ``baseline`` duration before it.
    """
    cut = s.after(now - w.seconds)
    value = aggregate(w, s, cut, len(s), w.seconds)
    if not _compare(w.op, value, w.threshold):
        return False, value
    if w.baseline_seconds <= 0:
        return True, value
    first_base = s.after(now - w.seconds - w.baseline_seconds)
    if first_base >= cut:
        return False, value
    reference = aggregate(w, s, first_base, cut, w.baseline_seconds)
    if w.aggregate in ("count", "sum"):
        reference = reference * w.seconds / w.baseline_seconds
    return value > w.factor * reference, value
