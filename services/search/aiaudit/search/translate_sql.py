"""Filter/query trees to SQLite (the embedded backend's tables).

Tables (see backends/sqlite_fts.py): ``docs d`` (one row per event, a column
per scalar field, named by :attr:`Field.column`), ``entries`` (multi-valued
fields: doc, field, str, num, bool) and the FTS5 table ``texts`` (rowid = doc).
Every value is a bound parameter; column names come only from the catalogue.

A comparison on a missing scalar is SQL NULL; under ``NOT`` it is folded to
false first so that ``NOT x = 1`` matches events without ``x``, as
OpenSearch's ``must_not`` does.
"""

from __future__ import annotations

from aiaudit.search.language import And, Compare, Exists, Node, Not, Or, Prefix, Text, matched_texts


def fts_string(text: str) -> str:
    """An FTS5 string literal: a phrase of the tokens in ``text``, operators inert."""
    return '"' + text.replace('"', '""') + '"'


def fts_phrase(node: Text) -> str:
    """An FTS5 expression matching the phrase in the node's columns."""
    columns = " ".join(name.replace(".", "__") for name in node.fields)
    return "{" + columns + "} : " + fts_string(node.phrase)


def highlight_expression(node: Node | None) -> str | None:
    """An FTS5 expression matching any phrase of the tree (for snippets), or None."""
    phrases = [fts_phrase(leaf) for leaf in matched_texts(node)]
    return " OR ".join(f"({p})" for p in phrases) if phrases else None


def where(node: Node, params: list[object], negated: bool = False) -> str:
    """The SQL condition of a tree; appends its parameters to ``params`` in order."""
    if isinstance(node, And | Or):
        joiner = " AND " if isinstance(node, And) else " OR "
        return "(" + joiner.join(where(item, params, negated) for item in node.items) + ")"
    if isinstance(node, Not):
        return f"NOT {where(node.item, params, not negated)}"
    if isinstance(node, Text):
        params.append(fts_phrase(node))
        return "d.rowid IN (SELECT rowid FROM texts WHERE texts MATCH ?)"
    field = node.field
    if field.multi:
        params.append(field.name)
        return f"d.rowid IN (SELECT doc FROM entries WHERE field = ?{_entry(node, params)})"
    if isinstance(node, Exists):
        if field.name in ("input.text", "output.text", "tool_call.text"):
            return f"d.rowid IN (SELECT rowid FROM texts WHERE {field.column} != '')"
        return f"d.{field.column} IS NOT NULL"
    if isinstance(node, Prefix):
        params += [len(node.value), node.value]
        condition = f"substr(d.{field.column}, 1, ?) = ?"
    else:
        params.append(node.value)
        condition = f"d.{field.column} {node.op} ?"
    return f"COALESCE({condition}, 0)" if negated else condition


def _entry(node: Compare | Prefix | Exists, params: list[object]) -> str:
    if isinstance(node, Exists):
        return ""
    if isinstance(node, Prefix):
        params += [len(node.value), node.value]
        return " AND substr(str, 1, ?) = ?"
    params.append(node.value)
    column = "bool" if node.boolean else "num" if node.numeric else "str"
    return f" AND {column} {node.op} ?"
