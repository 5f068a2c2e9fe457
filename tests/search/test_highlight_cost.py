"""Highlighting on the embedded index costs at most linear time in the page's text.

FTS5's snippet() is quadratic in a field's matches: a prompt of "x x x ..."
(60,000 matches, 120 KB) took 40 s per event, and every analyst search for
"x" hung on it (review, 2026-12-05). A field over HIGHLIGHT_WORK is returned
without highlights; every other field, of the same event too, keeps its
snippet. The calls carry a deadline: the old code missed it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.search.v1 import search_service_pb2 as pb
from tests.helpers import interaction
from tests.search.conftest import NOT_ACCESS, SearchSuite, start_suite

DEADLINE = 10.0
"""Seconds: the new code answers these pages in well under one; the old took minutes."""
BOMB = "x " * 30_000
"""30,000 matches of ``x`` in a field: snippet() alone took over 30 s on such an event."""

LONG_S = "\u017f"


@pytest.fixture
def sqlite_suite(tmp_path: Path) -> Iterator[SearchSuite]:
    running = start_suite(tmp_path, "sqlite", {})
    yield running
    running.channel.close()
    running.suite.stop()


def _page(suite: SearchSuite, tenant: str, query: str) -> dict[str, pb.SearchResult]:
    page = suite.search.SearchEvents(
        pb.SearchEventsRequest(tenant_id=tenant, filter=NOT_ACCESS, query=query, page_size=10),
        timeout=DEADLINE,
    )
    return {r.event.event_id: r for r in page.results}


def _fragments(result: pb.SearchResult) -> dict[str, list[str]]:
    return {name: list(h.fragments) for name, h in result.highlights.items()}


def _with_output(event: ev.Event, text: str) -> ev.Event:
    event.output.messages[0].parts[0].text = text
    return event


def _fts5_snippet(text: str, term: str) -> str:
    """What FTS5's snippet() makes of ``text`` alone, in a table and query shaped as the index's."""
    conn = sqlite3.connect(":memory:")
    conn.execute(
        "CREATE VIRTUAL TABLE texts USING fts5(input__text, output__text, tool_call__text, "
        "tokenize = 'unicode61 remove_diacritics 0')"
    )
    conn.execute("INSERT INTO texts VALUES (?, '', '')", (text,))
    (fragment,) = conn.execute(
        "SELECT snippet(texts, 0, char(1), char(2), '...', 24) FROM texts WHERE texts MATCH ?",
        (f'({{input__text output__text tool_call__text}} : "{term}")',),
    ).fetchone()
    conn.close()
    return str(fragment).replace("\x01", "<em>").replace("\x02", "</em>")


def test_a_field_of_too_many_matches_is_not_highlighted_and_the_rest_is(
    sqlite_suite: SearchSuite, tenant: str
) -> None:
    sqlite_suite.append(
        [
            interaction(tenant, "bomb", text=BOMB),  # in input and output
            _with_output(interaction(tenant, "mixed", text=BOMB), "the x answer"),
            interaction(tenant, "ordinary", text="a plain x in a sentence"),
        ]
    )
    sqlite_suite.wait_indexed(tenant, 3)
    found = _page(sqlite_suite, tenant, "x")
    assert set(found) == {"bomb", "mixed", "ordinary"}
    assert _fragments(found["bomb"]) == {}
    # The same event's other field is highlighted: one match there, a bounded cost.
    assert _fragments(found["mixed"]) == {"output.text": ["the <em>x</em> answer"]}
    assert _fragments(found["ordinary"]) == {
        "input.text": ["a plain <em>x</em> in a sentence"],
        "output.text": ["answer a plain <em>x</em> in a sentence"],
    }


def test_matches_are_counted_as_fts5_tokenizes(sqlite_suite: SearchSuite, tenant: str) -> None:
    """By FTS5's own tokens: U+017F (long s) folds to "s" there (str.lower keeps it), and
    "the" inside "then" or "other" is no match (a substring count alone dropped this one)."""
    words = "Then other ones went there together. " * 400 + "And the end."  # "the" once
    sqlite_suite.append(
        [
            interaction(tenant, "long-s", text=f"{LONG_S} " * 30_000),
            interaction(tenant, "s", text="plain s here"),
            _with_output(interaction(tenant, "words", text=words), "nothing to see"),
        ]
    )
    sqlite_suite.wait_indexed(tenant, 3)
    found = _page(sqlite_suite, tenant, "s")
    assert set(found) == {"long-s", "s"}
    assert _fragments(found["long-s"]) == {}
    assert _fragments(found["s"])["input.text"] == ["plain <em>s</em> here"]
    (result,) = _page(sqlite_suite, tenant, "the").values()
    assert _fragments(result) == {"input.text": [_fts5_snippet(words, "the")]}
    assert "<em>the</em>" in result.highlights["input.text"].fragments[0]
