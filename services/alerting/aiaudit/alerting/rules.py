"""Rule schema: YAML in, a compiled rule out, or errors naming line and field.

A rule (full schema in the README)::

    id: prompt-injection            # [a-z0-9][a-z0-9_-]{0,62}
    severity: high                  # info | low | medium | high | critical
    summary: "Injection attempt by {actor.user_id}"
    labels: {category: security}
    when:                           # a condition (see below); omitted = every event
      all:
        - field: event_type
          equals: interaction
        - detector: prompt_injection
          min_score: 0.5
    window:                         # optional: aggregate matching events over time
      duration: 5m
      group_by: [actor.user_id]
      aggregate: count              # count | rate | sum | avg | min | max | percentile
      field: timing.latency         # for sum/avg/min/max/percentile
      percentile: 99
      threshold: {gt: 10}           # gt / gte / lt / lte
      baseline: {duration: 1h, factor: 3}   # spike: aggregate > factor x baseline
    dedup:
      key: "{rule}:{actor.user_id}"
      throttle: 10m

Conditions: ``{field: PATH, <op>: VALUE}`` with op in equals, not_equals, in,
not_in, gt, gte, lt, lte, contains, regex, exists (``trust_signals.<name>``: the signals
of that name, as search compares them: a number with numbers, true/false with booleans,
text with text); ``{detector: NAME,
min_score: X}``; ``{all: [...]}``, ``{any: [...]}``, ``{not: {...}}``;
``{safety_flag: CONDITION}``, fields of one gateway safety flag (``field: category``),
all tested on the same flag: the rule fires once per category of the flags it holds on
(for an event's 16 most severe dedup keys: ``evaluate.MAX_FLAG_KEYS``),
``{flag.<field>}`` renders that flag, and ``severity_from: flag`` takes its severity. Regexes
are RE2 (linear time, no backtracking), so no rule can hang the engine.
"""

from __future__ import annotations

import functools
import math
import re
import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiaudit_native
import yaml
from google.protobuf import descriptor

from aiaudit.alerting import fields as f
from aiaudit.alerting import signals
from aiaudit.alerting.detectors import FAMILIES, family_of
from aiaudit.common.v1 import event_pb2

SEVERITIES = {
    "info": event_pb2.SEVERITY_INFO,
    "low": event_pb2.SEVERITY_LOW,
    "medium": event_pb2.SEVERITY_MEDIUM,
    "high": event_pb2.SEVERITY_HIGH,
    "critical": event_pb2.SEVERITY_CRITICAL,
}
_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
"""Matched whole (``fullmatch``): ``$`` also matched before a trailing newline."""
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d)")
_MILLIS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
MAX_DURATION_DAYS = 366
"""The longest window, baseline or throttle: a year. Longer ones were accepted and then
stopped the tenant's alerting at the next hit (a throttle past ``timedelta``'s range, a
window too large for a double in the native core)."""
MAX_SOURCE_BYTES = 64 * 1024
"""The largest rule source (UTF-8) the API takes: a 12 MB one held an RPC thread for 7-9 s
in the YAML parser; the built-in rules are under 1 KiB each."""
_FIELD_OPS = (
    "equals", "not_equals", "in", "not_in", "gt", "gte", "lt", "lte", "contains", "regex", "exists",
)  # fmt: skip
_COMPARE = ("gt", "gte", "lt", "lte")
AGGREGATES = ("count", "rate", "sum", "avg", "min", "max", "percentile")
MAX_REGEX = 1000
MAX_CONDITIONS = 64
"""Field and detector conditions in one rule's ``when``: every rule of a tenant is tested
on every event of the tenant, so its cost is bounded here and by the tenant's quotas."""
MAX_RULES = 200
"""Rules a tenant may hold besides the built-in pack."""
MAX_TEXT_SCANS = 128
"""``contains`` and ``regex`` conditions in all of a tenant's own rules: each reads the
text of every event (up to the whole event size), the costly kind of condition."""
_TEMPLATE = re.compile(r"\{([^{}]*)\}")
FLAGS = "safety_flags"
"""The repeated field a ``safety_flag`` condition tests one element of."""
FLAG_FIELDS = tuple(
    sorted(event_pb2.SafetyFlag.DESCRIPTOR.fields_by_name)
)  # blocked, category, score, severity, source
FLAG = "flag."
"""What a placeholder of the matched flag's field starts with: ``{flag.category}``."""


@dataclass(frozen=True)
class RuleError:
    """One problem in a rule source: where it is and what is wrong."""

    line: int
    field: str
    message: str

    def __str__(self) -> str:
        """``line 7, when.all[1].gt: expected a number``."""
        where = f", {self.field}" if self.field else ""
        return f"line {self.line}{where}: {self.message}"


WINDOW_EVENTS = 10_000
"""Events a window keeps per rule and group (the native core's ``MAX_SAMPLES``)."""

_CONTENT = (
    "is content: an alert keeps it after the event's erasure (its summary, dedup key and "
    "window groups are not scrubbed); use metadata, or a detector for the text"
)

_PERSONAL = (
    "is personal data: every caller with alerts.read sees an alert's summary and dedup key, "
    "pii.read or not"
)

_ABOVE_0 = "must be above 0"
_SCALARS = "strings, numbers or true/false (quote dates: '2026-01-01')"


def _scalar(value: object) -> bool:
    """What a condition compares with; YAML also reads null, dates, lists and mappings."""
    return isinstance(value, str | int | float | bool)


