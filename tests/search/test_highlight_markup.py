"""A highlight fragment's only markup is its matches' ``<em>`` tags, paired, on both backends."""

from __future__ import annotations

import re

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
