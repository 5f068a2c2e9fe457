"""Filter/query trees to OpenSearch query DSL (the mappings of backends/opensearch.py).

Scalars are top-level fields named by :attr:`Field.column`; multi-valued
fields are entries of the nested field ``entries`` (``field``, ``str``,
``num``); text fields are analysed ``text`` fields. Everything runs in filter
context (no scoring): results are ordered by ``order_by`` only.
"""

from __future__ import annotations

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
        inner: list[Query] = [{"term": {"entries.field": field.name}}]
        if not isinstance(node, Exists):
            target = "entries.num" if isinstance(node, Compare) and node.numeric else "entries.str"
            inner.append(_leaf(node, target))
        return {
            "nested": {"path": "entries", "query": {"bool": {"filter": inner}}},
        }
    if isinstance(node, Exists):
        return {"exists": {"field": field.column}}
    return _leaf(node, field.column)


def _leaf(node: Compare | Prefix, target: str) -> Query:
    if isinstance(node, Prefix):
        return {"prefix": {target: node.value}}
    if node.op == "=":
        return {"term": {target: node.value}}
    return {"range": {target: {_RANGE[node.op]: node.value}}}
