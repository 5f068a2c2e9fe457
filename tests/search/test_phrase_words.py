"""A query's phrases hold at most MAX_PHRASE_WORDS words together, on both backends.

A phrase match reads the positions of each of its words in every event
holding them: "a a ... a" (64 words) against events of 400,000 "a" kept the
OpenSearch node busy for over 25 minutes, past any cancel, and 2,048 words
took 159 s on SQLite (review, 2026-12-07). A phrase of more words is refused
before any backend sees it; one of exactly as many answers, in bounded time.
"""

from __future__ import annotations

import time

import grpc
import pytest

from aiaudit.search.language import (
    MAX_LITERAL,
    MAX_PHRASE_WORDS,
    LanguageError,
    parse_filter,
    parse_query,
    phrase_words,
)
from aiaudit.search.v1 import search_service_pb2 as pb
from tests.helpers import field_violations, interaction
from tests.search.conftest import NOT_ACCESS, SearchSuite

WORDS = "a " * 30_000
"""An event of 30,000 "a": 32 of them as a phrase and highlighted took 1.4 s on three
events of 40,000 on a private OpenSearch node with the code before the bound, 0.5 s on SQLite."""
DEADLINE = 60.0
"""Seconds, failure-only: the pages here answer in about one."""


def _phrase(words: int) -> str:
    return '"' + " ".join(["a"] * words) + '"'


def test_phrase_words_are_counted_as_the_tokenizers_make_them() -> None:
    assert [phrase_words(t) for t in ("refund", "a a a", "x_y", "Müller straße")] == [1, 3, 2, 2]
    assert phrase_words("O'Brien") == 1  # one token of the standard analyzer
    assert phrase_words("O'Brien's") == 2  # three of FTS5
    assert phrase_words("a'" * 40 + "a") == 40
    assert phrase_words("一二三") == 3  # each ideograph a token of the standard analyzer
    assert phrase_words("ab一cd e") == 4


KOREAN = "개인정보 접근 기록 " * 11
"""33 words, three tokens a time on both backends (and in words, not syllables)."""


def test_words_are_counted_as_tokens_not_as_wide_characters() -> None:
    """Every wide character counted one word: a Korean phrase of 32 words (32 tokens on
    both backends) was 86 words, a katakana or full-width one as many as its letters,
    and a decomposed (NFD) accent ended a word FTS5 and OpenSearch keep whole."""
    assert phrase_words("데이터베이스 접근 기록") == 3  # was 10
    assert phrase_words("コンピュータ セキュリティ") == 2  # was 12
    full_width = "".join(chr(ord(c) + 0xFEE0) if c != " " else c for c in "REFUND ORDER")
    assert phrase_words(full_width) == 2  # was 11
    assert phrase_words("cafe\u0301 re\u0301sume\u0301") == 2  # was 3
    assert phrase_words("\u3007" * 3) == 3
    # Ordinary punctuation makes no token of either backend.
    assert (
        phrase_words("refund, order. (now) \u2013 \u201cquoted\u201d \u2026 ok!") == 5
    )  # each a token of the standard analyzer
    korean = " ".join(KOREAN.split()[:MAX_PHRASE_WORDS])
    assert parse_query(f'"{korean}"') is not None  # was refused: 86 "words"
    with pytest.raises(LanguageError, match=f"more than {MAX_PHRASE_WORDS} words"):
        parse_query(f'"{KOREAN}"')


