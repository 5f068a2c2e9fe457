"""Filter/query trees to OpenSearch query DSL (the mappings of backends/opensearch.py).

Scalars are top-level fields named by :attr:`Field.column`; multi-valued
fields are entries of the nested field ``entries`` (``field``, ``str``,
``num``, ``int`` beside ``num`` for an integer, ``bool``); text fields are
analysed ``text`` fields. Everything runs in filter context (no scoring):
results are ordered by ``order_by`` only.

OpenSearch refuses a query holding more than ``indices.query.bool.max_clause_count``
(1024 by default) leaf queries once rewritten: a term or ``terms`` query,
an ``exists`` or a phrase counts one (a lone word with an apostrophe two:
:func:`text_query`), a numeric term or range two (points
and doc values), a ``bool`` holding only ``must_not`` one more (the
``match_all`` it is given). The language allows 256 comparisons, so the
translation keeps each small: a ``NOT`` becomes a ``must_not`` clause of a
``bool`` that has a positive one wherever the tree allows it (``a != x OR
b != y`` is ``NOT (a = x AND b = y)``), ``=`` comparisons ORed on one field
(booleans: on any fields, with one value) share one ``terms`` query, and a
:class:`Plan` leaves out what a search does not need: the branch for
documents indexed before ``entries.bool`` when a tenant has none, and the
five or six clauses of a number past 2**53 (one script instead).
"""

from __future__ import annotations

import math
import re
import string
import sys
from dataclasses import dataclass
from typing import Any

from aiaudit.search.catalogue import Kind
from aiaudit.search.language import (
    And,
    Compare,
    Exists,
    Node,
    Not,
    Or,
    Prefix,
    Text,
    leaves,
    matched_texts,
)

Query = dict[str, Any]

_RANGE = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}


@dataclass(frozen=True)
class Plan:
    """How a tree is translated; the default is what every search sends first."""

    legacy_bools: bool = True
    """Booleans also match documents indexed before ``entries.bool`` (by their text)."""
    scripted_numbers: bool = False
    """Numbers past 2**53 in multi-valued fields are compared by a script: one clause
    instead of five or six, for a filter too large otherwise (scripts are an
    expensive query a cluster may refuse: ``search.allow_expensive_queries``)."""
    continued_words: bool = True
    """A lone word with an apostrophe also matches the tokens going on from it
    (:func:`_joined`): a prefix query, which a cluster refusing expensive queries
    refuses; without it such a word is matched as a phrase, as before 2026-12-06."""


DEFAULT = Plan()


def text_query(node: Text, plan: Plan = DEFAULT) -> Query:
    """A phrase match over the node's text fields (a word with an apostrophe: :func:`_joined`)."""
    columns = [name.replace(".", "__") for name in node.fields]
    phrase: Query = {"multi_match": {"query": node.phrase, "type": "phrase", "fields": columns}}
    word = _joined(node.phrase) if plan.continued_words else None
    if word is None:
        return phrase
    continued = [{"prefix": {column: {"value": word}}} for column in columns]
    return {"bool": {"should": [phrase, *continued], "minimum_should_match": 1}}


def _text_cost(node: Text, plan: Plan) -> int:
    """Clauses of :func:`text_query`: one per field, two for a word with an apostrophe."""
    continued = plan.continued_words and _joined(node.phrase) is not None
    return len(node.fields) * (2 if continued else 1)


def continues_words(node: Node | None) -> bool:
    """Whether the tree has a word :attr:`Plan.continued_words` sends a prefix query for."""
    return any(isinstance(leaf, Text) and _joined(leaf.phrase) is not None for leaf in leaves(node))


_APOSTROPHES = "'\u2019"
_JOINED = re.compile(rf"[^\W_]+(?:[{_APOSTROPHES}][^\W_]+)+")
_SPACES = "".join(c for c in map(chr, range(0x3001)) if c.isspace())
"""Every space the query lexer skips (``str.isspace``; none is past U+3000)."""
_AROUND = string.punctuation + _SPACES + "\u2018\u2019\u201c\u201d"
"""What a lone word may have around it: no token of either backend. Until
2026-12-07 only ASCII spaces, so ``"O'Brien<U+00A0>"`` (a no-break space pasted
with it) was sent no prefix and missed ``O'Brien's`` on OpenSearch only."""


