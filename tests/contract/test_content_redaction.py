"""``ingest.redact_content``: PII and secrets in content masked before the event is hashed.

What a policy masks must be nowhere afterwards: not in the leaf (the canonical
form), not in the stored content, not in what GetEvent shows.
"""

from __future__ import annotations

import base64
import codecs
import hashlib
from collections.abc import Collection
from pathlib import Path

import aiaudit_native
import grpc
import pytest
import yaml

from aiaudit.common import client, config
from aiaudit.common.config import ConfigError
from aiaudit.common.store import open_store
from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.ingest import settings as ingest_settings
from aiaudit.ingest.redaction import ContentRedaction, _continue_keys, masked
from aiaudit.ingest.v1 import ingest_service_pb2 as ipb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as ipb_grpc
from aiaudit.search.v1 import search_service_pb2 as spb
from aiaudit.search.v1 import search_service_pb2_grpc as spb_grpc
from tests.conftest import serve_suite
from tests.helpers import field_violations, interaction

CARD = "4111 1111 1111 1111"
EMAIL = "jane.doe@example.com"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA75c0ffee\n-----END RSA PRIVATE KEY-----"


def event_with_content_everywhere(tenant: str = "t") -> ev.Event:
    e = interaction(tenant, text=f"my card is {CARD}, thanks")
    e.input.system_instructions.add(text=f"escalate to {EMAIL}")
    e.input.retrieved_context.add(document_id="d1", content=f"customer card {CARD}")
    e.output.messages.add(role=ev.ROLE_ASSISTANT).parts.add(text=f"use key {AWS_KEY}")
    e.output.tool_calls.add(
        id="c1", name="lookup", arguments=f'{{"email": "{EMAIL}"}}', result=f"found\n{PEM}\nok"
    )
    e.output.reasoning = f"the user wrote {EMAIL}"
    e.attributes["contact"].string_value = EMAIL  # metadata, not content: kept
    return e


def test_every_content_text_is_masked_and_its_wire_rewritten() -> None:
    events = [event_with_content_everywhere(), interaction("t", text="nothing to hide")]
    wires = [e.SerializeToString() for e in events]
    untouched = wires[1]
    ContentRedaction(("pii", "secrets")).apply(events, wires)
    e = events[0]
    assert e.input.messages[0].parts[0].text == "my card is [REDACTED:pii.credit_card], thanks"
    assert e.input.system_instructions[0].text == "escalate to [REDACTED:pii.email]"
    assert e.input.retrieved_context[0].content == "customer card [REDACTED:pii.credit_card]"
    assert e.output.messages[-1].parts[0].text == "use key [REDACTED:secret.aws_access_key]"
    call = e.output.tool_calls[0]
    assert call.arguments == '{"email": "[REDACTED:pii.email]"}'
    assert call.result == "found\n[REDACTED:secret.private_key]\nok"  # the key body too
    assert e.output.reasoning == "the user wrote [REDACTED:pii.email]"
    assert e.attributes["contact"].string_value == EMAIL
    assert ev.Event.FromString(wires[0]) == e  # what is committed is the masked event
    assert wires[1] is untouched


def media_part(mime_type: str, data: bytes) -> ev.Part:
    digest = hashlib.sha256(data).hexdigest()
    return ev.Part(
        media=ev.Media(mime_type=mime_type, size_bytes=len(data), sha256=digest, data=data)
    )


