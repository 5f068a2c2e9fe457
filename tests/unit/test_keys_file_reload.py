"""A keys file that turns bad keeps the last good keys, whatever the bad is (review 2026-12-05).

:class:`aiaudit.common.auth.KeysFile` is read again on a call's way in; what it could not
read escaped as another exception than ConfigError (bytes that are not UTF-8, a date YAML
cannot build) and failed every call, or blocked for ever (a FIFO), every call waiting
behind its lock.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest
import yaml

from aiaudit.common import auth


def _keys_yaml(*names: str) -> str:
    entries = [
        {
            "id": n,
            "sha256": hashlib.sha256(n.encode()).hexdigest(),
            "tenants": ["*"],
            "roles": ["gateway"],
        }
        for n in names
    ]
    return yaml.safe_dump({"keys": entries})


@pytest.fixture
def keys_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> auth.KeysFile:
    monkeypatch.setattr(auth, "KEYS_CHECK_SECONDS", 0.0)  # every call looks
    path = tmp_path / "api-keys.yaml"
    path.write_text(_keys_yaml("a"))
    return auth.KeysFile(path)


def _ids(keys: dict[str, auth.Caller]) -> set[str]:
    return {c.key_id for c in keys.values()}


@pytest.mark.parametrize(
    "content",
    [
        b"keys: [\xff\xfe]\n",  # not UTF-8
        b"rotated: 2026-13-45\nkeys: []\n",  # a date YAML's constructor refuses (ValueError)
    ],
)
def test_a_file_that_cannot_be_decoded_or_built_keeps_the_last_keys(
    keys_file: auth.KeysFile, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    keys_file.path.write_bytes(content)
    assert _ids(keys_file.current()) == {"a"}  # raised before, into every call
    assert "the last good keys stay in force" in caplog.text
    keys_file.path.write_text(_keys_yaml("b"))
    assert _ids(keys_file.current()) == {"b"}


def test_a_fifo_in_place_of_the_file_does_not_hold_the_calls(keys_file: auth.KeysFile) -> None:
    keys_file.path.unlink()
    os.mkfifo(keys_file.path)
    found: list[set[str]] = []
    look = threading.Thread(target=lambda: found.append(_ids(keys_file.current())), daemon=True)
    look.start()
    look.join(timeout=30)  # the old code blocked for good; a loaded machine stalls seconds
    blocked = look.is_alive()
    if blocked:  # let the old code's read end: a writer that opens and closes
        os.close(os.open(keys_file.path, os.O_WRONLY | os.O_NONBLOCK))
        look.join(timeout=5)
    assert not blocked, "the look blocked on the FIFO (every call would wait behind it)"
    assert found == [{"a"}]


def test_an_oversized_file_is_not_read(
    keys_file: auth.KeysFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read and parsed under the lock on a call's way in: bounded (16 MiB by default)."""
    monkeypatch.setattr(auth, "MAX_KEYS_FILE_BYTES", 1024, raising=False)
    big = _keys_yaml(*(f"k{i}" for i in range(20)))
    assert len(big) > 1024
    keys_file.path.write_text(big)
    assert _ids(keys_file.current()) == {"a"}
    keys_file.path.write_text(_keys_yaml("b"))
    assert _ids(keys_file.current()) == {"b"}