def _joined(phrase: str) -> str | None:
    """The prefix of the tokens continuing a word that has an apostrophe, or None.

    The standard analyzer keeps letters joined by apostrophes as one token
    (``o'brien's``) where FTS5 splits them (``o brien s``): ``O'Brien`` found
    ``O'Brien's`` on SQLite only. A single word such as ``O'Brien`` (outer
    punctuation aside) also matches a token that goes on with another
    apostrophe: the prefix ``o'brien'``, lower-cased as the analyzer does each
    character (Python's ``lower`` of one character, but for U+0130, agrees with
    Java's on every letter the tokenizer joins). Such a token is what FTS5
    reads as the word's tokens and more, so this finds only what SQLite finds.
    A phrase of several words is matched as before. A prefix longer than the
    analyzer's tokens (255 UTF-16 units, the standard tokenizer's
    ``max_token_length``) continues none, and is not sent: past 1,000 bytes
    Lucene refused its automaton, and OpenSearch answered INVALID_ARGUMENT
    where SQLite answered (until 2026-12-07).
    """
    word = phrase.strip(_AROUND)
    if _JOINED.fullmatch(word) is None:
        return None
    apostrophe = next(c for c in reversed(word) if c in _APOSTROPHES)
    prefix = "".join(c.lower()[0] for c in word) + apostrophe
    return prefix if len(prefix.encode("utf-16-le")) <= 2 * _TOKEN_UNITS else None


_TOKEN_UNITS = 255
"""The longest token of the standard analyzer, in UTF-16 units (longer words are cut)."""


def highlight_query(node: Node | None, plan: Plan = DEFAULT) -> Query | None:
    """A query matching any phrase of the tree (what highlighting marks), or None."""
    phrases = [text_query(leaf, plan) for leaf in matched_texts(node)]
    if not phrases:
        return None
    return {"bool": {"should": phrases, "minimum_should_match": 1}}


def query(node: Node, plan: Plan = DEFAULT) -> Query:
    """The DSL of a tree."""
    return _both(node, plan).pos.query


def clause(node: Node, plan: Plan = DEFAULT) -> tuple[str, Query]:
    """The tree as one clause of a ``bool`` that has a positive clause already.

    ``("filter", q)`` with ``q`` matching the tree, or ``("must_not", q)`` with
    ``q`` matching its negation, whichever OpenSearch counts fewer clauses in.
    """
    both = _both(node, plan)
    if both.neg.cost < both.pos.cost:
        return "must_not", both.neg.query
    return "filter", both.pos.query


def needs_typing(node: Node) -> bool:
    """Whether the tree compares booleans of multi-valued fields (:attr:`Plan.legacy_bools`)."""
    return any(_is_bool(leaf) for leaf in leaves(node))


def has_big_numbers(node: Node) -> bool:
    """Whether the tree compares numbers past 2**53 in multi-valued fields."""
    return any(_is_big(leaf) for leaf in leaves(node))


# ---- both polarities, counted ---------------------------------------------


@dataclass(frozen=True)
class _Q:
    query: Query
    cost: int
    """Clauses OpenSearch counts in it (an upper bound)."""


@dataclass(frozen=True)
class _Both:
    """A node's query (``pos``) and a query of its negation (``neg``)."""

    pos: _Q
    neg: _Q


def _not(q: _Q) -> _Q:
    """A ``bool`` of one ``must_not``: OpenSearch adds a ``match_all`` (one clause more)."""
    return _Q({"bool": {"must_not": [q.query]}}, q.cost + 1)


def _pair(pos: _Q, neg: _Q) -> _Both:
    if pos.cost > neg.cost + 1:
        pos = _not(neg)
    if neg.cost > pos.cost + 1:
        neg = _not(pos)
    return _Both(pos, neg)


def _leaf(q: _Q) -> _Both:
    return _Both(q, _not(q))


def _swap(both: _Both) -> _Both:
    return _Both(both.neg, both.pos)


def _both(node: Node, plan: Plan) -> _Both:
    if isinstance(node, Not):
        return _swap(_both(node.item, plan))
    if isinstance(node, And):
        units = _units(node.items, plan, conjunction=True)
        return _pair(_all(units), _any([_swap(u) for u in units]))
    if isinstance(node, Or):
        units = _units(node.items, plan, conjunction=False)
        return _pair(_any(units), _all([_swap(u) for u in units]))
    return _leaf(_comparison(node, plan))