def _finite(value: object) -> bool:
    """Not a number a double cannot hold: YAML reads integers of any size, and .inf/.nan."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return True
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


_FINITE = f"expected a finite number (at most {sys.float_info.max:.4g} in magnitude)"


class RuleSyntaxError(ValueError):
    """A rule source with errors; ``errors`` lists each."""

    def __init__(self, errors: list[RuleError]) -> None:
        """Errors in source order."""
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


class _Node:
    """A YAML value with the line it starts on."""

    __slots__ = ("line", "value")

    def __init__(self, value: Any, line: int) -> None:
        self.value = value
        self.line = line


MAX_VALUES = 10_000
"""Values a rule source may hold once its YAML aliases are expanded: an alias names a
value without copying it, so 400 bytes of nested aliases expand to billions (a
"billion laughs"); the engine would spend minutes and gigabytes on one rule."""


_SURROGATE = re.compile("[\ud800-\udfff]")


class _Loader(yaml.SafeLoader):
    """Safe YAML whose values are wrapped in nodes carrying their line numbers."""

    stored = False
    """Loads a stored rule: a lone surrogate reads as U+FFFD instead of being refused."""

    def __init__(self, stream: str) -> None:
        """A loader counting the values it wraps (aliases expanded)."""
        super().__init__(stream)
        self.values = 0
        self.open: set[int] = set()
        """The collections being wrapped: one met again is an alias to itself."""

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        """Merges ``<<`` keys, refusing a mapping past :data:`MAX_VALUES` pairs once merged.

        A merge copies pairs, and merging an alias twice per level doubles them: a
        458-byte rule of 24 nested levels took 1.2 s and 200 MB before any value was
        counted, and each level more doubled both (a TestRule of 30 levels exhausted the
        server's memory; until 2026-12-06). Nested merges are flattened inner first
        (through this method), so the first one past the bound stops it.
        """
        super().flatten_mapping(node)
        if len(node.value) > MAX_VALUES:
            raise yaml.constructor.ConstructorError(
                None, None, f"more than {MAX_VALUES} values (with merge keys expanded)",
                node.start_mark,
            )  # fmt: skip


class _StoredLoader(_Loader):
    """Loads a stored rule (:attr:`_Loader.stored`)."""

    stored = True


def _text(loader: _Loader, value: object, mark: yaml.Mark) -> object:
    r"""A scalar as UTF-8 can hold it: escaped surrogate pairs joined, a lone one refused.

    YAML's ``\u`` escapes make any code point: ``"\ud83d\ude00"`` gave two lone
    surrogates, not the emoji, and a lone one is text no event holds and UTF-8 cannot
    encode. In a summary, dedup key or operand it held the tenant's log at its first event
    (the alert's statement failed); in a label every ListAlerts holding its alerts answered
    UNKNOWN (until 2026-12-06). A stored rule reads it as U+FFFD, so it keeps running.
    """
    if not isinstance(value, str) or not _SURROGATE.search(value):
        return value
    units = value.encode("utf-16-le", "surrogatepass")
    try:
        return units.decode("utf-16-le")
    except UnicodeDecodeError:
        if not loader.stored:
            raise yaml.constructor.ConstructorError(
                None, None, "a lone surrogate (a \\u escape of D800-DFFF) is not text", mark
            ) from None
        return units.decode("utf-16-le", "replace")


def _wrap(loader: _Loader, node: yaml.Node) -> _Node:
    line = node.start_mark.line + 1
    loader.values += 1
    if loader.values > MAX_VALUES:
        raise yaml.constructor.ConstructorError(
            None, None, f"more than {MAX_VALUES} values (with aliases expanded)", node.start_mark
        )
    if isinstance(node, yaml.CollectionNode):
        if id(node) in loader.open:
            raise yaml.constructor.ConstructorError(
                None, None, "an alias refers to a value that contains it", node.start_mark
            )
        loader.open.add(id(node))
        try:
            return _wrap_collection(loader, node, line)
        finally:
            loader.open.discard(id(node))
    return _Node(_text(loader, loader.construct_object(node, deep=True), node.start_mark), line)


def _wrap_collection(loader: _Loader, node: yaml.CollectionNode, line: int) -> _Node:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[str, _Node] = {}
        keys: dict[str, int] = {}
        for k, v in node.value:
            key = _text(loader, loader.construct_object(k, deep=True), k.start_mark)
            if str(key) in out:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", k.start_mark
                )
            out[str(key)] = _wrap(loader, v)
            keys[str(key)] = k.start_mark.line + 1
        return _Node(out, line)
    return _Node([_wrap(loader, v) for v in node.value], line)


# ---- compiled form -------------------------------------------------------------------------


Plan = tuple[Any, ...]
"""A condition as the native evaluator takes it (``aiaudit_native.RuleProgram``)."""


class Condition(ABC):
    """A compiled condition; the native core evaluates it."""

    @abstractmethod
    def plan(self) -> Plan:
        """The condition as the native evaluator takes it."""


@dataclass(frozen=True)
class FieldCondition(Condition):
    """``field`` compared with ``op`` to ``operand``; any value of a repeated field may match.

    ``not_equals`` and ``not_in`` hold when every value differs (so also when there is none);
    ``contains`` is case-insensitive (the native core case-folds both sides: a capital sigma,
    a small and a final one alike); ``regex`` holds the RE2 pattern. ``exists`` asks a field
    whose presence the event carries (``optional``, a message, a map entry, a Struct value)
    whether a value is there, a default one included, and any other field whether a value
    differs from the default. On a trust signal
    (``trust_signals.<name>``) an ``in`` or ``not_in`` holds (view, value) pairs
    (:func:`signals.condition`).
    """

    field: f.Field
    op: str
    operand: Any

    def plan(self) -> Plan:
        """``("field", path, op, operand)``; a trust signal's, as :mod:`signals` reads it."""
        if self.field.signal is not None:
            return signals.condition(self.field.signal, self.op, self.operand)
        operand = (
            sorted(self.operand, key=repr) if isinstance(self.operand, frozenset) else self.operand
        )
        return ("field", self.field.path, self.op, operand)


@dataclass(frozen=True)
class DetectorCondition(Condition):
    """A detector (family or ``family.kind``) found something scoring at least ``min_score``."""

    name: str
    min_score: float

    def plan(self) -> Plan:
        """``("detector", name, min_score)``."""
        return ("detector", self.name, self.min_score)


@dataclass(frozen=True)
class AllOf(Condition):
    """Every item holds (the evidence of all of them)."""

    items: tuple[Condition, ...]

    def plan(self) -> Plan:
        """``("all", [items])``."""
        return ("all", [c.plan() for c in self.items])


@dataclass(frozen=True)
class AnyOf(Condition):
    """At least one item holds; evidence of every item that does."""

    items: tuple[Condition, ...]

    def plan(self) -> Plan:
        """``("any", [items])``."""
        return ("any", [c.plan() for c in self.items])


@dataclass(frozen=True)
class Not(Condition):
    """The item does not hold (no evidence)."""

    item: Condition

    def plan(self) -> Plan:
        """``("not", item)``."""
        return ("not", self.item.plan())


@dataclass(frozen=True)
class FlagCondition(Condition):
    """``safety_flag``: the item holds on one safety flag, every test of it on that flag.

    A path through the repeated field (``safety_flags.category``) reads every flag's value
    apart, so two such conditions could hold on two different flags. The item's fields are
    ``safety_flags.<field>``; the native core reads them from each flag in turn.
    """

    item: Condition

    def plan(self) -> Plan:
        """``("each", "safety_flags", item)``, the item's paths starting from the flag."""
        return ("each", FLAGS, _within(self.item.plan(), f"{FLAGS}."))


def _within(plan: Plan, prefix: str) -> Plan:
    """A condition plan with ``prefix`` taken off its field paths."""
    if plan[0] in ("all", "any"):
        return (plan[0], [_within(p, prefix) for p in plan[1]])
    if plan[0] == "not":
        return ("not", _within(plan[1], prefix))
    return ("field", plan[1].removeprefix(prefix), *plan[2:])


def leaves(condition: Condition) -> list[Condition]:
    """The field and detector conditions under ``condition``."""
    if isinstance(condition, AllOf | AnyOf):
        return [leaf for item in condition.items for leaf in leaves(item)]
    if isinstance(condition, Not | FlagCondition):
        return leaves(condition.item)
    return [] if isinstance(condition, Always) else [condition]


def _flagged(condition: Condition) -> bool:
    """Whether a ``safety_flag`` condition is the condition or an item of its ``all``."""
    if isinstance(condition, AllOf):
        return any(_flagged(c) for c in condition.items)
    return isinstance(condition, FlagCondition)


def text_scans(rule: Rule) -> int:
    """How many of the rule's conditions read text (``contains``, ``regex``)."""
    return sum(
        1
        for c in leaves(rule.when)
        if isinstance(c, FieldCondition) and c.op in ("contains", "regex")
    )


class Always(Condition):
    """No ``when``: every event."""

    def plan(self) -> Plan:
        """``("always",)``."""
        return ("always",)


@dataclass(frozen=True)
class Window:
    """Aggregate of matching events per group over a sliding window."""

    seconds: float
    group_by: tuple[f.Field, ...]
    aggregate: str
    value: f.Field | None
    percentile: float
    op: str
    threshold: float
    baseline_seconds: float = 0.0
    factor: float = 0.0

    def plan(self) -> Plan:
        """The window as the native evaluator takes it.

        A trust signal groups by its first value, and its numbers are the aggregated ones.
        """
        return (
            self.seconds,
            [_native(g, "value") for g in self.group_by],
            self.aggregate,
            _native(self.value, "number") if self.value is not None else None,
            self.percentile,
            self.op,
            self.threshold,
            self.baseline_seconds,
            self.factor,
        )


def _native(fld: f.Field, view: str) -> str:
    """The path the native core reads: a trust signal's ``view`` (:mod:`signals`)."""
    return fld.path if fld.signal is None else signals.path(fld.signal, view)


@dataclass(frozen=True)
class Rule:
    """A compiled rule."""

    id: str
    source: str
    severity: int
    summary: str
    labels: Mapping[str, str]
    when: Condition
    window: Window | None
    dedup_key: str
    throttle_seconds: float
    description: str = ""
    initially_enabled: bool = True
    """``enabled:`` of a rule file's rule (the default pack, ``rules_files``): the flag the
    built-in rule has for a tenant until the tenant sets one. It never decides whether the
    rule runs: the tenant's stored flag alone does (the rule book hands the engine only the
    rules whose flag is on). A flag in the source as well made a rule shown enabled never run."""
    uses: frozenset[str] = field(default_factory=frozenset)
    severity_from_flag: bool = False
    """``severity_from: flag``: an alert takes the severity of the flag it names (``severity``
    when the flag has none)."""

    @property
    def per_flag(self) -> bool:
        """Whether the rule fires once per flag category (:class:`FlagCondition`, no window)."""
        return self.window is None and _flagged(self.when)

    def plan(self) -> Plan:
        """(id, enabled, condition, window or None) for the native evaluator.

        Always enabled: a rule handed to an evaluator is one to run.
        """
        window = self.window.plan() if self.window is not None else None
        return (self.id, True, self.when.plan(), window)


# ---- compiling ------------------------------------------------------------------------------


class _Compiler:
    def __init__(self, stored: bool = False, file: bool = False) -> None:
        self.errors: list[RuleError] = []
        self.stored = stored
        """A rule stored before a check of templates existed: what the check refuses
        (content or personal data in a summary or dedup key) renders empty instead."""
        self.file = file
        """A rule file's rule (the default pack, ``rules_files``, ``aiaudit rules check``):
        its ``enabled:`` is the built-in rule's initial flag. A source sent through the API
        may not carry one: the request's ``enabled`` is the rule's flag."""
        self.flagged = False
        """The rule being compiled has a ``safety_flag`` condition (one at most)."""

    def err(self, node: _Node, where: str, message: str) -> None:
        self.errors.append(RuleError(node.line, where, message))

    def mapping(self, node: _Node, where: str, allowed: tuple[str, ...]) -> dict[str, _Node] | None:
        if not isinstance(node.value, dict):
            self.err(node, where, f"expected a mapping with keys {', '.join(allowed)}")
            return None
        for key, value in node.value.items():
            if key not in allowed:
                self.err(
                    value, _join(where, key), f"unknown key {key!r} (allowed: {', '.join(allowed)})"
                )
        return dict(node.value)

    def string(self, node: _Node, where: str) -> str | None:
        if not isinstance(node.value, str) or not node.value:
            self.err(node, where, "expected a non-empty string")
            return None
        return node.value

    def number(self, node: _Node, where: str) -> float | None:
        v = node.value
        if isinstance(v, bool) or not isinstance(v, int | float):
            self.err(node, where, f"expected a number, got {_short(v)}")
            return None
        if not _finite(v):  # a stored one (.inf in a condition) keeps its meaning
            self.refuse(node, where, f"{_FINITE}, got {_short(v)}")
            if isinstance(v, int):
                return math.inf if v > 0 else -math.inf
        return float(v)

    def checkable(self, value: float | None) -> bool:
        """Whether to range-check a number: :meth:`number` refused a non-finite new one."""
        return value is not None and (math.isfinite(value) or self.stored)

    def duration(self, node: _Node, where: str) -> float | None:
        """Seconds, at most ``MAX_DURATION_DAYS`` (a stored rule's longer one is cut to it)."""
        v = node.value
        millis: float | None = None
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            millis = v * 1000
        elif isinstance(v, str) and (m := _DURATION.fullmatch(v)) and m.group(1).lstrip("0"):
            digits = m.group(1).lstrip("0")
            millis = int(digits) * _MILLIS[m.group(2)] if len(digits) <= 15 else math.inf
        if millis is None:
            self.err(node, where, f"expected a duration such as 30s, 5m, 1h, got {_short(v)}")
            return None
        limit = MAX_DURATION_DAYS * _MILLIS["d"]
        if millis > limit:
            self.refuse(node, where, f"{_short(v)} is over the limit of {MAX_DURATION_DAYS} days")
            millis = limit
        return millis / 1000

    def path(self, node: _Node, where: str) -> f.Field | None:
        text = self.string(node, where)
        if text is None:
            return None
        try:
            fld = f.compile_path(text)
        except f.FieldError as exc:
            self.err(node, where, str(exc))
            return None
        if fld.whole:  # a stored rule keeps it: it reads nothing, as it always did
            self.refuse(node, where, _whole(fld))
        return fld

    def condition(
        self, node: _Node, where: str, uses: set[str], top: bool = False, flag: bool = False
    ) -> Condition | None:
        """A condition; errors name its line and place (``where``).

        ``top``: the rule holds with it (``when``, an item of its ``all``), where a
        ``safety_flag`` may be; ``flag``: inside one, whose fields the paths name.
        """
        if not isinstance(node.value, dict):
            self.err(node, where, "expected a condition mapping (field, detector, all, any, not)")
            return None
        keys = set(node.value)
        for combinator in ("all", "any"):
            if combinator in keys:
                self.mapping(node, where, (combinator,))
                items = node.value[combinator]
                if not isinstance(items.value, list) or not items.value:
                    self.err(items, _join(where, combinator), "expected a non-empty list")
                    return None
                inside = top and combinator == "all"
                compiled = [
                    self.condition(x, f"{_join(where, combinator)}[{i}]", uses, inside, flag)
                    for i, x in enumerate(items.value)
                ]
                if any(c is None for c in compiled):
                    return None
                items_t = tuple(c for c in compiled if c is not None)
                return AllOf(items_t) if combinator == "all" else AnyOf(items_t)
        if "not" in keys:
            self.mapping(node, where, ("not",))
            inner = self.condition(node.value["not"], _join(where, "not"), uses, flag=flag)
            return Not(inner) if inner is not None else None
        if "safety_flag" in keys:
            return self.flag_condition(node, where, uses, top and not flag)
        if "detector" in keys and flag:
            self.err(node.value["detector"], _join(where, "detector"), _FLAG_TESTS)
            return None
        if "detector" in keys:
            m = self.mapping(node, where, ("detector", "min_score"))
            if m is None:
                return None
            name = self.string(m["detector"], _join(where, "detector"))
            if name is None:
                return None
            if family_of(name) not in FAMILIES:
                self.err(
                    m["detector"],
                    _join(where, "detector"),
                    f"unknown detector {name!r} (known: {', '.join(sorted(FAMILIES))})",
                )
                return None
            score = 0.5
            if "min_score" in m:
                got = self.number(m["min_score"], _join(where, "min_score"))
                if got is not None and self.checkable(got) and not 0 <= got <= 1:
                    self.err(m["min_score"], _join(where, "min_score"), "must be within 0..1")
                score = got if got is not None else score
            uses.add(family_of(name))
            return DetectorCondition(name, score)
        if "field" in keys:
            m = self.mapping(node, where, ("field", *_FIELD_OPS))
            if m is None:
                return None
            ops = [k for k in m if k in _FIELD_OPS]
            if len(ops) != 1:
                self.err(node, where, f"give exactly one operator of: {', '.join(_FIELD_OPS)}")
                return None
            fld = (
                self.flag_field(m["field"], where)
                if flag
                else self.path(m["field"], _join(where, "field"))
            )
            if fld is None:
                return None
            op = ops[0]
            return self.operand(fld, op, m[op], _join(where, op))
        self.err(
            node, where, "a condition needs one of: field, detector, all, any, not, safety_flag"
        )
        return None

    def flag_condition(
        self, node: _Node, where: str, uses: set[str], top: bool
    ) -> Condition | None:
        """``safety_flag``: once per rule, where the rule holds with it, as it fires per flag."""
        self.mapping(node, where, ("safety_flag",))
        here = _join(where, "safety_flag")
        if not top:
            self.err(node, here, _FLAG_PLACE)
            return None
        if self.flagged:
            self.err(node, here, "a rule takes one safety_flag condition: test one flag in it")
            return None
        self.flagged = True
        item = self.condition(node.value["safety_flag"], here, uses, flag=True)
        return FlagCondition(item) if item is not None else None

    def flag_field(self, node: _Node, where: str) -> f.Field | None:
        """A field of a safety flag (``category``), as ``safety_flags.category`` reads it."""
        name = self.string(node, _join(where, "field"))
        if name is None:
            return None
        if name not in FLAG_FIELDS:
            self.err(node, _join(where, "field"), _unknown_flag_field(name))
            return None
        return f.compile_path(f"{FLAGS}.{name}")

    def operand(self, fld: f.Field, op: str, node: _Node, where: str) -> Condition | None:
        v = node.value
        kind = _kind(fld)
        if op in ("contains", "regex") and kind in (_NUMBER, _BOOL):
            # Never holds: the value is never text. A stored rule keeps it.
            self.refuse(node, where, _untextual(fld, kind))
        try:
            if op in _COMPARE:
                if fld.scalar and not fld.numeric:
                    # Never holds: the value is compared as a number. A stored rule keeps it.
                    self.refuse(node, where, _unordered(fld))
                if fld.signal is not None and not _is_number(v):  # search refuses it too
                    self.err(node, where, _unordered_signal(fld, op, v))
                    return None
                n = self.number(node, where)
                if n is None:
                    return None
                # An integer stays one: Python orders it exactly against a float, doubles do not.
                return FieldCondition(fld, op, v if isinstance(v, int) and math.isfinite(n) else n)
            if op == "exists":
                if not isinstance(v, bool):
                    self.err(node, where, "expected true or false")
                    return None
                return FieldCondition(fld, op, v)
            if op in ("in", "not_in"):
                if not isinstance(v, list) or not v:
                    self.err(node, where, "expected a non-empty list")
                    return None
                values = [x.value for x in v]
                if not all(_scalar(x) for x in values):
                    self.err(node, where, f"expected a list of {_SCALARS}")
                    return None
                odd = next((x for x in values if not _equatable(kind, x)), None)
                if odd is not None:  # never equals a value: in never holds, not_in always does
                    self.refuse(node, where, _unequal(fld, kind, odd, op))
                elif not all(_finite(x) for x in values):
                    self.refuse(node, where, f"{_FINITE} in the list")
                if fld.signal is not None:  # 1 and true are one value to a set, two to search
                    return FieldCondition(fld, op, frozenset((signals.kind(x), x) for x in values))
                return FieldCondition(fld, op, frozenset(fld.expand(x) for x in values))
            if op == "contains":
                if not isinstance(v, str) or not v:
                    self.err(node, where, "expected a non-empty string")
                    return None
                return FieldCondition(fld, op, v.lower())
            if op == "regex":
                return self.regex(fld, node, where)
            if not _scalar(v):
                self.err(node, where, f"expected a single value: {_SCALARS}")
                return None
            if not _equatable(kind, v):  # equals never holds, not_equals always does
                self.refuse(node, where, _unequal(fld, kind, v, op))
            elif not _finite(v):
                self.refuse(node, where, f"{_FINITE}, got {_short(v)}")
            return FieldCondition(fld, op, fld.expand(v))
        except f.FieldError as exc:
            self.err(node, where, str(exc))
            return None

    def regex(self, fld: f.Field, node: _Node, where: str) -> Condition | None:
        v = node.value
        if not isinstance(v, str) or not v:
            self.err(node, where, "expected a regular expression")
            return None
        if len(v) > MAX_REGEX:
            self.err(node, where, f"regex is {len(v)} characters; the limit is {MAX_REGEX}")
            return None
        try:
            aiaudit_native.check_regex(v, self.stored)
        except ValueError as exc:
            why = " ".join(str(exc).split())
            if "exceeds size limit" in why:  # each rule's pattern is held by every process
                self.err(node, where, f"regex compiles to more than 2 MiB ({why}); repeat less")
            else:
                self.err(
                    node,
                    where,
                    f"not a valid RE2 regex ({why}); RE2 has no backreferences or lookaround",
                )
            return None
        return FieldCondition(fld, "regex", v)

    def window(self, node: _Node, where: str) -> Window | None:
        m = self.mapping(
            node,
            where,
            ("duration", "group_by", "aggregate", "field", "percentile", "threshold", "baseline"),
        )
        if m is None:
            return None
        for required in ("duration", "aggregate", "threshold"):
            if required not in m:
                self.err(node, _join(where, required), "is required")
        if any(r not in m for r in ("duration", "aggregate", "threshold")):
            return None
        seconds = self.duration(m["duration"], _join(where, "duration"))
        group: list[f.Field] = []
        if "group_by" in m:
            items = m["group_by"].value
            if not isinstance(items, list):
                self.err(m["group_by"], _join(where, "group_by"), "expected a list of field paths")
            else:
                for i, x in enumerate(items):
                    p = self.path(x, f"{_join(where, 'group_by')}[{i}]")
                    if p is not None and p.content:
                        self.err(x, f"{_join(where, 'group_by')}[{i}]", _CONTENT)
                    elif p is not None:
                        group.append(p)
        agg = m["aggregate"].value
        if agg not in AGGREGATES:
            self.err(m["aggregate"], _join(where, "aggregate"), f"expected one of {AGGREGATES}")
            return None
        value = None
        if agg in ("sum", "avg", "min", "max", "percentile"):
            if "field" not in m:
                self.err(node, _join(where, "field"), f"is required for aggregate {agg}")
                return None
            value = self.path(m["field"], _join(where, "field"))
            if value is not None and not value.numeric and value.signal is None:
                self.err(m["field"], _join(where, "field"), f"{value.path} is not numeric")
        pct = 0.0
        if agg == "percentile":
            if "percentile" not in m:
                self.err(node, _join(where, "percentile"), "is required for aggregate percentile")
                return None
            got = self.number(m["percentile"], _join(where, "percentile"))
            if got is not None and self.checkable(got) and not 0 < got <= 100:
                self.err(m["percentile"], _join(where, "percentile"), "must be within (0, 100]")
            pct = got or 0.0
        t = self.mapping(m["threshold"], _join(where, "threshold"), _COMPARE)
        if t is None or len(t) != 1:
            if t is not None:
                self.err(
                    m["threshold"], _join(where, "threshold"), "give exactly one of gt/gte/lt/lte"
                )
            return None
        op, tnode = next(iter(t.items()))
        threshold = self.number(tnode, _join(where, f"threshold.{op}"))
        if threshold is not None and not math.isfinite(threshold):
            if self.stored:  # never fires, or always: refused even so
                self.err(tnode, _join(where, f"threshold.{op}"), _FINITE)
            threshold = None
        if agg == "count" and _unreachable(op, threshold, WINDOW_EVENTS):
            assert threshold is not None
            self.err(
                tnode,
                _join(where, f"threshold.{op}"),
                f"a window keeps at most {WINDOW_EVENTS} events per group, so a count "
                f"{op} {threshold:g} can never fire",
            )
            threshold = None
        # The least a count or rate is when tested: the event that matched is in the window
        # (the native core's rate of one event: the same division, so the same double).
        least = {"count": 1.0, "rate": 1 / (seconds / 60.0) if seconds else 0.0}.get(agg)
        if least is not None and threshold is not None and _below(op, threshold, least):
            self.refuse(
                tnode,
                _join(where, f"threshold.{op}"),
                f"a window's {agg} is at least {least:g} when it is tested (the event that "
                f"matched is in it), so {op} {threshold:g} can never fire: a rule fires on "
                "events, not on their absence",
            )
        # The native core's rate, of a full window: the same division, so the same double.
        top = WINDOW_EVENTS / (seconds / 60.0) if seconds else math.inf
        if agg == "rate" and _unreachable(op, threshold, top):
            assert threshold is not None  # a stored rule keeps loading, and never fires
            written = m["duration"].value  # valid: seconds is set
            self.refuse(
                tnode,
                _join(where, f"threshold.{op}"),
                f"a window keeps at most {WINDOW_EVENTS} events per group, so over "
                f"{written if isinstance(written, str) else f'{written}s'} a rate reaches at "
                f"most {top:g} a minute and {op} {threshold:g} can never fire: lower it or "
                "shorten the window",
            )
        base_s, factor = 0.0, 0.0
        if "baseline" in m:
            b = self.mapping(m["baseline"], _join(where, "baseline"), ("duration", "factor"))
            if b is not None:
                if "duration" not in b or "factor" not in b:
                    self.err(m["baseline"], _join(where, "baseline"), "needs duration and factor")
                else:
                    base_s = self.duration(b["duration"], _join(where, "baseline.duration")) or 0.0
                    got = self.number(b["factor"], _join(where, "baseline.factor"))
                    factor = got or 0.0
                    if not (math.isfinite(factor) and factor > 0):
                        if got is None or self.checkable(got):
                            self.err(b["factor"], _join(where, "baseline.factor"), _ABOVE_0)
                        threshold = None
        if (
            seconds is None
            or threshold is None
            or (agg != "count" and agg != "rate" and value is None)
        ):
            return None
        return Window(seconds, tuple(group), agg, value, pct, op, threshold, base_s, factor)

    def template(
        self,
        node: _Node,
        where: str,
        personal_group: str = "",
        flag: str = "",
        windowed: bool = True,
    ) -> str | None:
        """A summary or dedup key; ``personal_group``: the personal field the window groups by.

        ``flag``: why ``{flag.<field>}`` names no flag here (empty: the rule fires per flag).
        ``windowed``: the rule has a window, whose group ``{group}`` names (else it is empty).
        """
        text = self.string(node, where)
        if text is None:
            return None
        refused: set[str] = set()
        for name in _TEMPLATE.findall(text):
            if name in ("rule", "score"):
                continue
            if name.startswith(FLAG):
                if flag:
                    self.err(node, where, f"placeholder {{{name}}}: {flag}")
                elif name.removeprefix(FLAG) not in FLAG_FIELDS:
                    self.err(
                        node, where, f"placeholder {{{name}}}: "
                        f"{_unknown_flag_field(name.removeprefix(FLAG))}",
                    )  # fmt: skip
                continue
            if name == "group":
                if not windowed:  # a stored rule's renders empty, as it always did
                    self.refuse(node, where, _NO_GROUP)
                elif personal_group:
                    refused.add(name)
                    self.refuse(
                        node, where, f"placeholder {{group}}: the window groups by "
                        f"{personal_group}, which {_PERSONAL}",
                    )  # fmt: skip
                continue
            try:
                fld = f.compile_path(name)
            except f.FieldError as exc:
                self.err(node, where, f"placeholder {{{name}}}: {exc}")
                continue
            if fld.whole:
                self.refuse(node, where, f"placeholder {{{name}}}: {_whole(fld)}")
            if fld.content or fld.personal:
                refused.add(name)
                why = _CONTENT if fld.content else f"{_PERSONAL}; match on it in a condition"
                self.refuse(node, where, f"placeholder {{{name}}}: {why}")
        if refused and self.stored:
            return _TEMPLATE.sub(lambda m: "" if m.group(1) in refused else m.group(0), text)
        return text

    def refuse(self, node: _Node, where: str, message: str) -> None:
        """An error, except in a rule stored before the check (the caller then drops the part)."""
        if not self.stored:
            self.err(node, where, message)


_NUMBER, _TEXT, _ENUM, _BOOL, _ANY = "number", "text", "enum", "bool", "any"


def _kind(fld: f.Field) -> str:
    """What every value of the field is.

    ``_ANY`` for a map or Struct entry, which may hold any kind (``attributes.<key>``,
    ``model.parameters.<key>``): conditions there stay permissive.
    """
    if fld.numeric:  # numbers, durations (ms), times (s), the derived token sum and cost
        return _NUMBER
    if not fld.scalar:
        return _ANY
    if fld.enum is not None:  # by name (a number only for a value the schema does not name)
        return _ENUM
    return _BOOL if _leaf(fld.path).type == descriptor.FieldDescriptor.TYPE_BOOL else _TEXT


@functools.lru_cache(maxsize=1024)
def _leaf(path: str) -> descriptor.FieldDescriptor:
    """The proto field a plain (scalar) path ends on."""
    desc: Any = event_pb2.Event.DESCRIPTOR
    *parents, last = path.split(".")
    for part in parents:
        desc = desc.fields_by_name[part].message_type
    leaf: descriptor.FieldDescriptor = desc.fields_by_name[last]
    return leaf


def _equatable(kind: str, value: object) -> bool:
    """Whether an operand can equal a value of that kind.

    By the kind YAML reads it as: a quoted number is text, and true/false is no number (in
    Python ``True == 1``, but such a rule meant something else).
    """
    if kind == _ANY:
        return True
    if kind == _BOOL:
        return isinstance(value, bool)
    if kind == _NUMBER:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)


def _unequal(fld: f.Field, kind: str, value: object, op: str) -> str:
    never = "never holds" if op in ("equals", "in") else "always holds"
    if kind == _NUMBER:
        holds, fix = "numbers", "write the number unquoted"
    elif kind == _BOOL:
        holds, fix = "true or false", "write true or false unquoted"
    elif kind == _ENUM:
        assert fld.enum is not None
        prefix = f._enum_prefix(fld.enum)
        names = ", ".join(v.name.removeprefix(prefix).lower() for v in fld.enum.values)
        holds, fix = f"{fld.enum.name} names", f"name the value (one of: {names})"
    else:
        holds, fix = "text", "quote it"
    return f"{fld.path} holds {holds}, never {_short(value)}, so {op} {never}: {fix}"


def _untextual(fld: f.Field, kind: str) -> str:
    if kind == _BOOL:
        return f"{fld.path} holds true or false, not text: use equals"
    return f"{fld.path} holds numbers, not text: use equals, in, gt, gte, lt or lte"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _unordered_signal(fld: f.Field, op: str, value: object) -> str:
    what = "a boolean" if isinstance(value, bool) else "not a number"
    return (
        f"{fld.path}: {op} compares numbers only, and {_short(value)} is {what} "
        "(a number unquoted; true/false or text take equals, not_equals, in or not_in)"
    )


_NO_GROUP = (
    "placeholder {group}: the rule has no window, so no group: it is empty for every event "
    "(in a dedup key, every hit of the rule shares one alert); name the fields instead"
)


def _whole(fld: f.Field) -> str:
    return (
        f"{fld.path} is a Struct, an object with no value of its own (a condition on it reads "
        f"none, and it renders empty): name one key after it ({fld.path}.<key>)"
    )


def _unordered(fld: f.Field) -> str:
    if fld.enum is not None:
        return f"{fld.path} is an enum, not a number: name its values with in: [...]"
    return f"{fld.path} is not a number or a time: use equals, in, contains or regex"


def _unreachable(op: str, threshold: float | None, top: float) -> bool:
    """A window threshold the aggregate, at most ``top``, can never cross."""
    if threshold is None:
        return False
    return (op == "gt" and threshold >= top) or (op == "gte" and threshold > top)


def _below(op: str, threshold: float, least: float) -> bool:
    """A ``lt``/``lte`` threshold an aggregate that is at least ``least`` never meets.

    ``count lt 1`` (meant as "no events") was accepted and never fired (until 2026-12-06).
    """
    return (op == "lt" and threshold <= least) or (op == "lte" and threshold < least)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _short(value: object) -> str:
    """A value for a message: a 400-digit integer is not worth quoting whole."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


_FLAG_IN_SOURCE = (
    "a rule's source does not switch it on or off: its enabled field does (CreateRule, "
    "UpdateRule; GetRule shows it); remove this line"
)

_TOP = (
    "id", "description", "severity", "severity_from", "summary", "labels", "enabled", "when",
    "window", "dedup",
)  # fmt: skip
_FLAG_TESTS = "a safety_flag condition tests the flag's fields (field: category ...), no detector"
_FLAG_PLACE = (
    "a safety_flag condition must be when itself or an item of when's all: the rule fires "
    "once per flag it holds on, so the rule must hold with it"
)


def _unknown_flag_field(name: str) -> str:
    return f"unknown field {name!r} of a safety flag (known: {', '.join(FLAG_FIELDS)})"


def _no_flag(flagged: bool, windowed: bool) -> str:
    """Why a rule's alerts name no single flag, or "" when the rule fires per flag."""
    if not flagged:
        return "the rule has no safety_flag condition whose flag it could name"
    return "a window rule fires on a count of events, not on one flag" if windowed else ""


def _compile_one(node: _Node, source: str, c: _Compiler, where: str = "") -> Rule | None:
    m = c.mapping(node, where, _TOP)
    if m is None:
        return None
    for required in ("id", "severity"):
        if required not in m:
            c.err(node, _join(where, required), "is required")
    rule_id = c.string(m["id"], _join(where, "id")) if "id" in m else None
    if rule_id is not None and not _ID.fullmatch(rule_id):
        c.refuse(m["id"], _join(where, "id"), "must match [a-z0-9][a-z0-9_-]{0,62}")
    severity = None
    if "severity" in m:
        severity = SEVERITIES.get(str(m["severity"].value).lower())
        if severity is None:
            c.err(m["severity"], _join(where, "severity"), f"expected one of {list(SEVERITIES)}")
    labels: dict[str, str] = {}
    if "labels" in m:
        if not isinstance(m["labels"].value, dict):
            c.err(m["labels"], _join(where, "labels"), "expected a mapping of strings")
        else:
            for k, v in m["labels"].value.items():
                if not _scalar(v.value):  # str() of a mapping was the repr of a _Node
                    c.refuse(v, _join(where, f"labels.{k}"), f"expected one value: {_SCALARS}")
                labels[k] = str(_plain(v))
    enabled = True
    if "enabled" in m and not c.file:  # a stored rule's is ignored: its stored flag decides
        c.refuse(m["enabled"], _join(where, "enabled"), _FLAG_IN_SOURCE)
    elif "enabled" in m and not isinstance(m["enabled"].value, bool):
        c.err(m["enabled"], _join(where, "enabled"), "expected true or false")
    elif "enabled" in m:
        enabled = m["enabled"].value
    uses: set[str] = set()
    when: Condition | None = Always()
    c.flagged = False
    if "when" in m:
        when = c.condition(m["when"], _join(where, "when"), uses, top=True)
        tested = len(leaves(when)) if when is not None else 0
        if tested > MAX_CONDITIONS and not c.stored:
            c.err(
                m["when"],
                _join(where, "when"),
                f"{tested} conditions; the limit is {MAX_CONDITIONS} (split the rule)",
            )
    window = c.window(m["window"], _join(where, "window")) if "window" in m else None
    personal = next((g.path for g in window.group_by if g.personal), "") if window else ""
    no_flag = _no_flag(c.flagged, "window" in m)
    from_flag = False
    if "severity_from" in m:
        node_from = m["severity_from"]
        if node_from.value != "flag":
            c.err(
                node_from,
                _join(where, "severity_from"),
                f"expected flag, got {_short(node_from.value)}",
            )
        elif no_flag:
            c.err(
                node_from,
                _join(where, "severity_from"),
                f"takes the severity of one flag: {no_flag}",
            )
        from_flag = True
    summary = rule_id or ""
    windowed = "window" in m
    if "summary" in m:
        summary = (
            c.template(m["summary"], _join(where, "summary"), personal, no_flag, windowed)
            or summary
        )
    key = "{rule}:{group}" if window is not None else "{rule}:{actor.user_id}"
    keyed = False
    throttle = 600.0
    if "dedup" in m:
        d = c.mapping(m["dedup"], _join(where, "dedup"), ("key", "throttle"))
        if d is not None:
            if "key" in d:
                keyed = True
                key = (
                    c.template(d["key"], _join(where, "dedup.key"), personal, no_flag, windowed)
                    or key
                )
            if "throttle" in d:
                throttle = c.duration(d["throttle"], _join(where, "dedup.throttle")) or throttle
    if personal and not keyed:
        assert window is not None
        key = "{rule}"  # a rule stored before the check: its groups share one key
        wnode = m["window"]
        gnode = wnode.value.get("group_by", wnode) if isinstance(wnode.value, dict) else wnode
        c.refuse(
            gnode, _join(where, "window.group_by"),
            f"{personal} {_PERSONAL}, and the default dedup key {{rule}}:{{group}} copies "
            "it into every alert; set dedup.key without {group}",
        )  # fmt: skip
    description = str(m["description"].value) if "description" in m else ""
    if c.errors or rule_id is None or severity is None or when is None:
        return None
    return Rule(
        rule_id, source, severity, summary, labels, when, window, key, throttle, description,
        enabled, frozenset(uses), from_flag,
    )  # fmt: skip


def _load(source: str, stored: bool = False) -> _Node:
    try:
        loaded = yaml.load(source, Loader=_StoredLoader if stored else _Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise RuleSyntaxError([RuleError(line, "", f"invalid YAML: {exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise RuleSyntaxError([RuleError(1, "", f"invalid YAML: {exc}")]) from None
    except RecursionError:  # thousands of nested brackets: the YAML composer recurses
        raise RuleSyntaxError([RuleError(1, "", "invalid YAML: nested too deeply")]) from None
    except ValueError as exc:  # a value YAML resolves but Python will not build
        why = "an integer of more than 4300 digits" if "4300" in str(exc) else str(exc)
        raise RuleSyntaxError([RuleError(1, "", f"invalid YAML: {why}")]) from None
    if not isinstance(loaded, _Node):
        raise RuleSyntaxError([RuleError(1, "", "empty rule source")])
    return loaded


def compile_rule(source: str, stored: bool = False) -> Rule:
    """One rule from YAML; RuleSyntaxError lists every problem with its line and field.

    ``stored``: a tenant's rule as stored, maybe before a check of its templates
    existed: content or personal data there renders empty rather than stopping the
    tenant's alerting (every new or changed source is compiled without it).
    """
    c = _Compiler(stored)
    rule = _compile_one(_load(source, stored), source, c)
    if c.errors or rule is None:
        raise RuleSyntaxError(c.errors or [RuleError(1, "", "invalid rule")])
    return rule


def compile_file(source: str) -> list[Rule]:
    """A rule file: one rule, or ``rules: [...]``; ids must be unique.

    A rule's ``enabled:`` is its initial flag (:attr:`Rule.initially_enabled`) and is left
    out of its source: the source is what a tenant reads and may send back with UpdateRule.
    """
    root = _load(source)
    c = _Compiler(file=True)
    if isinstance(root.value, dict) and "rules" in root.value:
        c.mapping(root, "", ("rules",))
        items = root.value["rules"]
        if not isinstance(items.value, list):
            raise RuleSyntaxError([RuleError(items.line, "rules", "expected a list of rules")])
        rules = []
        seen: dict[str, int] = {}
        for i, node in enumerate(items.value):
            rule = _compile_one(node, _slice(node), c, f"rules[{i}]")
            if rule is not None:
                if rule.id in seen:
                    c.err(node, f"rules[{i}].id", f"duplicate id {rule.id!r}")
                seen[rule.id] = i
                rules.append(rule)
        if c.errors:
            raise RuleSyntaxError(c.errors)
        return rules
    flagged = isinstance(root.value, dict) and "enabled" in root.value
    rule = _compile_one(root, _slice(root) if flagged else source, c)
    if c.errors or rule is None:
        raise RuleSyntaxError(c.errors or [RuleError(1, "", "invalid rule")])
    return [rule]


def _slice(node: _Node) -> str:
    """One rule of a file as a rule source of its own, without its ``enabled``.

    Re-serialised, so it stands alone; a source sent back through the API may not carry
    ``enabled``.
    """
    plain = _plain(node)
    if isinstance(plain, dict):
        plain.pop("enabled", None)
    return yaml.safe_dump(plain, sort_keys=False, allow_unicode=True)


def _plain(node: _Node) -> Any:
    if isinstance(node.value, dict):
        return {k: _plain(v) for k, v in node.value.items()}
    if isinstance(node.value, list):
        return [_plain(v) for v in node.value]
    return node.value


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _wrap)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _wrap)
