"""The sealed form of a content row: salt and content under the subject's data key.

``event_content.content`` holds either the content JSON (a row written before
encryption, or by a store configured without a KEK: it starts with ``{``) or

    0x01 || key_id (8 bytes, big-endian) || nonce (12) || AES-256-GCM(salt || content JSON)

with the salt column empty. The associated data binds the ciphertext to its
log, event id and key, so a sealed row copied onto another event fails to open.
"""

from __future__ import annotations

import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MARK = 0x01
_HEAD = 1 + 8 + 12
SALT_BYTES = 32


class SealError(ValueError):
    """A sealed row does not open: altered, or copied from another event."""


def is_sealed(content: bytes) -> bool:
    """Whether a content column holds a sealed row (content JSON starts with ``{``)."""
    return bool(content) and content[0] == MARK


def key_id_of(sealed: bytes) -> int:
    """The data key a sealed row names."""
    return int.from_bytes(sealed[1:9], "big", signed=True)


def _aad(log_id: str, event_id: str, key_id: bytes) -> bytes:
    return b"aiaudit content v1\x00" + log_id.encode() + b"\x00" + event_id.encode() + key_id


def seal(
    key: AESGCM, key_id: int, log_id: str, event_id: str, salt: bytes, content: bytes
) -> bytes:
    """The sealed row of one event's salt and content JSON."""
    kid = key_id.to_bytes(8, "big", signed=True)
    nonce = secrets.token_bytes(12)
    body = key.encrypt(nonce, salt + content, _aad(log_id, event_id, kid))
    return bytes([MARK]) + kid + nonce + body


def open_sealed(key: AESGCM, log_id: str, event_id: str, sealed: bytes) -> tuple[bytes, bytes]:
    """(salt, content JSON) of a sealed row; :class:`SealError` if it does not open."""
    try:
        plain = key.decrypt(sealed[9:_HEAD], sealed[_HEAD:], _aad(log_id, event_id, sealed[1:9]))
    except (InvalidTag, ValueError) as exc:
        raise SealError(
            f"the sealed content of event {event_id!r} in log {log_id!r} does not open "
            f"under data key {key_id_of(sealed)}: altered or moved"
        ) from exc
    return plain[:SALT_BYTES], plain[SALT_BYTES:]
