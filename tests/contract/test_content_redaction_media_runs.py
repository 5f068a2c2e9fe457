"""A chain of glued values in UTF-8 media is masked by whole characters.

After its passes, masking takes a finding's whole run of non-blank characters
(a chain of values glued together). A textual media's bytes are read one a
character, where bytes 0x85 and 0xA0 read as blanks, yet they end the UTF-8
sequences of "à" (C3 A0) or "Å" (C3 85): the run stopped inside the
character, and the marker left its last byte alone, so the stored text/plain
media was no longer UTF-8 (review).
"""

from __future__ import annotations

import pytest

from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.ingest.redaction import ContentRedaction
from tests.helpers import interaction

CHAIN = "".join(f"+1555123{4560 + i:04d}" for i in range(12))
"""Twelve phone numbers glued: more than masking's passes can take one by one."""


@pytest.mark.parametrize("letter", ["à", "Å"])
def test_a_glued_chain_in_utf8_media_is_masked_and_the_media_stays_utf8(letter: str) -> None:
    e = interaction("t", text="see the file")
    sent = f"voilà {CHAIN}{letter} ok".encode()
    e.input.messages[0].parts.add(media=ev.Media(mime_type="text/plain", data=sent))
    assert ContentRedaction(("pii",)).redact(e)
    media = e.input.messages[0].parts[1].media
    assert media.data.decode() == "voilà [REDACTED:pii.phone] ok"
    assert media.size_bytes == len(media.data)