MAIL = "[REDACTED:pii.email]"
BE16 = codecs.BOM_UTF16_BE
LE16 = codecs.BOM_UTF16_LE
MEDIA_CASES = [  # (mime type, bytes sent, bytes kept)
    (
        "text/csv",
        f"name,email\nZo\u00eb,{EMAIL}\n".encode(),
        f"name,email\nZo\u00eb,{MAIL}\n".encode(),
    ),
    (
        "text/plain; charset=ISO-8859-1",
        f"caf\u00e9 {EMAIL}".encode("latin-1"),
        f"caf\u00e9 {MAIL}".encode("latin-1"),
    ),
    # a stray Windows-1252 byte in what would be UTF-8: every other byte kept as sent
    ("text/csv", f"Ren\u00e9,{EMAIL}".encode("cp1252"), f"Ren\u00e9,{MAIL}".encode("cp1252")),
    ('Text/Plain; Charset="cp932"', b"\x87\x90 " + EMAIL.encode(), b"\x87\x90 " + MAIL.encode()),
    (
        "text/plain",
        BE16 + f"to {EMAIL}".encode("utf-16-be"),
        BE16 + f"to {MAIL}".encode("utf-16-be"),
    ),
    (
        "text/plain",
        LE16 + f"to {EMAIL}".encode("utf-16-le"),
        LE16 + f"to {MAIL}".encode("utf-16-le"),
    ),
    (
        "text/plain; charset=utf-16",
        f"to {EMAIL}".encode("utf-16-be"),
        f"to {MAIL}".encode("utf-16-be"),
    ),
    (
        "text/plain; charset=utf-32-le",
        f"to {EMAIL}".encode("utf-32-le"),
        f"to {MAIL}".encode("utf-32-le"),
    ),
    # charsets a decoder would choke on, or produce surrogates from: read byte by byte
    *[
        (
            f"text/plain; charset={charset}",
            f"hi +2D0- {EMAIL}".encode(),
            f"hi +2D0- {MAIL}".encode(),
        )
        for charset in (
            *("utf-7", "punycode", "idna", "undefined", "unicode_escape", "no-such"),
            "utf\x00-8",  # a name codecs cannot even look up (ValueError): the server failed
        )
    ],
    ("message/rfc822", f"From: {EMAIL}\r\n".encode(), f"From: {MAIL}\r\n".encode()),
    ("application/x-pem-file", f"k\n{PEM}\n".encode(), b"k\n[REDACTED:secret.private_key]\n"),
    (
        "application/ld+json",
        f'{{"key": "{AWS_KEY}"}}'.encode(),
        b'{"key": "[REDACTED:secret.aws_access_key]"}',
    ),
    # binary types: no detector reads them
    ("image/png", b"\x89PNG\r\n\x1a\n" + CARD.encode(), b"\x89PNG\r\n\x1a\n" + CARD.encode()),
    ("application/octet-stream", EMAIL.encode(), EMAIL.encode()),
]


@pytest.mark.parametrize(("mime_type", "sent", "kept"), MEDIA_CASES)
def test_textual_media_are_masked_byte_for_byte_binary_ones_kept(
    mime_type: str, sent: bytes, kept: bytes
) -> None:
    e = interaction("t", text="see attached")
    e.input.messages[0].parts.append(media_part(mime_type, sent))
    wires = [e.SerializeToString()]
    changed = ContentRedaction(("pii", "secrets")).apply([e], wires)
    media = e.input.messages[0].parts[1].media
    assert media.data == kept
    assert changed == ([0] if kept != sent else [])
    assert wires[0] == e.SerializeToString()
    assert media.size_bytes == len(kept)
    assert media.sha256 == hashlib.sha256(kept).hexdigest()


def test_media_in_system_instructions_and_output_are_masked_too() -> None:
    e = interaction("t", text="see attached")
    e.input.system_instructions.append(media_part("text/plain", f"cc {EMAIL}".encode()))
    e.output.messages.add(role=ev.ROLE_ASSISTANT).parts.append(
        media_part("application/json", f'{{"card": "{CARD}"}}'.encode())
    )
    assert ContentRedaction(("pii",)).redact(e)
    assert e.input.system_instructions[0].media.data == f"cc {MAIL}".encode()
    assert e.output.messages[-1].parts[0].media.data == b'{"card": "[REDACTED:pii.credit_card]"}'


def test_only_the_named_families_are_masked() -> None:
    e = interaction("t", text=f"card {CARD} key {AWS_KEY}")
    assert ContentRedaction(("secrets",)).redact(e)
    assert e.input.messages[0].parts[0].text == f"card {CARD} key [REDACTED:secret.aws_access_key]"
    kept = interaction("t", text=f"card {CARD}")
    assert not ContentRedaction().redact(kept)
    assert kept.input.messages[0].parts[0].text == f"card {CARD}"


def test_spans_merge_and_a_key_without_end_is_masked_to_the_end() -> None:
    assert masked("abcdefgh", [(4, 7, "y"), (1, 5, "x")]) == "a[REDACTED:x][REDACTED:y]h"
    assert masked("abcdefgh", [(1, 6, "x"), (2, 4, "y")]) == "a[REDACTED:x]gh"
    text = "see -----BEGIN PRIVATE KEY-----\nMIIEvQ secret bytes"
    assert masked(text, [(4, 31, "secret.private_key")]) == "see [REDACTED:secret.private_key]"


def _parts_after(parts: list[str]) -> list[str]:
    """The answer's parts once masked: each a chunk of a streamed answer."""
    e = interaction("t", text="a question")
    answer = e.output.messages.add(role=ev.ROLE_ASSISTANT)
    for text in parts:
        answer.parts.add(text=text)
    ContentRedaction(("secrets",)).redact(e)
    assert e.output.messages[0].parts[0].text == "answer a question"  # another message: kept
    return [p.text for p in e.output.messages[-1].parts]


