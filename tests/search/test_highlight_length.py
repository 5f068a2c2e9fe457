"""Highlight fragments are bounded in length on both backends (probe, 2026-12-07).

A run of text without word boundaries came back as one fragment: CJK text on
both backends (OpenSearch's word breaks take the run for one word, FTS5's
unicode61 for one token), and on SQLite runs of emoji or ". " too (separators
between two of snippet()'s tokens). Fragments of about 100,000 characters
were seen, and a one-result page of a 3.3 MB event was 5.36 MB on SQLite,
which a client with gRPC's default 4 MiB receive limit refused.
"""

from __future__ import annotations

import html
import time

import pytest

from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.search.fragments import ELLIPSIS, FRAGMENT_CHARS, clip, shown, whole_flags
from tests.helpers import interaction
from tests.search.conftest import SearchSuite

RUNS = {
    "cjk": "漢字" * 60_000,  # 120,000 characters, no word boundary
    "emoji": "\U0001f600" * 100_000,  # outside the BMP: a surrogate pair in UTF-16
    "dots": ". " * 60_000,
    "escapes": '&"/<' * 30_000,  # each character escaped: a cut must not split one
}
"""Runs set on both sides of the matched word, with an escape beside it (``&``)."""

DEFAULT_RECEIVE = 4 * 1024 * 1024
"""gRPC's default receive limit: the tests' channels keep it."""


def _shown(fragment: str) -> str:
    """The text a fragment shows: tags dropped, escapes read."""
    return html.unescape(fragment.replace("<em>", "").replace("</em>", ""))


def _check(fragment: str, text: str) -> None:
    """``fragment`` is bounded, marks the match, and is a piece of ``text`` escaped whole."""
    assert len(_shown(fragment)) <= FRAGMENT_CHARS, (len(fragment), fragment[:200])
    assert "<em>mango</em>" in fragment, fragment[:200]
    assert fragment.count("<em>") == fragment.count("</em>"), fragment
    fragment.encode("utf-8")  # no lone surrogate
    bare = fragment.replace("<em>", "").replace("</em>", "")
    escaped = html.escape(html.unescape(bare), quote=True).replace("/", "&#x2F;")
    assert escaped == bare, bare  # no escape cut: `&` and `;` unpaired would differ
    piece = _shown(fragment).removeprefix(ELLIPSIS).removesuffix(ELLIPSIS)
    assert piece in text, piece
    # Text beside the match is kept (OpenSearch's own fragment may end at the match).
    assert len(piece) > len(" &mango "), piece


@pytest.mark.parametrize("run", sorted(RUNS))
def test_a_run_without_word_boundaries_is_highlighted_in_a_bounded_fragment(
    search_suite: SearchSuite, tenant: str, run: str
) -> None:
    text = f"{RUNS[run]} &mango {RUNS[run]}"
    search_suite.append([interaction(tenant, run, text=text)])
    search_suite.wait_indexed(tenant, 1)
    (found,) = search_suite.find(tenant, query="mango").results
    assert set(found.highlights) == {"input.text", "output.text"}
    for name, field in (("input.text", text), ("output.text", "answer " + text)):
        fragments = list(found.highlights[name].fragments)
        assert fragments, name
        for fragment in fragments:
            _check(fragment, field)


def test_a_page_of_one_multi_megabyte_event_fits_the_default_receive_limit(
    search_suite: SearchSuite, tenant: str
) -> None:
    """3.3 MB of CJK text in the event; its highlights were as large again."""
    text = "漢字" * 137_500 + " mango " + "漢字" * 137_500  # 550,000 characters, 1.65 MB
    event: ev.Event = interaction(tenant, "large", text=text)
    assert event.ByteSize() > 3_300_000
    search_suite.append([event])
    search_suite.wait_indexed(tenant, 1)
    # The tests' channel keeps gRPC's default receive limit: a larger page is refused.
    page = search_suite.find(tenant, query="mango", page_size=1)
    (found,) = page.results
    assert page.ByteSize() < DEFAULT_RECEIVE
    assert found.event.input.messages[0].parts[0].text == text
    fragments = [f for h in found.highlights.values() for f in h.fragments]
    assert fragments and all(len(_shown(f)) <= FRAGMENT_CHARS for f in fragments)
    assert all("<em>mango</em>" in f for f in fragments), [f[:200] for f in fragments]