def _all(units: list[_Both]) -> _Q:
    """Every unit holds: a filter clause each, or a ``must_not`` of its negation."""
    if len(units) == 1:
        return units[0].pos
    filters: list[Query] = []
    nots: list[Query] = []
    cost = 0
    for u in units:
        if u.neg.cost < u.pos.cost:
            nots.append(u.neg.query)
            cost += u.neg.cost
        else:
            filters.append(u.pos.query)
            cost += u.pos.cost
    body: dict[str, list[Query]] = {}
    if filters:
        body["filter"] = filters
    else:
        cost += 1  # the match_all of a bool without a positive clause
    if nots:
        body["must_not"] = nots
    return _Q({"bool": body}, cost)


def _any(units: list[_Both]) -> _Q:
    """Some unit holds; those cheaper negated share one ``NOT (x AND y ...)``."""
    if len(units) == 1:
        return units[0].pos
    negated = [i for i, u in enumerate(units) if u.neg.cost < u.pos.cost]
    if len(negated) < 2:  # alone, NOT x costs what the unit does
        negated = []
    shoulds = [u.pos.query for i, u in enumerate(units) if i not in negated]
    cost = sum(u.pos.cost for i, u in enumerate(units) if i not in negated)
    if negated:
        inner = _all([_swap(units[i]) for i in negated])  # every negation holds: filters only
        shoulds.append({"bool": {"must_not": [inner.query]}})
        cost += inner.cost + 1
    return _Q({"bool": {"should": shoulds, "minimum_should_match": 1}}, cost)


# ---- ORed equalities sharing one terms query --------------------------------


def _merge_key(node: Node) -> tuple[str, object] | None:
    """What ORed comparisons share one query by (None: this one shares none)."""
    if not isinstance(node, Compare) or node.op != "=":
        return None
    field = node.field
    if node.boolean:
        return ("bool", node.value) if field.multi else None
    if node.numeric:
        return None
    if field.multi:
        return ("entry", field.name)
    if field.kind in (Kind.KEYWORD, Kind.ENUM):
        return ("scalar", field.column)
    return None


def _units(items: tuple[Node, ...], plan: Plan, conjunction: bool) -> list[_Both]:
    """The items' queries, mergeable comparisons merged.

    In an OR, equalities sharing a key become one query; in an AND, negated
    ones do (``NOT a AND NOT b`` is ``NOT (a OR b)``).
    """
    groups: dict[tuple[str, object], list[Compare]] = {}
    order: list[Node | tuple[str, object]] = []
    for item in items:
        leaf = item.item if conjunction and isinstance(item, Not) else item
        key = _merge_key(leaf) if (isinstance(item, Not) == conjunction) else None
        if key is None:
            order.append(item)
            continue
        assert isinstance(leaf, Compare)
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(leaf)
    units = []
    for entry in order:
        if not isinstance(entry, tuple):
            units.append(_both(entry, plan))
            continue
        members = groups[entry]
        merged = _leaf(_merged(entry, members, plan))
        units.append(_swap(merged) if conjunction else merged)
    return units


def _merged(key: tuple[str, object], members: list[Compare], plan: Plan) -> _Q:
    """One query for ORed equalities (a single one as it is alone)."""
    kind, shared = key
    if kind == "bool":
        assert isinstance(shared, bool)
        return _boolean(list(dict.fromkeys(m.field.name for m in members)), shared, plan)
    values = list(dict.fromkeys(m.value for m in members))
    if kind == "entry":
        return _entry([members[0].field.name], _one_of("entries.str", values))
    assert isinstance(shared, str)
    return _Q(_one_of(shared, values), 1)


def _one_of(target: str, values: list[Any]) -> Query:
    if len(values) == 1:
        return {"term": {target: values[0]}}
    return {"terms": {target: values}}


# ---- comparisons ----------------------------------------------------------


def _is_bool(node: Node) -> bool:
    return isinstance(node, Compare) and node.boolean and node.field.multi


def _is_big(node: Node) -> bool:
    if not isinstance(node, Compare) or not node.field.multi or node.boolean or not node.numeric:
        return False
    assert not isinstance(node.value, str)
    return abs(node.value) >= _EXACT


