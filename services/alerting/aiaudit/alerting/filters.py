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

_TERM = re.compile(r'\s*([A-Za-z_][\w.]*)\s*(!=|<=|>=|=|<|>)\s*("(?:[^"\\]|\\.)*"|[^\s"]+)\s*')


MAX_LENGTH = 8192
"""Characters of a filter, as a search's."""


class FilterError(ValueError):
    """A filter that cannot be parsed or names an unknown field."""


@dataclass(frozen=True)
class Term:
    """``name op value``."""

    name: str
    op: str
    value: str


def parse(text: str, known: frozenset[str]) -> list[Term]:
    """Terms of a conjunctive filter; FilterError says what is wrong."""
    if len(text) > MAX_LENGTH:  # its access record quotes it whole
        raise FilterError(f"is {len(text)} characters; at most {MAX_LENGTH}")
    if "\x00" in text:  # no value holds it, and PostgreSQL refused the statement: UNAVAILABLE
        raise FilterError("must not contain U+0000 (NUL)")
    if not text.strip():
        return []
    terms = []
    for i, part in enumerate(re.split(r"\s+AND\s+", text.strip())):
        m = _TERM.fullmatch(part)
        if m is None:
            raise FilterError(f"term {i + 1} {part!r} is not `name OP value` (OP: = != < <= > >=)")
        name, op, value = m.group(1), m.group(2), m.group(3)
        if name not in known:
            raise FilterError(f"unknown field {name!r} (known: {', '.join(sorted(known))})")
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        terms.append(Term(name, op, value))
    return terms
