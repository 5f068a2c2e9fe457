"""Checkpoint signing through a real OpenBao: bootstrap, least privilege, rotation, outage."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

import hvac
import hvac.exceptions
import pytest
import sqlalchemy as sa

from aiaudit.common.receipts import ReceiptSigningUnavailableError
from aiaudit.common.store import SqlEventStore, cursors
from aiaudit.common.store.sql import Receipt
from aiaudit.integrity import note, receipts, signers, worm
from aiaudit.integrity import vault as transit
from aiaudit.integrity.receipts import ReceiptNotary
from aiaudit.integrity.signers import SignerUnavailableError, TransitKeys, open_signed
from tests.helpers import wait_until
from tests.integrity.conftest import Notaries, Proxy, Vault, append, stepping
from tests.integrity.test_notary import all_checkpoints, check_history, covers, latest

NAME = "test.aiaudit/log"


def bootstrapped(v: Vault) -> tuple[transit.VaultSettings, str]:
    """A fresh mount and key (isolated from other tests); returns them and a notary token."""
    suffix = uuid.uuid4().hex[:8]
    settings = transit.VaultSettings(
        mount=f"transit-{suffix}", key="notary", policy_name=f"notary-{suffix}"
    )
    transit.bootstrap(v.client(), settings)
    token = v.client().auth.token.create(policies=[settings.policy_name], ttl="1h")
    return settings, token["auth"]["client_token"]


def through(proxy: Proxy, v: Vault, settings: transit.VaultSettings, token: str) -> TransitKeys:
    """The notary's keys, reaching Vault through a proxy the test can cut."""
    client = v.client(token, f"http://127.0.0.1:{proxy.port}")
    return TransitKeys(client, settings.mount, settings.key, NAME)


def test_bootstrap_is_idempotent_and_creates_an_ed25519_key(vault: Vault) -> None:
    suffix = uuid.uuid4().hex[:8]
    settings = transit.VaultSettings(mount=f"transit-{suffix}", key="k", policy_name=f"p-{suffix}")
    first = transit.bootstrap(vault.client(), settings)
    assert first[0].startswith("enabled transit") and first[1].startswith("created ed25519 key")
    again = transit.bootstrap(vault.client(), settings)
    assert again[0].startswith("transit already enabled") and "exists" in again[1]
    key = vault.client().secrets.transit.read_key(name="k", mount_point=settings.mount)
    assert key["data"]["type"] == "ed25519"
    assert key["data"]["exportable"] is False
    assert vault.client().sys.read_policy(settings.policy_name)["data"]["rules"] == transit.policy(
        settings.mount, "k"
    )


def test_a_key_that_can_leave_vault_is_neither_bootstrapped_nor_signed_with(vault: Vault) -> None:
    """The promise is that the signing key never leaves Vault: bootstrap accepted an existing
    exportable key, and the notary signed with it (review, 2026-12-05). Vault never turns
    ``exportable`` off again, so such a key is refused for good; its past signatures verify."""
    settings, token = bootstrapped(vault)
    keys = TransitKeys(vault.client(token), settings.mount, settings.key, NAME)
    signed = note.sign_checkpoint(note.Checkpoint("o/x", 3, b"\x07" * 32), [keys.active().signer])
    vault.client().secrets.transit.update_key_configuration(
        name=settings.key, exportable=True, mount_point=settings.mount
    )
    with pytest.raises(ValueError, match="exportable is true: its private key can leave Vault"):
        transit.bootstrap(vault.client(), settings)
    with pytest.raises(SignerUnavailableError, match="will not sign: exportable is true"):
        keys.active()
    assert note.open_checkpoint(signed, keys.verifier_keys(), "o/x").size == 3
    backup = dataclasses.replace(settings, key="backed-up")
    vault.client().secrets.transit.create_key(
        name="backed-up", key_type="ed25519", allow_plaintext_backup=True, mount_point=backup.mount
    )
    with pytest.raises(ValueError, match="allow_plaintext_backup is true"):
        transit.bootstrap(vault.client(), backup)


def test_notary_token_signs_notes_but_cannot_manage_the_key(vault: Vault) -> None:
    settings, token = bootstrapped(vault)
    keys = TransitKeys(vault.client(token), settings.mount, settings.key, NAME)
    active = keys.active()
    signed = note.sign_checkpoint(note.Checkpoint("o/x", 3, b"\x07" * 32), [active.signer])
    opened = note.open_checkpoint(signed, keys.verifier_keys(), "o/x")
    assert opened.size == 3 and active.version == "v1"
    restricted = vault.client(token).secrets.transit
    with pytest.raises(hvac.exceptions.Forbidden):
        restricted.rotate_key(name=settings.key, mount_point=settings.mount)
    with pytest.raises(hvac.exceptions.Forbidden):
        restricted.export_key(name=settings.key, key_type="signing-key", mount_point=settings.mount)