def test_a_second_match_within_the_bound_is_kept_whole(
    search_suite: SearchSuite, tenant: str
) -> None:
    """Two matches 200 characters apart in a CJK run: the fragments mark both.

    SQLite's snippet holds both in one fragment past the bound, and until
    2026-12-07 the cut was centred on the first match, 150 characters a side,
    leaving the second out. OpenSearch ends a fragment at each match: one each.
    """
    text = "漢字" * 60_000 + " mango " + "漢字" * 100 + " mango " + "漢字" * 60_000
    search_suite.append([interaction(tenant, "two", text=text)])
    search_suite.wait_indexed(tenant, 1)
    (found,) = search_suite.find(tenant, query="mango").results
    for name, field in (("input.text", text), ("output.text", "answer " + text)):
        fragments = list(found.highlights[name].fragments)
        assert sum(f.count("<em>mango</em>") for f in fragments) == 2, (name, fragments)
        for fragment in fragments:
            _check(fragment, field)


def test_clip_shows_300_characters_at_most_escapes_whole_on_either_side() -> None:
    """The README's bound, the ``...`` included; an escape is one character, never cut."""
    assert clip("a" * 1000) == "a" * 297 + ELLIPSIS
    before = "&amp;" * 400 + "<em>x</em>" + "y" * 10
    assert clip(before, 20) == ELLIPSIS + "&amp;" * 6 + "<em>x</em>" + "y" * 7 + ELLIPSIS
    after = "y" * 10 + "<em>x</em>" + "&amp;" * 400
    assert clip(after, 20) == ELLIPSIS + "y" * 6 + "<em>x</em>" + "&amp;" * 7 + ELLIPSIS


AZ = "\U0001f1e6\U0001f1ff"  # Azerbaijan: the first and the last regional indicator
CLIPPED = [
    # A match longer than the limit keeps its start; the tags stay paired.
    ("<em>" + "a" * 1000 + "</em>", 20, "<em>" + "a" * 17 + "</em>..."),
    ("b" * 50 + "<em>" + "a" * 1000 + "</em>", 20, "...<em>" + "a" * 14 + "</em>..."),
    # FTS5's own ``...`` is taken whole when the side reaches it, else cut like text.
    (
        "..." + "a" * 20 + "<em>x</em>" + "b" * 20 + "...",
        30,
        "..." + "a" * 11 + "<em>x</em>" + "b" * 12 + "...",
    ),
    (
        "..." + "a" * 5 + "<em>x</em>" + "b" * 40,
        20,
        "..." + "a" * 5 + "<em>x</em>" + "b" * 8 + "...",
    ),
    (
        "a" * 40 + "<em>x</em>" + "b" * 5 + "...",
        20,
        "..." + "a" * 8 + "<em>x</em>" + "b" * 5 + "...",
    ),
    # A mark after a tag or an escape is a unit of its own: nothing joins across them.
    ("<em>x</em>\u0301\u0301" + "b" * 40, 10, "<em>x</em>\u0301\u0301bbbb..."),
    ("a" * 30 + "<em>x</em>&amp;\u0301" + "b" * 40, 10, "...a<em>x</em>&amp;\u0301..."),
    (
        "a" * 30 + "&amp;\u0301\u0301<em>x</em>" + "b" * 40,
        12,
        "...&amp;\u0301\u0301<em>x</em>bb...",
    ),
    (AZ * 30 + "<em>x</em>" + AZ * 30, 21, "..." + AZ * 3 + "<em>x</em>" + AZ * 4 + "..."),
    (
        "<em>x</em>" + "a" * 30 + "<em>y</em>" + "b" * 400,
        40,
        "<em>x</em>" + "a" * 30 + "<em>y</em>bbbbb...",
    ),
]


@pytest.mark.parametrize(("fragment", "limit", "clipped"), CLIPPED)
def test_clip_takes_whole_units_and_marks_its_cuts(fragment: str, limit: int, clipped: str) -> None:
    assert clip(fragment, limit) == clipped


def test_whole_flags_at_the_very_ends_of_the_text() -> None:
    """A run of flags that starts the text is counted from there; a fragment that ends
    the text has nothing after it to take, even after a stray indicator."""
    text = FLAGS * 3 + " mango"
    assert whole_flags([text[1:]], text) == [text]
    stray = "mango \U0001f1eb"
    assert whole_flags([stray, ""], stray) == [stray, ""]


