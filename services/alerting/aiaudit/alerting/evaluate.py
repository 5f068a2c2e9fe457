"""Evaluating rules on batches of events: conditions, detectors, sliding windows, dedup keys.

The native core (``aiaudit_native.RuleProgram``) evaluates the compiled rules
on each event's wire bytes and keeps the window samples per rule and group in
a ``WindowState``; the caller loads and stores those (the engine saves them
with a cursor of their own and rebuilds the rest by replay). Hits come back
here to get their dedup key and summary.

A replay cannot rebuild what a rule reading content (a detector, a content
field) added for an event whose content was erased since: the samples such
rules add are recorded in a journal (:meth:`Evaluator.evaluate`) that the
engine commits with the batch, and a replay adds them back for erased events
(:meth:`Evaluator.add_samples`) instead of evaluating empty content.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiaudit_native

from aiaudit.alerting import fields as f
from aiaudit.alerting import signals
from aiaudit.alerting.detectors import Finding
from aiaudit.alerting.rules import _TEMPLATE, FLAG, SEVERITIES, FieldCondition, Rule, leaves
from aiaudit.common.canonical import native_schema
from aiaudit.common.v1 import event_pb2

WindowState = aiaudit_native.WindowState

Recorded = tuple[int, str, str, float, float]
"""A journaled window sample: (event index in its batch, rule id, group, time, value)."""


def _any_leaf(plan: Any, test: Callable[[Any], bool]) -> bool:
    """Whether ``test`` holds for a leaf of a condition plan (under all/any/not)."""
    kind = plan[0]
    if kind in ("all", "any"):
        return any(_any_leaf(p, test) for p in plan[1])
    if kind == "not":
        return _any_leaf(plan[1], test)
    if kind == "each":  # an element's fields: tested as the paths from the event name them
        field = plan[1]
        return _any_leaf(plan[2], lambda leaf: test((leaf[0], f"{field}.{leaf[1]}", *leaf[2:])))
    return test(plan)


def _reads_content(plan: Any) -> bool:
    return _any_leaf(
        plan, lambda leaf: leaf[0] == "detector" or (leaf[0] == "field" and _content_path(leaf[1]))
    )


def _content_path(path: str) -> bool:
    try:
        return f.compile_path(path).content
    except f.FieldError:
        return False


def reads_content(rule: Rule) -> bool:
    """Whether a rule's matches depend on content an erasure deletes (detectors, content fields).

    The rest of an event (its canonical form) outlives an erasure, so a replay
    evaluates other rules exactly as the first time.
    """
    if _reads_content(rule.when.plan()):
        return True
    value = rule.window.value if rule.window is not None else None
    return value is not None and value.content


def _reads_personal(plan: Any) -> bool:
    return _any_leaf(plan, lambda leaf: leaf[0] == "field" and leaf[1] in f.PERSONAL)


def reads_personal(rule: Rule) -> bool:
    """Whether a rule reads personal data (``fields.PERSONAL``): in a condition or a window.

    Its alerts then tell which events hold a value, so only a caller with
    ``pii.read`` may test or store it. Templates cannot name it (``rules``).
    """
    if _reads_personal(rule.when.plan()):
        return True
    w = rule.window
    return w is not None and any(p.personal for p in (*w.group_by, w.value) if p is not None)


@dataclass(frozen=True)
class Hit:
    """A rule that fired on an event."""

    rule: Rule
    event_id: str
    dedup_key: str
    summary: str
    evidence: tuple[Finding, ...]
    severity: int
    """The alert's: the rule's, or with ``severity_from: flag`` that of the flag it names."""
    value: float | None = None


def first(event: bytes, path: str) -> str:
    """First value of a field path in a serialised event, as text ("" when absent).

    A trust signal's is read from the event's views (:func:`signals.views`).
    """
    try:
        fld = f.compile_path(path)
    except f.FieldError:
        return ""
    if fld.signal is not None:
        view = signals.path(fld.signal, "value")
        values = aiaudit_native.field_values(signals.schema(), event, view)
    else:
        values = aiaudit_native.field_values(native_schema(), event, path)
    return str(values[0]) if values else ""


def named_signals(rule: Rule) -> frozenset[str]:
    """The trust signals a rule names: in a condition, its window or a placeholder."""
    fields: list[f.Field | None] = [
        c.field for c in leaves(rule.when) if isinstance(c, FieldCondition)
    ]
    if rule.window is not None:
        fields += [*rule.window.group_by, rule.window.value]
    for name in (n for t in (rule.summary, rule.dedup_key) for n in _TEMPLATE.findall(t)):
        with contextlib.suppress(f.FieldError):  # {rule}, {group}, {score}
            fields.append(f.compile_path(name))
    return frozenset(x.signal for x in fields if x is not None and x.signal is not None)


_SEVERITY_NAMES = {number: name for name, number in SEVERITIES.items()}


def _flag_text(flag: event_pb2.SafetyFlag, name: str) -> str:
    """``{flag.<name>}``: a severity as rules write it (``high``), the rest as the core reads it."""
    if name == "severity":
        return _SEVERITY_NAMES.get(flag.severity, str(flag.severity or "unspecified"))
    return str(getattr(flag, name))


def named_flags(rule: Rule, event: bytes, elements: Sequence[int]) -> list[event_pb2.SafetyFlag]:
    """The flags a per-flag rule fires on, given those it held on (by position).

    One of each category, the one of the most severe hit (:func:`severity`, then the flag's
    own; the first of equals), most severe first: an alert folds in only hits no more severe
    than itself, so one event's hits that share a dedup key open one alert, at the highest
    severity, and the others fold into it. Put the other way, a later hit of the same event
    and key would open a second alert with the first's id (alert ids come from the rule, the
    key and the event).
    """
    flags = event_pb2.Event.FromString(event).safety_flags

    def rank(flag: event_pb2.SafetyFlag) -> tuple[int, int]:
        return severity(rule, flag), flag.severity

    best: dict[str, event_pb2.SafetyFlag] = {}
    for k in elements:
        flag = flags[k]
        if flag.category not in best or rank(flag) > rank(best[flag.category]):
            best[flag.category] = flag
    return sorted(best.values(), key=rank, reverse=True)


def severity(rule: Rule, flag: event_pb2.SafetyFlag | None) -> int:
    """A hit's severity: the rule's, or the flag's when the rule takes it and the flag has one."""
    if flag is not None and rule.severity_from_flag and flag.severity in _SEVERITY_NAMES:
        return int(flag.severity)
    return rule.severity


