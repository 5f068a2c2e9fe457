"""Which keyring the settings give, and which Vault token it uses."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from aiaudit.cli.main import main
from aiaudit.common import config
from aiaudit.common.config import ConfigError
from aiaudit.common.keys import configured
from aiaudit.common.keys.kek import FileKek, KekError
from aiaudit.common.store import open_store
from aiaudit.common.store.prepare import prepare_batch
from tests.helpers import interaction


def settings(**overrides: object) -> config.Settings:
    return config.load(None, env={}, overrides=overrides)


def test_an_embedded_store_seals_with_the_kek_beside_it(tmp_path: Path) -> None:
    ring = configured.keyring(settings(database_url=f"sqlite:///{tmp_path / 'x' / 'a.db'}"))
    assert ring is not None and isinstance(ring.kek, FileKek)
    assert (tmp_path / "x" / "content.kek").stat().st_size == 32


def test_a_command_opening_another_embedded_store_uses_that_stores_kek(tmp_path: Path) -> None:
    """`verify --database-url sqlite:///elsewhere` must not make a new KEK under ./data."""
    ring = configured.keyring(settings(data_dir=tmp_path / "d"), f"sqlite:///{tmp_path}/b.db")
    assert ring is not None and (tmp_path / "content.kek").is_file()
    assert not (tmp_path / "d").exists()


def test_postgresql_stores_in_clear_unless_asked(tmp_path: Path) -> None:
    url = "postgresql+psycopg://u:p@127.0.0.1/db"
    assert configured.keyring(settings(database_url=url)) is None
    ring = configured.keyring(settings(database_url=url, data_dir=tmp_path, content_keys="file"))
    assert ring is not None and (tmp_path / "content.kek").is_file()
    assert configured.keyring(settings(content_keys="none", data_dir=tmp_path)) is None


def test_the_content_token_comes_before_the_notarys(tmp_path: Path) -> None:
    env = {"AIAUDIT_CONTENT_VAULT_TOKEN": "content", "VAULT_TOKEN": "notary"}
    args = ("http://127.0.0.1:1", None, env, 1.0, "content_vault_token_file")
    assert configured.vault_client(*args, ("AIAUDIT_CONTENT_VAULT_TOKEN", "VAULT_TOKEN")).token == (
        "content"
    )
    assert configured.vault_client(*args).token == "notary"
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    assert configured.vault_client("http://x", token_file, env, 1.0, "s").token == "from-file"
    with pytest.raises(ConfigError, match="'content_vault_token_file': required"):
        configured.vault_client("http://x", None, {}, 1.0, "content_vault_token_file")


def test_a_lost_kek_file_is_not_silently_replaced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store restored without its key file: a new key would seal new events that the
    real key's holder could never read (found by a review). Refused, and no file made."""
    url = f"sqlite:///{tmp_path / 'aiaudit.db'}"
    store = open_store(url, run_migrations=True)
    store.append_group([prepare_batch([interaction("acme")], dt.datetime.now(dt.UTC))])
    store.close()
    (tmp_path / "content.kek").unlink()
    with pytest.raises(KekError, match=r"key file .* is missing: restore that file"):
        open_store(url)
    erase = ["erase", "--data-dir", str(tmp_path), "--tenant", "acme", "--subject", "alice"]
    assert main([*erase, "--reason", "gdpr", "--requested-by", "dpo"]) == 2
    assert "restore that file" in capsys.readouterr().err
    assert not (tmp_path / "content.kek").exists()
