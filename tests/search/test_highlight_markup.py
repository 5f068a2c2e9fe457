"""A highlight fragment's only markup is its matches' ``<em>`` tags, paired, on both backends."""

from __future__ import annotations

import html
import re

from aiaudit.search.fragments import ELLIPSIS
from tests.helpers import interaction
from tests.search.conftest import SearchSuite

MARKUP = re.compile(r"<em>[^<>]+</em>")
"""A match as both backends mark it: text, escaped, between one pair of tags."""


def test_control_characters_in_a_prompt_are_no_markup(
    search_suite: SearchSuite, tenant: str
) -> None:
    """FTS5's snippet() marks matches with U+0001 and U+0002, turned into the tags
    after escaping: the same characters in a prompt became tags too, an ``</em>``
    opened by nothing and an ``<em>`` left open, which a UI rendering the fragment
    as HTML (as it must, for the escapes) took for markup, and a field without a
    match but with a U+0001 was highlighted (review, 2026-12-07)."""
    event = interaction(tenant, "controls", text="closing \x02 before mango and \x01 opening after")
    event.output.messages[0].parts[0].text = "no fruit \x01 here"
    search_suite.append([event])
    search_suite.wait_indexed(tenant, 1)
    (found,) = search_suite.find(tenant, query="mango").results
    assert set(found.highlights) == {"input.text"}
    fragments = [f for h in found.highlights.values() for f in h.fragments]
    assert fragments
    for fragment in fragments:
        assert MARKUP.findall(fragment) == ["<em>mango</em>"], fragment
        assert MARKUP.sub("", fragment).count("<") == 0, fragment


def test_a_cut_fragment_shows_only_text_of_the_event_and_marks_only_text(
    search_suite: SearchSuite, tenant: str
) -> None:
    """Two layouts of words of ordinary length whose 24-token snippets (SQLite) are
    past FRAGMENT_CHARS, cut where a unit of no width met the cut: FTS5's own
    ``...`` cut inside, shown as ``....`` (a dot not in the event), and a second
    match's ``<em>`` taken at the edge, shown as an empty ``<em></em>`` (review,
    2026-12-07). OpenSearch's fragments are within the bound: the same checks."""
    texts = {
        "ellipsis": " " + " ".join(["w" * 12] * 40) + " mango " + " ".join(["v" * 12] * 40),
        "edge": " ".join(["w" * 8] * 40)
        + " mango "
        + "y" * 197
        + " mango "
        + " ".join(["v" * 8] * 40),
    }
    search_suite.append([interaction(tenant, name, text=text) for name, text in texts.items()])
    search_suite.wait_indexed(tenant, len(texts))
    results = search_suite.find(tenant, query="mango").results
    assert sorted(r.event.event_id for r in results) == sorted(texts)
    for result in results:
        text = texts[result.event.event_id]
        fields = {"input.text": text, "output.text": "answer " + text}
        assert set(result.highlights) == set(fields)
        for name, field in fields.items():
            for fragment in result.highlights[name].fragments:
                assert "<em></em>" not in fragment, fragment
                assert MARKUP.findall(fragment), fragment
                shown = html.unescape(fragment.replace("<em>", "").replace("</em>", ""))
                assert shown.removeprefix(ELLIPSIS).removesuffix(ELLIPSIS) in field, fragment
