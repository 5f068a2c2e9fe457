"""Masking reads a value hidden by invisible or look-alike characters as the value it is.

The detectors read ASCII values: a zero-width space between a card's groups,
a soft hyphen in an e-mail address, a fullwidth at sign (U+FF20) or a key spelled in tag
characters (invisible, yet read by a model) kept the value from them, and it
was stored, indexed and shown as sent (review, 2026-12-07).
"""

from __future__ import annotations

import time

import aiaudit_native
import pytest

from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.ingest.redaction import ContentRedaction
from tests.helpers import interaction

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
THANKS = "\uff54\uff48\uff41\uff4e\uff4b\uff53"
"""``thanks`` in fullwidth letters: kept, as no value is read in it."""


def _tags(text: str) -> str:
    """``text`` in Unicode tag characters: invisible when shown."""
    return "".join(chr(0xE0000 + ord(c)) for c in text)


CASES = [
    ("card 4111\u200b1111\u200b1111\u200b1111 ok", "card [REDACTED:pii.credit_card] ok"),
    ("card 4\u03011\u030111 1111 1111 1111 ok", "card [REDACTED:pii.credit_card] ok"),
    ("ssn 123-45-67\u200d89", "ssn [REDACTED:pii.national_id]"),
    ("mail ali\u00adce@example.com ok", "mail [REDACTED:pii.email] ok"),
    ("mail alice\uff20example.com ok", "mail [REDACTED:pii.email] ok"),
    ("mail \u2066alice@exam\u2069ple.com\ufe0f ok", "mail \u2066[REDACTED:pii.email]\ufe0f ok"),
    (f"key AKIA\u200b{AWS_KEY[4:]} ok", "key [REDACTED:secret.aws_access_key] ok"),
    ("key \uff21\uff2b\uff29\uff21IOSFODNN7EXAMPLE ok", "key [REDACTED:secret.aws_access_key] ok"),
    (f"key {_tags(AWS_KEY)} ok", "key [REDACTED:secret.aws_access_key] ok"),
    (
        "-----BEGIN RSA PRIVATE\u200b KEY-----\nMIIabc\n-----END RSA PRIVATE KEY-----\nafter",
        "[REDACTED:secret.private_key]\nafter",
    ),
]


@pytest.mark.parametrize(("sent", "kept"), CASES)
def test_a_value_hidden_by_invisible_or_fullwidth_characters_is_masked_whole(
    sent: str, kept: str
) -> None:
    e = interaction("t", text=sent)
    assert ContentRedaction(("pii", "secrets")).redact(e)
    assert e.input.messages[0].parts[0].text == kept


def test_text_around_the_hidden_characters_is_kept_as_sent() -> None:
    text = "Zoë\u200d wrote “résumé” 👍\ufe0f, card 4111\u2060 1111 1111 1111, " + THANKS
    e = interaction("t", text=text)
    assert ContentRedaction(("pii",)).redact(e)
    assert e.input.messages[0].parts[0].text == (
        "Zoë\u200d wrote “résumé” 👍\ufe0f, card [REDACTED:pii.credit_card], " + THANKS
    )
    plain = interaction("t", text="Zoë\u200d wrote “résumé” 👍\ufe0f, " + THANKS)
    assert not ContentRedaction(("pii", "secrets")).redact(plain)


def test_every_finding_of_a_long_text_is_masked_in_linear_time() -> None:
    # Each card's groups joined by zero-width spaces: one view, one step per run left out.
    card = "4111\u200b1111\u200b1111\u200b1111"
    few, many = (interaction("t", text=f"{card} x " * n) for n in (2_000, 20_000))
    redaction = ContentRedaction(("pii",))
    took = []
    for e in (few, many):
        start = time.thread_time()
        assert redaction.redact(e)
        took.append(time.thread_time() - start)
        left = e.input.messages[0].parts[0].text
        assert "1111" not in left
        assert aiaudit_native.detect("pii", [], [("f", left)], []) == []
    assert took[1] < 30 * took[0] + 0.05, took  # ten times the text: not a hundred times the CPU


MEDIA_CASES = [
    # UTF-8 bytes, read one a character: the zero-width spaces and the digits were bytes.
    (
        "card 4111\u200b1111\u200b1111\u200b1111 ok".encode(),
        b"card [REDACTED:pii.credit_card] ok",
    ),
    (
        "\u00e9 card \U0001d7d2\U0001d7cf\U0001d7cf\U0001d7cf 1111 1111 1111 \u00e9".encode(),
        "\u00e9 card [REDACTED:pii.credit_card] \u00e9".encode(),
    ),
    (f"key {_tags(AWS_KEY)} ok".encode(), b"key [REDACTED:secret.aws_access_key] ok"),
    # Not UTF-8 (Latin-1 with a no-break space): read as before, every other byte as sent.
    (b"caf\xe9 4111\xa01111\xa01111\xa01111 \xff", b"caf\xe9 [REDACTED:pii.credit_card] \xff"),
]


@pytest.mark.parametrize(("sent", "kept"), MEDIA_CASES)
def test_a_value_hidden_in_utf8_media_is_masked_and_every_other_byte_kept(
    sent: bytes, kept: bytes
) -> None:
    e = interaction("t", text="see the file")
    e.input.messages[0].parts.add(media=ev.Media(mime_type="text/plain", data=sent))
    assert ContentRedaction(("pii", "secrets")).redact(e)
    assert e.input.messages[0].parts[1].media.data == kept
