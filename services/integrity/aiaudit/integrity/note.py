"""C2SP signed notes and transparency log checkpoints, signed with Ed25519.

A checkpoint (c2sp.org/tlog-checkpoint) is the log's signed statement "the
tree of this origin had this many leaves and this root". It is carried as a
signed note (c2sp.org/signed-note) so that any C2SP or Go ``sumdb/note``
verifier can check it offline with only the published verifier key string
``name+keyid+base64(0x01 || public key)``.

Signing goes through a plain callable (message -> 64-byte Ed25519 signature)
so the private key can stay where it lives: a local key file for the embedded
default (``file_signer``), Vault / OpenBao Transit in production, which signs
Ed25519 messages unhashed and so yields the same bytes.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hashlib
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

Signer = Callable[[bytes], bytes]
"""Signs a message with Ed25519 and returns the 64-byte signature."""
BatchSigner = Callable[[Sequence[bytes]], list[bytes]]
"""Signs several messages in one call (a remote key store's batch API), in order."""

ED25519_TYPE = 0x01
"""Signature type byte of Ed25519 in c2sp.org/signed-note."""

KEY_ID_SIZE = 4
PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
ROOT_HASH_SIZE = 32
MAX_SIGNATURES = 100
"""Signature lines accepted per note; the spec requires at least 16 and asks for a limit."""

MAX_TREE_SIZE = 2**64 - 1
"""Tree sizes are uint64 in RFC 6962 and the C2SP specs; larger numbers are malformed."""

_SIGNATURE_PREFIX = "\u2014 "  # em dash, space
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")
_TREE_SIZE = re.compile(r"0|[1-9][0-9]*")


class NoteError(ValueError):
    """A note, checkpoint or key string is malformed or does not verify."""


def _b64decode(text: str, what: str) -> bytes:
    """Strict standard base64: the alphabet, padding, and only the canonical encoding."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise NoteError(f"{what} is not base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteError(f"{what} is not canonical base64")
    return raw


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def check_key_name(name: str) -> None:
    """Refuses names the spec forbids: empty, containing '+', spaces or control characters."""
    if not name:
        raise NoteError("key name is empty")
    if "+" in name or any(ch.isspace() for ch in name) or _CONTROL.search(name):
        raise NoteError(f"key name {name!r} contains '+', a space or a control character")


def _check_text(text: str) -> None:
    """Note text rules: valid UTF-8, ends in newline, no control characters but newline."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteError("note text is not valid UTF-8") from None
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    if _CONTROL.search(text):
        raise NoteError("note text contains a control character")


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key ID: ``SHA-256(name || 0x0A || 0x01 || public key)[:4]``."""
    material = name.encode("utf-8") + b"\n" + bytes([ED25519_TYPE]) + public_key
    return hashlib.sha256(material).digest()[:KEY_ID_SIZE]


@dataclass(frozen=True)
class VerifierKey:
    """A named Ed25519 public key that verifies note signatures."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        """Rejects names and keys that could never appear in a valid note."""
        check_key_name(self.name)
        if len(self.public_key) != PUBLIC_KEY_SIZE:
            raise NoteError(f"Ed25519 public keys are {PUBLIC_KEY_SIZE} bytes")

    @property
    def key_id(self) -> bytes:
        """The 4-byte ID that signature lines carry for this key."""
        return key_id(self.name, self.public_key)

    def encode(self) -> str:
        """The verifier key string ``name+hexkeyid+base64(0x01 || public key)``."""
        typed = bytes([ED25519_TYPE]) + self.public_key
        return f"{self.name}+{self.key_id.hex()}+{_b64encode(typed)}"

    @functools.cached_property
    def _ed25519(self) -> Ed25519PublicKey:
        """The parsed key, once per key rather than once per signature (``verify`` checks many)."""
        return Ed25519PublicKey.from_public_bytes(self.public_key)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message``."""
        if len(signature) != SIGNATURE_SIZE:
            return False
        try:
            self._ed25519.verify(signature, message)
        except InvalidSignature:
            return False
        return True


def parse_verifier_key(text: str) -> VerifierKey:
    """Reads ``name+hexkeyid+base64(0x01 || public key)``; the key ID must match the key."""
    parts = text.split("+", 2)  # names hold no '+'; base64 may
    if len(parts) != 3:
        raise NoteError("verifier key must be name+keyid+key")
    name, hex_id, encoded = parts
    check_key_name(name)
    if not _KEY_ID_HEX.fullmatch(hex_id):
        raise NoteError("verifier key ID must be 8 lowercase hex digits")
    typed = _b64decode(encoded, "verifier key")
    if len(typed) != 1 + PUBLIC_KEY_SIZE or typed[0] != ED25519_TYPE:
        raise NoteError("verifier key is not an Ed25519 key")
    key = VerifierKey(name, typed[1:])
    if key.key_id.hex() != hex_id:
        raise NoteError("verifier key ID does not match its name and key")
    return key


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, key ID and the signature bytes after the ID."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        """The signature line, newline included."""
        encoded = _b64encode(self.key_id + self.signature)
        return f"{_SIGNATURE_PREFIX}{self.name} {encoded}\n"


@dataclass(frozen=True)
class SignedNote:
    """A note split into its text (final newline included) and signature lines."""

    text: str
    signatures: tuple[NoteSignature, ...]


@dataclass(frozen=True)
class VerifiedNote:
    """A note with at least one valid signature from a known key."""

    text: str
    verified_by: tuple[VerifierKey, ...]
    unknown: tuple[NoteSignature, ...]
    """Signatures from keys the caller did not pass (witnesses, rotated keys): ignored."""


def _parse_signature_line(line: str) -> NoteSignature:
    if not line.startswith(_SIGNATURE_PREFIX):
        raise NoteError("signature line must start with an em dash and a space")
    fields = line[len(_SIGNATURE_PREFIX) :].split(" ")
    if len(fields) != 2:
        raise NoteError("signature line must be: em dash, space, name, space, base64")
    name, encoded = fields
    check_key_name(name)
    raw = _b64decode(encoded, "signature")
    if len(raw) <= KEY_ID_SIZE:
        raise NoteError("signature is too short to hold a key ID and a signature")
    return NoteSignature(name, raw[:KEY_ID_SIZE], raw[KEY_ID_SIZE:])


def parse_note(note: str | bytes) -> SignedNote:
    """Splits a signed note at its last blank line and parses the signature lines.

    Only the structure is checked here; ``open_note`` decides whether to trust it.
    """
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("note is not valid UTF-8") from None
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    _check_text(text)
    if not block.endswith("\n"):
        raise NoteError("note must end with a signature line and a newline")
    if _CONTROL.search(block):
        raise NoteError("signature block contains a control character")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has more than {MAX_SIGNATURES} signatures")
    return SignedNote(text, tuple(_parse_signature_line(line) for line in lines))


def open_note(note: str | bytes, verifiers: Iterable[VerifierKey]) -> VerifiedNote:
    """Verifies a signed note against trusted keys, as c2sp.org/signed-note prescribes.

    Signatures whose (name, key ID) match no trusted key are ignored; every
    signature from a trusted key must verify, or the whole note is rejected;
    at least one must be present.
    """
    known: dict[tuple[str, bytes], VerifierKey] = {}
    for trusted in verifiers:
        other = known.setdefault((trusted.name, trusted.key_id), trusted)
        if other.public_key != trusted.public_key:
            raise NoteError(f"two verifier keys share name and ID {other.encode()}")
    parsed = parse_note(note)
    message = parsed.text.encode("utf-8")
    verified: list[VerifierKey] = []
    unknown: list[NoteSignature] = []
    for sig in parsed.signatures:
        key = known.get((sig.name, sig.key_id))
        if key is None:
            unknown.append(sig)
        elif not key.verify(message, sig.signature):
            raise NoteError(f"invalid signature for key {sig.name}+{sig.key_id.hex()}")
        elif key not in verified:
            verified.append(key)
    if not verified:
        raise NoteError("note has no signature from a trusted key")
    return VerifiedNote(parsed.text, tuple(verified), tuple(unknown))


@dataclass(frozen=True)
class NoteSigner:
    """A key name, its Ed25519 public key, and the callable that signs with it."""

    name: str
    public_key: bytes
    sign: Signer
    sign_many: BatchSigner | None = None
    """Several messages in one call; None: one ``sign`` each."""

    def __post_init__(self) -> None:
        """Validates name and key up front, so a bad configuration fails at startup."""
        VerifierKey(self.name, self.public_key)

    @property
    def verifier_key(self) -> VerifierKey:
        """The public half, to publish as a verifier key string."""
        return VerifierKey(self.name, self.public_key)


def sign_note(text: str, signers: Sequence[NoteSigner]) -> str:
    """Signs a note text with each signer; returns the complete signed note.

    Each signature is verified against the signer's public key before it is
    used: a remote signer pointed at the wrong key (or key version) must not
    publish checkpoints that nobody can verify.
    """
    return sign_notes([text], signers)[0]


def sign_notes(texts: Sequence[str], signers: Sequence[NoteSigner]) -> list[str]:
    """``sign_note`` of each text, each signer asked once for all of them when it can.

    With Vault a signature is a round trip: a notary signing the checkpoints
    of hundreds of logs each second paid one per log.
    """
    for text in texts:
        _check_text(text)
    if not signers:
        raise NoteError("a note needs at least one signer")
    messages = [text.encode("utf-8") for text in texts]
    lines: list[list[str]] = [[] for _ in texts]
    for signer in signers:
        if signer.sign_many is not None and len(messages) > 1:
            signatures = signer.sign_many(messages)
        else:
            signatures = [signer.sign(m) for m in messages]
        key = signer.verifier_key
        if len(signatures) != len(messages):
            raise NoteError(
                f"signer for {key.name}+{key.key_id.hex()} returned {len(signatures)} "
                f"signatures for {len(messages)} notes"
            )
        for message, signature, out in zip(messages, signatures, lines, strict=True):
            if not key.verify(message, signature):
                raise NoteError(
                    f"signer for {key.name}+{key.key_id.hex()} returned a bad signature"
                )
            out.append(NoteSignature(key.name, key.key_id, signature).line())
    return [text + "\n" + "".join(out) for text, out in zip(texts, lines, strict=True)]


@dataclass(frozen=True)
class Checkpoint:
    """The note text of c2sp.org/tlog-checkpoint: origin, tree size, root hash, extensions."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()


def format_checkpoint(checkpoint: Checkpoint) -> str:
    """The checkpoint note text, one field per line, final newline included."""
    if not checkpoint.origin or "\n" in checkpoint.origin:
        raise NoteError("origin must be one non-empty line")
    if not 0 <= checkpoint.size <= MAX_TREE_SIZE:
        raise NoteError("tree size must fit in 64 bits")
    if len(checkpoint.root_hash) != ROOT_HASH_SIZE:
        raise NoteError(f"root hash must be {ROOT_HASH_SIZE} bytes")
    for line in checkpoint.extensions:
        if not line or "\n" in line:
            raise NoteError("extension lines must be single non-empty lines")
    lines = [
        checkpoint.origin,
        str(checkpoint.size),
        _b64encode(checkpoint.root_hash),
        *checkpoint.extensions,
    ]
    text = "\n".join(lines) + "\n"
    _check_text(text)
    return text


def parse_checkpoint(text: str) -> Checkpoint:
    """Reads a checkpoint note text strictly: exactly the lines and encodings the spec allows."""
    _check_text(text)
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError("checkpoint needs origin, tree size and root hash lines")
    if any(not line for line in lines):
        raise NoteError("checkpoint lines must not be empty")
    origin, size_line, root_line, *extensions = lines
    if not _TREE_SIZE.fullmatch(size_line):
        raise NoteError("tree size must be decimal digits without leading zeroes")
    size = int(size_line)
    if size > MAX_TREE_SIZE:
        raise NoteError("tree size must fit in 64 bits")
    root_hash = _b64decode(root_line, "root hash")
    if len(root_hash) != ROOT_HASH_SIZE:
        raise NoteError(f"root hash must be {ROOT_HASH_SIZE} bytes")
    return Checkpoint(origin, size, root_hash, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signers: Sequence[NoteSigner]) -> str:
    """The checkpoint as a signed note."""
    return sign_note(format_checkpoint(checkpoint), signers)


def open_checkpoint(
    note: str | bytes, verifiers: Iterable[VerifierKey], origin: str | None = None
) -> Checkpoint:
    """Verifies a signed checkpoint and returns its contents.

    Pass ``origin`` to also require the log identity the caller expects: a
    valid signature by the right key over another log's checkpoint is not a
    statement about this log.
    """
    checkpoint = parse_checkpoint(open_note(note, verifiers).text)
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(f"checkpoint origin {checkpoint.origin!r} is not {origin!r}")
    return checkpoint


def _load_key(path: Path) -> Ed25519PrivateKey:
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode) or mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PermissionError(f"{path} must be a regular file readable by its owner only (0600)")
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 key in ``path`` (PKCS#8 PEM, mode 0600), generated on first use.

    A new key is written to a private temporary file and hard-linked into
    place, so a concurrent starter either wins or reads the winner's key, and
    no reader ever sees a partly written file.
    """
    if path.exists():
        return _load_key(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # created 0600
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):  # another starter won: use its key
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
    return _load_key(path)


def file_signer(name: str, path: Path) -> NoteSigner:
    """A note signer over a local key file: the embedded default, no Vault needed."""
    key = load_or_create_key(path)
    public_key = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return NoteSigner(name, public_key, key.sign)
