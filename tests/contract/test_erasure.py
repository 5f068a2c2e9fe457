"""Erasure on every store: content and salt go, leaves stay, and the erasure is in the log."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import psycopg
import pytest

from aiaudit.cli.main import main
from aiaudit.common import canonical
from aiaudit.common.erasure import erase
from aiaudit.common.store import SqlEventStore, open_store
from aiaudit.common.store.prepare import prepare_batch
from aiaudit.common.v1 import event_pb2 as ev
from tests.conftest import Postgres
from tests.helpers import interaction


def load(store: SqlEventStore, tenant: str) -> dict[str, str]:
    """Three events of alice, one of bob; event id -> user."""
    events = [
        interaction(tenant, f"a-{i}", text=f"alice's secret {i}", user="alice") for i in range(3)
    ]
    events.append(interaction(tenant, "b-0", text="bob's message", user="bob"))
    store.append_group([prepare_batch(events, dt.datetime.now(dt.UTC))])
    return {e.event_id: e.actor.user_id for e in events}


def test_a_subjects_content_goes_and_every_leaf_stays(
    store: SqlEventStore, privacy_url: str, tenant: str
) -> None:
    load(store, tenant)
    before = {s.event_id: s for s in store.read_log(tenant, 0, 10)}
    privacy = open_store(privacy_url)
    try:
        done = erase(
            privacy, tenant, "GDPR art. 17 request #42", "dpo@example.test", subject_id="alice"
        )
    finally:
        privacy.close()
    assert done.erased == done.named == ["a-0", "a-1", "a-2"]
    after = store.read_log(tenant, 0, 10)
    assert len(after) == 5
    for stored in after[:4]:
        old = before[stored.event_id]
        # The committed form, hence the leaf, is byte for byte what it was.
        assert (stored.canonical, stored.leaf_hash) == (old.canonical, old.leaf_hash)
        assert canonical.leaf_hash(stored.canonical) == stored.leaf_hash
        if stored.event_id.startswith("a-"):
            assert stored.content is None and stored.salt is None
            assert not stored.to_event().input.messages[0].parts[0].text
        else:
            assert stored.content == old.content
            assert stored.to_event().input.messages[0].parts[0].text == "bob's message"
    record = after[4].to_event()
    assert record.event_id == done.record_id
    assert record.event_type == ev.EVENT_TYPE_PRIVACY_ERASURE
    assert list(record.privacy_action.event_ids) == ["a-0", "a-1", "a-2"]
    assert record.privacy_action.subject_id == "alice"
    assert record.privacy_action.reason == "GDPR art. 17 request #42"
    assert record.privacy_action.requested_by == "dpo@example.test"


def test_erasing_again_deletes_nothing_and_is_recorded_again(
    store: SqlEventStore, privacy_url: str, tenant: str
) -> None:
    load(store, tenant)
    privacy = open_store(privacy_url)
    try:
        first = erase(privacy, tenant, "request", "dpo", event_ids=["b-0"])
        again = erase(privacy, tenant, "request", "dpo", event_ids=["b-0", "no-such-event"])
    finally:
        privacy.close()
    assert first.erased == ["b-0"] and again.erased == []
    assert again.named == ["b-0", "no-such-event"]
    assert [s.event_id for s in store.read_log(tenant, 4, 10)] == [
        first.record_id,
        again.record_id,
    ]


def test_an_erasure_needs_a_reason_a_requester_and_events(
    store: SqlEventStore, tenant: str
) -> None:
    load(store, tenant)
    for kwargs, message in (
        ({"reason": " ", "requested_by": "dpo", "event_ids": ["b-0"]}, "reason"),
        ({"reason": "r", "requested_by": "", "event_ids": ["b-0"]}, "reason"),
        ({"reason": "r", "requested_by": "dpo", "subject_id": "nobody"}, "name the events"),
    ):
        with pytest.raises(ValueError, match=message):
            erase(store, tenant, **kwargs)  # type: ignore[arg-type]
    assert len(store.read_log(tenant, 0, 10)) == 4  # nothing written
    assert all(s.content is not None for s in store.read_log(tenant, 0, 10))


def test_only_the_privacy_role_may_delete_content(postgres: Postgres, tenant: str) -> None:
    writer = open_store(postgres.app_url)
    try:
        load(writer, tenant)
        with pytest.raises(Exception, match="permission denied"):
            erase(writer, tenant, "request", "dpo", event_ids=["a-0"])
        assert all(s.content is not None for s in writer.read_log(tenant, 0, 10))
    finally:
        writer.close()
    dsn = postgres.privacy_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(dsn) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("DELETE FROM log_entries WHERE log_id = %s", (tenant,))


def test_the_command_line_erases_and_prints_what_it_did(
    store_url: str,
    privacy_url: str,
    tenant: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = open_store(store_url)
    try:
        load(store, tenant)
    finally:
        store.close()
    argv = ["erase", "--database-url", privacy_url, "--tenant", tenant, "--subject", "alice"]
    argv += ["--reason", "request #7", "--requested-by", "dpo", "--data-dir", str(tmp_path)]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["erased"] == ["a-0", "a-1", "a-2"] and printed["record"].startswith("erasure-")
    assert main([*argv[:-4], "--reason", "", "--data-dir", str(tmp_path)]) == 2
