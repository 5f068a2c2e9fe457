"""The canonical form, recomputed independently of the implementation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from google.protobuf import json_format
from hypothesis import given
from hypothesis import strategies as st

from aiaudit.common import canonical
from aiaudit.common.v1 import event_pb2 as ev
from tests.helpers import interaction

SALT = bytes(range(32))


def independent_canonical(event: ev.Event, salt: bytes) -> bytes:
    """The README's construction, written from the README: proto3 JSON, commit, JCS."""
    node = json_format.MessageToDict(event)

    def mac(path: str, raw: bytes) -> str:
        return (
            "hmac-sha256:" + hmac.new(salt, path.encode() + b"\0" + raw, hashlib.sha256).hexdigest()
        )

    for side in ("input", "output"):
        for i, m in enumerate(node.get(side, {}).get("messages", [])):
            for j, part in enumerate(m.get("parts", [])):
                if "text" in part:
                    part["text"] = mac(
                        f"{side}.messages[{i}].parts[{j}].text", part["text"].encode()
                    )
                if "data" in part.get("media", {}):
                    raw = base64.b64decode(part["media"]["data"])
                    part["media"]["data"] = mac(f"{side}.messages[{i}].parts[{j}].media.data", raw)
    for i, part in enumerate(node.get("input", {}).get("systemInstructions", [])):
        part["text"] = mac(f"input.systemInstructions[{i}].text", part["text"].encode())
    # RFC 8785 for this ASCII-keyed, integer/short-float document equals sorted compact JSON.
    return json.dumps(node, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_matches_independent_construction() -> None:
    e = interaction("t1", "id-1", text="héllo \u2028 wörld")
    e.input.system_instructions.add(text="be nice")
    e.input.messages[0].parts.add(
        media=ev.Media(mime_type="image/png", size_bytes=3, sha256="0" * 64, data=b"\x89PN")
    )
    e.model.temperature = 0.25
    committed = canonical.commit(e, SALT)
    assert committed.canonical == independent_canonical(e, SALT)
    assert committed.leaf_hash == hashlib.sha256(b"\x00" + committed.canonical).digest()


def test_content_never_appears_in_clear() -> None:
    e = interaction("t1", text="my secret prompt")
    committed = canonical.commit(e, SALT)
    assert b"secret" not in committed.canonical
    assert committed.content["input.messages[0].parts[0].text"] == "my secret prompt"
    assert b'"userId":"alice"' in committed.canonical  # metadata stays in clear


def test_restore_round_trips() -> None:
    e = interaction("t1", text="round trip")
    e.input.messages[0].parts.add(
        media=ev.Media(mime_type="image/png", size_bytes=2, sha256="0" * 64, data=b"\x00\xff")
    )
    committed = canonical.commit(e, SALT)
    assert canonical.restore(committed.canonical, committed.content) == e


def test_erasure_keeps_leaf_and_drops_content() -> None:
    e = interaction("t1", text="erase me")
    committed = canonical.commit(e, SALT)
    erased = canonical.restore(committed.canonical, None)
    assert erased.input.messages[0].parts[0].text == ""
    assert erased.actor.user_id == "alice"
    assert canonical.leaf_hash(committed.canonical) == committed.leaf_hash


def test_tampered_content_is_named() -> None:
    committed = canonical.commit(interaction("t1", text="original"), SALT)
    content = dict(committed.content)
    content["input.messages[0].parts[0].text"] = "forged"
    problems = canonical.content_problems(committed.canonical, content, SALT)
    assert problems == ["input.messages[0].parts[0].text: content does not match its commitment"]
    assert canonical.content_problems(committed.canonical, committed.content, SALT) == []


def test_every_content_mismatch_is_named_by_its_path() -> None:
    """Content the log does not commit to, a commitment without content, bytes read two ways."""
    e = interaction("t1", text="kept")
    e.input.messages[0].parts.add(
        media=ev.Media(mime_type="image/png", size_bytes=1, sha256="0" * 64, data=b"A")
    )
    committed = canonical.commit(e, SALT)
    data = "input.messages[0].parts[1].media.data"
    assert committed.content[data] == "QQ=="
    text = "input.messages[0].parts[0].text"
    cases = {
        "QR==": f"{data}: bytes not in canonical base64",  # decodes to b"A" leniently
        "QQ": f"{data}: bytes not in canonical base64",
        "!!!!": f"{data}: bytes not in canonical base64",
        "Qg==": f"{data}: content does not match its commitment",
    }
    for value, problem in cases.items():
        content = {**committed.content, data: value}
        assert canonical.content_problems(committed.canonical, content, SALT) == [problem], value
    extra = {**committed.content, "input.messages[0].parts[2].text": "unlogged"}
    assert canonical.content_problems(committed.canonical, extra, SALT) == [
        "input.messages[0].parts[2].text: content without a commitment"
    ]
    missing = {p: v for p, v in committed.content.items() if p != text}
    assert canonical.content_problems(committed.canonical, missing, SALT) == [
        f"{text}: commitment without content"
    ]


def test_metadata_that_looks_like_a_commitment_survives() -> None:
    e = interaction("t1")
    e.actor.user_id = "hmac-sha256:not-a-commitment"
    committed = canonical.commit(e, SALT)
    assert (
        canonical.restore(committed.canonical, None).actor.user_id == "hmac-sha256:not-a-commitment"
    )


def test_salt_hides_equal_content() -> None:
    e = interaction("t1", text="same")
    assert canonical.commit(e, SALT).canonical != canonical.commit(e, bytes(32)).canonical


@given(st.text(), st.text())
def test_commit_restore_property(prompt: str, user: str) -> None:
    e = interaction("t1", text=prompt, user=user)
    committed = canonical.commit(e, SALT)
    assert canonical.restore(committed.canonical, committed.content) == e
    assert canonical.content_problems(committed.canonical, committed.content, SALT) == []
