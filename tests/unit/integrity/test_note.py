"""Signed notes against the Go sumdb/note test keys and the C2SP spec examples."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aiaudit.integrity import note
from aiaudit.integrity.note import NoteError, NoteSigner, VerifierKey

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "signed_note.json").read_text(encoding="utf-8")
)
GO = VECTORS["go_sumdb_note"]
PETER = note.parse_verifier_key(GO["peter_verifier_key"])
ENOCH = note.parse_verifier_key(GO["enoch_verifier_key"])
TEXT: str = GO["text"]
PETER_SIG: str = GO["peter_signature_line"]
ENOCH_SIG: str = GO["enoch_signature_line"]


def peter_signer() -> NoteSigner:
    """The Go test's private key: PRIVATE+KEY+name+keyid+base64(0x01 || seed)."""
    _, _, name, hex_id, encoded = GO["peter_private_key"].split("+", 4)
    typed = base64.b64decode(encoded)
    assert typed[0] == 0x01
    key = Ed25519PrivateKey.from_private_bytes(typed[1:])
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    signer = NoteSigner(name, public, key.sign)
    assert signer.verifier_key.key_id.hex() == hex_id
    return signer


def fresh_signer(name: str) -> NoteSigner:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return NoteSigner(name, public, key.sign)


def test_verifier_key_parses_and_round_trips() -> None:
    assert PETER.name == "PeterNeumann"
    assert PETER.key_id == bytes.fromhex("c74f20a3")
    assert PETER.encode() == GO["peter_verifier_key"]
    assert ENOCH.key_id == bytes.fromhex("af0cfe78")
    assert ENOCH.encode() == GO["enoch_verifier_key"]


@pytest.mark.parametrize("bad", GO["bad_verifier_keys"])
def test_published_bad_verifier_keys_are_rejected(bad: str) -> None:
    with pytest.raises(NoteError):
        note.parse_verifier_key(bad)


def test_every_mangled_verifier_key_is_rejected() -> None:
    good = GO["peter_verifier_key"]
    for i in range(len(good) + 1):
        for j in range(i + 1, len(good) + 1):
            if (i, j) != (0, len(good)):
                with pytest.raises(NoteError):
                    note.parse_verifier_key(good[i:j])
    for i in range(len(good)):
        mangled = good[:i] + chr(ord(good[i]) + 1) + good[i + 1 :]
        with pytest.raises(NoteError):
            note.parse_verifier_key(mangled)


def test_signing_with_the_go_test_key_reproduces_its_note() -> None:
    signer = peter_signer()
    assert signer.verifier_key == PETER
    assert note.sign_note(TEXT, [signer]) == GO["signed_by_peter"]


def test_go_note_verifies() -> None:
    opened = note.open_note(GO["signed_by_peter"], [PETER])
    assert opened.text == TEXT
    assert opened.verified_by == (PETER,)
    assert opened.unknown == ()


def test_unknown_keys_are_ignored_but_one_known_key_is_required() -> None:
    both = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    opened = note.open_note(both, [PETER])
    assert opened.verified_by == (PETER,)
    assert [s.name for s in opened.unknown] == ["EnochRoot"]
    assert note.open_note(both, [PETER, ENOCH]).verified_by == (PETER, ENOCH)
    assert note.open_note(both, [ENOCH]).verified_by == (ENOCH,)
    with pytest.raises(NoteError, match="no signature from a trusted key"):
        note.open_note(both, [])


def test_a_corrupt_signature_from_a_known_key_rejects_the_note() -> None:
    corrupt = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(NoteError, match="invalid signature"):
        note.open_note(TEXT + "\n" + corrupt, [PETER])
    # The same corruption from a key the verifier does not know is ignored.
    enoch_corrupt = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    opened = note.open_note(
        TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + enoch_corrupt, [PETER]
    )
    assert opened.verified_by == (PETER,)
    assert len(opened.unknown) == 3


def test_every_single_byte_change_is_rejected() -> None:
    signed = GO["signed_by_peter"].encode("utf-8")
    for i in range(len(signed)):
        for mask in (0x01, 0x20, 0x80):
            changed = signed[:i] + bytes([signed[i] ^ mask]) + signed[i + 1 :]
            with pytest.raises(NoteError):
                note.open_note(changed, [PETER])


