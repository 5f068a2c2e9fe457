"""A word with an apostrophe: the prefix OpenSearch is sent is what its analyzer indexes."""

from __future__ import annotations

import contextlib
import json
import string
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from opensearchpy import OpenSearch

from aiaudit.search import translate_dsl
from aiaudit.search.language import Text
from aiaudit.search.v1 import search_service_pb2 as pb
from tests.helpers import field_violations, interaction
from tests.search.conftest import NOT_ACCESS, SearchSuite, start_suite


def sent_prefix(word: str) -> str:
    """The prefix the translation sends for ``word`` (one text field)."""
    query = translate_dsl.text_query(Text(("input.text",), word))
    return str(query["bool"]["should"][1]["prefix"]["input__text"]["value"])


def test_the_prefix_is_lower_cased_as_the_standard_analyzer_does(opensearch_url: str) -> None:
    """The prefix query is not analysed: the translation lower-cases it, one character at a
    time. For every upper- and title-case letter the node's tokenizer joins to a word by an
    apostrophe, ``X'<letter>'s`` is indexed as a token the prefix of ``X'<letter>`` starts
    (``str.lower`` of a whole word differs: a final sigma, and U+0130 is two characters)."""
    letters = [
        chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) in ("Lu", "Lt")
    ]
    node = OpenSearch(hosts=[opensearch_url])
    joined = wrong = 0
    try:
        for start in range(0, len(letters), 500):
            words = [f"X'{c}" for c in letters[start : start + 500]]
            text = " ".join(f"{w}'s" for w in words)
            tokens = node.indices.analyze(body={"analyzer": "standard", "text": text})["tokens"]
            by_offset = {t["start_offset"]: t["token"] for t in tokens}
            offset = 0  # in UTF-16 code units, as the node counts
            for w in words:
                token = by_offset.get(offset, "")
                if "'" in token:  # joined (the node's Unicode may not know every letter)
                    joined += 1
                    wrong += not token.startswith(sent_prefix(w))
                offset += len(f"{w}'s ".encode("utf-16-le")) // 2
    finally:
        node.close()
    assert joined > 1500
    assert wrong == 0


@contextlib.contextmanager
def expensive_queries_refused(opensearch_url: str) -> Iterator[None]:
    """The node refuses prefix queries and scripts (a cluster setting), for the block only."""
    node = OpenSearch(hosts=[opensearch_url])
    setting = "search.allow_expensive_queries"
    try:
        node.cluster.put_settings(body={"transient": {setting: False}})
        yield
    finally:
        node.cluster.put_settings(body={"transient": {setting: None}})
        node.close()


def test_a_cluster_refusing_prefix_queries_still_answers_words_with_apostrophes(
    tmp_path: Path, tenant: str, opensearch_url: str, index_prefix: str
) -> None:
    """A lone word with an apostrophe is sent with a prefix query (``O'Brien`` finds
    ``O'Brien's``), which a cluster with ``search.allow_expensive_queries: false`` refuses:
    ``don't`` was answered INVALID_ARGUMENT "too large" there. It is sent again as the
    phrase alone, as before that change; what still needs an expensive query (a prefix
    filter) is INVALID_ARGUMENT saying so, not "too large"."""
    running = start_suite(
        tmp_path, "opensearch", backend_settings_for(opensearch_url, index_prefix)
    )
    try:
        texts = {"strict-possessive": "ask O'Brien's team", "strict-plain": "we don't know"}
        running.append([interaction(tenant, name, text=text) for name, text in texts.items()])
        running.wait_indexed(tenant, len(texts))
        with expensive_queries_refused(opensearch_url):
            assert running.all_ids(tenant, query="don't") == ["strict-plain"]
            # The possessive is what the prefix found: a phrase alone does not.
            assert running.all_ids(tenant, query="O'Brien") == []
            page = running.find(tenant, query="don't")
            (result,) = page.results
            assert list(result.highlights["input.text"].fragments) == [
                "we <em>don&#x27;t</em> know"
            ]
            with pytest.raises(grpc.RpcError) as refused:
                running.find(tenant, 'model.name = "gpt-4*"')
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            ((field, why),) = field_violations(refused.value).items()
            assert field == "filter"
            assert "refuses expensive queries" in why and "too large" not in why
        # Allowed again, the prefix is sent again.
        assert sorted(running.all_ids(tenant, query="O'Brien")) == ["strict-possessive"]
    finally:
        running.channel.close()
        running.suite.stop()


def backend_settings_for(opensearch_url: str, index_prefix: str) -> dict[str, Any]:
    return {
        "opensearch_url": opensearch_url,
        "index_prefix": index_prefix,
        "refresh_interval": "100ms",
    }


def test_a_query_of_256_words_with_apostrophes_is_answered_on_every_backend(
    search_suite: SearchSuite, tenant: str
) -> None:
    """The language allows 256 words; a word with an apostrophe is also sent a prefix query
    per text field on OpenSearch, twice the clauses: 171 of them were past the node's 1,024,
    INVALID_ARGUMENT "too large" there (review; 256 were answered before the prefix). Past
    the budget they are sent as phrases alone: pages, aggregates and exports answer."""
    letters = string.ascii_lowercase
    words = [f"w{letters[i // 26]}{letters[i % 26]}'x" for i in range(256)]
    every = interaction(tenant, "every", text=" ".join(words))
    last = interaction(tenant, "last", text=f"only {words[-1]} here")
    search_suite.append([every, last, interaction(tenant, "none", text="nothing")])
    search_suite.wait_indexed(tenant, 3)
    query = " OR ".join(words)
    assert sorted(search_suite.all_ids(tenant, query=query)) == ["every", "last"]
    counted = search_suite.search.Aggregate(
        pb.AggregateRequest(tenant_id=tenant, filter=NOT_ACCESS, query=query, group_by=["event_id"])
    )
    assert sorted(b.keys[0] for b in counted.buckets) == ["every", "last"]
    chunks = search_suite.search.Export(
        pb.ExportRequest(
            tenant_id=tenant, format=pb.EXPORT_FORMAT_JSONL, filter=NOT_ACCESS, query=query
        )
    )
    lines = b"".join(c.data for c in chunks).decode().splitlines()
    assert sorted(json.loads(line)["eventId"] for line in lines) == ["every", "last"]


@pytest.mark.parametrize("space", ["\u00a0", "\u3000", "\u2028", "\x85", "\x1f"])
def test_a_quoted_word_with_an_apostrophe_and_a_unicode_space_finds_its_possessive(
    search_suite: SearchSuite, tenant: str, space: str
) -> None:
    """Around a lone word only ASCII spaces were left off before its prefix was made:
    ``"O'Brien<U+00A0>"`` (a no-break space pasted with the name) found ``O'Brien's`` on
    SQLite and nothing on OpenSearch, where ``"O'Brien "`` found it on both."""
    search_suite.append([interaction(tenant, "possessive", text="ask O'Brien's team")])
    search_suite.wait_indexed(tenant, 1)
    for query in (f'"O\'Brien{space}"', f'"{space}O\'Brien.{space}"'):
        assert search_suite.all_ids(tenant, query=query) == ["possessive"], query
