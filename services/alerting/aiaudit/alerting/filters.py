"""The small AIP-160 subset accepted by ListAlerts and TestRule.

``term AND term ...`` where a term is ``name OP value`` with OP in ``= != < <=
> >=``; values are bare words or double-quoted strings. ListAlerts knows
``state``, ``severity``, ``rule``, ``create_time`` (RFC 3339); TestRule knows
the stored event columns (``event_type``, ``user_id``, ``model_name``,
``application``, ``session_id``, ``occurred_time``...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME_OP = re.compile(r"([A-Za-z_][\w.]*)\s*(!=|<=|>=|=|<|>)\s*")
_OPS = "OP: = != < <= > >="


MAX_LENGTH = 8192
"""Characters of a filter, as a search's."""


class FilterError(ValueError):
    """A filter that cannot be parsed or names an unknown field; ``position`` is 0-based."""

    def __init__(self, message: str, position: int | None = None) -> None:
        """The message names the column (and offset) when there is a position."""
        where = "" if position is None else f" (at column {position + 1}, offset {position})"
        super().__init__(message + where)
        self.position = position


@dataclass(frozen=True)
class Term:
    """``name op value``."""

    name: str
    op: str
    value: str


def parse(text: str, known: frozenset[str]) -> list[Term]:
    """Terms of a conjunctive filter; FilterError says what is wrong and where.

    Read left to right, so ``AND`` inside a quoted value is part of it: the filter was
    split on every `` AND `` first, and ``rule = "a AND b"`` was refused as two terms
    that are not ``name OP value`` (until 2026-12-06).
    """
    if len(text) > MAX_LENGTH:  # its access record quotes it whole
        raise FilterError(f"is {len(text)} characters; at most {MAX_LENGTH}")
    if "\x00" in text:  # no value holds it, and PostgreSQL refused the statement: UNAVAILABLE
        raise FilterError("must not contain U+0000 (NUL)", text.index("\x00"))
    terms: list[Term] = []
    i = _blank(text, 0)
    while i < len(text):
        m = _NAME_OP.match(text, i)
        if m is None:
            raise FilterError(f"term {len(terms) + 1} is not `name OP value` ({_OPS})", i)
        name, op = m.group(1), m.group(2)
        if name not in known:
            raise FilterError(f"unknown field {name!r} (known: {', '.join(sorted(known))})", i)
        value, i = _value(text, m.end())
        terms.append(Term(name, op, value))
        after = _blank(text, i)
        if after == len(text):
            break
        and_ = text.startswith("AND", after) and (
            after + 3 == len(text) or text[after + 3].isspace()
        )
        if text[after] == '"' and after == i:
            raise FilterError("a quote inside a value: quote the whole value", after)
        if after == i or not and_:
            raise FilterError("expected AND or the end of the filter", after)
        i = _blank(text, after + 3)
        if i == len(text):
            raise FilterError("expected a term after AND", after)
    return terms


def _blank(text: str, i: int) -> int:
    """The offset of the first character at or after ``i`` that is not white space."""
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _value(text: str, i: int) -> tuple[str, int]:
    r"""The value at ``i`` and the offset after it: a bare word, or a quoted string.

    A string's backslash takes the next character as it is (``\"``, ``\\``), as in
    search's filters.
    """
    if i < len(text) and text[i] == '"':
        chars, j = [], i + 1
        while j < len(text):
            c = text[j]
            if c == "\\" and j + 1 < len(text):
                chars.append(text[j + 1])
                j += 2
            elif c == '"':
                return "".join(chars), j + 1
            else:
                chars.append(c)
                j += 1
        raise FilterError("unterminated string", i)
    j = i
    while j < len(text) and not text[j].isspace() and text[j] != '"':
        j += 1
    if j == i:
        raise FilterError("expected a value after the operator", i)
    return text[i:j], j
