"""A rule change through ``*`` alone opens no log (both stores, a real server).

A rule change writes a record of its own (``EVENT_TYPE_RULE_CHANGE``) into the
tenant's log. Until 2026-12-07 a key covering every tenant (``*``) opened a log
for any name it stored a rule for: a typo left a log that the notary signed, the
indexer indexed and the lag gauges counted, and a rule that never fired. Such a
change is now NOT_FOUND (``TENANT_NOT_FOUND``), nothing written (no log, no
rule, no record, no alerting head), as a read of that tenant is
(``tests/contract/test_unknown_tenants.py``). Bad input is still
INVALID_ARGUMENT naming its field, and a rule the caller may not store still
PERMISSION_DENIED, unrecorded. A key naming the tenant may open its log with a
rule change, as with a read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import field_mask_pb2

from aiaudit.alerting.tables import heads, rules
from aiaudit.alerting.v1 import alerting_service_pb2 as pb
from aiaudit.alerting.v1 import alerting_service_pb2_grpc as pb_grpc
from aiaudit.common import client
from aiaudit.common.store import open_store
from aiaudit.common.store.sql import StoredEvent
from aiaudit.common.v1 import event_pb2 as ev
from tests.alerting.conftest import serving
from tests.alerting.test_service import Server, send, violations
from tests.helpers import error_info, interaction, whole_log

RULE = "id: big-output\nseverity: low\nwhen: {field: usage.output_tokens, gt: 15}\n"
IP_RULE = 'id: ip-watch\nseverity: low\nwhen: {field: actor.ip_address, equals: "203.0.113.7"}\n'
ENABLED = field_mask_pb2.FieldMask(paths=["enabled"])


def _stub(server: Server, role: str) -> pb_grpc.AlertingServiceStub:
    _, keys, address = server
    return pb_grpc.AlertingServiceStub(client.channel(address, keys[role]))  # type: ignore[no-untyped-call]


def _changes(stub: pb_grpc.AlertingServiceStub, parent: str) -> dict[str, Callable[[], object]]:
    """Rule changes that apply to a tenant with a log (the built-in pack is every tenant's)."""
    builtin = f"{parent}/rules/prompt-injection"
    return {
        "CreateRule": lambda: stub.CreateRule(
            pb.CreateRuleRequest(parent=parent, rule=pb.Rule(source=RULE, enabled=True))
        ),
        "UpdateRule (built-in off)": lambda: stub.UpdateRule(
            pb.UpdateRuleRequest(rule=pb.Rule(name=builtin, enabled=False), update_mask=ENABLED)
        ),
        "DeleteRule (none)": lambda: stub.DeleteRule(
            pb.DeleteRuleRequest(name=f"{parent}/rules/nope")
        ),
    }


def _bad(stub: pb_grpc.AlertingServiceStub, parent: str) -> dict[str, Callable[[], object]]:
    """Rule changes with bad input, by the field they name."""
    builtin = f"{parent}/rules/prompt-injection"
    return {
        "rule.source": lambda: stub.CreateRule(
            pb.CreateRuleRequest(parent=parent, rule=pb.Rule(source="id: x\nseverity: loud\n"))
        ),
        "rule_id": lambda: stub.CreateRule(
            pb.CreateRuleRequest(parent=parent, rule_id="other", rule=pb.Rule(source=RULE))
        ),
        "update_mask": lambda: stub.UpdateRule(
            pb.UpdateRuleRequest(
                rule=pb.Rule(name=builtin), update_mask=field_mask_pb2.FieldMask(paths=["x"])
            )
        ),
    }


def _event(stored: StoredEvent) -> ev.Event:
    return stored.to_event()


def _refused(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value


def _written(store_url: str, alerting_url: str, tenant: str) -> tuple[bool, int, int]:
    """(the tenant has a log, its rule rows, its alerting head rows)."""
    store, alerting = open_store(store_url), sa.create_engine(alerting_url)
    try:
        with alerting.connect() as conn:
            counted = [
                conn.execute(
                    sa.select(sa.func.count()).select_from(t).where(t.c.tenant == tenant)
                ).scalar_one()
                for t in (rules, heads)
            ]
        return store.has_log(tenant), counted[0], counted[1]
    finally:
        store.close()
        alerting.dispose()


def test_a_rule_change_through_a_wildcard_key_opens_no_log(
    alerting_server: Server,
    tenant: str,
    store_url: str,
    alerting_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """CreateRule, turning a built-in rule off and DeleteRule of a tenant with no log are
    TENANT_NOT_FOUND naming it, with a WARNING, nothing written; once the tenant has a
    log (its first event) the same changes apply and are recorded."""
    parent = f"tenants/{tenant}"
    admin = _stub(alerting_server, "admin")  # a key on every tenant ("*")
    with caplog.at_level(logging.WARNING, logger="aiaudit.common.access"):
        for name, change in _changes(admin, parent).items():
            err = _refused(change)
            assert err.code() == grpc.StatusCode.NOT_FOUND, (name, err.details())
            assert error_info(err) == ("TENANT_NOT_FOUND", {"tenant_id": tenant}), name
            assert _written(store_url, alerting_url, tenant) == (False, 0, 0), name
    warned = [r.getMessage() for r in caplog.records if "which has no log" in r.getMessage()]
    assert warned == [
        f"test-admin (key 'key-admin') asked alerting.{action} of tenant {tenant!r}, which "
        "has no log: not recorded, answered NOT_FOUND"
        for action in ("create_rule", "update_rule", "delete_rule")
    ]
    send(alerting_server[0], [interaction(tenant)])  # the first event opens the log
    answered = {}
    for name, change in _changes(admin, parent).items():
        try:
            change()
            answered[name] = "OK"
        except grpc.RpcError as err:
            answered[name] = error_info(err)[0]
    assert answered == {
        "CreateRule": "OK",
        "UpdateRule (built-in off)": "OK",
        "DeleteRule (none)": "NOT_FOUND",  # a read of the rules, recorded
    }
    store = open_store(store_url)
    try:
        kinds = [(e.event_type, e.actor.user_id) for e in map(_event, whole_log(store, tenant))]
    finally:
        store.close()
    assert kinds[1:] == [
        (ev.EVENT_TYPE_RULE_CHANGE, "test-admin"),
        (ev.EVENT_TYPE_RULE_CHANGE, "test-admin"),
        (ev.EVENT_TYPE_AUDIT_ACCESS, "test-admin"),
    ]


def test_bad_input_and_refusals_come_before_the_tenant(
    alerting_server: Server, tenant: str, store_url: str, alerting_url: str
) -> None:
    """Of a tenant with no log, through ``*``: bad input is INVALID_ARGUMENT naming its
    field, and a rule the caller may not store (an analyst's rule on an IP address, no
    ``pii.read``) PERMISSION_DENIED; as for a tenant with a log, and nothing written."""
    parent = f"tenants/{tenant}"
    for field, call in _bad(_stub(alerting_server, "admin"), parent).items():
        err = _refused(call)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (field, err.details())
        assert [f for f, _ in violations(err)] == [field]
    analyst = _stub(alerting_server, "security_analyst")
    err = _refused(
        lambda: analyst.CreateRule(
            pb.CreateRuleRequest(parent=parent, rule=pb.Rule(source=IP_RULE))
        )
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED, err.details()
    assert _written(store_url, alerting_url, tenant) == (False, 0, 0)


def test_a_key_naming_the_tenant_may_open_its_log_with_a_rule_change(
    store_url: str, alerting_url: str, tmp_path: Path, tenant: str
) -> None:
    """The tenant exists by configuration: its own key's rule change is the log's first
    entry, as that key's read would be; bad input there still writes nothing, and a
    refusal is recorded, its record opening the log (as a read's refusal is)."""
    other = f"{tenant}-b"
    with serving(store_url, alerting_url, tmp_path, tenants=[tenant, other]) as server:
        admin = _stub(server, "admin")
        parent = f"tenants/{tenant}"
        for field, call in _bad(admin, parent).items():
            assert _refused(call).code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert _written(store_url, alerting_url, tenant) == (False, 0, 0)
        admin.CreateRule(pb.CreateRuleRequest(parent=parent, rule=pb.Rule(source=RULE)))
        assert _written(store_url, alerting_url, tenant)[:2] == (True, 1)
        analyst = _stub(server, "security_analyst")  # no pii.read
        request = pb.CreateRuleRequest(parent=f"tenants/{other}", rule=pb.Rule(source=IP_RULE))
        err = _refused(lambda: analyst.CreateRule(request))
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED, err.details()
        assert _written(store_url, alerting_url, other) == (True, 0, 0)
    store = open_store(store_url)
    try:
        (first,) = map(_event, whole_log(store, tenant))
        (refusal,) = map(_event, whole_log(store, other))
    finally:
        store.close()
    assert first.event_type == ev.EVENT_TYPE_RULE_CHANGE
    assert refusal.event_type == ev.EVENT_TYPE_AUDIT_ACCESS
    assert refusal.attributes["access.outcome"].string_value == "denied"