def test_clip_keeps_the_matches_after_the_first_that_fit_and_centres_the_rest() -> None:
    """The piece from the first match to the last that fits, then text on both sides."""
    fragment = "a" * 1000 + "<em>x</em>" + "b" * 200 + "<em>y</em>" + "c" * 95 + "<em>z</em>"
    fragment += "d" * 1000
    clipped = clip(fragment)
    assert clipped.count("<em>") == clipped.count("</em>") == 2
    assert "<em>x</em>" + "b" * 200 + "<em>y</em>" in clipped
    shown = _shown(clipped)
    assert len(shown) == FRAGMENT_CHARS
    before, after = shown.removeprefix(ELLIPSIS).removesuffix(ELLIPSIS).split("xb")
    assert before.strip("a") == "" and after.endswith("c") and "z" not in after
    assert abs(len(before) - after.count("c")) <= 1  # what is left, shared by both sides


def test_clip_does_not_count_the_text_up_to_a_match_too_far_to_fit() -> None:
    """Two matches a million escapes apart (SQLite's snippet holds a run of escaped
    characters whole, see RUNS): the text between them was counted, 400 ms a fragment
    (each field of each result of a page), to find the second cannot fit."""
    fragment = "<em>x</em>" + "&amp;" * 1_000_000 + "<em>y</em>"
    start = time.thread_time()
    clipped = clip(fragment)
    assert time.thread_time() - start < 0.05, "the text between the matches was counted"
    assert clipped == "<em>x</em>" + "&amp;" * (FRAGMENT_CHARS - 1 - len(ELLIPSIS)) + ELLIPSIS


CLUSTERS = {
    "accents": "e\u0301\u0323",  # e, acute and dot below written apart (NFD)
    "devanagari": "\u0915\u094d\u0937\u093f",  # क्षि: consonant, virama, consonant, vowel sign
    "family": "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # man ZWJ woman ZWJ girl
    "flag": "\U0001f1eb\U0001f1f7",  # France: regional indicators F and R
    "skin tone": "\U0001f44d\U0001f3fd",  # thumbs up, medium skin tone
}
"""Letters as read, each more than one code point."""


@pytest.mark.parametrize("name", sorted(CLUSTERS))
def test_clip_never_parts_a_letter_from_its_marks(name: str) -> None:
    """Each side of the cut ends between two letters as read, whatever the parity.

    Until 2026-12-07 the cut counted code points: a piece could begin with a lone
    accent, end with a man joined to nothing, or a thumbs up without its tone.
    """
    cluster = CLUSTERS[name]
    for before in range(1, len(cluster) + 1):  # every offset of the cut in the run
        fragment = "x" * before + cluster * 400 + " <em>mango</em> " + cluster * 400
        clipped = clip(fragment)
        piece = _shown(clipped).removeprefix(ELLIPSIS).removesuffix(ELLIPSIS)
        assert len(_shown(clipped)) <= FRAGMENT_CHARS
        left, right = piece.split(" mango ")
        assert left.endswith(cluster) and right.startswith(cluster), (name, before)
        assert len(left) % len(cluster) == 0, (name, before, left[:8])
        assert len(right) % len(cluster) == 0, (name, before, right[-8:])
        assert left and right, (name, before)


def test_clip_of_a_letter_with_a_million_marks_is_cheap() -> None:
    """Stacked marks (Zalgo text) are one letter as read: the walk to its end is bounded."""
    fragment = "<em>x</em>" + "\u0301" * 1_000_000 + " tail"
    start = time.thread_time()
    clipped = clip(fragment)
    assert time.thread_time() - start < 0.05, "the marks were walked whole"
    assert clipped.startswith("<em>x</em>\u0301") and len(_shown(clipped)) <= FRAGMENT_CHARS


FLAGS = "\U0001f1eb\U0001f1f7\U0001f1e9\U0001f1ea\U0001f1ee\U0001f1f9"  # France, Germany, Italy


def _parts_a_flag(text: str, at: int) -> bool:
    """Whether ``at`` falls inside a flag: regional indicators pair from their run's start."""
    run = 0
    while at - run > 0 and "\U0001f1e6" <= text[at - run - 1] <= "\U0001f1ff":
        run += 1
    return run % 2 == 1 and at < len(text) and "\U0001f1e6" <= text[at] <= "\U0001f1ff"


def _sides(fragment: str, clipped: str) -> tuple[int, int]:
    """Where the text ``clipped`` shows starts and ends in ``fragment`` (tags dropped)."""
    bare = fragment.replace("<em>", "").replace("</em>", "")
    piece = _shown(clipped).removeprefix(ELLIPSIS).removesuffix(ELLIPSIS)
    start = bare.index(piece)
    return start, start + len(piece)