def test_rotation_signs_with_the_new_version_and_old_checkpoints_still_verify(
    vault: Vault,
) -> None:
    settings, token = bootstrapped(vault)
    keys = TransitKeys(vault.client(token), settings.mount, settings.key, NAME)
    old = note.sign_checkpoint(note.Checkpoint("o/x", 1, b"\x01" * 32), [keys.active().signer])
    vault.client().secrets.transit.rotate_key(name=settings.key, mount_point=settings.mount)
    active = keys.active()
    assert active.version == "v2"
    new = note.sign_checkpoint(note.Checkpoint("o/x", 2, b"\x02" * 32), [active.signer])
    published = keys.verifier_keys()
    assert len(published) == 2 and published[0] == active.signer.verifier_key
    assert published[0].key_id != published[1].key_id
    assert note.open_checkpoint(old, published).size == 1
    assert note.open_checkpoint(new, published).size == 2
    with pytest.raises(note.NoteError):  # the new version alone does not vouch for the old note
        note.open_checkpoint(old, published[:1])


def test_vault_outage_stops_signing_reports_unhealthy_and_catches_up(
    vault: Vault, store: SqlEventStore, notaries: Notaries, tenant: str
) -> None:
    settings, token = bootstrapped(vault)
    proxy = Proxy(urlparse(vault.addr).port or 0)
    health: list[bool] = []
    try:
        keys = through(proxy, vault, settings, token)
        append(store, tenant, 4)
        notaries.start(keys, on_health=health.append)
        wait_until(lambda: covers(notaries.url, tenant, 4))
        # Health is reported once the round's checkpoints are stored: just after, not before.
        wait_until(lambda: bool(health) and health[-1] is True)

        proxy.cut()
        append(store, tenant, 5)
        wait_until(lambda: health[-1] is False)
        signed = [c.tree_size for c in all_checkpoints(notaries.url, tenant)]
        assert signed == [4]  # nothing signed while Vault is unreachable
        append(store, tenant, 2)

        proxy.restore()
        wait_until(lambda: covers(notaries.url, tenant, 11))
        wait_until(lambda: health[-1] is True)
        check_history(notaries.url, tenant, keys.verifier_keys())
    finally:
        proxy.close()


def test_while_vault_fails_the_verifier_keys_come_from_memory(vault: Vault) -> None:
    """Every VerifyEvent and GetVerifierKey asked Vault again: with a Vault that hangs, each
    paid the whole timeout. After a failure the last copy is served for a while."""
    settings, token = bootstrapped(vault)
    proxy = Proxy(urlparse(vault.addr).port or 0)
    try:
        keys = through(proxy, vault, settings, token)
        published = keys.verifier_keys()
        proxy.cut()
        before = proxy.attempts
        for _ in range(5):
            assert keys.verifier_keys() == published
        assert proxy.attempts - before == 1  # the first call found Vault gone, the rest waited
    finally:
        proxy.close()


def test_unreachable_vault_is_reported_as_unavailable(tmp_path: Path) -> None:
    keys = TransitKeys(hvac.Client(url="http://127.0.0.1:1", timeout=1), "transit", "k", NAME)
    with pytest.raises(SignerUnavailableError):
        keys.active()
    with pytest.raises(SignerUnavailableError):
        keys.verifier_keys()


def test_receipts_are_signed_by_transit_and_refused_while_vault_is_down(vault: Vault) -> None:
    settings, token = bootstrapped(vault)
    proxy = Proxy(urlparse(vault.addr).port or 0)
    try:
        keys = through(proxy, vault, settings, token)
        signer = ReceiptNotary(keys, NAME, key_ttl=0)
        leaf = b"\x05" * 32
        batch = [Receipt("e", "t", 3, leaf, dt.datetime.now(dt.UTC))]
        [signed] = signer.sign(batch)
        opened = receipts.open_receipts(signed, keys.verifier_keys(), NAME)
        assert (opened.log_id, opened.receipts[0].sequence) == ("t", 3)
        proxy.cut()
        with pytest.raises(ReceiptSigningUnavailableError):
            signer.sign(batch)
        proxy.restore()
        assert signer.sign(batch)
    finally:
        proxy.close()


