"""Checkpoints read back by a parser written here from the C2SP specs alone.

``spec_read_checkpoint`` follows the wording of c2sp.org/signed-note and
c2sp.org/tlog-checkpoint line by line, shares no code with note.py, and
checks the Ed25519 signature itself, so a misreading of the spec in note.py
shows up as a disagreement here.
"""

from __future__ import annotations

import binascii
import hashlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from aiaudit.integrity import merkle, note
from aiaudit.integrity.note import Checkpoint, NoteError


class SpecError(Exception):
    pass


@dataclass
class SpecCheckpoint:
    origin: str
    tree_size: int
    root_hash: bytes
    extension_lines: list[str]
    signer_names: list[str]


def spec_read_checkpoint(signed: str, key_name: str, public_key: bytes) -> SpecCheckpoint:
    # signed-note: "MUST NOT contain any ASCII control characters ... other than newline".
    for ch in signed:
        if ord(ch) < 0x20 and ch != "\n":
            raise SpecError("control character")
    # "the text is separated from the signatures by the last empty line in the note".
    lines = signed.split("\n")
    if lines[-1] != "":
        raise SpecError("a signed note ends with a newline")
    lines = lines[:-1]
    blank = max((i for i, line in enumerate(lines) if line == ""), default=None)
    if blank is None:
        raise SpecError("no blank line")
    text_lines, signature_lines = lines[:blank], lines[blank + 1 :]
    if not signature_lines:
        raise SpecError("one or more signature lines are required")
    # "The note text includes the final newline but not the separating blank line."
    text = "".join(line + "\n" for line in text_lines)

    # Signature line: em dash, space, key name, space, base64(key ID || signature).
    want_id = hashlib.sha256(key_name.encode() + b"\x0a" + b"\x01" + public_key).digest()[:4]
    signer_names = []
    verified = False
    for line in signature_lines:
        if not line.startswith("\u2014 "):
            raise SpecError("signature line must start with em dash and space")
        name, space, encoded = line[2:].partition(" ")
        if not space or not name or " " in encoded:
            raise SpecError("bad signature line")
        raw = binascii.a2b_base64(encoded.encode("ascii"), strict_mode=True)
        signer_names.append(name)
        if name == key_name and raw[:4] == want_id:
            try:
                Ed25519PublicKey.from_public_bytes(public_key).verify(raw[4:], text.encode())
            except InvalidSignature:
                raise SpecError("signature from the known key fails") from None
            verified = True
    if not verified:
        raise SpecError("no signature from the known key")

    # tlog-checkpoint: at least three non-empty lines.
    if len(text_lines) < 3 or "" in text_lines:
        raise SpecError("need at least three non-empty lines")
    origin, size_text, root_text = text_lines[:3]
    # "ASCII decimal ... with no leading zeroes (unless the tree is empty ...)".
    if not size_text or any(c not in "0123456789" for c in size_text):
        raise SpecError("tree size is not ASCII decimal")
    if size_text != "0" and size_text.startswith("0"):
        raise SpecError("leading zero")
    root_hash = binascii.a2b_base64(root_text.encode("ascii"), strict_mode=True)
    if len(root_hash) != 32:
        raise SpecError("an RFC 6962 SHA-256 root is 32 bytes")
    return SpecCheckpoint(origin, int(size_text), root_hash, text_lines[3:], signer_names)


def fresh_signer(name: str) -> note.NoteSigner:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return note.NoteSigner(name, public, key.sign)


key_names = st.text(
    st.characters(
        blacklist_categories=["Cc", "Cs", "Zs", "Zl", "Zp"],
        blacklist_characters="+\x85\u180e\u200b\u2028\u2029\ufeff",
    ),
    min_size=1,
    max_size=30,
).filter(lambda s: not any(c.isspace() for c in s))
line_text = st.text(
    st.characters(blacklist_categories=["Cc", "Cs"]), min_size=1, max_size=40
).filter(lambda s: "\n" not in s)


@settings(max_examples=200, deadline=None)
@given(
    origin=key_names,
    size=st.integers(min_value=0, max_value=2**64 - 1),
    root_hash=st.binary(min_size=32, max_size=32),
    extensions=st.lists(line_text, max_size=3),
)
def test_independent_reader_agrees_with_what_note_writes(
    origin: str, size: int, root_hash: bytes, extensions: list[str]
) -> None:
    signer = fresh_signer(origin)
    signed = note.sign_checkpoint(Checkpoint(origin, size, root_hash, tuple(extensions)), [signer])
    read = spec_read_checkpoint(signed, origin, signer.public_key)
    assert (read.origin, read.tree_size, read.root_hash) == (origin, size, root_hash)
    assert read.extension_lines == extensions
    assert read.signer_names == [origin]
    assert note.open_checkpoint(signed, [signer.verifier_key], origin=origin) == Checkpoint(
        origin, size, root_hash, tuple(extensions)
    )