def test_counting_the_longest_literal_takes_linear_time() -> None:
    """A pattern for words with an apostrophe was tried again from every letter: 0.2 s for
    one literal of 4,096 letters, a query of such literals many times that. The thread's
    CPU time: what other processes and threads do on the machine does not count."""
    started = time.thread_time()
    for _ in range(10):
        phrase_words("ab" * (MAX_LITERAL // 2))
    assert time.thread_time() - started < 1.0  # 2.4 s before, 0.04 s now


UNSEEN = {
    "emoji": "a" + " \U0001f600" * 40,
    "skin-tones": "a" + " \U0001f3fd" * 40,
    "double-exclamation": "a" + " \u203c" * 40,
    "modifier-letter": "a" + " \u02c2" * 40,
    "thai-vowel-sign": "a" + " \u0e35" * 40,
    "thai-latin": "a" + "\u0e20a" * 20,
    "katakana-latin": "a" + "\uff71a" * 20,
    "private-use": "a" + " \ue000" * 40,
    "newer-than-fts5": "a" + " \u2e3c" * 40,
    "mark-to-fts5": "a" + "\u1cf2a" * 40,
}
"""Phrases of 41 tokens of the standard analyzer (the first five), of both (the next
two) or of FTS5 (the last three) that counted one word or none."""


@pytest.mark.parametrize("phrase", UNSEEN.values(), ids=UNSEEN.keys())
def test_tokens_the_counter_did_not_see_are_counted(phrase: str) -> None:
    """``a`` and 40 emoji counted one word (not bounded at all), 41 tokens of the standard
    analyzer; so did Thai or half-width katakana between Latin letters (split by it at
    every change of script), a Thai vowel sign after a space (a token of its own there),
    private-use characters and symbols newer than FTS5's Unicode tables (tokens to it)."""
    assert phrase_words(phrase) > MAX_PHRASE_WORDS
    with pytest.raises(LanguageError, match=f"more than {MAX_PHRASE_WORDS} words"):
        parse_query(f'"{phrase}"')


def test_the_words_of_phrases_are_bounded_in_all_and_named_where_they_pass() -> None:
    assert parse_query(_phrase(MAX_PHRASE_WORDS)) is not None
    assert parse_query(" ".join(['"refund order"'] * (MAX_PHRASE_WORDS // 2))) is not None
    assert parse_filter(f"output.text: {_phrase(MAX_PHRASE_WORDS)}") is not None
    assert parse_query("一" * MAX_PHRASE_WORDS) is not None
    # One word has no positions to read: 256 of them (the terms' limit) still answer.
    assert parse_query(" ".join(["refund"] * 256)) is not None
    passing = [
        (parse_query, _phrase(MAX_PHRASE_WORDS + 1), 0),
        (parse_query, "refund " + _phrase(MAX_PHRASE_WORDS + 1), 7),
        (parse_query, _phrase(MAX_PHRASE_WORDS - 1) + ' "a b"', 2 * MAX_PHRASE_WORDS),
        (parse_query, "一" * (MAX_PHRASE_WORDS + 1), 0),
        (parse_filter, f"input.text: {_phrase(MAX_PHRASE_WORDS + 1)}", 12),
    ]
    for parse, text, column in passing:
        with pytest.raises(LanguageError, match=f"more than {MAX_PHRASE_WORDS} words") as caught:
            parse(text)
        assert caught.value.position == column, text


def test_a_phrase_of_too_many_words_is_refused_and_one_at_the_bound_answers(
    search_suite: SearchSuite, tenant: str
) -> None:
    search_suite.append([interaction(tenant, "many-a", text=WORDS)])
    search_suite.wait_indexed(tenant, 1)
    for field, request in (
        ("query", pb.SearchEventsRequest(tenant_id=tenant, query=_phrase(64))),
        (
            "filter",
            pb.SearchEventsRequest(
                tenant_id=tenant, filter=f"output.text: {_phrase(MAX_PHRASE_WORDS + 1)}"
            ),
        ),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            search_suite.search.SearchEvents(request, timeout=DEADLINE)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"more than {MAX_PHRASE_WORDS} words" in field_violations(caught.value)[field]
    started = time.monotonic()
    page = search_suite.search.SearchEvents(
        pb.SearchEventsRequest(
            tenant_id=tenant, filter=NOT_ACCESS, query=_phrase(MAX_PHRASE_WORDS), page_size=10
        ),
        timeout=DEADLINE,
    )
    assert [r.event.event_id for r in page.results] == ["many-a"]
    assert time.monotonic() - started < DEADLINE


def test_a_phrase_of_many_syllables_but_few_words_is_found(
    search_suite: SearchSuite, tenant: str
) -> None:
    """A Korean phrase of 32 words (96 syllables, each counted a word until 2026-12-07)
    was INVALID_ARGUMENT; it is 32 tokens on both backends and finds its event."""
    korean = " ".join(KOREAN.split()[:MAX_PHRASE_WORDS])
    search_suite.append([interaction(tenant, "korean", text=f"보고서: {korean}.")])
    search_suite.wait_indexed(tenant, 1)
    assert search_suite.all_ids(tenant, query=f'"{korean}"') == ["korean"]