def _comparison(node: Node, plan: Plan) -> _Q:
    if isinstance(node, Text):
        return _Q(text_query(node, plan), _text_cost(node, plan))
    assert isinstance(node, Compare | Prefix | Exists)
    field = node.field
    if field.multi:
        if isinstance(node, Compare) and node.boolean:
            return _boolean([field.name], bool(node.value), plan)
        if isinstance(node, Compare) and node.numeric:
            return _number(node, plan)
        if isinstance(node, Exists):
            return _entry([field.name], cost=0)
        return _entry([field.name], _simple(node, "entries.str"))
    if isinstance(node, Exists):
        return _Q({"exists": {"field": field.column}}, 1)
    return _Q(_simple(node, field.column), 2 if field.numeric else 1)


def _entry(names: list[str], *conditions: Query, cost: int = 1) -> _Q:
    """Some entry of one of the fields ``names`` meets every condition (``cost`` clauses)."""
    inner: list[Query] = [_one_of("entries.field", names), *conditions]
    return _Q({"nested": {"path": "entries", "query": {"bool": {"filter": inner}}}}, 1 + cost)


def _simple(node: Compare | Prefix, target: str) -> Query:
    if isinstance(node, Prefix):
        return _prefix(target, node.value)
    return _compare(target, node.op, node.value)


_PREFIX_BYTES = 512
"""The longest stem (UTF-8 bytes) sent as a ``prefix`` query alone: Lucene builds an
automaton of a state per byte and refuses one past 1,000 (``input automaton is too
large: 1001``), which a stem of 1,000 ASCII characters (or 250 emoji) reached."""
_STARTS_WITH = """\
for (def v : doc[params.f]) {
  if (v.startsWith(params.p)) {
    return true;
  }
}
return false;"""


def _prefix(target: str, stem: str) -> Query:
    """A keyword of ``target`` starting with ``stem``, for a stem of any length.

    A longer stem is a ``prefix`` query on its first 512 bytes (whole characters)
    and a script comparing the whole stem in the documents that query finds.
    Until 2026-12-07 OpenSearch answered INVALID_ARGUMENT (the automaton) where
    SQLite answered; ingest takes keywords of up to 4,096 characters.
    """
    if len(stem.encode()) <= _PREFIX_BYTES:
        return {"prefix": {target: stem}}
    head = stem.encode()[:_PREFIX_BYTES].decode(errors="ignore")
    script = {"source": _STARTS_WITH, "lang": "painless", "params": {"f": target, "p": stem}}
    return {"bool": {"filter": [{"prefix": {target: head}}, {"script": {"script": script}}]}}


def _compare(target: str, op: str, value: str | int | float) -> Query:
    if op == "=":
        return {"term": {target: value}}
    return {"range": {target: {_RANGE[op]: value}}}


TYPED_BOOLS = "typed_bools"
"""A document's flag: its booleans are in ``entries.bool`` (backends/opensearch.py)."""


def _boolean(names: list[str], value: bool, plan: Plan) -> _Q:
    """A boolean entry of one of the fields equal to ``value``; the text "true" is not ``true``.

    A document indexed before booleans had ``entries.bool`` holds them as the
    text "true"/"false" (indistinguishable from that text): it matches on the
    text, as it did, until indexed again. A tenant without such documents
    needs no branch for them (:attr:`Plan.legacy_bools`).
    """
    typed = _entry(names, {"term": {"entries.bool": value}})
    if not plan.legacy_bools:
        return typed
    text = _entry(names, {"term": {"entries.str": "true" if value else "false"}})
    legacy = {"bool": {"filter": [text.query], "must_not": [{"exists": {"field": TYPED_BOOLS}}]}}
    return _Q(
        {"bool": {"should": [typed.query, legacy], "minimum_should_match": 1}},
        typed.cost + text.cost + 1,
    )


_EXACT = 2**53
"""Below it in magnitude, comparing as doubles decides exactly for every entry."""
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_HAS_INT: Query = {"exists": {"field": "entries.int"}}
_SCRIPT = """\
def i = doc['entries.int'];
if (!i.isEmpty()) {
  long v = i.value;
  return v >= ((Number) params.il).longValue() && v <= ((Number) params.ih).longValue();
}
def n = doc['entries.num'];
if (n.isEmpty()) {
  return false;
}
double d = n.value;
return d >= ((Number) params.dl).doubleValue() && d <= ((Number) params.dh).doubleValue();"""
"""An entry's integer in [il, ih], or (no integer: a double, or an integer indexed
before ``entries.int``) its number in [dl, dh]; bounds inclusive."""


