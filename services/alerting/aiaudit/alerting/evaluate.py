"""Evaluating rules on batches of events: conditions, detectors, sliding windows, dedup keys.

The native core (``aiaudit_native.RuleProgram``) evaluates the compiled rules
on each event's wire bytes and keeps the window samples per rule and group in
a ``WindowState``; the caller loads and stores those (the engine saves them
with a cursor of their own and rebuilds the rest by replay). Hits come back
here to get their dedup key and summary.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import aiaudit_native

from aiaudit.alerting import fields as f
from aiaudit.alerting.detectors import Finding
from aiaudit.alerting.rules import _TEMPLATE, Rule
from aiaudit.common.canonical import native_schema

WindowState = aiaudit_native.WindowState


@dataclass(frozen=True)
class Hit:
    """A rule that fired on an event."""

    rule: Rule
    event_id: str
    dedup_key: str
    summary: str
    evidence: tuple[Finding, ...]
    value: float | None = None


def first(event: bytes, path: str) -> str:
    """First value of a field path in a serialised event, as text ("" when absent)."""
    try:
        f.compile_path(path)
    except f.FieldError:
        return ""
    values = aiaudit_native.field_values(native_schema(), event, path)
    return str(values[0]) if values else ""


def render(template: str, event: bytes, rule: Rule, group: str, score: float) -> str:
    """Fills ``{rule}``, ``{group}``, ``{score}`` and ``{field.path}`` placeholders."""

    def one(name: str) -> str:
        if name == "rule":
            return rule.id
        if name == "group":
            return group
        if name == "score":
            return f"{score:.2f}"
        return first(event, name)

    return _TEMPLATE.sub(lambda m: one(m.group(1)), template)


class Evaluator:
    """Rules compiled once for the native core; :meth:`evaluate` runs them over a batch."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        """Raises ValueError if the native core cannot compile a rule."""
        self.rules = list(rules)
        self._program = aiaudit_native.RuleProgram(native_schema(), [r.plan() for r in self.rules])

    def evaluate(
        self,
        events: Sequence[bytes],
        times: Sequence[float],
        windows: aiaudit_native.WindowState,
    ) -> list[tuple[int, Hit]]:
        """(index of the event, hit) for every rule that fires, in event then rule order.

        ``events`` are serialised; ``times`` are their receive times (seconds):
        windows slide on the time the log received events, which clients
        cannot forge and which replays reproduce. The slots in ``windows`` are updated in place.
        """
        wire = list(events)
        out = []
        for i, r, group, evidence, value in self._program.evaluate(wire, list(times), windows):
            rule = self.rules[r]
            found = tuple(Finding(*x) for x in evidence)
            score = max((x.score for x in found), default=1.0)
            key = render(rule.dedup_key, wire[i], rule, group, score)
            summary = render(rule.summary, wire[i], rule, group, score)
            out.append((i, Hit(rule, first(wire[i], "event_id"), key, summary, found, value)))
        return out


_CACHE: collections.OrderedDict[tuple[int, ...], Evaluator] = collections.OrderedDict()
_CACHED = 64
_LOCK = threading.Lock()


def evaluator(rules: Sequence[Rule]) -> Evaluator:
    """The evaluator of a list of rules, reused while the same rule objects come back.

    Compiled rules are themselves cached (``rulebook``), so a tenant's batches
    find their evaluator here instead of compiling its regexes again. The
    cache keeps the rules alive, so their ids cannot be reused while cached.
    """
    key = tuple(map(id, rules))
    with _LOCK:
        got = _CACHE.get(key)
        if got is None:
            got = _CACHE[key] = Evaluator(rules)
            if len(_CACHE) > _CACHED:
                _CACHE.popitem(last=False)
        else:
            _CACHE.move_to_end(key)
        return got
