"""The sealed form of a content row: salt and content under the subject's data key.

``event_content.content`` holds either the content JSON (a row written before
encryption, or by a store configured without a KEK: it starts with ``{``) or

    0x02 || key_id (8 bytes, big-endian) || nonce (24) || XAES-256-GCM(salt || content JSON)

with the salt column empty. XAES-256-GCM (https://c2sp.org/XAES-256-GCM)
derives a fresh AES-256-GCM key from the data key and the first 12 bytes of
the random nonce, so one subject's key can seal any number of events: plain
AES-GCM with random 96-bit nonces passes NIST's limit after 2^32 events under
one key, which the shared subject ``""`` of a busy tenant reaches in months.
Rows sealed before (``0x01 || key_id || nonce (12) || AES-256-GCM(...)``)
still open. The associated data binds the ciphertext to its log, event id and
key, so a sealed row copied onto another event fails to open.
"""

from __future__ import annotations

import os
import threading

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

AES_GCM = 0x01
XAES_256_GCM = 0x02
_NONCE = {AES_GCM: 12, XAES_256_GCM: 24}
SALT_BYTES = 32
_LABEL = {AES_GCM: b"aiaudit content v1\x00", XAES_256_GCM: b"aiaudit content v2\x00"}
_MASK = (1 << 128) - 1


class SealError(ValueError):
    """A sealed row does not open: altered, or copied from another event."""


class DataKey:
    """A subject's 256-bit data key; thread-safe.

    ``wrapped`` is the stored form it was opened from (or made as): a key held
    in memory stands for a stored row only while the row still holds exactly
    that, so an altered row is not hidden by a cached key.
    """

    __slots__ = ("_aes_gcm", "_ecb", "_k1", "_lock", "wrapped")

    def __init__(self, key: bytes, wrapped: bytes = b"") -> None:
        """``key``: 32 bytes (ValueError otherwise)."""
        self.wrapped = wrapped
        self._aes_gcm = AESGCM(key)
        self._ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        self._lock = threading.Lock()
        # XAES-256-GCM's CMAC subkey K1: L = AES(K, 0^128) doubled in GF(2^128).
        ell = int.from_bytes(self._ecb.update(bytes(16)), "big")
        k1 = ((ell << 1) & _MASK) ^ (0x87 if ell >> 127 else 0)
        self._k1 = int.from_bytes(k1.to_bytes(16, "big") * 2, "big")

    def xaes(self, nonce: bytes) -> AESGCM:
        """The AES-256-GCM key XAES-256-GCM derives for a 24-byte nonce (SP 800-108r1 KDF)."""
        n = nonce[:12]
        block = int.from_bytes(b"\x00\x01X\x00" + n + b"\x00\x02X\x00" + n, "big") ^ self._k1
        with self._lock:  # ECB carries no state between blocks; the lock guards the context
            derived = self._ecb.update(block.to_bytes(32, "big"))
        return AESGCM(derived)

    def aead(self, mark: int, nonce: bytes) -> AESGCM:
        """The cipher that sealed a row of this format."""
        return self.xaes(nonce) if mark == XAES_256_GCM else self._aes_gcm


def is_sealed(content: bytes) -> bool:
    """Whether a content column holds a sealed row (content JSON starts with ``{``)."""
    return bool(content) and content[0] in _NONCE


def key_id_of(sealed: bytes) -> int:
    """The data key a sealed row names."""
    return int.from_bytes(sealed[1:9], "big", signed=True)


def _aad(mark: int, log_id: str, event_id: str, key_id: bytes) -> bytes:
    return _LABEL[mark] + log_id.encode() + b"\x00" + event_id.encode() + key_id


def seal(
    key: DataKey, key_id: int, log_id: str, event_id: str, salt: bytes, content: bytes
) -> bytes:
    """The sealed row of one event's salt and content JSON."""
    kid = key_id.to_bytes(8, "big", signed=True)
    nonce = os.urandom(24)
    body = key.xaes(nonce).encrypt(
        nonce[12:], salt + content, _aad(XAES_256_GCM, log_id, event_id, kid)
    )
    return bytes([XAES_256_GCM]) + kid + nonce + body


def open_sealed(key: DataKey, log_id: str, event_id: str, sealed: bytes) -> tuple[bytes, bytes]:
    """(salt, content JSON) of a sealed row; :class:`SealError` if it does not open."""
    mark = sealed[0] if sealed else 0
    nonce = sealed[9 : 9 + _NONCE.get(mark, 0)]
    try:
        if not nonce:
            raise ValueError(f"no sealed row of a known format (mark {mark})")
        plain = key.aead(mark, nonce).decrypt(
            nonce[-12:], sealed[9 + len(nonce) :], _aad(mark, log_id, event_id, sealed[1:9])
        )
    except (InvalidTag, ValueError) as exc:
        raise SealError(
            f"the sealed content of event {event_id!r} in log {log_id!r} does not open "
            f"under data key {key_id_of(sealed)}: altered or moved"
        ) from exc
    return plain[:SALT_BYTES], plain[SALT_BYTES:]