def _number(node: Compare, plan: Plan) -> _Q:
    """An entry's number compared exactly with the literal, integers as integers.

    Past 2**53 doubles skip integers: an integer entry is compared in
    ``entries.int``, a double one (or one indexed before ``int`` existed) in
    ``entries.num`` against the doubles around the literal.
    """
    value = node.value
    assert not isinstance(value, str)
    name = node.field.name
    if abs(value) < _EXACT:
        return _entry([name], _compare("entries.num", node.op, value), cost=2)
    whole = int(value)  # a double this large is an integer
    ints = _int_bounds(node.op, whole)
    doubles = _double_bounds(node.op, whole)
    if ints is None and doubles is None:
        return _Q({"match_none": {}}, 0)
    if plan.scripted_numbers:
        il, ih = ints if ints is not None else (1, 0)
        dl, dh = doubles if doubles is not None else (1.0, 0.0)
        dl, dh = max(dl, -sys.float_info.max), min(dh, sys.float_info.max)  # JSON has no inf
        params = {"il": il, "ih": ih, "dl": dl, "dh": dh}
        script = {"script": {"source": _SCRIPT, "lang": "painless", "params": params}}
        return _entry([name], {"script": script}, cost=1)
    branches: list[Query] = []
    cost = 0
    every_int = ints == (_INT_MIN, _INT_MAX)
    if every_int:
        branches.append(_HAS_INT)
        cost += 1
    elif ints is not None:
        branches.append(_between("entries.int", *ints, _INT_MIN, _INT_MAX))
        cost += 2
    if doubles is not None:
        lowest, highest = -math.inf, math.inf
        on_doubles = _between("entries.num", *doubles, lowest, highest)
        if every_int:  # an integer entry matches anyway
            branches.append(on_doubles)
            cost += 2
        else:
            branches.append({"bool": {"filter": [on_doubles], "must_not": [_HAS_INT]}})
            cost += 3
    inner = (
        branches[0]
        if len(branches) == 1
        else {"bool": {"should": branches, "minimum_should_match": 1}}
    )
    return _entry([name], inner, cost=cost)


def _between(target: str, low: Any, high: Any, lowest: Any, highest: Any) -> Query:
    """``target`` in [low, high] (a bound equal to the type's extreme is left out)."""
    if low == high:
        return {"term": {target: low}}
    bounds: dict[str, Any] = {}
    if low != lowest:
        bounds["gte"] = low
    if high != highest:
        bounds["lte"] = high
    return {"range": {target: bounds}}


def _int_bounds(op: str, whole: int) -> tuple[int, int] | None:
    """The 64-bit integers ``v`` with ``v op whole``, as [low, high]; None: none."""
    low, high = {
        "=": (whole, whole),
        "<": (_INT_MIN, whole - 1),
        "<=": (_INT_MIN, whole),
        ">": (whole + 1, _INT_MAX),
        ">=": (whole, _INT_MAX),
    }[op]
    low, high = max(low, _INT_MIN), min(high, _INT_MAX)
    return (low, high) if low <= high else None


def _double_bounds(op: str, whole: int) -> tuple[float, float] | None:
    """The finite doubles ``d`` with ``d op whole`` (compared exactly), as [low, high]."""
    nearest = float(whole)
    at_most = nearest if nearest <= whole else math.nextafter(nearest, -math.inf)
    at_least = nearest if nearest >= whole else math.nextafter(nearest, math.inf)
    below = at_most if at_most < whole else math.nextafter(at_most, -math.inf)
    above = at_least if at_least > whole else math.nextafter(at_least, math.inf)
    lowest, highest = -math.inf, math.inf
    low, high = {
        "=": (at_least, at_most),
        "<": (lowest, below),
        "<=": (lowest, at_most),
        ">": (above, highest),
        ">=": (at_least, highest),
    }[op]
    if low > high or low == math.inf or high == -math.inf:
        return None
    return low, high
