"""Filter/query trees to OpenSearch query DSL (the mappings of backends/opensearch.py).

Scalars are top-level fields named by :attr:`Field.column`; multi-valued
fields are entries of the nested field ``entries`` (``field``, ``str``,
``num``, ``int`` beside ``num`` for an integer, ``bool``); text fields are
analysed ``text`` fields. Everything runs in filter context (no scoring):
results are ordered by ``order_by`` only.
"""

from __future__ import annotations

import math
from typing import Any

from aiaudit.search.language import And, Compare, Exists, Node, Not, Or, Prefix, Text, matched_texts

Query = dict[str, Any]

_RANGE = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}


def text_query(node: Text) -> Query:
    """A phrase match over the node's text fields."""
    return {
        "multi_match": {
            "query": node.phrase,
            "type": "phrase",
            "fields": [name.replace(".", "__") for name in node.fields],
        }
    }


def highlight_query(node: Node | None) -> Query | None:
    """A query matching any phrase of the tree (what highlighting marks), or None."""
    phrases = [text_query(leaf) for leaf in matched_texts(node)]
    if not phrases:
        return None
    return {"bool": {"should": phrases, "minimum_should_match": 1}}


def query(node: Node) -> Query:
    """The DSL of a tree."""
    if isinstance(node, And):
        return {"bool": {"filter": [query(item) for item in node.items]}}
    if isinstance(node, Or):
        return {"bool": {"should": [query(item) for item in node.items], "minimum_should_match": 1}}
    if isinstance(node, Not):
        return {"bool": {"must_not": [query(node.item)]}}
    if isinstance(node, Text):
        return text_query(node)
    field = node.field
    if field.multi:
        if isinstance(node, Compare) and node.boolean:
            return _boolean(node)
        if isinstance(node, Compare) and node.numeric:
            return _entry(field.name, _number(node))
        if isinstance(node, Exists):
            return _entry(field.name)
        return _entry(field.name, _leaf(node, "entries.str"))
    if isinstance(node, Exists):
        return {"exists": {"field": field.column}}
    return _leaf(node, field.column)


def _entry(name: str, *conditions: Query) -> Query:
    """Some entry of the field ``name`` meets every condition."""
    inner: list[Query] = [{"term": {"entries.field": name}}, *conditions]
    return {"nested": {"path": "entries", "query": {"bool": {"filter": inner}}}}


TYPED_BOOLS = "typed_bools"
"""A document's flag: its booleans are in ``entries.bool`` (backends/opensearch.py)."""
_UNTYPED: Query = {"bool": {"must_not": [{"exists": {"field": TYPED_BOOLS}}]}}


def _boolean(node: Compare) -> Query:
    """A boolean entry equal to the literal; the text ``"true"`` is not ``true``.

    A document indexed before booleans had ``entries.bool`` holds them as the
    text "true"/"false" (indistinguishable from that text): it matches on the
    text, as it did, until indexed again.
    """
    value = node.value
    return {
        "bool": {
            "should": [
                _entry(node.field.name, {"term": {"entries.bool": value}}),
                {
                    "bool": {
                        "filter": [
                            _UNTYPED,
                            _entry(
                                node.field.name,
                                {"term": {"entries.str": "true" if value else "false"}},
                            ),
                        ]
                    }
                },
            ],
            "minimum_should_match": 1,
        }
    }


def _leaf(node: Compare | Prefix, target: str) -> Query:
    if isinstance(node, Prefix):
        return {"prefix": {target: node.value}}
    return _compare(target, node.op, node.value)


def _compare(target: str, op: str, value: str | int | float) -> Query:
    if op == "=":
        return {"term": {target: value}}
    return {"range": {target: {_RANGE[op]: value}}}


_EXACT = 2**53
"""Below it in magnitude, comparing as doubles decides exactly for every entry."""
_ALL: Query = {"match_all": {}}
_NONE: Query = {"match_none": {}}
_HAS_INT: Query = {"exists": {"field": "entries.int"}}


def _number(node: Compare) -> Query:
    """An entry's number compared exactly with the literal, integers as integers.

    Past 2**53 doubles skip integers: an integer entry is compared in
    ``entries.int``, a double one (or one indexed before ``int`` existed) in
    ``entries.num`` against the doubles around the literal.
    """
    value = node.value
    assert not isinstance(value, str)
    if abs(value) < _EXACT:
        return _leaf(node, "entries.num")
    whole = int(value)  # a double this large is an integer
    return {
        "bool": {
            "should": [
                {"bool": {"filter": [_HAS_INT, _on_ints(node.op, whole)]}},
                {"bool": {"filter": [_on_doubles(node.op, whole)], "must_not": [_HAS_INT]}},
            ],
            "minimum_should_match": 1,
        }
    }


def _on_ints(op: str, whole: int) -> Query:
    if -(2**63) <= whole < 2**63:
        return _compare("entries.int", op, whole)
    if op == "=":
        return _NONE
    above_all = whole > 0  # outside 64 bits: every entry is on one side of it
    return _ALL if (op in ("<", "<=")) == above_all else _NONE


def _on_doubles(op: str, whole: int) -> Query:
    nearest = float(whole)
    if int(nearest) == whole:
        return _compare("entries.num", op, nearest)
    if op == "=":
        return _NONE
    if int(nearest) < whole:
        below, above = nearest, math.nextafter(nearest, math.inf)
    else:
        below, above = math.nextafter(nearest, -math.inf), nearest
    if op in ("<", "<="):
        return _compare("entries.num", "<=", below)
    return _compare("entries.num", ">=", above)
