"""The sealed content format: XAES-256-GCM against C2SP's vectors, binding, damage."""

from __future__ import annotations

import os

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aiaudit.common.keys import seal
from aiaudit.common.keys.seal import DataKey, SealError

NONCE = b"ABCDEFGHIJKLMNOPQRSTUVWX"


@pytest.mark.parametrize(
    ("key", "aad", "expected"),
    [
        (b"\x01" * 32, b"", "ce546ef63c9cc60765923609b33a9a1974e96e52daf2fcf7075e2271"),
        (
            b"\x03" * 32,
            b"c2sp.org/XAES-256-GCM",
            "986ec1832593df5443a179437fd083bf3fdb41abd740a21f71eb769d",
        ),
    ],
)
def test_xaes_matches_the_c2sp_vectors(key: bytes, aad: bytes, expected: str) -> None:
    """https://c2sp.org/XAES-256-GCM, "Test vectors": ciphertext || tag."""
    sealed = DataKey(key).xaes(NONCE).encrypt(NONCE[12:], b"XAES-256-GCM", aad)
    assert sealed.hex() == expected


def test_each_nonce_derives_another_key() -> None:
    key = DataKey(os.urandom(32))
    one, other = key.xaes(NONCE), key.xaes(b"B" + NONCE[1:])
    body = one.encrypt(NONCE[12:], b"text", None)
    with pytest.raises(InvalidTag):
        other.decrypt(NONCE[12:], body, None)
    assert key.xaes(b"ABCDEFGHIJKL" + b"x" * 12).decrypt(NONCE[12:], body, None) == b"text", (
        "only the first 12 bytes of the nonce choose the key"
    )


def test_a_sealed_row_opens_to_its_salt_and_content_and_only_for_its_event() -> None:
    key, salt = DataKey(os.urandom(32)), os.urandom(32)
    row = seal.seal(key, -7, "acme", "e-1", salt, b'{"input.text":"hi"}')
    assert row[0] == seal.XAES_256_GCM and seal.is_sealed(row) and seal.key_id_of(row) == -7
    assert len(row) == 1 + 8 + 24 + 32 + 19 + 16
    assert seal.open_sealed(key, "acme", "e-1", row) == (salt, b'{"input.text":"hi"}')
    assert seal.seal(key, -7, "acme", "e-1", salt, b"{}") != seal.seal(
        key, -7, "acme", "e-1", salt, b"{}"
    ), "a fresh nonce each time"
    for log_id, event_id in [("acme", "e-2"), ("other", "e-1")]:
        with pytest.raises(SealError, match=f"{event_id!r} in log {log_id!r}"):
            seal.open_sealed(key, log_id, event_id, row)
    with pytest.raises(SealError):
        seal.open_sealed(DataKey(os.urandom(32)), "acme", "e-1", row)


def test_any_changed_byte_or_a_cut_row_is_refused() -> None:
    key = DataKey(os.urandom(32))
    row = seal.seal(key, 9, "acme", "e-1", os.urandom(32), b"{}")
    for i in range(1, len(row)):
        changed = row[:i] + bytes([row[i] ^ 0x40]) + row[i + 1 :]
        with pytest.raises(SealError):
            seal.open_sealed(key, "acme", "e-1", changed)
    for cut in (0, 1, 9, 20, 33, 40, len(row) - 1):
        with pytest.raises(SealError):
            seal.open_sealed(key, "acme", "e-1", row[:cut])
    with pytest.raises(SealError, match="does not open"):  # a format that does not exist
        seal.open_sealed(key, "acme", "e-1", b"\x03" + row[1:])


def test_rows_of_the_first_format_still_open() -> None:
    """0x01 || key id || 12-byte nonce || AES-256-GCM, as sealed before XAES-256-GCM."""
    raw, salt = os.urandom(32), os.urandom(32)
    kid, nonce = (5).to_bytes(8, "big"), os.urandom(12)
    aad = b"aiaudit content v1\x00acme\x00e-1" + kid
    row = b"\x01" + kid + nonce + AESGCM(raw).encrypt(nonce, salt + b"{}", aad)
    assert seal.is_sealed(row) and seal.key_id_of(row) == 5
    assert seal.open_sealed(DataKey(raw), "acme", "e-1", row) == (salt, b"{}")
    with pytest.raises(SealError):
        seal.open_sealed(DataKey(raw), "acme", "e-2", row)


def test_content_json_is_not_taken_for_a_sealed_row() -> None:
    assert not seal.is_sealed(b'{"input.text":"x"}') and not seal.is_sealed(b"")