@pytest.mark.parametrize(
    "before",
    ["", "\U0001f1eb", "\U0001f468\u200d"],
    ids=["flags", "a stray indicator first", "a joiner first"],
)
def test_clip_never_parts_a_flag(before: str) -> None:
    """Regional indicators pair from the start of their run: (1, 2), (3, 4)...

    Until 2026-12-07 the cut counted them one by one: a piece could begin or end
    with half a flag (a letter in a box), and show the flags after it misread (the
    second half of France and the first of Germany). Every offset of the cut in a run
    of flags, odd and even, each side of the match. A U+200D joins no indicator to
    the man before it: the flags after it pair from there (UAX #29).
    """
    run = before + FLAGS * 3
    inside = 0
    for pad in range(110, 150):
        fragment = "b" * 500 + " " + run + "a" * pad + " <em>mango</em> "
        fragment += "a" * pad + run + " " + "c" * 500
        clipped = clip(fragment)
        assert len(_shown(clipped)) <= FRAGMENT_CHARS
        bare = fragment.replace("<em>", "").replace("</em>", "")
        for side in _sides(fragment, clipped):
            assert not _parts_a_flag(bare, side), (pad, side, clipped[:12], clipped[-12:])
            inside += "\U0001f1e6" <= bare[side - 1] <= "\U0001f1ff"
    assert inside > 20, "the cuts were not among the flags"


def test_clip_of_a_million_regional_indicators_is_cheap() -> None:
    """Pairs are counted back at most 32 indicators: past that, a run is taken to end in
    a whole flag (as a run of flags does; one with a stray indicator shows its flags
    shifted by one). The run after the match is paired from its start, whatever its
    length."""
    fragment = "\U0001f1eb" + FLAGS * 500_000 + " <em>x</em> " + FLAGS * 500_000
    start = time.thread_time()
    clipped = clip(fragment)
    assert time.thread_time() - start < 0.05, "the run was counted whole"
    left, right = _shown(clipped).removeprefix(ELLIPSIS).removesuffix(ELLIPSIS).split(" x ")
    assert len(left) % 2 == 0 and right.startswith(FLAGS) and len(right) % 2 == 0


@pytest.mark.parametrize("search_suite", ["sqlite"], indirect=True)
def test_a_run_of_flags_is_cut_between_two_flags(search_suite: SearchSuite, tenant: str) -> None:
    """SQLite's snippet holds a run of flags whole (separators between two tokens): the
    cut falls in it. OpenSearch's fragments are at most 100 UTF-16 units, never cut
    here; their own edges are the highlighter's, which may part a flag (see README)."""
    text = FLAGS * 100 + " mango " + FLAGS * 100
    search_suite.append([interaction(tenant, "flags", text=text)])
    search_suite.wait_indexed(tenant, 1)
    (found,) = search_suite.find(tenant, query="mango").results
    (fragment,) = found.highlights["input.text"].fragments
    start, end = _sides(text, fragment)
    assert not _parts_a_flag(text, start) and not _parts_a_flag(text, end), fragment


def test_whole_flags_takes_the_other_half_of_a_flag_cut_at_an_edge() -> None:
    """Found in the text through its escapes and tags; the text is made for an edge
    that is a regional indicator only, and a fragment not found is left as it is."""
    text = "a & b " + FLAGS * 3 + " <mango> " + FLAGS * 3

    def marked(start: int, end: int) -> str:  # as OpenSearch's html encoder writes it
        escaped = html.escape(text[start:end], quote=True).replace("/", "&#x2F;")
        return escaped.replace("mango", "<em>mango</em>")

    assert whole_flags([marked(7, -3)], text) == [marked(6, -2)]
    assert whole_flags([marked(6, -2)], text) == [marked(6, -2)]
    # Nothing is found nowhere: one ending inside a flag gives the next, empty, no flag.
    assert whole_flags([marked(0, -3), ""], text) == [marked(0, -2), ""]
    assert whole_flags([ELLIPSIS + marked(7, -3)], text) == [ELLIPSIS + marked(7, -3)]

    def unasked() -> dict[str, str]:
        raise AssertionError("the text was made for a fragment without an indicator at an edge")

    plain = {"input.text": [marked(0, 33)]}  # flags inside, none at an edge
    assert shown(plain, unasked) == plain
    assert shown({"input.text": [marked(7, -3)]}, lambda: {"input.text": text}) == {
        "input.text": [marked(6, -2)]
    }


