"""Values an invisible character separates are masked as they were before the view.

The view of 452eb80 leaves format characters and combining marks out so that
a value they hide inside is read whole; it also glued two values they stood
between into one run the detectors read as neither: two cards joined by a
zero-width space, two SSNs by a word joiner, a card wrapped in bidi isolates
next to another, all masked before that commit, were stored as sent (review).
"""

from __future__ import annotations

import itertools

import pytest

from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.ingest.redaction import ContentRedaction
from tests.helpers import interaction

VALUES = [
    "4111111111111111",
    "4012 8888 8888 1881",
    "123-45-6789",
    "234-56-7890",
    "DE89370400440532013000",
    "AKIAIOSFODNN7EXAMPLE",
    "alice@example.com",
    "+15551234567",
]
SEPARATORS = ["\u200b", "\u2060", "\u00ad", "\ufeff", "\u2069\u2066", "\u0301", "\ufe0f"]
"""Zero-width space, word joiner, soft hyphen, BOM, bidi isolates, a combining mark, VS16."""
REDACTION = ContentRedaction(("pii", "secrets"))


def _left(text: str) -> list[str]:
    """The values still readable in ``text`` once masked."""
    e = interaction("t", text=text)
    REDACTION.redact(e)
    kept = e.input.messages[0].parts[0].text
    return [v for v in VALUES if v in kept or v.replace(" ", "") in kept]


@pytest.mark.parametrize("sep", SEPARATORS, ids=lambda s: f"U+{ord(s[0]):04X}")
def test_two_values_an_invisible_character_separates_are_both_masked(sep: str) -> None:
    left = {
        (a, b): found
        for a, b in itertools.permutations(VALUES, 2)
        if (found := _left(f"see {a}{sep}{b} ok"))
    }
    assert left == {}


def test_a_value_beside_digits_an_invisible_character_separates_is_masked() -> None:
    assert _left("card 4111111111111111\u200b12 ssn 123-45-6789\u20605") == []


def test_values_separated_in_utf8_media_are_masked_and_every_character_kept_whole() -> None:
    sent = "é 4111111111111111\u200b4012888888881881 ç 123-45-6789\u2060234-56-7890 ü"
    e = interaction("t", text="see the file")
    e.input.messages[0].parts.add(media=ev.Media(mime_type="text/plain", data=sent.encode()))
    assert REDACTION.redact(e)
    media = e.input.messages[0].parts[1].media
    kept = media.data.decode()  # still UTF-8: no sequence cut
    assert kept == (
        "é [REDACTED:pii.credit_card]\u200b[REDACTED:pii.credit_card] ç "
        "[REDACTED:pii.national_id]\u2060[REDACTED:pii.national_id] ü"
    )
    assert media.size_bytes == len(media.data)