def test_a_key_split_over_parts_is_masked_in_each_up_to_its_end() -> None:
    key = "[REDACTED:secret.private_key]"
    begin, end = "-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----"
    assert _parts_after([f"here {begin}\nMIIEpAIB", "AAKCAQEA75c0", f"ffee\n{end} ok", "bye"]) == [
        f"here {key}",
        key,
        f"{key} ok",
        "bye",
    ]
    assert _parts_after([f"{begin}\nMIIE", f"{end}\nthanks"]) == [key, f"{key}\nthanks"]
    # No END at all: the rest of the message.
    assert _parts_after(["x", f"{begin}\nMIIE", "AAKC", "QEA7"]) == ["x", key, key, key]
    # A key closed in its own part does not run on.
    assert _parts_after([f"{begin}\nMIIE\n{end}", "next"]) == [key, "next"]
    # An empty chunk between does not end it; a key opened again after an END runs on.
    assert _parts_after([f"{begin}\nMIIE", "", "AAKC", f"{end} ok"]) == [key, "", key, f"{key} ok"]
    assert _parts_after([f"{begin}\nA\n{end} mid {begin}\nB", "C", f"{end} z", "bye"]) == [
        f"{key} mid {key}",
        key,
        f"{key} z",
        "bye",
    ]


def test_a_key_split_over_system_instructions_or_around_a_media_part_is_masked() -> None:
    key = "[REDACTED:secret.private_key]"
    e = interaction("t", text="q")
    for text in ("sys -----BEGIN PRIVATE KEY-----\nMIIE", "AAKC", "-----END PRIVATE KEY----- ok"):
        e.input.system_instructions.add(text=text)
    answer = e.output.messages.add(role=ev.ROLE_ASSISTANT)
    answer.parts.add(text="-----BEGIN PRIVATE KEY-----\nMIIE")
    answer.parts.add().media.uri = "https://example.com/chart.png"
    answer.parts.add(text="AAKC")
    ContentRedaction(("secrets",)).redact(e)
    assert [p.text for p in e.input.system_instructions] == [f"sys {key}", key, f"{key} ok"]
    assert [p.text for p in answer.parts] == [key, "", key]


def test_of_many_keys_in_a_part_only_the_last_can_leave_it_open() -> None:
    key = "[REDACTED:secret.private_key]"
    closed = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n" * 1000
    assert _parts_after([closed, "next"]) == [f"{key}\n" * 1000, "next"]
    opened = closed + "-----BEGIN PRIVATE KEY-----\nBBBB"
    assert _parts_after([opened, "CCCC", "-----END PRIVATE KEY----- z"]) == [
        f"{key}\n" * 1000 + key,
        key,
        f"{key} z",
    ]


def test_a_key_left_open_in_every_part_adds_one_span_a_part() -> None:
    """Linear in the parts: each open key once was carried into every later part (review:
    8,000 one-line parts took 20 s and 337 MB)."""
    paths = [f"output.messages[1].parts[{i}].text" for i in range(5000)]
    texts = dict.fromkeys(paths, "-----BEGIN PRIVATE KEY-----")
    spans: dict[str, list[tuple[int, int, str]]] = {
        path: [(0, 27, "secret.private_key")] for path in paths
    }
    _continue_keys(texts, spans)
    assert [len(spans[path]) for path in paths] == [1] + [2] * 4999


@pytest.mark.parametrize(
    "text",
    [
        f"4111111111111111{AWS_KEY}",  # the key shows once the card before it is masked
        "SSN 123-45-6789 555 123 4567",  # the phone's candidate was consumed by the SSN's
        "password=" + "a1B2c3D4e5" * 20,  # a generic key's span stops after 128 characters
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0." + "A" * 1100,  # a long signature
        "password=Xk9mP2qR7vL4nT8wZ3yB!Q7r$Zk2tail",  # a password's tail past what matched
        "password=Xk9mP2qR7vL4nT8wZ3yB%21Q7r%24Zk2",  # and URL-encoded
        (AWS_KEY + ".") * 300,  # many keys in one token
    ],
)
def test_what_is_left_holds_nothing_the_detectors_find(text: str) -> None:
    e = interaction("t", text=text)
    assert ContentRedaction(("pii", "secrets")).redact(e)
    left = e.input.messages[0].parts[0].text
    for family in ("pii", "secrets"):
        assert aiaudit_native.detect(family, [], [("f", left)], []) == [], left
    assert "1111" not in left and "a1B2" not in left[-20:] and "AAAA" not in left
    assert "Zk2" not in left and "EXAMPLE" not in left


