"""Highlight fragments cut to a bounded length around their first matches.

Neither backend bounds a fragment by itself: OpenSearch's unified
highlighter cuts at sentence, then word, boundaries (the JDK's word breaks
take a run of CJK ideographs or a long token for one word), and FTS5's
snippet() counts tokens, not the text between them (a CJK run is one token
of unicode61, a run of emoji, dashes or ". " one separator). A fragment of
100,000 characters made a one-event page larger than gRPC's default 4 MiB
(probe, 2026-12-07).

A fragment here is HTML-escaped text whose only markup is ``<em>``/``</em>``
around the matches (both backends), so ``<`` always starts a tag and ``&``
an escape: the cut never splits either, nor a letter from the marks that
follow it (accents, vowel signs, variation selectors, skin tones), an emoji
joined by U+200D from the one before it, nor a flag's two regional indicators.
OpenSearch's own fragment edges may part a flag: :func:`whole_flags` mends them
from the text the fragments were cut from, before the cut here.
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass

FRAGMENT_CHARS = 300
"""Characters of text a fragment shows at most, ``...`` included (an escape is the one
character it stands for, the tags none): about three of OpenSearch's 100-character
fragments, twice FTS5's 24-token snippets of English."""

ELLIPSIS = "..."
"""What marks a cut side: FTS5's snippet() marks its own cuts so (the ellipsis asked for)."""

_OPEN, _CLOSE = "<em>", "</em>"
_ESCAPE_CHARS = len("&#x2F;")
"""The longest escape either backend writes (``/``; ``&amp;``, ``&quot;``, ``&#x27;``...)."""
_JOINER = "\u200d"
_MARKS = frozenset(("Mn", "Mc", "Me"))
_VIRAMA = 9
"""The canonical combining class of a virama (halant), which joins two consonants."""
_LETTER_CODE_POINTS = 32
"""A letter is taken whole up to this many code points: one of a million stacked marks
(Zalgo text) is cut among them, so finding a unit's end stays cheap."""
_FLAG_RUN = 32
"""Regional indicators counted back at most, to pair them from their run's start (even:
a longer run is taken to end in a whole flag, see :func:`_ends_flag`)."""
_INDICATORS = "".join(map(chr, range(0x1F1E6, 0x1F200)))


def shown(
    marks: Mapping[str, list[str]], texts: Callable[[], Mapping[str, str]]
) -> dict[str, list[str]]:
    """Each field's fragments as shown: a flag cut at an edge made whole, then clipped.

    ``texts``: the fields' texts as indexed, made only for a field with a fragment
    that has a regional indicator at an edge (:func:`whole_flags`).
    """
    made: Mapping[str, str] | None = None
    out: dict[str, list[str]] = {}
    for name, fragments in marks.items():
        if any(_regional(f[0]) or _regional(f[-1]) for f in fragments if f):
            made = texts() if made is None else made
            fragments = whole_flags(fragments, made.get(name, ""))
        out[name] = [clip(f) for f in fragments]
    return out


def whole_flags(fragments: list[str], text: str) -> list[str]:
    """A field's ``fragments`` of ``text``, each with a flag cut at either edge made whole.

    OpenSearch's highlighter ends a fragment about 100 UTF-16 units from a match,
    wherever a code point ends (its word breaks part regional indicators): 61 of them
    before a match came back as a fragment of the last 50, the first of which was a
    flag's second half, and 40 after one as a fragment ending 47 into them (probe,
    2026-12-07). Where a fragment falls in ``text`` says which, and an edge inside a
    flag takes the other half. Each is looked for after the one before it: OpenSearch
    sends a field's fragments in the text's order, and of equal ones the first (the
    earlier passage scores higher). Until 2026-12-07 each was looked for from the
    text's start: a sentence written twice, its flags at another parity the second
    time, gave both fragments the first one's mending, one of them parted by it
    (review). A fragment not found there (FTS5's, which begins with its own ``...``
    where it cut, and never inside a run of indicators: separators are kept whole) is
    left as is.
    """
    out: list[str] = []
    after = 0
    for fragment in fragments:
        bare = html.unescape(fragment.replace(_OPEN, "").replace(_CLOSE, ""))
        start = text.find(bare, after) if bare else -1  # "" is found anywhere
        if start < 0:
            out.append(fragment)
            continue
        after = end = start + len(bare)
        if _inside_flag(text, start):
            fragment = text[start - 1] + fragment
        if _inside_flag(text, end):
            fragment += text[end]
        out.append(fragment)
    return out