FLAG_TEXTS = {
    **{f"before, {n} stray": "\U0001f1eb" * n + FLAGS * 10 + " mango" for n in (0, 1)},
    **{f"after, {n} before": "x" * n + " mango " + FLAGS * 20 + " word" * 30 for n in range(4)},
}
"""Flags next to a match: OpenSearch's fragments end among them, at either parity."""


def test_a_fragment_of_flags_begins_and_ends_between_two_flags(
    search_suite: SearchSuite, tenant: str
) -> None:
    """OpenSearch's highlighter parts regional indicators (its word breaks take each
    apart), and ended a fragment about 100 UTF-16 units from the match wherever: until
    2026-12-07 a fragment could begin or end with half a flag, every flag after it
    misread. The edge takes the other half, found where the fragment is in the text."""
    events = [interaction(tenant, f"f-{i}", text=t) for i, t in enumerate(FLAG_TEXTS.values())]
    search_suite.append(events)
    search_suite.wait_indexed(tenant, len(events))
    texts = {f"f-{i}": t for i, t in enumerate(FLAG_TEXTS.values())}
    found = search_suite.find(tenant, query="mango").results
    assert len(found) == len(texts)
    for result in found:
        text = texts[result.event.event_id]
        (fragment,) = result.highlights["input.text"].fragments
        start, end = _sides(text, fragment)
        assert not _parts_a_flag(text, start), (text[:20], fragment)
        assert not _parts_a_flag(text, end), (text[:20], fragment)


TWICE = "x" + "\U0001f1eb" + FLAGS * 10 + " mango." + " y " + FLAGS * 10 + " mango."
"""A sentence written twice, its flags at another parity the second time: 61 indicators
(a stray first) then 60. OpenSearch sends the same two fragments, the last 50 of each."""


def test_whole_flags_finds_each_fragment_after_the_one_before() -> None:
    """The first fragment begins inside a flag, the second, the same text, between two.
    Until 2026-12-07 each was looked for from the text's start: both took the first
    one's other half, and the second began with a flag's second half."""
    run = "\U0001f1eb" + FLAGS * 10
    fragment = html.escape(run[-50:]) + " <em>mango</em>"
    assert whole_flags([fragment, fragment], TWICE) == [run[-51] + fragment, fragment]
    # Out of the text's order, the second is not found after the first: left as is.
    assert whole_flags([fragment, "<em>x</em>" + fragment], TWICE) == [
        run[-51] + fragment,
        "<em>x</em>" + fragment,
    ]


def test_a_fragment_written_twice_is_mended_at_its_own_place(
    search_suite: SearchSuite, tenant: str
) -> None:
    """OpenSearch's fragments come in the text's order: each is found after the one
    before it. Until 2026-12-07 the second was mended as the first (review): a flag
    parted where OpenSearch had left it whole."""
    search_suite.append([interaction(tenant, "twice", text=TWICE)])
    search_suite.wait_indexed(tenant, 1)
    (found,) = search_suite.find(tenant, query="mango").results
    fragments = list(found.highlights["input.text"].fragments)
    assert sum(f.count("<em>mango</em>") for f in fragments) == 2, fragments
    after = 0
    for fragment in fragments:
        start, end = _sides(TWICE[after:], fragment)
        assert not _parts_a_flag(TWICE, after + start), (after, fragment)
        assert not _parts_a_flag(TWICE, after + end), (after, fragment)
        after += end


def test_whole_flags_does_not_copy_the_text_before_an_edge() -> None:
    """An event's 40 MB of text before three fragments, each inside a flag at both edges:
    the text up to each edge was copied to count the indicators before it (16 ms an edge
    for 4 MB; ~1 s in all here, against ~2 ms now, so the bound holds on a loaded machine).
    The run is read back from the edge, as far as it goes."""
    text = "x" * 40_000_000 + (" " + FLAGS * 10 + " mango " + FLAGS * 10 + ".") * 3
    fragment = FLAGS[1:] + FLAGS * 8 + " <em>mango</em> " + FLAGS[:3]
    start = time.thread_time()
    mended = whole_flags([fragment] * 3, text)
    assert time.thread_time() - start < 0.2, "the text before each edge was copied"
    assert mended == [FLAGS[0] + fragment + FLAGS[3]] * 3