def test_a_version_rotated_in_while_keys_came_from_memory_still_opens(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica serving its keys from memory after a Vault blip did not know a version
    rotated in since, and VerifyEvent called a genuine checkpoint TAMPERED."""
    monkeypatch.setattr(signers, "RETRY_AFTER", 3600.0)  # the whole test inside the window
    settings, token = bootstrapped(vault)
    proxy = Proxy(urlparse(vault.addr).port or 0)
    try:
        replica = through(proxy, vault, settings, token)
        replica.verifier_keys()
        proxy.cut()
        replica.verifier_keys()  # Vault gone: the copy in memory, for a while
        proxy.restore()
        vault.client().secrets.transit.rotate_key(name=settings.key, mount_point=settings.mount)
        leader = TransitKeys(vault.client(token), settings.mount, settings.key, NAME)
        signed = note.sign_checkpoint(
            note.Checkpoint("o/x", 5, b"\x05" * 32), [leader.active().signer]
        )
        with pytest.raises(note.NoteError):  # what the copy alone says
            note.open_checkpoint(signed, replica.verifier_keys(), "o/x")
        assert open_signed(replica, signed, "o/x").size == 5
    finally:
        proxy.close()


class _Counted:
    """The notary's real Transit keys, counting its signing round trips to OpenBao."""

    def __init__(self, keys: TransitKeys) -> None:
        self.keys = keys
        self.batches: list[int] = []
        self.singles = 0

    def active(self) -> signers.ActiveKey:
        key = self.keys.active()
        signer = key.signer
        assert signer.sign_many is not None
        many = signer.sign_many

        def batch(messages: Sequence[bytes]) -> list[bytes]:
            self.batches.append(len(messages))
            return many(messages)

        def one(message: bytes) -> bytes:
            self.singles += 1
            return signer.sign(message)

        return signers.ActiveKey(
            dataclasses.replace(signer, sign=one, sign_many=batch), key.version
        )

    def verifier_keys(self) -> list[note.VerifierKey]:
        return self.keys.verifier_keys()


def test_the_checkpoints_of_many_logs_take_one_vault_call(
    vault: Vault, store: SqlEventStore, notary_url: str, tmp_path: Path, tenant: str
) -> None:
    """With hundreds of active logs a round of one Vault call a log (and two fsyncs and two
    commits each) outlasted the checkpoint interval: every log's checkpoint is now signed
    in one batch call, exported, and stored, each one a valid checkpoint of its own log."""
    settings, token = bootstrapped(vault)
    keys = _Counted(TransitKeys(vault.client(token), settings.mount, settings.key, NAME))
    logs = [f"{tenant}-{i:02d}" for i in range(30)]
    for log_id in logs:
        append(store, log_id, 3)
    with stepping(notary_url, keys, tmp_path) as notary:
        notary.step()  # the first round integrates everything waiting and signs at once
    assert keys.singles == 0 and len(keys.batches) == 1 and keys.batches[0] >= len(logs)
    verifiers = keys.verifier_keys()
    for log_id in logs:
        assert covers(notary_url, log_id, 3)
        check_history(notary_url, log_id, verifiers)
        (exported,) = worm.read_all(tmp_path / "checkpoints", log_id)
        assert exported == (3, latest(notary_url, log_id).signed_note)  # type: ignore[union-attr]


def test_notes_signed_in_one_batch_verify_and_a_refused_batch_is_an_outage(vault: Vault) -> None:
    settings, token = bootstrapped(vault)
    keys = TransitKeys(vault.client(token), settings.mount, settings.key, NAME)
    signer = keys.active().signer
    texts = [
        note.format_checkpoint(note.Checkpoint(f"o/{i}", i + 1, bytes([i]) * 32)) for i in range(3)
    ]
    signed = note.sign_notes(texts, [signer])
    assert [note.open_checkpoint(s, keys.verifier_keys()).size for s in signed] == [1, 2, 3]
    vault.client().auth.token.revoke(token)
    with pytest.raises(SignerUnavailableError, match="Vault transit sign"):
        note.sign_notes(texts, [signer])


def test_a_round_of_a_thousand_logs_is_signed_in_requests_openbao_takes(vault: Vault) -> None:
    """OpenBao refuses a request of more than 1,000 JSON strings: a round of 499 logs or more,
    signed in one Transit request, was refused whole (every log unsigned, round after
    round). 1,000 notes now go in requests of ``SIGN_BATCH``, each signature in its place."""
    settings, token = bootstrapped(vault)
    keys = _Counted(TransitKeys(vault.client(token), settings.mount, settings.key, NAME))
    texts = [
        note.format_checkpoint(note.Checkpoint(f"o/{i}", i + 1, i.to_bytes(32, "big")))
        for i in range(1000)
    ]
    signed = note.sign_notes(texts, [keys.active().signer])
    assert keys.batches == [1000]  # one call from the notary; the signer splits it
    opened = [note.open_checkpoint(s, keys.verifier_keys()) for s in signed]
    assert [(c.origin, c.size) for c in opened] == [(f"o/{i}", i + 1) for i in range(1000)]


def test_a_notary_started_while_vault_is_down_integrates_and_asks_it_once_a_round(
    vault: Vault, store: SqlEventStore, notary_url: str, tmp_path: Path, tenant: str
) -> None:
    """Integration goes on while Vault cannot sign. Since the loss statements (2026-12-07)
    each log's edge, when loaded, read the verifier keys to open its statements, even with
    none to open: a notary started while Vault was down integrated no log at all, and a
    leader takeover asked Vault once a log (review, 2026-12-07)."""
    settings, token = bootstrapped(vault)
    proxy = Proxy(urlparse(vault.addr).port or 0)
    try:
        keys = through(proxy, vault, settings, token)
        logs = [f"{tenant}-{i}" for i in range(5)]
        for log_id in logs:
            append(store, log_id, 3)
        proxy.cut()
        with stepping(notary_url, keys, tmp_path) as notary:
            notary.step()
            asked = proxy.attempts
        assert asked == 1  # the round's signature only, refused
        engine = sa.create_engine(notary_url)
        try:
            with engine.connect() as conn:
                assert [cursors.position(conn, "integrity", log_id) for log_id in logs] == [3] * 5
        finally:
            engine.dispose()
        assert all(latest(notary_url, log_id) is None for log_id in logs)
    finally:
        proxy.close()
