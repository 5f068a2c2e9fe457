"""A signing key replaced (file key to Vault, or a Transit key refused as able to leave it):
what the old key signed stays trusted through ``integrity.former_verifier_keys``.

Until 2026-12-07 only the current key was trusted: ``VerifyEvent`` called a quiet log's
genuine checkpoint TAMPERED, ``GetVerifierKey`` stopped publishing the old key, and the
notary passed over the old key's exported checkpoints as not its own, so a store restored
from an older backup was signed over with the new key, forking the exported history.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from aiaudit.common import config
from aiaudit.common.config import ConfigError
from aiaudit.common.keys.kek import FileKek
from aiaudit.common.keys.keyring import Keyring
from aiaudit.common.store import open_store
from aiaudit.integrity import component, worm
from aiaudit.integrity.settings import IntegritySettings
from aiaudit.integrity.settings import load as load_settings
from aiaudit.integrity.signers import FileKeys
from aiaudit.integrity.v1 import integrity_service_pb2 as pb
from aiaudit.integrity.v1 import integrity_service_pb2_grpc as pb_grpc
from tests.conftest import Postgres
from tests.helpers import wait_until
from tests.integrity.conftest import ORIGIN_PREFIX, login, start_suite
from tests.integrity.test_backup_restore import (
    Restored,
    _behind_26,
    append,
    backup,
    restore,  # noqa: F401 (the fixture)
    sign,
)
from tests.integrity.test_notary import covers, latest


def replacing(tmp_path: Path, former: FileKeys) -> IntegritySettings:
    """The settings of a new file key that replaced ``former``."""
    return IntegritySettings(
        origin_prefix=ORIGIN_PREFIX,
        key_file=tmp_path / "new.pem",
        former_verifier_keys=(former.verifier_keys()[0].encode(),),
    )


def test_a_store_restored_older_is_held_behind_what_the_replaced_key_exported(
    own_postgres: Postgres,
    restore: Callable[[Path], Restored],  # noqa: F811
    tmp_path: Path,
    tenant: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    old = FileKeys(ORIGIN_PREFIX, tmp_path / "old.pem")
    notary_url = login(own_postgres, "aiaudit_notary")
    store = open_store(own_postgres.app_url, keys=Keyring(FileKek(tmp_path / "content.kek")))
    try:
        append(store, tenant, 10, "carol")
        assert sign(notary_url, old, tmp_path)[-1] is True
        backup(own_postgres, tmp_path / "older.dump")
        append(store, tenant, 16, "dave")
        assert sign(notary_url, old, tmp_path)[-1] is True
    finally:
        store.close()

    keys = component.key_source(config.load(None, env={}), replacing(tmp_path, old))
    older = restore(tmp_path / "older.dump")
    with caplog.at_level(logging.ERROR, "aiaudit.integrity.notary"):
        assert sign(older.notary_url, keys, tmp_path) == [False]  # held, NOT_SERVING
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        _behind_26(tenant, tmp_path)
    ]
    assert [s for s, _ in worm.read_all(tmp_path / "checkpoints", tenant)] == [10, 26]


def test_a_quiet_log_signed_by_the_replaced_key_still_verifies_online(
    store_url: str, notary_url: str, tmp_path: Path, tenant: str
) -> None:
    checkpoints = tmp_path / "checkpoints"
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first = start_suite(
        store_url,
        notary_url,
        tmp_path / "first",
        key_file=str(tmp_path / "old.pem"),
        checkpoint_dir=str(checkpoints),
    )
    try:
        from tests.integrity.test_service import append as ingest

        receipts = ingest(first, tenant, 3)
        wait_until(lambda: covers(notary_url, tenant, 3))
    finally:
        first.channel.close()
        first.suite.stop()  # type: ignore[attr-defined]
    signed = latest(notary_url, tenant)
    assert signed is not None and signed.tree_size == 3  # nothing read: no access record

    old = FileKeys(ORIGIN_PREFIX, tmp_path / "old.pem")
    s = replacing(tmp_path, old)
    second = start_suite(
        store_url,
        notary_url,
        tmp_path / "second",
        key_file=str(s.key_file),
        checkpoint_dir=str(checkpoints),
        former_verifier_keys=list(s.former_verifier_keys),
    )
    try:
        stub = pb_grpc.IntegrityServiceStub(second.as_role("auditor"))
        verdict = stub.VerifyEvent(
            pb.VerifyEventRequest(log_id=tenant, event_id=receipts[1].event_id)  # type: ignore[attr-defined]
        )
        assert verdict.status == pb.VERIFY_STATUS_VERIFIED, verdict.problems
        published = stub.GetVerifierKey(pb.GetVerifierKeyRequest()).verifier_keys
        new = FileKeys(ORIGIN_PREFIX, tmp_path / "new.pem").verifier_keys()[0].encode()
        assert list(published) == [new, old.verifier_keys()[0].encode()]
    finally:
        second.channel.close()
        second.suite.stop()  # type: ignore[attr-defined]


def test_a_former_key_that_is_no_verifier_key_is_refused_naming_it(tmp_path: Path) -> None:
    f = tmp_path / "config.yaml"
    f.write_text("integrity:\n  former_verifier_keys: [not-a-key]\n")
    with pytest.raises(ConfigError, match=r"integrity\.former_verifier_keys\[0\]"):
        load_settings(config.load(f, env={}, serving=False))


def test_a_former_key_listed_twice_or_current_is_published_once(tmp_path: Path) -> None:
    """A key published twice made a client trusting every published key (Go's
    ``note.VerifierList``) refuse each note it signed: "ambiguous key"."""
    old = FileKeys(ORIGIN_PREFIX, tmp_path / "old.pem").verifier_keys()[0].encode()
    s = replacing(tmp_path, FileKeys(ORIGIN_PREFIX, tmp_path / "old.pem"))
    current = FileKeys(ORIGIN_PREFIX, tmp_path / "new.pem").verifier_keys()[0].encode()
    listed = dataclasses.replace(s, former_verifier_keys=(old, current, old))
    keys = component.key_source(config.load(None, env={}), listed)
    assert [k.encode() for k in keys.verifier_keys()] == [current, old]
