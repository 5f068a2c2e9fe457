"""A stored rule whose source no longer compiles can be turned off, and is no obstacle.

A source stored before a check it now fails (a release tightened the rule
language) cannot be compiled. A flag-only UpdateRule of such a rule answered
UNKNOWN (RuleSyntaxError was mapped to no status), even for a caller with
content.read and pii.read, who may change it; and creating or changing any
other rule of the tenant did too (the contains/regex quota compiled every
stored rule). Turning a rule off must be possible: the engine cannot run it.
"""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from google.protobuf import field_mask_pb2

from aiaudit.alerting.model import StoredRule
from aiaudit.alerting.rules import RuleSyntaxError, compile_rule
from aiaudit.alerting.store import AlertStore
from aiaudit.alerting.v1 import alerting_service_pb2 as pb
from aiaudit.alerting.v1 import alerting_service_pb2_grpc as pb_grpc
from aiaudit.common import client
from aiaudit.common.store import open_store
from aiaudit.common.store.sql import SqlEventStore
from aiaudit.common.v1 import event_pb2 as ev
from tests.alerting.test_service import Server
from tests.helpers import open_log

BROKEN = "id: broken\nseverity: loud\n"
PROBE = "id: probe\nseverity: low\nwhen: {field: input.messages.parts.text, contains: secret}\n"


def _flag(stub: pb_grpc.AlertingServiceStub, name: str, enabled: bool) -> pb.Rule:
    request = pb.UpdateRuleRequest(
        rule=pb.Rule(name=name, enabled=enabled),
        update_mask=field_mask_pb2.FieldMask(paths=["enabled"]),
    )
    return stub.UpdateRule(request).rule


def _changes(store_url: str, tenant: str) -> list[tuple[str, str, bool]]:
    s = open_store(store_url)
    try:
        events = [x.to_event() for x in s.read_log(tenant, 0, 1000)]
    finally:
        s.close()
    return [
        (
            e.attributes["rule.action"].string_value,
            e.attributes["rule.id"].string_value,
            e.attributes["rule.enabled"].bool_value,
        )
        for e in events
        if e.event_type == ev.EVENT_TYPE_RULE_CHANGE
    ]


def _broken(
    alerting_server: Server, consumer: SqlEventStore, tenant: str
) -> pb_grpc.AlertingServiceStub:
    """Stores BROKEN (enabled, severity 3) as an older release could; an admin's stub."""
    with pytest.raises(RuleSyntaxError):
        compile_rule(BROKEN, stored=True)
    rules = AlertStore(consumer.engine)
    with rules.write() as conn, conn.begin():
        rules.put_rule(conn, StoredRule(tenant, "broken", BROKEN, True, 3, dt.datetime.now(dt.UTC)))
    _, keys, address = alerting_server
    return pb_grpc.AlertingServiceStub(client.channel(address, keys["admin"]))  # type: ignore[no-untyped-call]


def test_a_rule_that_no_longer_compiles_can_be_turned_off_not_on(
    alerting_server: Server, consumer: SqlEventStore, tenant: str, store_url: str
) -> None:
    open_log(store_url, tenant)  # a read of a tenant with no log is NOT_FOUND
    admin = _broken(alerting_server, consumer, tenant)  # content.read and pii.read
    name = f"tenants/{tenant}/rules/broken"

    # On: refused, saying why and what to do; nothing changes.
    with pytest.raises(grpc.RpcError) as info:
        _flag(admin, name, True)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = info.value.details() or ""
    assert "'broken': its stored source no longer compiles" in details
    assert "enabled only with a new source" in details
    assert admin.GetRule(pb.GetRuleRequest(name=name)).rule.enabled

    # Off: done, the source and severity kept as stored, the change recorded.
    off = _flag(admin, name, False)
    assert (off.enabled, off.source, int(off.severity)) == (False, BROKEN, 3)
    assert admin.GetRule(pb.GetRuleRequest(name=name)).rule == off
    assert _changes(store_url, tenant) == [("update", "broken", False)]

    # Enabled again only with a source that compiles.
    fixed = "id: broken\nseverity: high\nwhen: {field: usage.output_tokens, gt: 15}\n"
    request = pb.UpdateRuleRequest(rule=pb.Rule(name=name, source=fixed, enabled=True))
    assert admin.UpdateRule(request).rule.enabled


def test_other_rules_change_beside_one_that_no_longer_compiles(
    alerting_server: Server, consumer: SqlEventStore, tenant: str, store_url: str
) -> None:
    """The contains/regex quota compiled every stored rule: one that no longer compiles made
    every CreateRule and source UpdateRule of the tenant answer UNKNOWN. It counts none."""
    open_log(store_url, tenant)  # a rule change through * of a tenant with no log is NOT_FOUND
    admin = _broken(alerting_server, consumer, tenant)
    parent = f"tenants/{tenant}"
    probe = admin.CreateRule(
        pb.CreateRuleRequest(parent=parent, rule=pb.Rule(source=PROBE, enabled=True))
    ).rule
    changed = PROBE.replace("contains: secret", "contains: password")
    request = pb.UpdateRuleRequest(rule=pb.Rule(name=probe.name, source=changed, enabled=True))
    assert admin.UpdateRule(request).rule.source == changed
