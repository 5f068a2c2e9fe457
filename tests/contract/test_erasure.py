"""Erasure on every store: content and salt go, leaves stay, and the erasure is in the log."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
import sqlite3
import tempfile
import threading
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy import event as sa_event

from aiaudit.cli.main import main
from aiaudit.cli.server import Suite, start
from aiaudit.common import canonical, client, config, retention
from aiaudit.common.erasure import erase, erasure_event
from aiaudit.common.keys.kek import FileKek
from aiaudit.common.keys.keyring import Keyring
from aiaudit.common.store import SqlEventStore, open_store
from aiaudit.common.store.prepare import prepare, prepare_batch
from aiaudit.common.store.schema import content_keys, event_content
from aiaudit.common.store.sql import NewEvent
from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from tests.conftest import Postgres, write_keys
from tests.helpers import (
    access_records,
    assert_not_protobuf,
    assert_unauthenticated,
    clear_on_postgres,
    field_violations,
    interaction,
    not_protobuf,
    refused_raw,
    wait_until,
)


def load(store: SqlEventStore, tenant: str) -> dict[str, str]:
    """Three events of alice, one of bob; event id -> user."""
    events = [
        interaction(tenant, f"a-{i}", text=f"alice's secret {i}", user="alice") for i in range(3)
    ]
    events.append(interaction(tenant, "b-0", text="bob's message", user="bob"))
    store.append_group([prepare_batch(events, dt.datetime.now(dt.UTC))])
    return {e.event_id: e.actor.user_id for e in events}


def load_into(store_url: str, tenant: str) -> None:
    """:func:`load` through a store of its own (for tests that run a command after)."""
    store = open_store(store_url)
    try:
        load(store, tenant)
    finally:
        store.close()


def erase_argv(
    url: str, tenant: str, data_dir: Path, *selector: str, requested_by: str
) -> list[str]:
    """`aiaudit erase` of the selected events, its last four words the reason and data dir."""
    argv = ["erase", "--database-url", url, "--tenant", tenant, *selector]
    return [
        *argv,
        "--requested-by",
        requested_by,
        "--reason",
        "request #7",
        "--data-dir",
        str(data_dir),
    ]


def test_a_subjects_content_goes_and_every_leaf_stays(
    store: SqlEventStore, privacy_url: str, tenant: str
) -> None:
    load(store, tenant)
    before = {s.event_id: s for s in store.read_log(tenant, 0, 10)}
    # What the indexer reads the named events with: one read, in sequence order.
    named = store.read_event_ids(tenant, ["a-2", "b-0", "no-such-event", "a-0"])
    assert [s.event_id for s in named] == ["a-0", "a-2", "b-0"]
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
    mistyped = f"{tenant}-typo"
    with pytest.raises(ValueError, match=f"tenant '{mistyped}' has no log"):
        erase(store, mistyped, "r", "dpo", event_ids=["b-0"])
    assert mistyped not in store.log_sizes()  # no log made up for the record
    assert len(store.read_log(tenant, 0, 10)) == 4  # nothing written
    assert all(s.content is not None for s in store.read_log(tenant, 0, 10))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"subject_id": "al\x00ice"}, "subject_id must not contain U+0000"),
        ({"event_ids": ["b-0"], "requested_by": "x" * 300}, "requested_by is 300 characters"),
        ({"event_ids": ["b-0"], "requested_by": "d\x00o"}, "requested_by must not contain U+0000"),
    ],
    ids=["subject-nul", "requester-too-long", "requester-nul"],
)
def test_values_the_store_cannot_hold_are_refused_up_front(
    store: SqlEventStore, tenant: str, kwargs: dict[str, Any], message: str
) -> None:
    """PostgreSQL refused them mid-transaction (a retry cannot help), SQLite stored them."""
    load(store, tenant)
    with pytest.raises(ValueError, match=re.escape(message)):
        erase(store, tenant, "r", **{"requested_by": "dpo", **kwargs})
    assert len(store.read_log(tenant, 0, 10)) == 4  # no record
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


def test_only_the_privacy_role_may_destroy_data_keys_and_no_one_lowers_a_key_epoch(
    own_postgres: Postgres, tenant: str
) -> None:
    """Erasing a subject deletes its key and raises the log's key epoch: the writer may do
    neither, and the privacy role may not set the epoch back (that would let a writer's
    cached destroyed key pass the append's check: found by a review). A database of its own:
    its content is sealed under a KEK no other test holds."""
    writer = open_store(own_postgres.app_url, keys=Keyring(FileKek(Path(tempfile.mkdtemp()) / "k")))
    try:
        load(writer, tenant)
    finally:
        writer.close()

    def dsn(url: str) -> str:
        return url.replace("postgresql+psycopg://", "postgresql://", 1)

    with psycopg.connect(dsn(own_postgres.app_url)) as conn:
        for statement in (
            "DELETE FROM content_keys WHERE log_id = %s",
            "UPDATE logs SET key_epoch = key_epoch + 1 WHERE log_id = %s",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement, (tenant,))
            conn.rollback()
    with psycopg.connect(dsn(own_postgres.privacy_url)) as conn:
        conn.execute("UPDATE logs SET key_epoch = key_epoch + 1 WHERE log_id = %s", (tenant,))
        conn.commit()
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="may only grow"):
            conn.execute("UPDATE logs SET key_epoch = 0 WHERE log_id = %s", (tenant,))
        conn.rollback()
        epoch = conn.execute("SELECT key_epoch FROM logs WHERE log_id = %s", (tenant,)).fetchone()
        deleted = conn.execute("DELETE FROM content_keys WHERE log_id = %s", (tenant,))
        assert deleted.rowcount == 2  # alice's and bob's
        # However a key is deleted, writers holding it learn so (found by a review).
        after = conn.execute("SELECT key_epoch FROM logs WHERE log_id = %s", (tenant,)).fetchone()
        assert epoch is not None and after is not None and after[0] == epoch[0] + 2


def test_a_temporary_table_does_not_catch_the_epoch_of_a_deleted_key(
    own_postgres: Postgres, tenant: str
) -> None:
    """The trigger's function found a session's ``TEMP TABLE logs`` before the real one (its
    search_path left pg_temp out, so it came first): a privacy login deleted a key and the
    log's epoch stayed, so writers kept sealing under the deleted key (review, 2026-12-05)."""
    writer = open_store(own_postgres.app_url, keys=Keyring(FileKek(Path(tempfile.mkdtemp()) / "k")))
    try:
        load(writer, tenant)
    finally:
        writer.close()
    dsn = own_postgres.privacy_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TEMP TABLE logs (log_id text, key_epoch bigint)")
        conn.execute("INSERT INTO logs VALUES (%s, 0)", (tenant,))
        query = "SELECT key_epoch FROM public.logs WHERE log_id = %s"
        (before,) = conn.execute(query, (tenant,)).fetchone() or (None,)
        deleted = conn.execute("DELETE FROM content_keys WHERE log_id = %s", (tenant,))
        assert deleted.rowcount == 2
        assert conn.execute(query, (tenant,)).fetchone() == (before + 2,)
        assert conn.execute("SELECT key_epoch FROM pg_temp.logs").fetchone() == (0,)


def test_the_command_line_erases_and_prints_what_it_did(
    store_url: str,
    privacy_url: str,
    tenant: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    load_into(store_url, tenant)
    argv = erase_argv(privacy_url, tenant, tmp_path, "--subject", "alice", requested_by="dpo")
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["erased"] == ["a-0", "a-1", "a-2"] and printed["record"].startswith("erasure-")
    assert main([*argv[:-4], "--reason", "", "--data-dir", str(tmp_path)]) == 2
    # "No events of this subject" is a read: recorded as EraseEvents records it (it was not).
    nobody = erase_argv(privacy_url, tenant, tmp_path, "--subject", "nobody", requested_by="dpo")
    assert main(nobody) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "aiaudit erase: name the events to erase (event ids, or a subject with events) (recorded)"
    )
    probe = access_records(store_url, tenant)[-1]
    assert probe.attributes["access.action"].string_value == "erasure.nothing_to_erase"
    assert probe.actor.user_id == "dpo"
    assert [(m.name, m.parts[0].text) for m in probe.input.messages] == [
        ("subject_id", "nobody"),
        ("reason", "request #7"),
    ]


def test_the_command_line_refuses_what_erase_events_refuses_and_writes_nothing(
    store_url: str,
    privacy_url: str,
    tenant: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Neither a subject nor an id, an id no event can have, no requester: exit 2, no record.

    The first was taken as a subject without events and recorded as that read (an access
    record of subject ''); the second wrote an erasure record naming 'bad id!'. EraseEvents
    answers both INVALID_ARGUMENT and writes nothing.
    """
    load_into(store_url, tenant)

    def log() -> list[str]:
        store = open_store(store_url)
        try:
            return [e.event_id for e in store.read_log(tenant, 0, 10_000)]
        finally:
            store.close()

    before = log()
    neither = erase_argv(privacy_url, tenant, tmp_path, requested_by="dpo")
    assert main(neither) == 2
    assert capsys.readouterr().err.splitlines()[-2:] == [
        "aiaudit erase: name the events to erase: --subject USER_ID, --event-id ID (once per "
        "id), or both",
        "aiaudit erase: nothing was erased or recorded",
    ]
    bad = erase_argv(
        privacy_url,
        tenant,
        tmp_path,
        "--event-id",
        "a-0",
        "--event-id",
        "bad id!",
        requested_by="dpo",
    )
    assert main(bad) == 2
    assert capsys.readouterr().err.splitlines()[-2] == (
        "aiaudit erase: --event-id 'bad id!': not an event id (1-128 characters of [A-Za-z0-9._:-])"
    )
    monkeypatch.delenv("USER", raising=False)
    nobody = erase_argv(privacy_url, tenant, tmp_path, "--event-id", "a-0", requested_by="")
    assert main(nobody) == 2
    assert capsys.readouterr().err.splitlines()[-2] == (
        "aiaudit erase: --requested-by: required, who asked for the erasure ($USER is not set)"
    )
    assert log() == before  # no access record, no erasure record
    store = open_store(store_url)
    try:
        kept = store.get_event(tenant, "a-0")
        assert kept is not None and kept.content  # its content was not erased
    finally:
        store.close()


def test_the_command_line_refuses_a_requester_the_store_cannot_hold(
    store_url: str,
    privacy_url: str,
    tenant: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On PostgreSQL the command ended in a traceback ("value too long"), SQLite stored it."""
    load_into(store_url, tenant)
    argv = erase_argv(privacy_url, tenant, tmp_path, "--event-id", "b-0", requested_by="x" * 300)
    assert main(argv) == 2
    err = capsys.readouterr().err  # after the store's start-up warnings, if logged here
    assert err.splitlines()[-1] == "aiaudit erase: requested_by is 300 characters; the limit is 256"
    assert "Traceback" not in err


def serve(
    tmp_path: Path, store_url: str, privacy: str | None, principals: dict[str, str] | None = None
) -> tuple[Suite, dict[str, str]]:
    """The suite with a key per role, and a compliance officer's key per extra principal."""
    keys = write_keys(tmp_path / "keys.yaml")
    listed = yaml.safe_load((tmp_path / "keys.yaml").read_text())["keys"]
    for principal, key in (principals or {}).items():
        listed.append(
            {
                "id": f"key-{len(listed)}",
                "sha256": hashlib.sha256(key.encode()).hexdigest(),
                "principal": principal,
                "tenants": ["*"],
                "roles": ["compliance_officer"],
            }
        )
    (tmp_path / "keys.yaml").write_text(yaml.safe_dump({"keys": listed}))
    settings: dict[str, object] = {
        "address": "127.0.0.1:0",
        "data_dir": str(tmp_path),
        "database_url": store_url,
        "api_keys_file": str(tmp_path / "keys.yaml"),
        "services": ["ingest"],
        **clear_on_postgres(store_url),
    }
    if privacy:
        settings["ingest"] = {"privacy_database_url": privacy}
    cfg = tmp_path / "aiaudit.yaml"
    cfg.write_text(yaml.safe_dump(settings))
    return start(config.load(cfg, env={})), keys


def stub(suite: Suite, key: str) -> pb_grpc.IngestServiceStub:
    return pb_grpc.IngestServiceStub(client.channel(f"127.0.0.1:{suite.port}", key))


def refusal(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value


def test_erase_events_over_grpc(
    store: SqlEventStore, store_url: str, privacy_url: str, tenant: str, tmp_path: Path
) -> None:
    load(store, tenant)
    suite, keys = serve(tmp_path, store_url, privacy_url if privacy_url != store_url else None)
    try:
        officer = stub(suite, keys["compliance_officer"])
        bad = refusal(
            lambda: officer.EraseEvents(
                pb.EraseEventsRequest(tenant_id=tenant, event_ids=["a 0"], reason=" ")
            )
        )
        assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert set(field_violations(bad)) == {"reason", "event_ids[0]"}
        gateway = stub(suite, keys["gateway"])
        denied = refusal(
            lambda: gateway.EraseEvents(
                pb.EraseEventsRequest(tenant_id=tenant, subject_id="alice", reason="r")
            )
        )
        assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "'content.erase'" in (denied.details() or "")
        nobody = refusal(
            lambda: officer.EraseEvents(
                pb.EraseEventsRequest(tenant_id=tenant, subject_id="nobody", reason="r")
            )
        )
        assert nobody.code() == grpc.StatusCode.NOT_FOUND
        assert all(s.content is not None for s in store.read_log(tenant, 0, 10))  # nothing yet
        # The gateway's refusal is recorded (it holds a role on the tenant), what it asked
        # kept as erasable content, like a granted request's.
        # "no events of this subject" is a read: recorded, the subject as erasable content.
        refused, probe = access_records(store_url, tenant)
        assert refused.attributes["access.action"].string_value == "erasure.erase_events"
        assert refused.attributes["access.outcome"].string_value == "denied"
        assert refused.attributes["access.permission"].string_value == "content.erase"
        assert refused.attributes["access.events_named"].int_value == 0
        assert refused.actor.user_id == "test-gateway"
        assert [(m.name, m.parts[0].text) for m in refused.input.messages] == [
            ("subject_id", "alice"),
            ("reason", "r"),
        ]
        assert probe.attributes["access.action"].string_value == "erasure.nothing_to_erase"
        assert probe.actor.user_id == "test-compliance_officer"
        assert [(m.name, m.parts[0].text) for m in probe.input.messages] == [
            ("subject_id", "nobody"),
            ("reason", "r"),
        ]
        assert "nobody" not in str(dict(probe.attributes))
        # A tenant without a log gets no record: it would make the mistyped tenant a log.
        typo = refusal(
            lambda: officer.EraseEvents(
                pb.EraseEventsRequest(tenant_id=f"{tenant}x", subject_id="alice", reason="r")
            )
        )
        assert typo.code() == grpc.StatusCode.NOT_FOUND
        assert f"{tenant}x" not in store.log_sizes()

        done = officer.EraseEvents(
            pb.EraseEventsRequest(tenant_id=tenant, subject_id="alice", reason="request #3")
        )
        assert list(done.erased_event_ids) == ["a-0", "a-1", "a-2"]
        assert (done.erased_count, done.named_count, done.event_ids_truncated) == (3, 3, False)
        assert list(done.record_event_ids) == [done.record_event_id]  # one record, listed whole
        record = store.get_event(tenant, done.record_event_id)
        assert record is not None
        assert record.to_event().privacy_action.requested_by == "test-compliance_officer"
        # The caller is named as an access record names its reader: principal, key and
        # roles. Until 2026-12-07 only the principal, which keys may share (review).
        actor = record.to_event().actor
        assert (actor.user_id, actor.api_key_id, actor.user_role) == (
            "test-compliance_officer",
            "key-compliance_officer",
            "compliance_officer",
        )
        assert [s.content is None for s in store.read_log(tenant, 0, 4)] == [True] * 3 + [False]
    finally:
        suite.stop()


def test_a_resend_of_an_erased_event_is_told_its_content_was_erased(
    store: SqlEventStore, store_url: str, privacy_url: str, tenant: str, tmp_path: Path
) -> None:
    """With the content and its salt gone only metadata can be compared: a resend carrying
    other content is a duplicate too, and its receipt says so rather than vouch for it."""
    sent = [interaction(tenant, f"a-{i}", text=f"alice's secret {i}", user="alice") for i in (0, 1)]
    sent.append(interaction(tenant, "b-0", text="bob's message", user="bob"))
    store.append_group([prepare_batch(sent, dt.datetime.now(dt.UTC))])
    suite, keys = serve(tmp_path, store_url, privacy_url if privacy_url != store_url else None)
    try:
        officer = stub(suite, keys["compliance_officer"])
        officer.EraseEvents(pb.EraseEventsRequest(tenant_id=tenant, subject_id="alice", reason="r"))
        other = ev.Event()
        other.CopyFrom(sent[1])
        other.input.messages[0].parts[0].text = "other words altogether"
        resent = [sent[0], other, sent[2]]
        receipts = stub(suite, keys["gateway"]).Append(pb.AppendRequest(events=resent)).receipts
        assert [(r.event_id, r.sequence, r.duplicate, r.content_erased) for r in receipts] == [
            ("a-0", 0, True, True),
            ("a-1", 1, True, True),
            ("b-0", 2, True, False),
        ]
        assert [s.content is None for s in store.read_log(tenant, 0, 3)] == [True, True, False]
    finally:
        suite.stop()


def test_a_resend_of_an_erased_event_with_other_metadata_is_already_exists(
    store: SqlEventStore, store_url: str, privacy_url: str, tenant: str, tmp_path: Path
) -> None:
    """With the content erased the committed metadata is still compared: a resend under
    another model or user is another event, refused; with the same metadata, whatever its
    content, a duplicate told its content was erased (mutation review 2026-12-05)."""
    sent = interaction(tenant, "a-0", text="alice's secret", user="alice")
    store.append_group([prepare_batch([sent], dt.datetime.now(dt.UTC))])
    suite, keys = serve(tmp_path, store_url, privacy_url if privacy_url != store_url else None)
    try:
        officer = stub(suite, keys["compliance_officer"])
        officer.EraseEvents(pb.EraseEventsRequest(tenant_id=tenant, subject_id="alice", reason="r"))
        gateway = stub(suite, keys["gateway"])
        other_model, other_user = ev.Event(), ev.Event()
        other_model.CopyFrom(sent)
        other_model.model.name = "gpt-3.5-turbo"
        other_user.CopyFrom(sent)
        other_user.actor.user_id = "mallory"
        for other in (other_model, other_user):
            err = refusal(lambda o=other: gateway.Append(pb.AppendRequest(events=[o])))
            assert err.code() == grpc.StatusCode.ALREADY_EXISTS
            assert field_violations(err) == {"events[0].event_id": "taken by other content"}
        same = ev.Event()
        same.CopyFrom(sent)
        same.input.messages[0].parts[0].text = "other words altogether"
        for resent in (sent, same):
            r = gateway.Append(pb.AppendRequest(events=[resent])).receipts[0]
            assert (r.event_id, r.sequence, r.duplicate, r.content_erased) == ("a-0", 0, True, True)
        assert store.log_sizes()[tenant] == 2  # the event and the erasure's record
        kept = store.get_event(tenant, "a-0")
        assert kept is not None and kept.content is None
        assert (kept.to_event().model.name, kept.to_event().actor.user_id) == ("gpt-4o", "alice")
    finally:
        suite.stop()


def test_erase_events_refuses_values_the_store_cannot_hold(
    store: SqlEventStore, store_url: str, privacy_url: str, tenant: str, tmp_path: Path
) -> None:
    """On PostgreSQL a NUL in subject_id was UNAVAILABLE ("retry", which never helps);
    SQLite erased with it. (A principal longer than actor.user_id's column, UNKNOWN here
    before, is refused with its key or token: tests/unit/test_keys_file_identities.py.)"""
    load(store, tenant)
    privacy = privacy_url if privacy_url != store_url else None
    suite, keys = serve(tmp_path, store_url, privacy)
    try:
        nul = refusal(
            lambda: stub(suite, keys["compliance_officer"]).EraseEvents(
                pb.EraseEventsRequest(tenant_id=tenant, subject_id="al\x00ice", reason="r")
            )
        )
        assert nul.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(nul) == {"subject_id": "must not contain U+0000 (NUL)"}
        for reason, problem in (
            ("r" * 1025, "is 1025 characters; the limit is 1024"),  # a 10 MB one was taken
            ("r\x00", "must not contain U+0000 (NUL)"),
        ):
            refused = refusal(
                lambda reason=reason: stub(suite, keys["compliance_officer"]).EraseEvents(
                    pb.EraseEventsRequest(tenant_id=tenant, event_ids=["b-0"], reason=reason)
                )
            )
            assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert field_violations(refused) == {"reason": problem}
        assert len(store.read_log(tenant, 0, 10)) == 4  # no record
        assert all(s.content is not None for s in store.read_log(tenant, 0, 10))
    finally:
        suite.stop()


def test_erase_events_a_value_the_database_refuses_is_invalid_argument(
    own_postgres: Postgres, tenant: str, tmp_path: Path
) -> None:
    """Should a value pass the checks and PostgreSQL refuse it all the same (here a column
    narrowed since), the caller hears it is the request, not to retry: it was UNAVAILABLE."""
    writer = open_store(own_postgres.app_url)
    try:
        load(writer, tenant)
    finally:
        writer.close()
    with psycopg.connect(own_postgres.admin_dsn, autocommit=True) as admin:
        admin.execute("ALTER TABLE events ALTER COLUMN user_id TYPE varchar(20)")
    key = secrets.token_urlsafe(24)
    suite, _ = serve(tmp_path, own_postgres.app_url, own_postgres.privacy_url, {"o" * 30: key})
    try:
        err = refusal(
            lambda: stub(suite, key).EraseEvents(
                pb.EraseEventsRequest(tenant_id=tenant, event_ids=["b-0"], reason="r")
            )
        )
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "value too long" in (err.details() or "")
        assert "nothing was erased" in (err.details() or "")
        stored = suite.store.get_event(tenant, "b-0")
        assert stored is not None and stored.content is not None
    finally:
        suite.stop()


def test_erase_events_that_is_not_protobuf_is_invalid_argument_and_erases_nothing(
    store: SqlEventStore, store_url: str, privacy_url: str, tenant: str, tmp_path: Path
) -> None:
    """Invalid UTF-8 in a string field: gRPC's deserializer raised, and the officer was told
    INTERNAL "Exception deserializing request!", as if the server had failed (review,
    2026-12-06). A caller without a key hears UNAUTHENTICATED, nothing of the parse."""
    load(store, tenant)
    suite, keys = serve(tmp_path, store_url, privacy_url if privacy_url != store_url else None)
    try:
        address = f"127.0.0.1:{suite.port}"
        method = "/aiaudit.ingest.v1.IngestService/EraseEvents"
        raw = not_protobuf(
            pb.EraseEventsRequest(tenant_id=tenant, subject_id="alice", reason="GDPR"), "GDPR"
        )
        with client.channel(address, keys["compliance_officer"]) as officer:
            assert_not_protobuf(
                refused_raw(officer, method, raw), "aiaudit.ingest.v1.EraseEventsRequest"
            )
        assert_unauthenticated(address, method, raw)
        assert len(store.read_log(tenant, 0, 10)) == 4  # no erasure record, no access record
        assert all(s.content is not None for s in store.read_log(tenant, 0, 10))
    finally:
        suite.stop()


def test_erase_events_needs_the_privacy_login_on_postgresql(
    postgres: Postgres, tenant: str, tmp_path: Path
) -> None:
    suite, keys = serve(tmp_path, postgres.app_url, None)
    try:
        officer = stub(suite, keys["compliance_officer"])
        err = refusal(
            lambda: officer.EraseEvents(
                pb.EraseEventsRequest(tenant_id=tenant, event_ids=["x"], reason="r")
            )
        )
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "ingest.privacy_database_url" in (err.details() or "")
    finally:
        suite.stop()


def test_an_event_of_the_subject_committed_during_the_erasure_comes_after_its_record(
    postgres: Postgres, tenant: str
) -> None:
    """The erasure holds the log's head from before it looks the subject's events up: a
    concurrent append waits, then lands after the record. It used to land between the
    look-up and the record, neither erased nor named, though earlier in the log."""
    store = open_store(postgres.app_url)
    privacy = open_store(postgres.privacy_url)
    try:
        now = dt.datetime.now(dt.UTC)
        store.append_group([prepare_batch([interaction(tenant, "a-1", user="alice")], now)])
        late: list[object] = []
        writer = threading.Thread(
            target=lambda: late.extend(
                store.append_group(
                    [prepare_batch([interaction(tenant, "a-2", text="late", user="alice")], now)]
                )
            )
        )

        def record_of(named: list[str]) -> list[NewEvent]:
            writer.start()  # the subject's next event, from another connection, meanwhile
            with psycopg.connect(postgres.admin_dsn, autocommit=True) as admin:
                blocked = (  # this test's database: a session of another waits too
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                wait_until(lambda: admin.execute(blocked).fetchone()[0] >= 1)  # type: ignore[index]
            return [prepare(erasure_event(tenant, named, "art. 17", "dpo", "alice", now), now)]

        named, erased, (record_id,) = privacy.erase(tenant, [], "alice", record_of)
        writer.join(20)
    finally:
        privacy.close()
    try:
        assert named == erased == ["a-1"]
        record, a2 = store.get_event(tenant, record_id), store.get_event(tenant, "a-2")
        assert record is not None and a2 is not None
        assert a2.sequence > record.sequence and a2.content is not None  # after it, not erased
    finally:
        store.close()


def test_a_subject_with_more_events_than_a_statement_binds_is_erased(
    postgres: Postgres, tenant: str
) -> None:
    """One bound parameter per event id exceeded psycopg's 65,535 for a busy subject: the
    erasure failed as UNAVAILABLE, retried, failed again, for good."""
    store = open_store(postgres.app_url)
    try:
        now = dt.datetime.now(dt.UTC)
        for start in range(0, 66_000, 5_000):
            events = [interaction(tenant, f"m-{i}", user="bob") for i in range(start, start + 5000)]
            store.append_group([prepare_batch(events, now)])
    finally:
        store.close()
    privacy = open_store(postgres.privacy_url)
    try:
        done = erase(privacy, tenant, "art. 17", "dpo", subject_id="bob")
    finally:
        privacy.close()
    assert len(done.erased) == len(done.named) == 70_000


def holding_bytes(folder: Path, *needles: bytes) -> list[str]:
    """The store's files holding any of ``needles`` (their last 24 bytes: one page each)."""
    return sorted(
        f.name
        for f in folder.glob("aiaudit.db*")
        if any(n[-24:] in f.read_bytes() for n in needles)
    )


@pytest.mark.parametrize("how", ["subject", "retention"])
def test_erased_content_leaves_every_file_of_the_embedded_store(
    tmp_path: Path, tenant: str, how: str
) -> None:
    """The WAL kept the page images an erasure rewrote (the sealed content, a subject's
    wrapped data key, and the key file lies beside it) until some later checkpoint, and
    deleted cells stayed in free space where a SQLite build leaves ``secure_delete`` off
    (review, 2026-12-05): after the erasure, no file of the store holds them."""
    store = open_store(f"sqlite:///{tmp_path / 'aiaudit.db'}", run_migrations=True)
    try:
        with store.engine.connect() as conn:  # what every connection of the store runs with
            assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
        received = dt.datetime.now(dt.UTC)
        events = [
            interaction(tenant, "a-0", text="alice's diagnosis", user="alice"),
            interaction(tenant, "b-0", text="mango season", user="bob"),
        ]
        store.append_group([prepare_batch(events, received)])
        with store.engine.connect() as conn:
            sealed = (
                conn.execute(sa.select(event_content.c.content).order_by(event_content.c.seq))
                .scalars()
                .all()
            )
            (wrapped,) = conn.execute(
                sa.select(content_keys.c.wrapped).where(content_keys.c.subject == "alice")
            ).scalars()
        secrets_ = [*sealed, wrapped] if how == "subject" else sealed
        assert holding_bytes(tmp_path, *secrets_) == ["aiaudit.db-wal"]
        if how == "subject":
            erase(store, tenant, "art. 17", "dpo", subject_id="alice")
            secrets_ = [sealed[0], wrapped]  # bob's content stays
        else:
            later = received + dt.timedelta(days=2)  # 0 days keeps content forever
            assert retention.sweep(store, 1, later, [tenant]) == {tenant: 2}
        assert holding_bytes(tmp_path, *secrets_) == []
    finally:
        store.close()


def test_more_event_ids_than_sqlite_binds_are_read_in_sequence_order(
    tmp_path: Path, tenant: str
) -> None:
    """The indexer reads every event an erasure batch names in one call: one bound parameter
    each went over SQLite's limit (32,766 unless the build raised it) for a large subject,
    and the indexer retried that batch for good, the erased words still searchable."""
    store = open_store(f"sqlite:///{tmp_path / 'aiaudit.db'}", run_migrations=True)

    @sa_event.listens_for(store.engine, "connect")
    def standard_limit(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32_766)

    store.engine.dispose()  # connections made before the listener
    try:
        events = [interaction(tenant, f"a-{i}", user="alice") for i in range(3)]
        store.append_group([prepare_batch(events, dt.datetime.now(dt.UTC))])
        ids = ["a-2", *(f"missing-{i}" for i in range(40_000)), "a-0", "a-2"]
        assert [s.event_id for s in store.read_event_ids(tenant, ids)] == ["a-0", "a-2"]
    finally:
        store.close()


def test_last_record_is_the_latest_erasure_or_retention_record_of_its_log(
    store: SqlEventStore, privacy_url: str, tenant: str
) -> None:
    """What every search over content waits for the index to apply."""
    load(store, tenant)
    assert store.last_record(tenant) is None
    privacy = open_store(privacy_url)
    try:
        erase(privacy, tenant, "request #7", "dpo@example.test", subject_id="alice")
    finally:
        privacy.close()
    assert store.last_record(tenant) == 4
    retained = interaction(tenant, "r-0")
    retained.event_type = ev.EVENT_TYPE_RETENTION_APPLIED
    later = interaction(tenant, "c-0")
    store.append_group([prepare_batch([retained, later], dt.datetime.now(dt.UTC))])
    assert store.last_record(tenant) == 5  # the retention record, not the interaction after
    assert store.last_record(f"{tenant}-other") is None
