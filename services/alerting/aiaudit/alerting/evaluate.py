"""Evaluating rules on one event: conditions, sliding windows, dedup keys. Pure logic.

Window series (:mod:`aiaudit.alerting.windows`) are kept per rule and group;
the caller loads and stores them (the engine keeps them in the database, in
the same transaction as its cursor).
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass

from aiaudit.alerting import fields as f
from aiaudit.alerting.detectors import Finding
from aiaudit.alerting.memo import EventMemo
from aiaudit.alerting.rules import _TEMPLATE, Rule, Window
from aiaudit.alerting.windows import Series, window_fires
from aiaudit.common.v1 import event_pb2


@dataclass(frozen=True)
class Hit:
    """A rule that fired on an event."""

    rule: Rule
    event_id: str
    dedup_key: str
    summary: str
    evidence: tuple[Finding, ...]
    value: float | None = None


def first(memo: EventMemo, path: str) -> str:
    """First value of a field path as text ("" when absent)."""
    try:
        return memo.first_text(f.compile_path(path))
    except f.FieldError:
        return ""


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
    return "|".join(memo.first_text(g) for g in w.group_by) or "*"


def evaluate(
    rules: Sequence[Rule],
    event: event_pb2.Event,
    now: float,
    windows: MutableMapping[tuple[str, str], Series],
) -> list[Hit]:
    """Every rule that fires on the event; the series in ``windows`` are updated in place.

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
        series = windows.get(slot)
        if series is None:
            series = Series()
        series.add(now, value, w.horizon)
        windows[slot] = series  # also tells a tracking mapping that the slot changed
        fires, agg = window_fires(w, series, now)
        if fires:
            key = render(rule.dedup_key, memo, rule, group, score)
            summary = render(rule.summary, memo, rule, group, score)
            hits.append(Hit(rule, event.event_id, key, summary, m.evidence, agg))
    return hits