MAX_SUMMARY_CHARS = 4096
"""Characters of a rendered summary an alert keeps (the last one ``…`` when cut). Rendered
whole, 4,000 placeholders of a 4,096-character attribute (a 56 KB source) made a 16 MB
summary per alert: in its row, its outbox payloads and every ListAlerts page, past what a
gRPC message carries, and tens of GB for a batch of 2,000 users' hits."""


def render(
    template: str,
    event: bytes,
    rule: Rule,
    group: str,
    score: float,
    flag: event_pb2.SafetyFlag | None = None,
) -> str:
    """Fills ``{rule}``, ``{group}``, ``{score}``, ``{flag.<field>}`` and ``{field.path}``.

    At most :data:`MAX_SUMMARY_CHARS` characters: the placeholders past them are not read.
    """
    # PostgreSQL text cannot hold U+0000, which an event's strings may (ingest takes it
    # outside the store's own columns): a key or summary holding it failed the alert's
    # statement, and the engine retried that batch, every tenant's alerts waiting behind it.
    text = _fill(template, event, rule, group, score, flag, MAX_SUMMARY_CHARS)
    if len(text) > MAX_SUMMARY_CHARS:
        text = text[: MAX_SUMMARY_CHARS - 1] + "\u2026"
    return text.replace("\x00", "\ufffd")


KEY_CHARS = 512
"""Characters of a dedup key the alert's column holds."""
_FOLDED = "#sha256:"
_KEPT = KEY_CHARS - len(_FOLDED) - 64
_ENDS = "%."
"""Ends a key's value where the template's next text could not: another placeholder, or
text starting with ``%`` (escapes are ``%`` and two hex digits, never ``%.``)."""


def dedup_key(
    template: str,
    event: bytes,
    rule: Rule,
    group: str,
    score: float,
    flag: event_pb2.SafetyFlag | None = None,
) -> str:
    """The rendered key (:func:`_key_text`) as the alert's column can hold it, one per group.

    Past :data:`KEY_CHARS` or holding U+0000, it is its first characters and the SHA-256
    of all of it: cut or with U+0000 replaced, the keys of different groups met, and
    their alerts were folded into one.
    """
    key = _key_text(template, lambda name: _value(name, event, rule, group, score, flag), rule.id)
    if len(key) <= KEY_CHARS and "\x00" not in key and not key.startswith(_FOLDED, _KEPT):
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return key[:_KEPT].replace("\x00", "\ufffd") + _FOLDED + digest


