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
import threading
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
ANSWERED = 10.0
"""Longest wait for the other thread of a test (it answers at once)."""


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


def renewed_at_first_refusal(client: Any, token_file: Path, token: str) -> list[int]:
    """The agent writes ``token`` when Vault first refuses a request of ``client`` (403):
    after the file was looked at, before the answer. Returns the refusals seen."""
    refused: list[int] = []

    def agent_writes_on_refusal(response: Any, *args: Any, **kwargs: Any) -> Any:
        if response.status_code == 403 and not refused:
            refused.append(403)
            renew(token_file, token)
        return response

    client.session.hooks["response"].append(agent_writes_on_refusal)
    return refused


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
        vault_timeout=10,  # bounds a failure only: no test here waits it out
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
    refused = renewed_at_first_refusal(client, token_file, second)
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


def open_on(path: Path) -> int:
    """This process's descriptors open on ``path``.

    Not a count of all of them: any thread an earlier test left running (a server, a
    notary) opens and closes its own meanwhile.
    """
    found = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # closed since the listing
            found += os.readlink(f"/proc/self/fd/{fd}") == str(path)
    return found


def test_a_directory_at_the_token_file_keeps_the_token_and_no_descriptor(
    vault: Vault, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A directory put at the path (a volume mounted over it, an agent's mistake): each
    request read it again and left its descriptor open (os.fdopen refused the directory
    without closing it), until the process ran out of them."""
    keys, token_file, first, policy = notary_keys(vault, tmp_path)
    signed(keys)  # the client's connection is open
    caplog.set_level(logging.WARNING, logger="aiaudit.common.keys.configured")
    token_file.unlink()
    token_file.mkdir()
    signed(keys)
    for _ in range(20):
        signed(keys)
    assert open_on(token_file) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "not a regular file" in warnings[0], warnings
    token_file.rmdir()
    second = new_token(vault, policy)
    renew(token_file, second)
    vault.client().auth.token.revoke(first)
    signed(keys)


def test_concurrent_requests_each_send_the_token_they_read(vault: Vault, tmp_path: Path) -> None:
    """The client is shared by the notary's thread and the handlers'. Each request set the
    token it read on the shared adapter and hvac read it back from there: a request that
    read the old token just before the renewal, descheduled, then set it over the new one
    another request had just set, which sent the old, revoked token. Refused 403, that
    request read the file again, found the token it meant to send, and failed."""
    keys, token_file, first, policy = notary_keys(vault, tmp_path)
    signed(keys)
    client = keys._client  # type: ignore[attr-defined]  # the component's own hvac client
    adapter = client.adapter
    follower = adapter.token_file
    paused, resume, stale_sent, fresh_done = (threading.Event() for _ in range(4))
    late: list[threading.Thread] = []

    class Descheduled:
        """The late request's thread stops after reading the token, until told to go on."""

        def __getattr__(self, name: str) -> Any:
            return getattr(follower, name)

        def current(self) -> str:
            token: str = follower.current()
            if threading.current_thread() in late and not paused.is_set():
                paused.set()
                assert resume.wait(ANSWERED)
            return token

    joined = adapter.urljoin

    def urljoin(*args: Any) -> Any:
        # Called by hvac after the token was taken, before it is put in the headers.
        if threading.current_thread() in late:
            stale_sent.set()
        elif paused.is_set() and not resume.is_set():
            resume.set()  # the late request sets its token now ...
            assert stale_sent.wait(ANSWERED)  # ... and builds its headers
        return joined(*args)

    def late_answer(response: Any, *args: Any, **kwargs: Any) -> Any:
        # The late request's retry waits for the other request's end: one outcome each.
        if threading.current_thread() in late and response.status_code == 403:
            assert fresh_done.wait(ANSWERED)
        return response

    adapter.token_file = Descheduled()
    adapter.urljoin = urljoin
    client.session.hooks["response"].append(late_answer)
    outcomes: dict[str, str] = {}

    def sign_late() -> None:
        try:
            signed(keys)
            outcomes["late"] = "signed"
        except Exception as exc:  # reported by the assertion below
            outcomes["late"] = repr(exc)

    late.append(threading.Thread(target=sign_late))
    late[0].start()
    try:
        assert paused.wait(ANSWERED)  # it read the first token
        second = new_token(vault, policy)
        renew(token_file, second)
        vault.client().auth.token.revoke(first)
        try:
            signed(keys)
            outcomes["fresh"] = "signed"
        except Exception as exc:  # reported by the assertion below
            outcomes["fresh"] = repr(exc)
    finally:
        resume.set()
        fresh_done.set()
        late[0].join()
    assert outcomes == {"late": "signed", "fresh": "signed"}
