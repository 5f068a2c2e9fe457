"""The embedded mode's KEK: a 0600 key file made once, and AES-GCM wrapping under it."""

from __future__ import annotations

import secrets
import stat
from pathlib import Path

import pytest

from aiaudit.common.keys.kek import KEY_BYTES, FileKek, KekError


def data_keys(n: int) -> list[bytes]:
    return [secrets.token_bytes(KEY_BYTES) for _ in range(n)]


def test_the_key_file_is_made_0600_with_32_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "content.kek"  # its directory is made too
    FileKek(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes()) == KEY_BYTES
    assert path.read_bytes() != bytes(KEY_BYTES)
    assert [p.name for p in path.parent.iterdir()] == ["content.kek"]  # no temp file left


def test_a_second_open_reuses_the_file(tmp_path: Path) -> None:
    path = tmp_path / "content.kek"
    first = FileKek(path)
    key = path.read_bytes()
    second = FileKek(path)
    assert path.read_bytes() == key
    assert second.name == first.name and first.name.startswith("file:")
    assert FileKek(tmp_path / "other.kek").name != first.name  # the name says which key
    keys = data_keys(2)
    assert second.unwrap(first.wrap(keys)) == keys


def test_wrap_and_unwrap_round_trip(tmp_path: Path) -> None:
    kek = FileKek(tmp_path / "content.kek")
    keys = data_keys(4)
    keys.append(keys[0])
    wrapped = kek.wrap(keys)
    assert len(wrapped) == 5
    assert wrapped[0] != wrapped[4]  # a random nonce each: equal keys wrap differently
    assert not any(k in w for k, w in zip(keys, wrapped, strict=True))
    assert kek.unwrap(wrapped) == keys
    assert kek.wrap([]) == [] and kek.unwrap([]) == []


def test_another_files_kek_cannot_unwrap(tmp_path: Path) -> None:
    wrapped = FileKek(tmp_path / "a.kek").wrap(data_keys(1))
    assert FileKek(tmp_path / "b.kek").unwrap(wrapped) == [None]


def test_a_damaged_wrapped_key_does_not_open_and_the_others_do(tmp_path: Path) -> None:
    """Per key: one altered row is damage of that key, not a KEK that cannot be used."""
    kek = FileKek(tmp_path / "content.kek")
    (key,) = data_keys(1)
    (blob,) = kek.wrap([key])
    flipped = blob[:-1] + bytes([blob[-1] ^ 1])
    assert kek.unwrap([flipped, blob[:5], b"", blob]) == [None, None, None, key]


@pytest.mark.parametrize("size", [0, KEY_BYTES - 1, KEY_BYTES + 1])
def test_a_key_file_of_the_wrong_length_is_refused(tmp_path: Path, size: int) -> None:
    path = tmp_path / "content.kek"
    path.write_bytes(b"k" * size)
    with pytest.raises(KekError, match=f"holds {size} bytes, not {KEY_BYTES}"):
        FileKek(path)
    assert path.read_bytes() == b"k" * size  # left as it was, not replaced