def _key_text(template: str, value: Callable[[str], str], rule_id: str) -> str:
    """A dedup key template filled so that different values always make different keys.

    Filled as they were, ``{rule}:{actor.user_id}:{flag.category}`` gave user ``a:b`` with
    flag ``c`` and user ``a`` with flag ``b:c`` one key, ``rule:a:b:c``: a caller choosing
    its user id folded its hits into another user's open alert and under its throttle
    (until 2026-12-07). Now each value has ``%`` and the character the template puts after
    it percent-encoded (UTF-8, ``%3A``), so the key tells where it ends; a value at the
    template's end needs nothing, and one followed by another placeholder or by ``%`` ends
    with :data:`_ENDS`. Values holding none of these characters keep the key they had, so
    alerts open across an upgrade still take their next hits, unless they end with
    :data:`_ENDS` (a template with two placeholders side by side gives every key a new form:
    no separator, no other way to tell where a value ends). ``{rule}`` is one text per
    rule (an alert is looked up by rule and key), so it is filled like the template's text.
    """
    parts = _TEMPLATE.split(template)  # text, placeholder, text, ..., text
    items: list[tuple[bool, str]] = []  # (a value, its name or the text)
    for i, part in enumerate(parts):
        if i % 2 and part != "rule":
            items.append((True, part))
        elif items and not items[-1][0]:
            items[-1] = (False, items[-1][1] + (rule_id if i % 2 else part))
        else:
            items.append((False, rule_id if i % 2 else part))
    out = []
    for k, (is_value, part) in enumerate(items):
        if not is_value:
            out.append(part)
            continue
        text, after = value(part), items[k + 1][1]  # split() puts text after each placeholder
        if k + 2 == len(items) and not after:  # the key's end tells where it ends
            out.append(text)
            continue
        text = text.replace("%", "%25")
        if after[:1] not in ("", "%"):
            text = text.replace(after[0], "".join(f"%{b:02X}" for b in after[0].encode()))
        else:
            text += _ENDS
        out.append(text)
    return "".join(out)


def _value(
    name: str,
    event: bytes,
    rule: Rule,
    group: str,
    score: float,
    flag: event_pb2.SafetyFlag | None,
) -> str:
    """A placeholder's value.

    ``flag``: the flag a per-flag rule's hit names (``{flag.<field>}``; only such a rule
    compiles with them).
    """
    if name == "rule":
        return rule.id
    if name == "group":
        return group
    if name == "score":
        return f"{score:.2f}"
    if name.startswith(FLAG) and flag is not None:
        return _flag_text(flag, name.removeprefix(FLAG))
    return first(event, name)


def _fill(
    template: str,
    event: bytes,
    rule: Rule,
    group: str,
    score: float,
    flag: event_pb2.SafetyFlag | None,
    limit: int,
) -> str:
    """The template filled for people to read, only until the text is past ``limit``.

    A dedup key is filled by :func:`_key_text`.
    """
    parts: list[str] = []
    size = pos = 0
    for m in _TEMPLATE.finditer(template):
        if size > limit:
            return "".join(parts)
        for piece in (
            template[pos : m.start()],
            _value(m.group(1), event, rule, group, score, flag),
        ):
            parts.append(piece)
            size += len(piece)
        pos = m.end()
    parts.append(template[pos:])
    return "".join(parts)


MAX_FLAG_KEYS = 16
"""Dedup keys one event's hits of a per-flag rule may have, so alerts it opens: the most
severe categories' (:func:`named_flags`). An event carries up to 200 flags, and a gateway
names their categories: the default rule opened an alert per category, up to 200 alerts and
sink deliveries for one event (until 2026-12-07). Filters' own category sets fit (OpenAI
moderation 13, Llama Guard 14, Azure content safety 4)."""


def _bounded(
    keyed: list[tuple[event_pb2.SafetyFlag | None, str]],
) -> list[tuple[event_pb2.SafetyFlag | None, str]]:
    """The hits, in order, whose keys are among the first :data:`MAX_FLAG_KEYS` keys.

    A hit whose key an earlier hit has folds into that alert, so it is kept.
    """
    keys: set[str] = set()
    kept = []
    for flag, key in keyed:
        if key in keys or len(keys) < MAX_FLAG_KEYS:
            keys.add(key)
            kept.append((flag, key))
    return kept


