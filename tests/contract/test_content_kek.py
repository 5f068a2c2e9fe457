"""The content KEK in a real OpenBao Transit: bootstrap, wrapping, least privilege, failures."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import uuid
from pathlib import Path

import hvac.exceptions
import pytest

from aiaudit.common.keys.kek import KEY_BYTES, FileKek, KekError
from aiaudit.common.keys.keyring import Keyring
from aiaudit.common.keys.transit import (
    ContentKeySettings,
    TransitKek,
    bootstrap_content_key,
    content_policy,
)
from aiaudit.common.store import open_store
from aiaudit.common.store.prepare import prepare_batch
from aiaudit.common.store.sql import Conflict
from aiaudit.ingest.committer import GroupCommitter
from tests.conftest import Postgres
from tests.contract.test_group_commit import HeldStore
from tests.helpers import free_port, interaction
from tests.integrity.conftest import Vault, vault  # noqa: F401  (registers the OpenBao fixture here)


@pytest.fixture(scope="session")
def openbao(request: pytest.FixtureRequest) -> Vault:
    """The session's real OpenBao: the integrity tests' ``vault`` fixture, imported above."""
    bao: Vault = request.getfixturevalue("vault")
    return bao


def fresh_settings() -> ContentKeySettings:
    """A mount, key and policy of the test's own (OpenBao is shared by the session)."""
    suffix = uuid.uuid4().hex[:8]
    return ContentKeySettings(
        mount=f"transit-{suffix}", key="content", policy_name=f"content-{suffix}"
    )


def bootstrapped(v: Vault) -> tuple[ContentKeySettings, str]:
    """A bootstrapped content key; returns its settings and a token holding only its policy."""
    settings = fresh_settings()
    bootstrap_content_key(v.client(), settings)
    token = v.client().auth.token.create(policies=[settings.policy_name], ttl="1h")
    return settings, token["auth"]["client_token"]


def data_keys(n: int) -> list[bytes]:
    return [secrets.token_bytes(KEY_BYTES) for _ in range(n)]


def tampered(wrapped: bytes) -> bytes:
    """The ciphertext with one base64 character of its payload changed."""
    prefix, payload = wrapped.rsplit(b":", 1)
    i = len(payload) // 2
    swapped = b"A" if payload[i : i + 1] != b"A" else b"B"
    return prefix + b":" + payload[:i] + swapped + payload[i + 1 :]


def test_bootstrap_creates_key_and_policy_and_a_second_run_changes_nothing(
    openbao: Vault,
) -> None:
    settings = fresh_settings()
    first = bootstrap_content_key(openbao.client(), settings)
    assert first == [
        f"enabled transit at {settings.mount}/",
        f"created aes256-gcm96 key {settings.mount}/keys/content",
        f"wrote policy {settings.policy_name!r}",
        f"wrote policy {settings.rewrap_policy_name!r}",
    ]
    admin = openbao.client()
    key = admin.secrets.transit.read_key(name="content", mount_point=settings.mount)["data"]
    assert key["type"] == "aes256-gcm96"
    assert key["exportable"] is False
    assert key["allow_plaintext_backup"] is False
    assert key["latest_version"] == 1
    rules = admin.sys.read_policy(settings.policy_name)["data"]["rules"]
    assert rules == content_policy(settings.mount, "content")
    assert rules.count("path ") == 2 and rules.count('capabilities = ["update"]') == 2

    again = bootstrap_content_key(openbao.client(), settings)
    assert again[0] == f"transit already enabled at {settings.mount}/"
    assert again[1] == f"key {settings.mount}/keys/content exists (latest version 1)"
    after = admin.secrets.transit.read_key(name="content", mount_point=settings.mount)["data"]
    assert after["keys"] == key["keys"]  # same key, not rotated or recreated