def _inside_flag(text: str, at: int) -> bool:
    """Whether ``at`` falls between a flag's two regional indicators (its run counted whole).

    The run is read back in windows, each twice the last: the text up to ``at`` was
    copied to count it, 9 ms for an edge a million characters in (review, 2026-12-07).
    """
    if not 0 < at < len(text) or not _regional(text[at]):
        return False
    run, size = 0, _FLAG_RUN
    while at > 0:
        window = text[max(0, at - size) : at]
        kept = len(window.rstrip(_INDICATORS))
        run += len(window) - kept
        if kept:
            break
        at, size = at - len(window), size * 2
    return run % 2 == 1


def clip(fragment: str, limit: int = FRAGMENT_CHARS) -> str:
    """``fragment``, or its first matches and the nearest text within ``limit`` characters.

    The first match is kept, and each match after it while the piece up to its end
    fits whole (until 2026-12-07 the piece was centred on the first match alone, and
    a second one 200 characters after it was cut off, or shown in part). The piece
    then grows one unit (tag, escape, a letter with its marks, an end's ``...``) a side
    in turn; a side cut ends in :data:`ELLIPSIS`. A match longer than ``limit`` keeps
    its start, a mark cut on either side is closed or opened again, so the tags stay
    paired, and a tag taken at a cut without its text is left out.
    """
    if len(fragment) <= limit:  # every character shown is at least one of the string
        return fragment
    first = max(fragment.find(_OPEN), 0)
    close = fragment.find(_CLOSE, first)
    match_end = close + len(_CLOSE) if close >= 0 else first
    piece = _Piece(fragment, first, first, limit)
    while piece.end < match_end and piece.grow(_right(fragment, piece.end)):
        pass
    while piece.end >= match_end and piece.grow(_match_end(fragment, piece.end, limit)):
        match_end = piece.end
    grow_left = grow_right = True
    while grow_left or grow_right:
        if grow_right:
            grow_right = piece.grow(_right(fragment, piece.end))
        if grow_left:
            grow_left = piece.grow(_left(fragment, piece.start))
    return _marked(fragment, piece.start, piece.end)


@dataclass
class _Piece:
    """``fragment[start:end]``, kept so far, and the characters of text it shows.

    The count grows by the unit taken, not the piece counted again at each step:
    a fragment whose every character is a match and an escape (``<em>&lt;</em>``)
    took 52 ms, the piece's 300 characters counted 900 times (review, 2026-12-07).
    """

    fragment: str
    start: int
    end: int
    limit: int
    shown: int = 0

    def grow(self, to: int | None) -> bool:
        """Whether the piece took the unit up to ``to``: it and its ellipses show at most limit."""
        if to is None:
            return False
        start, end = min(self.start, to), max(self.end, to)
        unit = (to, self.start) if to < self.start else (self.end, to)
        shown = self.shown + _shown(self.fragment, *unit)
        if shown + _ellipses(self.fragment, start, end) > self.limit:
            return False
        self.start, self.end, self.shown = start, end, shown
        return True


def _match_end(fragment: str, at: int, limit: int) -> int | None:
    """Where the first match after ``at`` ends (after its ``</em>``), if it may fit.

    Only a match within ``limit`` characters of text is looked for, each at most an
    escape long: the text up to one further on was counted whole, only to find it
    too long (400 ms for two matches a million ``&amp;`` apart, review 2026-12-07).
    """
    stop = at + limit * _ESCAPE_CHARS + len(_OPEN) + len(_CLOSE)
    start = fragment.find(_OPEN, at, stop)
    close = fragment.find(_CLOSE, start, stop) if start >= 0 else -1
    return close + len(_CLOSE) if close >= 0 else None


def _ellipses(fragment: str, start: int, end: int) -> int:
    """Characters the ellipses of the piece ``fragment[start:end]`` take."""
    return len(ELLIPSIS) * ((start > 0) + (end < len(fragment)))


def _marked(fragment: str, start: int, end: int) -> str:
    """``fragment[start:end]`` with its cut sides marked and its tags paired again."""
    piece = fragment[start:end]
    if fragment.rfind(_OPEN, 0, start) > fragment.rfind(_CLOSE, 0, start):
        piece = _OPEN + piece  # cut inside a match
    if piece.rfind(_OPEN) > piece.rfind(_CLOSE):
        piece += _CLOSE
    # A tag takes no width: one at a cut side is taken with none of its match.
    piece = piece.replace(_OPEN + _CLOSE, "")
    if start > 0:
        piece = ELLIPSIS + piece
    if end < len(fragment):
        piece += ELLIPSIS
    return piece