def _noted(summary: str, note: str) -> str:
    """A summary with ``note`` after it, cut before the note to stay within the bound."""
    if len(summary) + len(note) <= MAX_SUMMARY_CHARS:
        return summary + note
    return summary[: MAX_SUMMARY_CHARS - len(note) - 1] + "\u2026" + note


class Evaluator:
    """Rules compiled once for the native core; :meth:`evaluate` runs them over a batch."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        """Raises ValueError if the native core cannot compile a rule."""
        self.rules = list(rules)
        self.signal_names = frozenset().union(*map(named_signals, self.rules))
        """Trust signals the rules name: events are given their views to be evaluated."""
        schema = signals.schema() if self.signal_names else native_schema()
        self._program = aiaudit_native.RuleProgram(schema, [r.plan() for r in self.rules])
        self.journaled = [r.id for r in self.rules if r.window is not None and reads_content(r)]
        """Windowed rules that read content: the samples they add are journaled."""

    def evaluate(
        self,
        events: Sequence[bytes],
        times: Sequence[float],
        windows: aiaudit_native.WindowState,
        journal: list[Recorded] | None = None,
        since: Mapping[str, float] | None = None,
    ) -> list[tuple[int, Hit]]:
        """(index of the event, hit) for every rule that fires, in event then rule order.

        A rule with a ``safety_flag`` condition (and no window) fires once per category of
        the flags it holds on (:func:`named_flags`), for at most :data:`MAX_FLAG_KEYS` keys:
        past them, its summaries say how many categories it held on.

        ``events`` are serialised; ``times`` are their receive times (seconds):
        windows slide on the time the log received events, which clients
        cannot forge and which replays reproduce. The slots in ``windows`` are updated in place.
        With ``journal``, the samples that rules reading content added are appended to it.
        ``since`` (rule id -> receive time, seconds): a windowed rule counts, and fires
        on, only events received from then on (the engine passes each rule row's last
        change, live and in a replay alike, so a restart rebuilds what it counted).
        """
        names = self.signal_names
        wire = [signals.views(w, names) for w in events] if names else list(events)
        out = []
        windows.journal(self.journaled if journal is not None else [])
        starts = None
        if since:
            starts = [since.get(r.id, -math.inf) for r in self.rules]
        fired = self._program.evaluate(wire, list(times), windows, starts)
        if journal is not None:
            journal.extend(windows.take_journal())
        for i, r, group, evidence, value, elements in fired:
            rule = self.rules[r]
            found = tuple(Finding(*x) for x in evidence)
            score = max((x.score for x in found), default=1.0)
            event_id = first(wire[i], "event_id")
            flags = named_flags(rule, wire[i], elements) if rule.per_flag else [None]
            keyed = [(x, dedup_key(rule.dedup_key, wire[i], rule, group, score, x)) for x in flags]
            kept = _bounded(keyed)  # a per-flag rule: one hit per category of flag it held on
            note = (
                f" (alerted on the {len(kept)} most severe of the event's {len(keyed)} "
                "matching flag categories)"
            )
            for flag, key in kept:
                summary = render(rule.summary, wire[i], rule, group, score, flag)
                if len(kept) < len(keyed):
                    summary = _noted(summary, note)
                hit = Hit(rule, event_id, key, summary, found, severity(rule, flag), value)
                out.append((i, hit))
        return out

    def add_samples(
        self, samples: Sequence[tuple[str, str, float, float]], windows: aiaudit_native.WindowState
    ) -> None:
        """Adds journaled (rule id, group, time, value) samples to these rules' windows."""
        self._program.add_samples(list(samples), windows)


def evaluate_in_receive_order(
    rules: Sequence[Rule], events: Sequence[bytes], times: Sequence[float]
) -> list[tuple[int, Hit]]:
    """(index into ``events``, hit) of a dry run: the events taken by receive time, oldest first.

    A window slides on receive times, so its count depends on which events came before:
    TestRule and ``aiaudit rules test`` share this order (stable for equal times), where
    the CLI took its file's order and could fire where the RPC, on the same events, did not.
    """
    order = sorted(range(len(events)), key=lambda i: times[i])
    hits = Evaluator(rules).evaluate(
        [events[i] for i in order], [times[i] for i in order], WindowState()
    )
    return [(order[i], hit) for i, hit in hits]


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