def test_wrap_and_unwrap_round_trip_several_keys(openbao: Vault) -> None:
    settings, token = bootstrapped(openbao)
    kek = TransitKek(openbao.client(token), settings.mount, settings.key)
    assert kek.name == f"vault:{settings.mount}/content"
    keys = data_keys(5)
    keys.append(keys[0])  # the same data key twice
    wrapped = kek.wrap(keys)
    assert len(wrapped) == 6
    assert all(w.startswith(b"vault:v1:") for w in wrapped)
    assert wrapped[0] != wrapped[5]  # Transit's nonce is random: equal keys wrap differently
    assert not any(k in w or base64.b64encode(k) in w for k, w in zip(keys, wrapped, strict=True))
    assert kek.unwrap(wrapped) == keys
    assert kek.unwrap(list(reversed(wrapped))) == list(reversed(keys))


def test_empty_input_asks_vault_nothing(openbao: Vault) -> None:
    unreachable = openbao.client(addr=f"http://127.0.0.1:{free_port()}")
    kek = TransitKek(unreachable)
    assert kek.name == "vault:transit/aiaudit-content"
    assert kek.wrap([]) == []
    assert kek.unwrap([]) == []


def test_the_policy_token_wraps_and_unwraps_but_cannot_manage_the_key(openbao: Vault) -> None:
    settings, token = bootstrapped(openbao)
    kek = TransitKek(openbao.client(token), settings.mount, settings.key)
    keys = data_keys(3)
    assert kek.unwrap(kek.wrap(keys)) == keys

    restricted = openbao.client(token).secrets.transit
    where = {"name": settings.key, "mount_point": settings.mount}
    with pytest.raises(hvac.exceptions.Forbidden):
        restricted.read_key(**where)
    with pytest.raises(hvac.exceptions.Forbidden):
        restricted.rotate_key(**where)
    with pytest.raises(hvac.exceptions.Forbidden):
        restricted.update_key_configuration(deletion_allowed=True, **where)
    with pytest.raises(hvac.exceptions.Forbidden):
        restricted.delete_key(**where)
    with pytest.raises(hvac.exceptions.Forbidden):
        restricted.export_key(key_type="encryption-key", **where)
    with pytest.raises(hvac.exceptions.Forbidden):
        restricted.backup_key(**where)
    # The admin still sees the key unchanged: one version, still there.
    key = openbao.client().secrets.transit.read_key(**where)["data"]
    assert key["latest_version"] == 1

    # The policy is scoped to this key: another key in the same mount is refused.
    openbao.client().secrets.transit.create_key(
        name="other", key_type="aes256-gcm96", mount_point=settings.mount
    )
    with pytest.raises(KekError, match=f"vault:{settings.mount}/other encrypt"):
        TransitKek(openbao.client(token), settings.mount, "other").wrap(keys)


def test_a_tampered_ciphertext_does_not_open_and_the_others_do(openbao: Vault) -> None:
    """Transit refuses the whole batch (400) for one bad item but answers every item: the
    bad one is a damaged key, the others open."""
    settings, token = bootstrapped(openbao)
    kek = TransitKek(openbao.client(token), settings.mount, settings.key)
    keys = data_keys(2)
    good, other = kek.wrap(keys)
    assert kek.unwrap([good, tampered(other)]) == [keys[0], None]
    assert kek.unwrap([tampered(good)]) == [None]
    assert kek.unwrap([b"\xff" + good, good]) == [None, keys[0]]  # not Transit's at all


def test_a_key_wrapped_elsewhere_is_refused(openbao: Vault, tmp_path: Path) -> None:
    settings, token = bootstrapped(openbao)
    kek = TransitKek(openbao.client(token), settings.mount, settings.key)
    other_settings, other_token = bootstrapped(openbao)
    other = TransitKek(openbao.client(other_token), other_settings.mount, other_settings.key)
    keys = data_keys(1)
    assert kek.unwrap(other.wrap(keys)) == [None]
    assert kek.unwrap(FileKek(tmp_path / "kek").wrap(keys)) == [None]


def test_keys_wrapped_before_a_rotation_still_unwrap(openbao: Vault) -> None:
    settings, token = bootstrapped(openbao)
    kek = TransitKek(openbao.client(token), settings.mount, settings.key)
    old_keys = data_keys(2)
    old = kek.wrap(old_keys)
    openbao.client().secrets.transit.rotate_key(name=settings.key, mount_point=settings.mount)
    new_keys = data_keys(1)
    new = kek.wrap(new_keys)
    assert new[0].startswith(b"vault:v2:")
    assert kek.unwrap([*old, *new]) == [*old_keys, *new_keys]