@pytest.mark.parametrize(
    "bad",
    [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Bad Name"),
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        TEXT + "\n" + PETER_SIG.replace("\u2014", "--"),
        TEXT + "\n" + PETER_SIG.replace("=\n", "\n"),
        TEXT + "\n" + PETER_SIG * 101,
    ],
)
def test_malformed_notes_are_rejected(bad: str) -> None:
    with pytest.raises(NoteError):
        note.open_note(bad, [PETER])


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (TEXT + PETER_SIG, "no blank line before its signatures"),
        # 4 bytes: a key ID without a signature, malformed even from a key nobody trusts
        (TEXT + "\n" + PETER_SIG + "\u2014 Unknown AAAAAA==\n", "too short"),
        (
            TEXT + "\n" + PETER_SIG + "\u2014 Unknown\x01 AAAAAAA=\n",
            "signature block contains a control",
        ),
    ],
)
def test_malformed_notes_are_rejected_saying_why(bad: str, why: str) -> None:
    with pytest.raises(NoteError, match=why):
        note.open_note(bad, [PETER])


def test_a_verifier_key_id_in_upper_case_is_refused_saying_so() -> None:
    name, hex_id, key = GO["peter_verifier_key"].split("+", 2)
    with pytest.raises(NoteError, match="8 lowercase hex digits"):
        note.parse_verifier_key(f"{name}+{hex_id.upper()}+{key}")


def test_two_trusted_keys_sharing_name_and_id_are_refused() -> None:
    """Which of them a signature line means is undecidable: 9457 and 87522 share ID 2421d95d."""
    one, other = (VerifierKey("log.example/a", n.to_bytes(32, "big")) for n in (9457, 87522))
    assert one.key_id == other.key_id == bytes.fromhex("2421d95d")
    shared = r"two verifier keys share name and ID log\.example/a\+2421d95d\+"
    with pytest.raises(NoteError, match=shared):
        note.open_note(GO["signed_by_peter"], [PETER, one, other])


def test_a_public_key_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(NoteError, match="Ed25519 public keys are 32 bytes"):
        VerifierKey("log.example/a", b"\x00" * 31)


def test_a_text_that_is_no_utf8_is_not_signed() -> None:
    with pytest.raises(NoteError, match="note text is not valid UTF-8"):
        note.sign_note("lone \ud800 surrogate\n", [fresh_signer("log.example/a")])


def test_several_notes_are_signed_in_one_batch_call_one_note_alone() -> None:
    """A signer with a batch API is asked once for all the notes: one Vault round trip."""
    plain = fresh_signer("log.example/a")
    batches: list[int] = []
    singles: list[bytes] = []

    def sign(message: bytes) -> bytes:
        singles.append(message)
        return plain.sign(message)

    def sign_many(messages: Sequence[bytes]) -> list[bytes]:
        batches.append(len(messages))
        return [plain.sign(m) for m in messages]

    batched = NoteSigner(plain.name, plain.public_key, sign, sign_many)
    texts = ["a\n", "b\n", "c\n"]
    signed = note.sign_notes(texts, [batched])
    assert (batches, singles) == ([3], [])
    assert [note.open_note(n, [plain.verifier_key]).text for n in signed] == texts
    note.sign_notes(["x\n", "y\n"], [batched])
    note.sign_notes(["alone\n"], [batched])
    assert (batches, singles) == ([3, 2], [b"alone\n"])
    short = NoteSigner(plain.name, plain.public_key, sign, lambda ms: [plain.sign(ms[0])])
    with pytest.raises(NoteError, match="returned 1 signatures for 3 notes"):
        note.sign_notes(texts, [short])


def test_a_note_without_signers_is_refused() -> None:
    with pytest.raises(NoteError, match="at least one signer"):
        note.sign_note("hello\n", [])


def test_a_note_takes_up_to_100_signatures() -> None:
    """The spec asks for a limit of at least 16; 101 is refused (above), 100 is not."""
    assert note.open_note(TEXT + "\n" + PETER_SIG * 100, [PETER]).verified_by == (PETER,)


def test_a_note_whose_text_is_one_newline_round_trips() -> None:
    """The blank line that splits a note may be its very first character."""
    signer = fresh_signer("log.example/a")
    signed = note.sign_note("\n", [signer])
    assert signed.startswith("\n\n")
    assert note.open_note(signed, [signer.verifier_key]).text == "\n"


def test_invalid_utf8_is_rejected() -> None:
    with pytest.raises(NoteError, match="UTF-8"):
        note.open_note(b"\xff" + GO["signed_by_peter"].encode(), [PETER])


