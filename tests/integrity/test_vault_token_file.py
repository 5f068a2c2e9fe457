"""The notary's Vault token follows its file (``integrity.vault_token_file``).

In production a vault-agent sidecar writes a fresh, short-lived token to the
file before the old one expires. The token used to be read once at start-up:
once it expired or was revoked, every signature failed with permission denied
until the pod restarted (chart review). Real OpenBao; tokens the tests create
and revoke themselves (never the root token).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac.exceptions
import pytest

from aiaudit.common import config
from aiaudit.integrity import component, note
from aiaudit.integrity.settings import IntegritySettings
from aiaudit.integrity.signers import KeySource
from tests.integrity.conftest import Vault
from tests.integrity.test_vault import bootstrapped

SETTING = "integrity.vault_token_file"


def renew(path: Path, token: str) -> None:
    """Writes ``token`` to ``path`` as vault-agent does: a file beside it, renamed over it."""
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(token + "\n")
    os.replace(temp, path)


MADE: list[tuple[Vault, str]] = []
"""Tokens the running test created (revoked at its end, if it has not revoked them)."""


@pytest.fixture(autouse=True)
def revoke_made_tokens() -> Iterator[None]:
    yield
    while MADE:
        v, token = MADE.pop()
        with contextlib.suppress(hvac.exceptions.VaultError):
            v.client().auth.token.revoke(token)  # a revoked one: nothing to do


def new_token(v: Vault, policy: str) -> str:
    """A new token with only ``policy``, revoked at the end of the test."""
    created = v.client().auth.token.create(policies=[policy], ttl="1h")
    token: str = created["auth"]["client_token"]
    MADE.append((v, token))
    return token


def signed(keys: KeySource) -> str:
    return note.sign_checkpoint(note.Checkpoint("o/x", 1, b"\x01" * 32), [keys.active().signer])


def notary_keys(v: Vault, tmp_path: Path) -> tuple[KeySource, Path, str, str]:
    """The notary's Transit keys as the integrity component builds them, from a token file;
    returns them, the file, the token in it and the notary's policy."""
    settings, token = bootstrapped(v)
    MADE.append((v, token))
    token_file = tmp_path / "vault-token"
    renew(token_file, token)
    s = IntegritySettings(
        signer="vault",
        vault_addr=v.addr,
        vault_token_file=token_file,
        vault_mount=settings.mount,
        vault_key=settings.key,
        vault_timeout=3,
    )
    return (
        component.key_source(config.load(None, env={}), s),
        token_file,
        token,
        settings.policy_name,
    )


def test_a_renewed_token_file_is_used_once_the_old_token_is_revoked(
    vault: Vault, tmp_path: Path
) -> None:
    keys, token_file, first, policy = notary_keys(vault, tmp_path)
    signed(keys)
    second = new_token(vault, policy)
    renew(token_file, second)
    vault.client().auth.token.revoke(first)
    assert note.open_checkpoint(signed(keys), keys.verifier_keys(), "o/x").size == 1


def test_a_refused_token_makes_the_file_be_read_again(vault: Vault, tmp_path: Path) -> None:
    """The agent writes the new token after the file was looked at, before Vault answers:
    the request refused (403) reads the file once more and is sent again with its token."""
    keys, token_file, first, policy = notary_keys(vault, tmp_path)
    signed(keys)
    vault.client().auth.token.revoke(first)
    second = new_token(vault, policy)
    client = keys._client  # type: ignore[attr-defined]  # the component's own hvac client
    refused: list[int] = []

    def agent_writes_on_refusal(response: Any, *args: Any, **kwargs: Any) -> Any:
        if response.status_code == 403 and not refused:
            refused.append(403)
            renew(token_file, second)
        return response

    client.session.hooks["response"].append(agent_writes_on_refusal)
    signed(keys)
    assert refused == [403]


def test_a_token_file_without_a_token_keeps_the_last_one_with_one_warning(
    vault: Vault, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keys, token_file, first, policy = notary_keys(vault, tmp_path)
    signed(keys)
    caplog.set_level(logging.WARNING, logger="aiaudit.common.keys.configured")
    renew(token_file, "")
    signed(keys)
    signed(keys)
    token_file.unlink()
    signed(keys)
    signed(keys)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert all(SETTING in w and "last read stays in use" in w for w in warnings)
    assert "is empty" in warnings[0] and "No such file" in warnings[1]
    assert first not in " ".join(warnings)
    second = new_token(vault, policy)
    renew(token_file, second)
    vault.client().auth.token.revoke(first)
    signed(keys)