def test_bootstrap_refuses_a_key_of_another_type(openbao: Vault) -> None:
    settings = fresh_settings()
    admin = openbao.client()
    admin.sys.enable_secrets_engine("transit", path=settings.mount)
    admin.secrets.transit.create_key(
        name=settings.key, key_type="ed25519", mount_point=settings.mount
    )
    with pytest.raises(ValueError, match="'ed25519', not aes256-gcm96"):
        bootstrap_content_key(admin, settings)
    with pytest.raises(hvac.exceptions.InvalidPath):  # no policy granted on the wrong key
        admin.sys.read_policy(settings.policy_name)
    key = admin.secrets.transit.read_key(name=settings.key, mount_point=settings.mount)
    assert key["data"]["type"] == "ed25519"


def test_bootstrap_refuses_another_engine_at_the_mount(openbao: Vault) -> None:
    settings = fresh_settings()
    admin = openbao.client()
    admin.sys.enable_secrets_engine("kv", path=settings.mount)
    with pytest.raises(ValueError, match=f"{settings.mount}/ is a 'kv' engine, not transit"):
        bootstrap_content_key(admin, settings)
    with pytest.raises(hvac.exceptions.InvalidPath):
        admin.sys.read_policy(settings.policy_name)


def test_vault_unreachable_is_a_kek_error(openbao: Vault) -> None:
    addr = f"http://127.0.0.1:{free_port()}"
    kek = TransitKek(openbao.client(addr=addr), "transit", "content")
    with pytest.raises(KekError, match="vault:transit/content encrypt of 2 data key") as raised:
        kek.wrap(data_keys(2))
    assert "Vault unreachable" in str(raised.value)
    with pytest.raises(KekError, match="vault:transit/content decrypt of 1 data key"):
        kek.unwrap([b"vault:v1:AAAA"])


def test_appends_of_known_subjects_go_on_while_vault_refuses(
    openbao: Vault, sealed_store: Postgres | str
) -> None:
    """Keys already learnt need no Vault: only a new subject's key does (found by a review:
    every group of 32 or more events first asked Vault for spare keys, and failed)."""
    settings, token = bootstrapped(openbao)
    url = sealed_store if isinstance(sealed_store, str) else sealed_store.app_url
    kek = TransitKek(openbao.client(token=token), settings.mount, settings.key)
    store = open_store(url, keys=Keyring(kek))

    def group(n: int, users: tuple[str, ...] = ("alice", "bob")) -> None:
        now = dt.datetime.now(dt.UTC)
        events = [interaction("t", user=users[i % len(users)]) for i in range(n)]
        (outcome,) = store.append_group([prepare_batch(events, now)])
        assert not isinstance(outcome, Conflict)

    group(40)
    openbao.client().auth.token.revoke(token)  # Vault refuses this process from now on
    group(3)  # the one-statement path
    group(40)  # the multi-statement path
    with pytest.raises(KekError, match="encrypt"):
        group(40, ("carol",))  # a new subject needs a new key: refused, nothing written
    assert len(store.read_log("t", 0, 200)) == 83
    # In one group, the batch of a new subject fails alone (it failed every batch with it).
    now = dt.datetime.now(dt.UTC)
    known = prepare_batch([interaction("t", user="alice") for _ in range(40)], now)
    new = prepare_batch([interaction("t", user="dave")], now)
    held = HeldStore(store)
    committer = GroupCommitter(held)  # type: ignore[arg-type]
    held.held.clear()
    first = committer.submit(prepare_batch([interaction("t", user="bob")], now))
    assert held.entered.wait(20)
    written, refused = committer.submit(known), committer.submit(new)  # the next group
    held.held.set()
    assert len(first.result(timeout=30)) == 1  # type: ignore[arg-type]
    assert len(written.result(timeout=30)) == 40  # type: ignore[arg-type]
    with pytest.raises(KekError):
        refused.result(timeout=30)
    assert held.groups[-2:] == [1, 1], "the group of two was split, the known batch written"
    committer.close()
    store.close()
