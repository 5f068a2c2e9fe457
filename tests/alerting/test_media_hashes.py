"""A media part's SHA-256 is content in alerting, as search shows it: only with its bytes.

Found by a review (2026-12-05): the hash is unsalted, so whoever holds a
candidate file can confirm it was sent. Alerting took it for metadata (the
proto does not mark it ``sensitive_content``): a developer (no content.read)
rendered it in a TestRule summary, confirmed a guessed file with ``equals``,
also after the image's erasure, and read it in the summaries of an admin's rule.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import grpc
import pytest

from aiaudit.alerting import fields as f
from aiaudit.alerting.model import StoredRule
from aiaudit.alerting.rules import RuleSyntaxError, compile_rule
from aiaudit.alerting.store import AlertStore
from aiaudit.alerting.v1 import alerting_service_pb2 as pb
from aiaudit.alerting.v1 import alerting_service_pb2_grpc as pb_grpc
from aiaudit.common import client
from aiaudit.common.erasure import erase
from aiaudit.common.store import open_store
from aiaudit.common.store.sql import SqlEventStore
from aiaudit.common.v1 import event_pb2 as ev
from tests.alerting.conftest import alert_rows, append, drain, make_engine, put_rule
from tests.alerting.test_service import Server, send, violations
from tests.helpers import interaction

PHOTO = b"\x89PNG a photo of someone"
DIGEST = hashlib.sha256(PHOTO).hexdigest()
HASH = "input.messages.parts.media.sha256"
CONFIRM = (
    f"id: confirm\nseverity: low\nsummary: confirmed\nwhen: {{field: {HASH}, equals: '{DIGEST}'}}\n"
)
RENDER = f"id: render\nseverity: low\nsummary: 'hash {{{HASH}}}'\n"
GROUP = (
    "id: by-file\nseverity: low\n"
    f"window: {{duration: 5m, group_by: [{HASH}], aggregate: count, threshold: {{gte: 2}}}}\n"
)
CONTENT = (
    "is content: an alert keeps it after the event's erasure (its summary, dedup key and "
    "window groups are not scrubbed); use metadata, or a detector for the text"
)


def _with_photo(tenant: str, event_id: str) -> ev.Event:
    e = interaction(tenant, event_id)
    photo = ev.Media(mime_type="image/png", size_bytes=len(PHOTO), sha256=DIGEST, data=PHOTO)
    e.input.messages[0].parts.append(ev.Part(media=photo))
    return e


def _erase(privacy_url: str, tenant: str, event_id: str) -> None:
    privacy = open_store(privacy_url)
    try:
        assert erase(privacy, tenant, "request", "dpo", event_ids=[event_id]).erased == [event_id]
    finally:
        privacy.close()


def _stub(server: Server, role: str) -> pb_grpc.AlertingServiceStub:
    _, keys, address = server
    return pb_grpc.AlertingServiceStub(client.channel(address, keys[role]))  # type: ignore[no-untyped-call]


def test_every_media_hash_path_is_content() -> None:
    for parts in ("input.system_instructions", "input.messages.parts", "output.messages.parts"):
        assert f.compile_path(f"{parts}.media.sha256").content, parts
        assert not f.compile_path(f"{parts}.media.mime_type").content, parts


def test_a_media_hash_is_tested_only_with_content_read_and_not_once_erased(
    alerting_server: Server, privacy_url: str, tenant: str
) -> None:
    channel, _, _ = alerting_server
    parent = f"tenants/{tenant}"
    send(channel, [_with_photo(tenant, "img")])
    developer, admin = _stub(alerting_server, "developer"), _stub(alerting_server, "admin")
    with pytest.raises(grpc.RpcError) as info:
        developer.TestRule(pb.TestRuleRequest(parent=parent, source=CONFIRM))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "content.read" in (info.value.details() or "")
    copied = {  # into alerts: refused whoever asks
        RENDER: f"line 3, summary: placeholder {{{HASH}}}: {CONTENT}",
        GROUP: f"line 3, window.group_by[0]: {CONTENT}",
    }
    for source, refused in copied.items():
        for stub in (developer, admin):
            with pytest.raises(grpc.RpcError) as info:
                stub.TestRule(pb.TestRuleRequest(parent=parent, source=source))
            assert violations(info.value) == [("source", refused)]
        with pytest.raises(grpc.RpcError) as info:
            admin.CreateRule(pb.CreateRuleRequest(parent=parent, rule=pb.Rule(source=source)))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    hit = admin.TestRule(pb.TestRuleRequest(parent=parent, source=CONFIRM))
    assert [list(a.event_ids) for a in hit.alerts] == [["img"]]
    _erase(privacy_url, tenant, "img")
    after = admin.TestRule(pb.TestRuleRequest(parent=parent, source=CONFIRM))
    assert after.evaluated_count >= 1 and list(after.alerts) == []


def test_a_rule_stored_before_the_check_renders_a_media_hash_empty(
    store: SqlEventStore, consumer: SqlEventStore, tenant: str
) -> None:
    """An admin's rule copied the hash into summaries every alerts.read holder reads."""
    with pytest.raises(RuleSyntaxError):
        compile_rule(RENDER)
    rules = AlertStore(consumer.engine)
    with rules.write() as conn, conn.begin():
        rules.put_rule(
            conn,
            StoredRule(tenant, "render", RENDER, True, ev.SEVERITY_LOW, dt.datetime.now(dt.UTC)),
        )
    append(store, [_with_photo(tenant, "img")])
    assert drain(make_engine(consumer), tenant) == 1
    assert [r.summary for r in alert_rows(consumer, tenant, "render")] == ["hash "]


def test_the_engine_evaluates_an_erased_event_without_its_media_hash(
    store: SqlEventStore, consumer: SqlEventStore, privacy_url: str, tenant: str
) -> None:
    """An event erased before the engine reached it matched ``equals`` on its hash all the same
    (the canonical form keeps it): its alert confirmed the guessed file after the erasure."""
    put_rule(consumer, tenant, CONFIRM)
    append(store, [_with_photo(tenant, "erased"), _with_photo(tenant, "kept")])
    _erase(privacy_url, tenant, "erased")
    drain(make_engine(consumer), tenant)
    assert [json.loads(r.event_ids) for r in alert_rows(consumer, tenant, "confirm")] == [["kept"]]
