"""The filter language (an AIP-160 subset) and the full-text query language.

Both parse into one tree of :class:`Node` that the SQLite and OpenSearch
translators turn into their own queries; nothing a caller writes ever reaches
a backend as text. Errors carry the 0-based offset of the offending token.

Filter grammar (as in AIP-160, ``OR`` binds tighter than ``AND``)::

    filter     := conjunct { ["AND"] conjunct }        juxtaposition means AND
    conjunct   := unary { "OR" unary }
    unary      := ["NOT" | "-"] primary
    primary    := "(" filter ")" | field op value | field ":" value | field ":" "*"
    op         := "=" | "!=" | "<" | "<=" | ">" | ">="

Values: "quoted strings" (backslash escapes), numbers, ``true``/``false``
(unquoted: ``"true"`` is text), enum names (``EVENT_TYPE_INTERACTION`` or
``INTERACTION``), durations with a unit (``1.5s``, ``200ms``), RFC 3339
timestamps in quotes. ``field:*`` tests presence; a string ending in ``*`` is
a prefix match; ``!=`` is ``NOT =`` (events without the field match it). On
a text field (``output.text``) ``:`` is a full-text phrase match.

Query grammar: the same operators over terms and "phrases"; every term or
phrase is matched as a phrase over all text fields. ``-`` before a term is
``NOT`` whatever follows (``-404``; in a filter ``-5`` is a number), and an
apostrophe inside a term is part of it (``O'Brien's``); a quote opens a string
only where a token starts. Integer fields take only literals that write an
integer (``10.0`` and ``1e3`` do, ``10.0000000000000001`` does not).
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
import unicodedata
from dataclasses import dataclass

from aiaudit.common import rfc3339
from aiaudit.search import catalogue
from aiaudit.search.catalogue import Field, Kind

MAX_LENGTH = 8192
MAX_DEPTH = 16
MAX_TERMS = 256
MAX_LITERAL = 4096
MAX_PHRASE_WORDS = 32
"""Words of a query's phrases of two words or more, together (:func:`_phrase`)."""


class LanguageError(ValueError):
    """A filter, query or ordering that does not parse or type-check."""

    def __init__(self, field: str, position: int, message: str) -> None:
        """``field`` is the request field (``filter``), ``position`` a 0-based offset."""
        super().__init__(f"{message} (at column {position + 1})")
        self.field = field
        self.position = position
        self.detail = message


# ---- tree -----------------------------------------------------------------