def test_a_chain_of_glued_numbers_is_masked_without_the_words_around_it() -> None:
    # Each number hides the next from the phone pattern (no number right after a number or
    # a +): every pass shows one more, and after four the chain's whole run is masked.
    chain = "+".join(f"1555123456{d}" for d in range(8))
    e = interaction("t", text=f"Call +{chain} today; notes: keep the roadmap.")
    assert ContentRedaction(("pii",)).redact(e)
    left = e.input.messages[0].parts[0].text
    assert left == "Call [REDACTED:pii.phone] today; notes: keep the roadmap."
    assert aiaudit_native.detect("pii", [], [("f", left)], []) == []


def test_a_text_that_keeps_yielding_findings_is_masked_whole() -> None:
    class Endless(ContentRedaction):
        def _spans(
            self, texts: list[tuple[str, str]], bytewise: Collection[str] = ()
        ) -> dict[str, list[tuple[int, int, str]]]:
            return {path: [(0, 1, "pii.x")] for path, _ in texts}

    e = interaction("t", text="abc")
    assert Endless(("pii",)).redact(e)
    assert e.input.messages[0].parts[0].text == "[REDACTED]"


def test_an_event_that_outgrows_its_limit_once_masked_is_refused(
    tmp_path: Path, tenant: str
) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"ingest": {"redact_content": ["pii"]}}))
    suite, keys = serve_suite(tmp_path, cfg, max_event_bytes=4096)
    event = interaction(tenant, text="a@b.co " * 200)  # in and out: 2,800 chars, 8,000 masked
    assert event.ByteSize() < 4096
    try:
        with (
            client.channel(f"127.0.0.1:{suite.port}", keys["gateway"]) as channel,
            pytest.raises(grpc.RpcError) as refused,
        ):
            ipb_grpc.IngestServiceStub(channel).Append(ipb.AppendRequest(events=[event]))
    finally:
        suite.stop()
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(refused.value)
    assert list(violations) == ["events[0]"]
    assert "once masked (ingest.redact_content); the limit is 4096" in violations["events[0]"]
    store = open_store(f"sqlite:///{tmp_path / 'aiaudit.db'}")
    try:
        assert store.read_log(tenant, 0, 10) == []  # nothing was written
    finally:
        store.close()


def test_an_unknown_family_is_refused_at_start_up() -> None:
    with pytest.raises(ConfigError, match=r"'ingest\.redact_content': 'passwords' is not one of"):
        ContentRedaction(("pii", "passwords"))
    settings = config.load(None, env={"AIAUDIT_INGEST_REDACT_CONTENT": "pii, passwords"})
    with pytest.raises(ConfigError, match=r"'ingest\.redact_content': 'passwords'"):
        ingest_settings.load(settings)
    env = {"AIAUDIT_INGEST_REDACT_CONTENT": "pii,secrets"}
    assert ingest_settings.load(config.load(None, env=env)).redact_content == ("pii", "secrets")


def test_masked_content_is_what_the_log_stores_and_shows(tmp_path: Path, tenant: str) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"ingest": {"redact_content": ["pii", "secrets"]}}))
    suite, keys = serve_suite(tmp_path, cfg)
    try:
        event = event_with_content_everywhere(tenant)
        del event.attributes["contact"]  # metadata is not masked: kept out of this check
        attached = f"{EMAIL},{CARD}".encode()
        event.input.messages[0].parts.append(media_part("text/csv", attached))
        with client.channel(f"127.0.0.1:{suite.port}", keys["gateway"]) as channel:
            request = ipb.AppendRequest(events=[event])
            first = ipb_grpc.IngestServiceStub(channel).Append(request).receipts[0]
            again = ipb_grpc.IngestServiceStub(channel).Append(request).receipts[0]
        assert again.duplicate and again.sequence == first.sequence  # a retry stays a retry
        with client.channel(f"127.0.0.1:{suite.port}", keys["admin"]) as channel:
            got = spb_grpc.SearchServiceStub(channel).GetEvent(
                spb.GetEventRequest(tenant_id=tenant, event_id=event.event_id)
            )
        shown = got.event.SerializeToString()
        assert b"[REDACTED:pii.credit_card]" in shown
    finally:
        suite.stop()
    store = open_store(f"sqlite:///{tmp_path / 'aiaudit.db'}")
    try:
        (stored,) = [s for s in store.read_log(tenant, 0, 10) if s.event_id == event.event_id]
    finally:
        store.close()
    assert stored.content is not None
    media = base64.b64decode(stored.content["input.messages[0].parts[1].media.data"])
    assert media == b"[REDACTED:pii.email],[REDACTED:pii.credit_card]"
    kept = stored.canonical + repr(stored.content).encode() + shown + media
    for secret in (CARD, EMAIL, AWS_KEY, "MIIEpAIBAAKCAQEA75c0ffee"):
        assert secret.encode() not in kept, secret
    assert hashlib.sha256(attached).hexdigest().encode() not in kept  # it would confirm the file