def test_checkpoint_of_a_real_tree_proves_inclusion_for_an_outside_verifier(
    tmp_path: Path,
) -> None:
    origin = "audit.example/log/tenant-a"
    store = merkle.MemoryNodeStore()
    edge = merkle.CompactRange()
    leaves = [merkle.leaf_hash(b"event %d" % i) for i in range(37)]
    store.write_nodes(edge.extend(leaves))
    signer = note.file_signer(origin, tmp_path / "notary.pem")
    signed = note.sign_checkpoint(Checkpoint(origin, edge.size, edge.root()), [signer])

    published = signer.verifier_key.encode()
    public_key = note.parse_verifier_key(published).public_key
    read = spec_read_checkpoint(signed, origin, public_key)
    assert read.tree_size == 37
    proof = merkle.inclusion_proof(20, read.tree_size, store)
    merkle.verify_inclusion(20, read.tree_size, leaves[20], proof, read.root_hash)


def test_empty_tree_checkpoint() -> None:
    signer = fresh_signer("log.example/empty")
    signed = note.sign_checkpoint(Checkpoint("log.example/empty", 0, merkle.EMPTY_ROOT), [signer])
    assert signed.startswith(
        "log.example/empty\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n"
    )
    read = spec_read_checkpoint(signed, "log.example/empty", signer.public_key)
    assert (read.tree_size, read.root_hash) == (0, merkle.EMPTY_ROOT)


ROOT = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="


@pytest.mark.parametrize(
    "text",
    [
        f"o\n007\n{ROOT}\n",
        f"o\n-1\n{ROOT}\n",
        f"o\n+1\n{ROOT}\n",
        f"o\n 1\n{ROOT}\n",
        f"o\n1 \n{ROOT}\n",
        f"o\n\u0661\n{ROOT}\n",
        f"o\n18446744073709551616\n{ROOT}\n",
        "o\n1\n",
        f"\n1\n{ROOT}\n",
        f"o\n1\n{ROOT}\n\next\n",
        f"o\n1\n{ROOT}",
        "o\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU\n",
        "o\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFV=\n",
        "o\n1\nAAAA\n",
        "o\n1\n47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU=\n",
        f"o\n1\n{ROOT}\nbad\ttab\n",
    ],
)
def test_malformed_checkpoint_texts_are_rejected(text: str) -> None:
    with pytest.raises(NoteError):
        note.parse_checkpoint(text)


def test_strict_parse_keeps_the_tree_size_and_extensions() -> None:
    text = f"o\n18446744073709551615\n{ROOT}\nfirst ext\nsecond\n"
    checkpoint = note.parse_checkpoint(text)
    assert checkpoint.size == 2**64 - 1
    assert checkpoint.extensions == ("first ext", "second")
    assert note.format_checkpoint(checkpoint) == text


def test_open_checkpoint_requires_the_expected_origin() -> None:
    signer = fresh_signer("log.example/a")
    signed = note.sign_checkpoint(Checkpoint("log.example/a", 1, b"\x00" * 32), [signer])
    assert note.open_checkpoint(signed, [signer.verifier_key], origin="log.example/a").size == 1
    with pytest.raises(NoteError, match="origin"):
        note.open_checkpoint(signed, [signer.verifier_key], origin="log.example/b")


@pytest.mark.parametrize(
    "checkpoint",
    [
        Checkpoint("", 1, b"\x00" * 32),
        Checkpoint("a\nb", 1, b"\x00" * 32),
        Checkpoint("o", -1, b"\x00" * 32),
        Checkpoint("o", 2**64, b"\x00" * 32),
        Checkpoint("o", 1, b"\x00" * 31),
        Checkpoint("o", 1, b"\x00" * 32, ("",)),
        Checkpoint("o", 1, b"\x00" * 32, ("a\nb",)),
    ],
)
def test_unformattable_checkpoints_are_refused(checkpoint: Checkpoint) -> None:
    with pytest.raises(NoteError):
        note.format_checkpoint(checkpoint)
