"""Evaluating rules on one event: conditions, sliding windows, dedup keys. Pure logic.

Window samples are ``(time, value)`` pairs kept per rule and group for the
window plus its baseline; the caller loads and stores them (the engine keeps
them in the database, in the same transaction as its cursor).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass

from aiaudit.alerting import fields as f
from aiaudit.alerting.detectors import Finding
from aiaudit.alerting.memo import EventMemo
from aiaudit.alerting.rules import _TEMPLATE, Rule, Window
from aiaudit.common.v1 import event_pb2

Sample = tuple[float, float]
MAX_SAMPLES = 10_000
"""Per rule and group; beyond it the oldest samples go (the window is then approximate)."""


@dataclass(frozen=True)
class Hit:
    """A rule that fired on an event."""

    rule: Rule
    event_id: str
    dedup_key: str
    summary: str
    evidence: tuple[Finding, ...]
    value: float | None = None


def aggregate(w: Window, samples: Sequence[Sample], seconds: float, start: int = 0) -> float:
    """The window's aggregate over ``samples[start:]`` spanning ``seconds``.

    Counts and rates take the length without copying the window.
    """
    if w.aggregate == "count":
        return float(len(samples) - start)
    if w.aggregate == "rate":
        return (len(samples) - start) / (seconds / 60.0)
    values = [v for _, v in samples[start:]]
    if not values:
        return 0.0
    if w.aggregate == "sum":
        return sum(values)
    if w.aggregate == "avg":
        return sum(values) / len(values)
    if w.aggregate == "min":
        return min(values)
    if w.aggregate == "max":
        return max(values)
    ordered = sorted(values)
    rank = max(0, math.ceil(w.percentile / 100 * len(ordered)) - 1)
    return ordered[rank]


def _compare(op: str, a: float, b: float) -> bool:
    return (
        (op == "gt" and a > b)
        or (op == "gte" and a >= b)
        or (op == "lt" and a < b)
        or (op == "lte" and a <= b)
    )


def window_fires(w: Window, samples: list[Sample], now: float) -> tuple[bool, float]:
    """Whether the aggregate crosses the threshold (and the baseline factor), and its value."""
    cut = bisect.bisect_right(samples, (now - w.seconds, math.inf))
    value = aggregate(w, samples, w.seconds, cut)
    if not _compare(w.op, value, w.threshold):
        return False, value
    if w.baseline_seconds <= 0:
        return True, value
    first_base = bisect.bisect_right(samples, (now - w.seconds - w.baseline_seconds, math.inf))
    base = samples[first_base:cut]
    if not base:
        return False, value
    reference = aggregate(w, base, w.baseline_seconds)
    if w.aggregate in ("count", "sum"):
        reference = reference * w.seconds / w.baseline_seconds
    return value > w.factor * reference, value


def add_sample(samples: list[Sample], sample: Sample, horizon: float) -> list[Sample]:
    """Adds one sample in time order and drops those older than the horizon (in place)."""
    bisect.insort(samples, sample)
    expired = bisect.bisect_right(samples, (samples[-1][0] - horizon, math.inf))
    if expired or len(samples) > MAX_SAMPLES:
        del samples[: max(expired, len(samples) - MAX_SAMPLES)]
    return samples


def first(memo: EventMemo, path: str) -> str:
    """First value of a field path as text ("" when absent)."""
    try:
        values = memo.values(f.compile_path(path))
    except f.FieldError:
        return ""
    return str(values[0]) if values else ""


def render(template: str, memo: EventMemo, rule: Rule, group: str, score: float) -> str:
    """Fills ``{rule}``, ``{group}``, ``{score}`` and ``{field.path}`` placeholders."""

    def one(name: str) -> str:
        if name == "rule":
            return rule.id
        if name == "group":
            return group
        if name == "score":
            return f"{score:.2f}"
        return first(memo, name)

    return _TEMPLATE.sub(lambda m: one(m.group(1)), template)


def group_key(w: Window, memo: EventMemo) -> str:
    """The window group of an event: its group-by values joined by ``|``."""
    parts = []
    for g in w.group_by:
        values = memo.values(g)
        parts.append(str(values[0]) if values else "")
    return "|".join(parts) or "*"


def evaluate(
    rules: Sequence[Rule],
    event: event_pb2.Event,
    now: float,
    windows: MutableMapping[tuple[str, str], list[Sample]],
) -> list[Hit]:
    """Every rule that fires on the event; window samples in ``windows`` are updated in place.

    ``now`` is the event's receive time (seconds): windows slide on the time the
    log received events, which clients cannot forge and which replays reproduce.
    """
    memo = EventMemo(event)
    hits = []
    for rule in rules:
        if not rule.enabled:
            continue
        m = rule.when.eval(memo)
        if not m.ok:
            continue
        score = max((x.score for x in m.evidence), default=1.0)
        w = rule.window
        if w is None:
            key = render(rule.dedup_key, memo, rule, "", score)
            summary = render(rule.summary, memo, rule, "", score)
            hits.append(Hit(rule, event.event_id, key, summary, m.evidence))
            continue
        group = group_key(w, memo)
        value = 1.0
        if w.value is not None:
            got = [v for v in memo.values(w.value) if isinstance(v, int | float)]
            if not got:
                continue
            value = float(got[0])
        slot = (rule.id, group)
        windows[slot] = add_sample(windows.get(slot, []), (now, value), w.horizon)
        fires, agg = window_fires(w, windows[slot], now)
        if fires:
            key = render(rule.dedup_key, memo, rule, group, score)
            summary = render(rule.summary, memo, rule, group, score)
            hits.append(Hit(rule, event.event_id, key, summary, m.evidence, agg))
    return hits
