"""A word with an apostrophe: the prefix OpenSearch is sent is what its analyzer indexes."""

from __future__ import annotations

import sys
import unicodedata

from opensearchpy import OpenSearch

from aiaudit.search import translate_dsl
from aiaudit.search.language import Text


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