def test_c2sp_signed_note_example_parses() -> None:
    """The spec's example: the text keeps its inner blank line; the last one splits."""
    example = VECTORS["c2sp_signed_note_example"]
    parsed = note.parse_note(example["note"])
    assert parsed.text == example["text"]
    [sig] = parsed.signatures
    assert sig.name == example["key_name"]
    assert len(sig.key_id) == 4
    assert len(sig.signature) == 64
    assert parsed.text + "\n" + sig.line() == example["note"]
    with pytest.raises(NoteError, match="no signature from a trusted key"):
        note.open_note(example["note"], [PETER])


def test_c2sp_checkpoint_example_parses() -> None:
    example = VECTORS["c2sp_checkpoint_example"]
    parsed = note.parse_note(example["note"])
    checkpoint = note.parse_checkpoint(parsed.text)
    assert checkpoint.origin == example["origin"]
    assert checkpoint.size == example["size"]
    assert checkpoint.root_hash == base64.b64decode(example["root_hash_base64"])
    assert checkpoint.extensions == ()
    assert note.format_checkpoint(checkpoint) == parsed.text
    assert parsed.signatures[0].name == example["origin"]


def test_key_id_is_the_first_four_bytes_of_the_spec_hash() -> None:
    want = hashlib.sha256(b"PeterNeumann\n\x01" + PETER.public_key).digest()[:4]
    assert note.key_id("PeterNeumann", PETER.public_key) == want == PETER.key_id


def test_rotation_old_and_new_keys_both_verify() -> None:
    old, new = fresh_signer("log.example/a"), fresh_signer("log.example/a")
    signed = note.sign_note("log.example/a\n1\n" + "A" * 43 + "=\n", [new, old])
    assert note.open_note(signed, [old.verifier_key]).verified_by == (old.verifier_key,)
    assert note.open_note(signed, [new.verifier_key]).verified_by == (new.verifier_key,)


def test_a_signer_returning_a_wrong_signature_is_refused() -> None:
    good = fresh_signer("log.example/a")
    other = fresh_signer("log.example/a")
    wrong = NoteSigner(good.name, good.public_key, other.sign)
    with pytest.raises(NoteError, match="bad signature"):
        note.sign_note("hello\n", [wrong])
    short = NoteSigner(good.name, good.public_key, lambda msg: b"\x00" * 10)
    with pytest.raises(NoteError, match="bad signature"):
        note.sign_note("hello\n", [short])


@pytest.mark.parametrize("text", ["", "no newline", "tab\there\n", "nul\x00\n"])
def test_unsignable_texts_are_refused(text: str) -> None:
    with pytest.raises(NoteError):
        note.sign_note(text, [fresh_signer("log.example/a")])


@pytest.mark.parametrize("name", ["", "a+b", "a b", "a\u00a0b", "a\nb"])
def test_invalid_key_names_are_refused(name: str) -> None:
    with pytest.raises(NoteError):
        VerifierKey(name, b"\x00" * 32)


def test_file_signer_creates_a_private_key_file_and_reuses_it(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "notary.pem"
    first = note.file_signer("log.example/a", path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert list(path.parent.iterdir()) == [path]
    again = note.file_signer("log.example/a", path)
    assert again.public_key == first.public_key
    signed = note.sign_note("hello\n", [first])
    key = note.parse_verifier_key(first.verifier_key.encode())
    assert note.open_note(signed, [key]).text == "hello\n"


def test_file_signer_refuses_a_key_file_others_can_read(tmp_path: Path) -> None:
    path = tmp_path / "notary.pem"
    note.file_signer("log.example/a", path)
    path.chmod(0o640)
    with pytest.raises(PermissionError):
        note.file_signer("log.example/a", path)


def test_file_signer_refuses_a_non_ed25519_key(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    path = tmp_path / "notary.pem"
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(0o600)
    with pytest.raises(ValueError, match="Ed25519"):
        note.file_signer("log.example/a", path)


def test_verifier_keys_whose_base64_contains_plus_round_trip() -> None:
    for seed in range(256):
        key = Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)
        public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        encoded = VerifierKey("log.example/a", public).encode()
        if "+" in encoded.split("+", 2)[2]:
            assert note.parse_verifier_key(encoded) == VerifierKey("log.example/a", public)
            return
    pytest.fail("no key with '+' in its base64 among 256 seeds")
