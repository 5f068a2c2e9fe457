"""A secret found inside another value's span still runs on over the rest of its token.

A secret's marker takes the rest of its token (detectors read a bounded part
of it). One whose found part lay inside an e-mail address found around it
was passed over as masked already, and the rest of its token stayed: the
Slack token's tail after ``bob.xoxb-...@example.com``, or an Anthropic key's
body glued to it. A tag character before such a run (read as its letter
since 452eb80) made an address of what was read as a token before (review).
"""

from __future__ import annotations

import pytest

from aiaudit.ingest.redaction import ContentRedaction
from tests.helpers import interaction

SLACK = "xoxb-123456789012-abcdefghijkl"
KEY_BODY = "-ant-api03-" + "x" * 40


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        (
            f"bob.{SLACK}@example.com-rest-of-the-token-secret ok",
            "[REDACTED:pii.email][REDACTED:secret.slack_token] ok",
        ),
        (
            f"a.{SLACK}alice@example.comsk{KEY_BODY} ok",
            "[REDACTED:pii.email][REDACTED:secret.slack_token] ok",
        ),
        (
            f"\U000e0041{SLACK}alice@example.comsk{KEY_BODY} ok",
            "[REDACTED:pii.email][REDACTED:secret.slack_token] ok",
        ),
    ],
)
def test_a_secret_inside_an_address_masks_the_rest_of_its_token(sent: str, kept: str) -> None:
    e = interaction("t", text=sent)
    assert ContentRedaction(("pii", "secrets")).redact(e)
    assert e.input.messages[0].parts[0].text == kept