@dataclass(frozen=True)
class And:
    """Every item holds."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    """Some item holds."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    """The item does not hold (missing fields count as not holding)."""

    item: Node


@dataclass(frozen=True)
class Compare:
    """``field op value``; ``value`` is in the indexed form (micros, seconds, enum name).

    ``op`` is one of ``= < <= > >=``. For DYNAMIC fields ``numeric`` says which
    side of the entry (number or text) is compared; a ``bool`` value (``= true``,
    op ``=``, not numeric) is compared with boolean entries only, so that the
    text ``"true"`` is not the boolean ``true``.
    """

    field: Field
    op: str
    value: str | float | int | bool
    numeric: bool

    @property
    def boolean(self) -> bool:
        """Whether boolean entries are compared (``bool`` is an ``int`` to Python: ask this)."""
        return isinstance(self.value, bool)


@dataclass(frozen=True)
class Prefix:
    """A keyword starting with ``value``."""

    field: Field
    value: str


@dataclass(frozen=True)
class Exists:
    """The field has a value."""

    field: Field


@dataclass(frozen=True)
class Text:
    """A phrase occurs in one of ``fields`` (text fields)."""

    fields: tuple[str, ...]
    phrase: str


Node = And | Or | Not | Compare | Prefix | Exists | Text

ALL_TEXT = tuple(f.name for f in catalogue.TEXTS)


def leaves(node: Node | None) -> list[Node]:
    """Every leaf of a tree, in order."""
    if node is None:
        return []
    if isinstance(node, And | Or):
        return [leaf for item in node.items for leaf in leaves(item)]
    if isinstance(node, Not):
        return leaves(node.item)
    return [node]


def holding_leaves(node: Node | None, negated: bool = False) -> list[Node]:
    """The leaves a match holds, not those it must not: under an even number of NOTs."""
    if node is None:
        return []
    if isinstance(node, And | Or):
        return [leaf for item in node.items for leaf in holding_leaves(item, negated)]
    if isinstance(node, Not):
        return holding_leaves(node.item, not negated)
    return [] if negated else [node]


def matched_texts(node: Node | None) -> list[Text]:
    """The phrases a match may contain (highlights).

    A phrase under NOT is what a match must not contain; ``refund OR NOT
    password`` used to mark up ``password`` in the events it found.
    """
    return [leaf for leaf in holding_leaves(node) if isinstance(leaf, Text)]


def combine(*nodes: Node | None) -> Node | None:
    """The conjunction of the given trees (None when all are empty)."""
    present = tuple(n for n in nodes if n is not None)
    if not present:
        return None
    return present[0] if len(present) == 1 else And(present)


# ---- lexer ----------------------------------------------------------------


@dataclass(frozen=True)
class _Tok:
    kind: str  # "(" ")" "op" "str" "word" "AND" "OR" "NOT" "end"
    text: str
    pos: int


_OPS = ("<=", ">=", "!=", "<", ">", "=", ":")
_WORD_STOP = set(" \t\r\n()\"'<>=!:")
# In a query an apostrophe inside a word is part of it (O'Brien's, don't): it
# opens a string only where a token starts, as a double quote does anywhere.
_TERM_STOP = set(' \t\r\n()"')


def _negates(text: str, i: int, operators: bool) -> bool:
    """Whether the ``-`` at ``i``, where a token starts, is ``NOT``.

    It is when something other than a space follows it; in a filter, not
    before a digit, so that ``-5`` is a value. In a query ``-404`` is ``NOT
    404``: until 2026-12-06 it was the phrase "404", the opposite.
    """
    if i + 1 >= len(text) or text[i + 1].isspace():
        return False
    return not (operators and text[i + 1].isdigit())


def _lex(text: str, field: str, operators: bool) -> list[_Tok]:
    if len(text) > MAX_LENGTH:
        raise LanguageError(field, MAX_LENGTH, f"longer than {MAX_LENGTH} characters")
    if "\x00" in text:  # no backend stores or matches it (SQLite FTS5 fails on it)
        raise LanguageError(field, text.index("\x00"), "contains U+0000 (NUL)")
    out: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c in "()":
            out.append(_Tok(c, c, i))
            i += 1
        elif c in "\"'":
            value, end = _string(text, i, field)
            out.append(_Tok("str", value, i))
            i = end
        elif operators and any(text.startswith(op, i) for op in _OPS):
            op = next(op for op in _OPS if text.startswith(op, i))
            out.append(_Tok("op", op, i))
            i += len(op)
        elif c == "-" and _negates(text, i, operators):
            out.append(_Tok("NOT", "-", i))
            i += 1
        else:
            start = i
            stop = _WORD_STOP if operators else _TERM_STOP
            # A word ends at any space the loop above skips, not only at ASCII ones: until
            # 2026-12-07 "refund\u3000-order" (an ideographic space) was the phrase
            # "refund order", and an unquoted value ran on over a no-break space.
            while i < n and text[i] not in stop and not text[i].isspace():
                i += 1
            if i == start:
                raise LanguageError(field, i, f"unexpected character {c!r}")
            word = text[start:i]
            kind = word if word in ("AND", "OR", "NOT") else "word"
            out.append(_Tok(kind, word, start))
    out.append(_Tok("end", "", n))
    return out


def _string(text: str, start: int, field: str) -> tuple[str, int]:
    quote, i, chars = text[start], start + 1, []
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            chars.append(text[i + 1])
            i += 2
            continue
        if c == quote:
            if len(chars) > MAX_LITERAL:
                raise LanguageError(field, start, f"string longer than {MAX_LITERAL} characters")
            return "".join(chars), i + 1
        chars.append(c)
        i += 1
    raise LanguageError(field, start, "unterminated string")


# ---- parser ---------------------------------------------------------------


class _Parser:
    def __init__(self, text: str, field: str, is_filter: bool) -> None:
        self.field = field
        self.is_filter = is_filter
        self.toks = _lex(text, field, operators=is_filter)
        self.i = 0
        self.terms = 0
        self.phrase_words = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def fail(self, tok: _Tok, message: str) -> LanguageError:
        return LanguageError(self.field, tok.pos, message)

    def parse(self) -> Node | None:
        if self.peek().kind == "end":
            return None
        node = self.conjunction(0)
        tok = self.peek()
        if tok.kind == ")":
            raise self.fail(tok, "unbalanced parenthesis: ')' without '('")
        if tok.kind != "end":
            raise self.fail(tok, f"unexpected {_describe(tok)}")
        return node

    def conjunction(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise self.fail(self.peek(), f"nested deeper than {MAX_DEPTH} levels")
        items = [self.disjunction(depth)]
        while True:
            tok = self.peek()
            if tok.kind == "AND":
                self.take()
            elif tok.kind in ("end", ")"):
                break
            items.append(self.disjunction(depth))
        return items[0] if len(items) == 1 else And(tuple(items))

    def disjunction(self, depth: int) -> Node:
        items = [self.unary(depth)]
        while self.peek().kind == "OR":
            self.take()
            items.append(self.unary(depth))
        return items[0] if len(items) == 1 else Or(tuple(items))

    def unary(self, depth: int) -> Node:
        if self.peek().kind == "NOT":
            tok = self.take()
            if depth >= MAX_DEPTH:  # NOT NOT ... nests as deep as parentheses do
                raise self.fail(tok, f"nested deeper than {MAX_DEPTH} levels")
            return Not(self.unary(depth + 1))
        return self.primary(depth)

    def primary(self, depth: int) -> Node:
        tok = self.take()
        if tok.kind == "(":
            if self.peek().kind == ")":
                raise self.fail(self.peek(), "empty parentheses")
            node = self.conjunction(depth + 1)
            close = self.take()
            if close.kind != ")":
                raise self.fail(tok, "unbalanced parenthesis: '(' is never closed")
            return node
        if tok.kind in ("word", "str"):
            self.terms += 1
            if self.terms > MAX_TERMS:
                raise self.fail(tok, f"more than {MAX_TERMS} comparisons or terms")
            if self.is_filter:
                return self.comparison(tok)
            return _phrase(self, tok, ALL_TEXT)
        if tok.kind == ")":
            raise self.fail(tok, "unbalanced parenthesis: ')' without '('")
        if tok.kind == "end":
            raise self.fail(tok, "expression ends too early")
        raise self.fail(tok, f"unexpected {_describe(tok)}")

    def comparison(self, name: _Tok) -> Node:
        if name.kind != "word":
            raise self.fail(name, 'expected a field name, e.g. model.name = "gpt-4o"')
        field = catalogue.lookup(name.text)
        if field is None:
            raise self.fail(name, f"unknown field {name.text!r}")
        op = self.take()
        if op.kind != "op":
            raise self.fail(op, f"expected an operator (= != < <= > >= :) after {name.text!r}")
        value = self.take()
        if value.kind not in ("word", "str"):
            raise self.fail(value, f"expected a value after {op.text!r}")
        return _typed(self, field, op, value)


def _describe(tok: _Tok) -> str:
    if tok.kind == "end":
        return "end of input"
    return f"{tok.text!r}"


def _phrase(p: _Parser, tok: _Tok, fields: tuple[str, ...]) -> Text:
    """A phrase, its words counted against :data:`MAX_PHRASE_WORDS`.

    A phrase match reads the positions of each of its words in every event
    holding them all, and OpenSearch's highlighter walks them again per word:
    the work grows as the words times their occurrences. One word is read
    without its positions, so only phrases of two words or more count. Until
    2026-12-07 "a a ... a" (64 words) against events of 400,000 "a" kept the
    OpenSearch node's search threads busy for over 25 minutes, past any
    cancel, and 2,048 words took 159 s on SQLite (review).
    """
    if not any(c.isalnum() for c in tok.text):
        raise p.fail(tok, f"{tok.text!r} has nothing searchable")
    if len(tok.text) > MAX_LITERAL:
        raise p.fail(tok, f"term longer than {MAX_LITERAL} characters")
    words = phrase_words(tok.text)
    if words > 1:
        p.phrase_words += words
        if p.phrase_words > MAX_PHRASE_WORDS:
            raise p.fail(tok, f"phrases of more than {MAX_PHRASE_WORDS} words in all")
    return Text(fields, tok.text)


_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")
_KEPT_MARKS = frozenset(
    chr(c)
    for a, b in (
        *((0x300, 0x304), (0x306, 0x30C), (0x30F, 0x30F), (0x311, 0x311), (0x31B, 0x31B)),
        *((0x323, 0x328), (0x32D, 0x32E), (0x330, 0x331)),
    )
    for c in range(a, b + 1)
)
"""Combining marks FTS5's ``unicode61`` keeps inside a token (those of Latin letters
written decomposed, NFD); at any other mark it ends the token."""
_RUNS = ("KATAKANA", "THAI", "LAO", "KHMER", "MYANMAR", "TAI", "NEW")
"""Scripts (first word of a character's name: TAI LE/THAM/VIET, NEW TAI LUE) the
standard analyzer keeps as one token however long the run, but apart from the
letters of another script next to them: ``aภaภ`` is four tokens."""
_COMMON = re.compile("[\x00-\xff\u2000-\u206f\u3000-\u303f\uff00-\uffef]")
"""Where the punctuation and symbols of ordinary text are (Latin-1, general and CJK
punctuation, full-width forms): no token of either backend. Past them a symbol may
be one (an emoji of the standard analyzer, a character newer than FTS5's Unicode 6.1
tables, which it keeps as a token)."""
_SPLITTING = frozenset(map(chr, (*range(0x19B0, 0x19C1), 0x19C8, 0x19C9, 0x1CF2, 0x1CF3)))
"""Letters now, marks to FTS5's Unicode 6.1 tables: it ends a token at each."""
_PICTOGRAPHS = frozenset("\u203c\u2049\u3030\u303d")
"""Emoji among the common punctuation: a token each of the standard analyzer."""


def _kind(c: str) -> str | None:
    """What a character is to the tokenizers.

    None between tokens, ``"own"`` a token of its own (a Han ideograph, a
    hiragana, an emoji or other symbol), ``"mark"`` the continuation of a
    token, ``"lone"`` the end of one or, after none, a token (a combining mark
    or format character: the standard analyzer makes a Thai vowel sign after a
    space a token, FTS5 any one newer than its tables), else the script of its
    run.
    """
    if c in _KEPT_MARKS:
        return "mark"
    category = unicodedata.category(c)
    if category[0] in "SP" and (
        category == "So" or c in _PICTOGRAPHS or _COMMON.match(c) is None
    ):  # emoji and their skin tones (Sk), arrows (Sm), symbols newer than FTS5's tables
        return "own"
    if category[0] == "M" or category == "Cf" or c in _SPLITTING or c in "\ufffe\uffff":
        return "lone"
    if category[0] not in "LN" and category not in ("Co", "Cn"):  # tokens to FTS5
        return None
    script = unicodedata.name(c, "").removeprefix("HALFWIDTH ").split(" ")[0].split("-")[0]
    if script in ("CJK", "HIRAGANA", "IDEOGRAPHIC"):
        return "own"
    return script if script in _RUNS else "letters"


def phrase_words(text: str) -> int:
    """The words of a phrase: at least as many as either backend's tokenizer makes.

    A token of FTS5 ``unicode61`` is a run of letters, digits, private-use and
    unassigned characters (a combining mark other than a Latin letter's ends
    it). The standard analyzer keeps a run of katakana or Thai one token but
    apart from the letters of another script (hangul it joins to Latin), and
    makes each Han ideograph, hiragana and emoji a token of its own (FTS5 drops
    emoji). A symbol past ordinary punctuation (:data:`_COMMON`) counts one, as
    does a combining mark after no letter. Until 2026-12-07 every wide character counted one, so
    ``데이터베이스 접근 기록`` (three tokens on both) was ten words and
    ``REFUND`` in full-width letters six, while ``a`` and 4,000 emoji, or
    ``aภaภ...``, counted one word, not bounded at all, and were 4,000 tokens
    of the standard analyzer (review). A word with an apostrophe (``O'Brien``)
    counts one word less than its parts: one token of the standard analyzer,
    two of FTS5, and 256 of them were answered before the bound
    (test_apostrophe_words.py).
    """
    # One match per word: a pattern requiring the apostrophe tried again from every
    # letter (0.2 s for a literal of 4,096).
    count = -sum("'" in word or "\u2019" in word for word in _WORD.findall(text))
    run: str | None = None
    for c in text:
        kind = _kind(c)
        if kind == "mark":
            count += run is None
            run = run or "letters"
        elif kind == "own" or (kind == "lone" and run is None):
            count += 1
            run = None
        elif kind == "lone":
            run = None
        else:
            count += kind is not None and kind != run
            run = kind
    return count


_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)")
_NANOS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _typed(p: _Parser, f: Field, op_tok: _Tok, v: _Tok) -> Node:
    """Type-checks ``f op v`` and returns the node in the indexed representation."""
    op = "=" if op_tok.text == ":" else op_tok.text
    text = v.text
    if op_tok.text == ":" and v.kind == "word" and text == "*":
        return Exists(f)
    if f.kind is Kind.TEXT:
        if op_tok.text != ":":
            raise p.fail(op_tok, f"text field {f.name!r} takes only ':' (contains)")
        return _phrase(p, v, (f.name,))
    ordered = op in ("<", "<=", ">", ">=")
    negate = op == "!="
    eq = "=" if negate else op

    def done(node: Node) -> Node:
        return Not(node) if negate else node

    if f.kind is Kind.DYNAMIC and v.kind == "word" and text.lower() in ("true", "false"):
        if ordered:  # unquoted: the boolean; "true" quoted is the text
            raise p.fail(op_tok, f"{text!r} is a boolean: use =, != or :")
        return done(Compare(f, eq, text.lower() == "true", numeric=False))
    if f.kind in (Kind.KEYWORD, Kind.DYNAMIC) and not (f.kind is Kind.DYNAMIC and _is_num(v)):
        if ordered:
            raise p.fail(op_tok, f"{f.name!r} compares text: use =, != or :")
        if text.endswith("*"):
            stem = text[:-1]
            if "*" in stem:
                raise p.fail(v, "only a trailing '*' (prefix match) is supported")
            return done(Prefix(f, stem) if stem else Exists(f))
        return done(Compare(f, eq, text, numeric=False))
    if f.kind is Kind.DYNAMIC or f.kind in (Kind.INT, Kind.FLOAT):
        if not _is_num(v):
            raise p.fail(v, f"{f.name!r} is a number; {text!r} is not")
        number = float(text) + 0.0  # -0 is 0 (OpenSearch tells the two doubles apart)
        if not math.isfinite(number):
            raise p.fail(v, f"{text!r} is not a finite number")
        if f.kind is Kind.INT:
            # Decided on the decimal written, not on the double nearest it: until
            # 2026-12-06 = 10.0000000000000001 found 10 and = 1e-999 found 0.
            written = decimal.Decimal(text)
            if written != written.to_integral_value():
                raise p.fail(v, f"{f.name!r} is an integer; {text!r} is not")
            if not -(2**63) <= written < 2**63:
                raise p.fail(v, f"{text!r} is outside the 64-bit integer range")
            return done(Compare(f, eq, int(written), numeric=True))
        if f.kind is Kind.DYNAMIC:
            return done(Compare(f, eq, _exact(text, number), numeric=True))
        return done(Compare(f, eq, number, numeric=True))
    if f.kind is Kind.ENUM:
        if ordered:
            raise p.fail(op_tok, f"{f.name!r} is an enum: use =, != or :")
        name = text.upper()
        if name not in f.enum_values:
            name = f.enum_prefix + name
        if name not in f.enum_values:
            shown = ", ".join(x.removeprefix(f.enum_prefix) for x in f.enum_values[1:8])
            raise p.fail(v, f"{text!r} is not a value of {f.name!r} (e.g. {shown}, ...)")
        return done(Compare(f, eq, name, numeric=False))
    if f.kind is Kind.BOOL:
        if ordered or text.lower() not in ("true", "false"):
            raise p.fail(v, f"{f.name!r} is a boolean: use = true or = false")
        return done(Compare(f, eq, text.lower() == "true", numeric=False))
    if f.kind is Kind.DURATION:
        m = _DURATION.fullmatch(text)
        if m is None:
            raise p.fail(v, f"{f.name!r} is a duration: write it with a unit (1.5s, 200ms)")
        if len(m.group(1)) > 24:  # far past any duration an event can hold (10,000 years)
            raise p.fail(v, f"{text!r} is out of range")
        nanos = decimal.Decimal(m.group(1)) * _NANOS[m.group(2)]
        if nanos != nanos.to_integral_value():
            raise p.fail(v, f"{text!r} is finer than a nanosecond")
        # Seconds as the index computes them (seconds + nanos / 1e9): 700ms was 0.7000000000000001.
        whole, part = divmod(int(nanos), 10**9)
        return done(Compare(f, eq, whole + part / 1e9, numeric=True))
    assert f.kind is Kind.TIMESTAMP
    return done(Compare(f, eq, _micros(p, v), numeric=True))


