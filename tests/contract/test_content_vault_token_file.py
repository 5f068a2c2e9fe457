"""The content-sealing Vault token follows its file (``content_vault_token_file``).

A vault-agent sidecar writes a fresh, short-lived token to the file before the
old one expires. The token used to be read once at start-up: once it expired or
was revoked, every seal and unseal failed until the pod restarted (chart
review). Real OpenBao; tokens the tests create and revoke themselves (never
the root token).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aiaudit.common import config
from aiaudit.common.keys import configured
from aiaudit.common.keys.kek import Kek
from aiaudit.common.keys.transit import bootstrap_content_key
from tests.contract.test_content_kek import data_keys, fresh_settings
from tests.integrity.conftest import Vault, vault  # noqa: F401  (registers the OpenBao fixture)
from tests.integrity.test_vault_token_file import (  # noqa: F401  (the fixture revokes tokens)
    new_token,
    renew,
    renewed_at_first_refusal,
    revoke_made_tokens,
)


@pytest.fixture
def openbao(request: pytest.FixtureRequest) -> Vault:
    """The session's real OpenBao: the integrity tests' ``vault`` fixture, imported above."""
    bao: Vault = request.getfixturevalue("vault")
    return bao


def content_kek(v: Vault, tmp_path: Path) -> tuple[Kek, Path, str, str]:
    """The content KEK as ``serve`` builds it, from a token file; returns it, the file,
    the token in it and the content policy."""
    settings = fresh_settings()
    bootstrap_content_key(v.client(), settings)
    token = new_token(v, settings.policy_name)
    token_file = tmp_path / "content-vault-token"
    renew(token_file, token)
    overrides = {
        "database_url": "postgresql+psycopg://u:p@127.0.0.1/db",
        "content_keys": "vault",
        "content_vault_addr": v.addr,
        "content_vault_token_file": str(token_file),
        "content_vault_mount": settings.mount,
        "content_vault_key": settings.key,
        "content_vault_timeout": 10,  # bounds a failure only: no test here waits it out
    }
    ring = configured.keyring(config.load(None, env={}, overrides=overrides))
    assert ring is not None
    return ring.kek, token_file, token, settings.policy_name


def test_a_renewed_token_file_seals_and_unseals_once_the_old_token_is_revoked(
    openbao: Vault, tmp_path: Path
) -> None:
    kek, token_file, first, policy = content_kek(openbao, tmp_path)
    keys = data_keys(2)
    wrapped = kek.wrap(keys)
    second = new_token(openbao, policy)
    renew(token_file, second)
    openbao.client().auth.token.revoke(first)
    assert kek.unwrap(wrapped) == keys
    assert kek.unwrap(kek.wrap(keys)) == keys


def test_a_refused_token_makes_the_file_be_read_again(openbao: Vault, tmp_path: Path) -> None:
    """The agent writes the new token after the file was looked at, before Vault answers."""
    kek, token_file, first, policy = content_kek(openbao, tmp_path)
    keys = data_keys(1)
    wrapped = kek.wrap(keys)
    openbao.client().auth.token.revoke(first)
    second = new_token(openbao, policy)
    refused = renewed_at_first_refusal(kek._client, token_file, second)  # type: ignore[attr-defined]
    assert kek.unwrap(wrapped) == keys
    assert refused == [403]
