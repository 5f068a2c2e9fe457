"""An entry of the keys file says only what the server reads; anything else is refused.

Until 2026-12-07 a field the server does not know was ignored: an operator who
marked a leaked admin key ``disabled: true`` (or gave it ``expires:``) left it
working, without a word; ``tenants: [ACME]`` granted a tenant no event can name.
At start-up such a file stops ``serve`` naming the entry; read again, it is a
problem and the last good keys stay in force (``KeysFile``).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest
import yaml

from aiaudit.common import auth
from aiaudit.common.config import ConfigError

DIGEST = hashlib.sha256(b"leaked").hexdigest()


def _write(path: Path, **extra: object) -> None:
    entry = {"id": "old", "sha256": DIGEST, "tenants": ["*"], "roles": ["admin"], **extra}
    path.write_text(yaml.safe_dump({"keys": [entry]}))


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        ({"disabled": True}, "keys[0]: unknown ['disabled']"),
        ({"expires": "2020-01-01", "enabled": False}, "keys[0]: unknown ['enabled', 'expires']"),
        ({"tenant": ["acme"]}, "keys[0]: unknown ['tenant']"),
        ({"tenants": ["ACME", "acme"]}, "keys[0].tenants: ['ACME'] are no tenant ids"),
        ({"tenants": ["a b"]}, "keys[0].tenants: ['a b'] are no tenant ids"),
    ],
)
def test_an_entry_with_what_the_server_does_not_read_is_refused_at_start(
    tmp_path: Path, extra: dict[str, object], said: str
) -> None:
    path = tmp_path / "keys.yaml"
    _write(path, **extra)
    with pytest.raises(ConfigError) as err:
        auth.KeysFile(path)
    assert str(err.value).startswith(f"setting 'api_keys_file': {path}: {said}")


def test_an_unknown_top_level_key_is_refused(tmp_path: Path) -> None:
    """``key:`` for ``keys:`` read as no keys at all: every key refused, nothing said."""
    path = tmp_path / "keys.yaml"
    path.write_text(yaml.safe_dump({"key": [], "keys": []}))
    with pytest.raises(ConfigError, match=r"unknown \['key'\]; only 'keys'"):
        auth.KeysFile(path)


def test_read_again_the_last_good_keys_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "keys.yaml"
    _write(path)
    keys = auth.KeysFile(path)
    assert DIGEST in keys.current()
    _write(path, disabled=True)
    monkeypatch.setattr(auth, "KEYS_CHECK_SECONDS", 0.0)
    with caplog.at_level(logging.ERROR, logger="aiaudit.common.auth"):
        assert DIGEST in keys.current()  # as ever for an invalid file: the ERROR says so
    assert "unknown ['disabled']" in caplog.text


def test_the_fields_a_key_has_are_taken(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    _write(path, principal="ops", tenants=["acme", "t_1-x"])
    (caller,) = auth.KeysFile(path).current().values()
    assert (caller.principal, caller.tenants) == ("ops", frozenset({"acme", "t_1-x"}))