def _exact(text: str, number: float) -> int | float:
    """The integer ``text`` writes when it writes one within 64 bits, else the nearest double.

    Entries hold 64-bit integers and doubles; past 2**53 a double skips
    integers, and ``= 1234567890123456789`` must not find ...790.
    """
    written = decimal.Decimal(text)
    if written == written.to_integral_value() and -(2**63) <= written < 2**63:
        return int(written)
    return number


def _is_num(v: _Tok) -> bool:
    return v.kind == "word" and _NUMBER.fullmatch(v.text) is not None


def _micros(p: _Parser, v: _Tok) -> int:
    try:
        when = rfc3339.parse(v.text)
    except ValueError as exc:
        raise p.fail(v, str(exc)) from None
    delta = when - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_filter(text: str) -> Node | None:
    """The filter's tree, or None for an empty filter; raises LanguageError."""
    return _Parser(text, "filter", is_filter=True).parse()


def parse_query(text: str) -> Node | None:
    """The full-text query's tree, or None for an empty query; raises LanguageError."""
    return _Parser(text, "query", is_filter=False).parse()


# ---- ordering -------------------------------------------------------------


@dataclass(frozen=True)
class SortKey:
    """One ordering key."""

    field: Field
    descending: bool


def parse_order_by(text: str) -> tuple[SortKey, ...]:
    """AIP-132 ``order_by`` (``occurred_time desc, sequence``); ``sequence`` ends every order.

    The default is newest first. Only fields every event has may order results,
    so keyset pagination needs no rules for missing values.
    """
    if not text.strip():
        return (
            SortKey(catalogue.scalar("occurred_time"), True),
            SortKey(catalogue.scalar("sequence"), True),
        )
    keys: list[SortKey] = []
    offset = 0
    for part in text.split(","):
        words = part.split()
        position = offset + (len(part) - len(part.lstrip()))
        offset += len(part) + 1
        if not words or len(words) > 2 or (len(words) == 2 and words[1] not in ("asc", "desc")):
            raise LanguageError("order_by", position, "expected 'field' or 'field asc|desc'")
        field = catalogue.lookup(words[0])
        if field is None or not field.sortable:
            sortable = ", ".join(f.name for f in catalogue.SCALARS if f.sortable)
            raise LanguageError(
                "order_by", position, f"cannot order by {words[0]!r}; use one of {sortable}"
            )
        if any(k.field == field for k in keys):
            raise LanguageError("order_by", position, f"{words[0]!r} appears twice")
        if keys and keys[-1].field.name == "sequence":  # at the key after it (was column 1)
            raise LanguageError("order_by", position, "'sequence' must be the last key")
        keys.append(SortKey(field, len(words) == 2 and words[1] == "desc"))
    if keys[-1].field.name != "sequence":
        keys.append(SortKey(catalogue.scalar("sequence"), keys[0].descending))
    return tuple(keys)