def _shown(fragment: str, start: int, end: int) -> int:
    """Characters of text ``fragment[start:end]`` shows (whole units only)."""
    piece = fragment[start:end]
    tags = piece.count(_OPEN) * len(_OPEN) + piece.count(_CLOSE) * len(_CLOSE)
    escaped = sum(piece.index(";", i) - i for i in _all(piece, "&"))  # each shows one
    return len(piece) - tags - escaped


def _all(text: str, sub: str) -> list[int]:
    """Where ``sub`` starts in ``text``."""
    out, i = [], text.find(sub)
    while i >= 0:
        out.append(i)
        i = text.find(sub, i + 1)
    return out


def _joins(before: str, char: str) -> bool:
    """Whether ``char`` belongs with the code point ``before`` it (one letter as read).

    Marks (an accent written apart, a Devanagari vowel sign, a variation selector),
    skin-tone modifiers, emoji tags, what a U+200D joins and the consonant after a
    virama (a conjunct such as क्ष); never across a tag or an escape. Until 2026-12-07
    a cut could part a letter from its accent, and the piece began with a lone mark.
    A flag's two regional indicators are paired by the walks (:func:`_right`,
    :func:`_left`), which know where they start: one after a U+200D starts a flag of
    its own (UAX #29 joins only pictographs so), not joined to the one before.
    """
    if before in ">;" or char in "<&":
        return False
    return (
        unicodedata.category(char) in _MARKS
        or char == _JOINER
        or (before == _JOINER and not _regional(char))
        or (unicodedata.combining(before) == _VIRAMA and unicodedata.category(char) == "Lo")
        or "\U0001f3fb" <= char <= "\U0001f3ff"
        or "\U000e0020" <= char <= "\U000e007f"
    )


def _regional(char: str) -> bool:
    """Whether ``char`` is a regional indicator, a flag's half (🇫🇷 is two: F, R)."""
    return "\U0001f1e6" <= char <= "\U0001f1ff"


def _ends_flag(fragment: str, at: int) -> bool:
    """Whether the regional indicator before ``at`` is a flag's second: an even run ends there.

    Indicators pair from their run's start (UAX #29), counted back at most
    :data:`_FLAG_RUN`: a longer run is taken to end in a whole flag, as a run of flags
    does, so a million indicators in a row cost a bounded count a step. Only a run
    with a stray indicator in it, cut past the bound, shows its flags shifted by one.
    """
    i, stop = at, max(0, at - _FLAG_RUN)
    while i > stop and _regional(fragment[i - 1]):
        i -= 1
    return at - i > 0 and (at - i) % 2 == 0


def _right(fragment: str, at: int) -> int | None:
    """Where the unit at ``at`` ends: a tag, an escape, a letter with marks, an end's ``...``.

    ``at`` is where a unit ends (the walk takes whole units from the first match), so
    a regional indicator there starts a flag: the one after it is its second half.
    """
    if at >= len(fragment):
        return None
    if at == len(fragment) - len(ELLIPSIS) and fragment.endswith(ELLIPSIS):
        return len(fragment)  # snippet()'s own cut: whole, or it shows a dot not in the text
    if fragment[at] == "<":
        return fragment.index(">", at) + 1
    if fragment[at] == "&":
        return fragment.index(";", at) + 1
    end, stop = at + 1, min(len(fragment), at + _LETTER_CODE_POINTS)
    if end < stop and _regional(fragment[at]) and _regional(fragment[end]):
        end += 1
    while end < stop and _joins(fragment[end - 1], fragment[end]):
        end += 1
    return end


def _left(fragment: str, at: int) -> int | None:
    """Where the unit ending at ``at`` starts: ``;`` ends an escape only after an ``&``."""
    if at <= 0:
        return None
    if at == len(ELLIPSIS) and fragment.startswith(ELLIPSIS):
        return 0
    if fragment[at - 1] == ">":
        return fragment.rindex("<", 0, at)
    if fragment[at - 1] == ";":
        amp = fragment.rfind("&", max(0, at - _ESCAPE_CHARS), at)
        if amp >= 0 and ";" not in fragment[amp : at - 1]:
            return amp
    start, stop = at - 1, max(0, at - _LETTER_CODE_POINTS)
    while start > stop and _joins(fragment[start - 1], fragment[start]):
        start -= 1
    if start > 0 and _regional(fragment[start - 1]) and _ends_flag(fragment, start + 1):
        start -= 1  # a flag's second half: nothing joins its first from before
    return start
