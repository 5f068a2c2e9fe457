"""A key's id and principal must fit the records that name them, or the file is refused.

Every record of a key's reads and changes names its principal (the ``id`` unless a
``principal`` is given) as ``actor.user_id``, a ``varchar(256)`` on PostgreSQL that holds
no U+0000, and its id as ``actor.api_key_id``; neither store encodes a lone surrogate.
Until 2026-12-07 such an entry was taken: on PostgreSQL every read of that key failed at
its record, UNAVAILABLE "retry" for ever. Now ``serve`` stops at start naming the entry,
as for any other bad entry; read again, the last good keys stay in force.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest
import yaml

from aiaudit.common import auth
from aiaudit.common.config import ConfigError
from aiaudit.common.erasure import USER_ID_CHARS

DIGEST = hashlib.sha256(b"key").hexdigest()
LONG = "p" * (USER_ID_CHARS + 1)


def _write(path: Path, **fields: object) -> None:
    entry = {"id": "k1", "sha256": DIGEST, "tenants": ["*"], "roles": ["auditor"], **fields}
    path.write_text(yaml.safe_dump({"keys": [entry]}))


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"principal": LONG}, f"keys[0].principal is {USER_ID_CHARS + 1} characters"),
        ({"id": LONG}, f"keys[0].id is {USER_ID_CHARS + 1} characters"),
        ({"id": LONG, "principal": "ops"}, f"keys[0].id is {USER_ID_CHARS + 1} characters"),
        (
            {"principal": "é" * (USER_ID_CHARS + 1)},
            f"keys[0].principal is {USER_ID_CHARS + 1} characters",
        ),
        ({"principal": "o\x00ps"}, "keys[0].principal holds U+0000"),
        ({"id": "k\ud800"}, "keys[0].id holds U+D800"),
    ],
    ids=["principal", "id", "id-beside-principal", "non-ascii", "nul", "surrogate"],
)
def test_an_identity_no_record_can_hold_is_refused_at_start(
    tmp_path: Path, fields: dict[str, object], said: str
) -> None:
    path = tmp_path / "keys.yaml"
    _write(path, **fields)
    with pytest.raises(ConfigError) as err:
        auth.KeysFile(path)
    assert str(err.value).startswith(f"setting 'api_keys_file': {path}: {said}")


def test_an_identity_of_the_limit_is_taken(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    _write(path, id="i" * USER_ID_CHARS, principal="é" * USER_ID_CHARS)
    (caller,) = auth.KeysFile(path).current().values()
    assert (caller.key_id, caller.principal) == ("i" * USER_ID_CHARS, "é" * USER_ID_CHARS)


def test_read_again_the_last_good_keys_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "keys.yaml"
    _write(path, principal="ops")
    keys = auth.KeysFile(path)
    _write(path, principal=LONG)
    monkeypatch.setattr(auth, "KEYS_CHECK_SECONDS", 0.0)
    with caplog.at_level(logging.ERROR, logger="aiaudit.common.auth"):
        assert keys.current()[DIGEST].principal == "ops"
    assert f"keys[0].principal is {USER_ID_CHARS + 1} characters" in caplog.text
