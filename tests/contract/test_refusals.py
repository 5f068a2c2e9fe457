"""Refused requests are recorded in the tenant's log, like granted reads (both stores).

A caller holding roles on a tenant, short of the permission a request needs,
leaves an access record saying what it asked, ``access.outcome`` ``denied`` and
the permission it lacked, before it is answered PERMISSION_DENIED. A caller
holding no role on the tenant leaves nothing there: a key of one tenant must
not write into another's log by asking.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from aiaudit.alerting.v1 import alerting_service_pb2 as apb
from aiaudit.alerting.v1 import alerting_service_pb2_grpc as apb_grpc
from aiaudit.common import client
from aiaudit.common.access import AccessLog
from aiaudit.common.auth import Caller
from aiaudit.common.store import open_store
from aiaudit.common.store.prepare import prepare
from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.ingest.v1 import ingest_service_pb2 as ipb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as ipb_grpc
from aiaudit.integrity.v1 import integrity_service_pb2 as gpb
from aiaudit.integrity.v1 import integrity_service_pb2_grpc as gpb_grpc
from aiaudit.search.v1 import search_service_pb2 as spb
from aiaudit.search.v1 import search_service_pb2_grpc as spb_grpc
from tests.conftest import Postgres, Running, write_keys
from tests.helpers import access_records, clear_on_postgres, interaction

TYPED = "Jane Doe, jane@example.com"
"""Free text where a checked value belongs: kept only as the refusal's content."""
IP_RULE = 'id: ip-probe\nseverity: low\nwhen: {field: actor.ip_address, equals: "203.0.113.7"}\n'


def _refused(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call()
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, err.value.details()
    return err.value


def _attribute(record: ev.Event, name: str) -> ev.AttributeValue | None:
    return record.attributes.get(name)


def _refusals(store_url: str, tenant: str) -> list[ev.Event]:
    return [
        r
        for r in access_records(store_url, tenant)
        if (outcome := _attribute(r, "access.outcome")) and outcome.string_value == "denied"
    ]


def _said(record: ev.Event) -> dict[str, str]:
    """What the record keeps as content: the request's filter, query, subject, reason."""
    return {m.name: m.parts[0].text for m in record.input.messages}


def test_refused_searches_are_recorded_with_what_was_asked(
    server: Running, store_url: str, tenant: str
) -> None:
    ipb_grpc.IngestServiceStub(server.as_role("gateway")).Append(
        ipb.AppendRequest(events=[interaction(tenant, text="my password is hunter2")])
    )
    analyst = spb_grpc.SearchServiceStub(server.as_role("analyst"))
    full_text = _refused(
        lambda: analyst.SearchEvents(
            spb.SearchEventsRequest(
                tenant_id=tenant, filter='model.name = "m"', query="hunter2", order_by=TYPED
            )
        )
    )
    assert "'content.read'" in (full_text.details() or "")
    by_ip = _refused(
        lambda: analyst.Aggregate(
            spb.AggregateRequest(tenant_id=tenant, filter='actor.ip_address = "203.0.113.7"')
        )
    )
    assert "'pii.read'" in (by_ip.details() or "")
    gateway = spb_grpc.SearchServiceStub(server.as_role("gateway"))
    _refused(lambda: gateway.GetEvent(spb.GetEventRequest(tenant_id=tenant, event_id=TYPED)))
    auditor = spb_grpc.SearchServiceStub(server.as_role("auditor"))
    bundle = _refused(
        lambda: list(
            auditor.Export(
                spb.ExportRequest(
                    tenant_id=tenant,
                    format=spb.EXPORT_FORMAT_JSONL,
                    include_proofs=True,
                )
            )
        )
    )
    assert "'pii.read'" in (bundle.details() or "")

    search, aggregate, get, export = records = _refusals(store_url, tenant)
    assert [
        (
            r.attributes["access.action"].string_value,
            r.attributes["access.permission"].string_value,
            r.actor.user_id,
            r.actor.api_key_id,
        )
        for r in records
    ] == [
        ("search.events", "content.read", "test-analyst", "key-analyst"),
        ("search.aggregate", "pii.read", "test-analyst", "key-analyst"),
        ("search.get_event", "events.read", "test-gateway", "key-gateway"),
        ("search.export", "pii.read", "test-auditor", "key-auditor"),
    ]
    # What was asked is kept, every text as content (erasable, shown only with
    # content.read): nothing of a refused request was checked, so an order_by or an
    # event id may be anything a person typed.
    assert _said(search) == {"filter": 'model.name = "m"', "query": "hunter2", "order_by": TYPED}
    assert _said(aggregate) == {"filter": 'actor.ip_address = "203.0.113.7"'}
    assert _said(get) == {"event_id": TYPED}
    assert _said(export) == {"format": "jsonl"}  # a text too, as the others (any value sent)
    assert export.attributes["access.include_proofs"].bool_value is True
    for r in records:
        assert "hunter2" not in str(dict(r.attributes)) and "Jane" not in str(dict(r.attributes))
    # The refused callers read nothing: none of them has a granted record.
    refused = {"test-analyst", "test-gateway", "test-auditor"}
    assert [r for r in access_records(store_url, tenant) if r.actor.user_id in refused] == records


def test_refused_proofs_alerts_rules_and_erasures_are_recorded(
    server: Running, store_url: str, tenant: str
) -> None:
    ipb_grpc.IngestServiceStub(server.as_role("gateway")).Append(
        ipb.AppendRequest(events=[interaction(tenant)])
    )
    integrity = gpb_grpc.IntegrityServiceStub(server.as_role("developer"))
    _refused(lambda: integrity.GetCheckpoint(gpb.GetCheckpointRequest(log_id=tenant)))
    parent = f"tenants/{tenant}"
    _refused(
        lambda: apb_grpc.AlertingServiceStub(server.as_role("analyst")).ListAlerts(
            apb.ListAlertsRequest(parent=parent)
        )
    )
    # A rule on personal data needs pii.read beyond rules.write: refused, and recorded.
    analyst = apb_grpc.AlertingServiceStub(server.as_role("security_analyst"))
    ip_rule = _refused(
        lambda: analyst.CreateRule(
            apb.CreateRuleRequest(
                parent=parent, rule_id="ip-probe", rule=apb.Rule(source=IP_RULE, enabled=True)
            )
        )
    )
    assert "rule 'ip-probe' reads personal data" in (ip_rule.details() or "")
    developer = apb_grpc.AlertingServiceStub(server.as_role("developer"))
    _refused(
        lambda: developer.TestRule(
            apb.TestRuleRequest(parent=parent, source=IP_RULE, filter='model_name = "m"')
        )
    )
    alert = f"{parent}/alerts/a-1"
    _refused(
        lambda: apb_grpc.AlertingServiceStub(server.as_role("analyst")).AcknowledgeAlert(
            apb.AcknowledgeAlertRequest(name=alert)
        )
    )
    watch = apb_grpc.AlertingServiceStub(server.as_role("gateway"))
    _refused(lambda: list(watch.WatchAlerts(apb.WatchAlertsRequest(parent=parent))))
    _refused(
        lambda: ipb_grpc.IngestServiceStub(server.as_role("auditor")).EraseEvents(
            ipb.EraseEventsRequest(tenant_id=tenant, subject_id="alice", reason="art. 17")
        )
    )

    checkpoint, alerts, rule, test, ack, watched, erasure = records = _refusals(store_url, tenant)
    assert [
        (
            r.attributes["access.action"].string_value,
            r.attributes["access.permission"].string_value,
            r.actor.user_id,
        )
        for r in records
    ] == [
        ("integrity.get_checkpoint", "proofs.read", "test-developer"),
        ("alerting.list_alerts", "alerts.read", "test-analyst"),
        ("alerting.create_rule", "pii.read", "test-security_analyst"),
        ("alerting.test_rule", "pii.read", "test-developer"),
        ("alerting.acknowledge_alert", "alerts.write", "test-analyst"),
        ("alerting.watch_alerts", "alerts.read", "test-gateway"),
        ("erasure.erase_events", "content.erase", "test-auditor"),
    ]
    assert checkpoint.attributes["access.tree_size"].int_value == 0
    assert _said(alerts) == {"name": parent}
    assert _said(rule) == {"name": parent, "rule": "ip-probe"}
    assert _said(test) == {"name": parent, "filter": 'model_name = "m"', "query": IP_RULE}
    assert _said(ack) == {"name": alert}
    assert _said(watched) == {"name": parent}
    assert erasure.attributes["access.events_named"].int_value == 0
    assert _said(erasure) == {"subject_id": "alice", "reason": "art. 17"}
    # A refused event append is a gateway's traffic, not a read: not recorded.
    _refused(
        lambda: ipb_grpc.IngestServiceStub(server.as_role("auditor")).Append(
            ipb.AppendRequest(events=[interaction(tenant)])
        )
    )
    assert _refusals(store_url, tenant) == records


def test_a_caller_without_a_role_on_the_tenant_writes_nothing_there(
    store_url: str, tmp_path: Path, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    from aiaudit.cli.server import start
    from aiaudit.common import config

    other = f"{tenant}-other"
    _open_log(store_url, other)
    keys = write_keys(tmp_path / "keys.yaml", tenants=[tenant])  # every role, on `tenant` only
    overrides = {
        "address": "127.0.0.1:0",
        "database_url": store_url,
        "data_dir": tmp_path,
        "api_keys_file": tmp_path / "keys.yaml",
        **clear_on_postgres(store_url),
    }
    suite = start(config.load(env={}, overrides=overrides))
    try:
        address = f"127.0.0.1:{suite.port}"
        analyst = spb_grpc.SearchServiceStub(client.channel(address, keys["analyst"]))
        developer = gpb_grpc.IntegrityServiceStub(client.channel(address, keys["developer"]))
        auditor = ipb_grpc.IngestServiceStub(client.channel(address, keys["auditor"]))
        with caplog.at_level(logging.WARNING, logger="aiaudit.common.access"):
            _refused(lambda: analyst.SearchEvents(spb.SearchEventsRequest(tenant_id=other)))
            _refused(lambda: developer.GetCheckpoint(gpb.GetCheckpointRequest(log_id=other)))
            _refused(
                lambda: auditor.EraseEvents(
                    ipb.EraseEventsRequest(tenant_id=other, subject_id="alice", reason="r")
                )
            )
        assert suite.store.log_sizes()[other] == 1  # the event it was opened with, no record
        assert tenant not in suite.store.log_sizes()  # nor a record in the callers' own
        warned = [r.getMessage() for r in caplog.records if "holds no role" in r.getMessage()]
        assert len(warned) == 3
        assert (
            f"refused test-analyst (key 'key-analyst') search.events on tenant {other!r}"
            in (warned[0])
        )
        assert "integrity.get_checkpoint" in warned[1] and "erasure.erase_events" in warned[2]
    finally:
        suite.stop()


def _open_log(store_url: str, tenant: str) -> None:
    """The tenant's log, opened by one event."""
    store = open_store(store_url)
    try:
        now = dt.datetime.now(dt.UTC)
        store.append_group([[prepare(interaction(tenant), now)]])
    finally:
        store.close()


def test_no_record_for_a_roleless_caller_nor_in_a_log_that_does_not_exist(
    store_url: str, tenant: str
) -> None:
    """A token whose roles the suite knows none of holds no role on any tenant."""
    _open_log(store_url, tenant)
    store = open_store(store_url)
    try:
        roleless = Caller("p", frozenset({"*"}), frozenset(), "k")
        answer = AccessLog(store).refuse(roleless, tenant, "events.read", "search.events", {})
        assert answer.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
        everywhere = Caller("q", frozenset({"*"}), frozenset({"analyst"}), "k2")
        ghost = f"{tenant}-ghost"
        AccessLog(store).refuse(everywhere, ghost, "content.read", "search.events", {})
        assert ghost not in store.log_sizes()  # a refusal never opens a log
        AccessLog(store).refuse(everywhere, tenant, "content.read", "search.events", {})
    finally:
        store.close()
    (record,) = _refusals(store_url, tenant)  # only the analyst's, in a log that exists
    assert record.actor.user_id == "q"


def test_a_refusal_whose_record_fails_is_still_answered_denied(
    postgres: Postgres, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A refusal discloses nothing: a store that refuses its record changes the answer not."""
    _open_log(postgres.admin_url, tenant)
    store = open_store(postgres.consumer_url)  # a login that may read logs, not append
    try:
        caller = Caller("p", frozenset({tenant}), frozenset({"analyst"}), "k")
        with caplog.at_level(logging.WARNING, logger="aiaudit.common.access"):
            answer = AccessLog(store).refuse(
                caller, tenant, "content.read", "search.events", {"query": "q"}, "why"
            )
        assert answer.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
        assert answer.message == f"'p' lacks 'content.read' on tenant {tenant!r}: why"
        assert "access record not written" in caplog.text
    finally:
        store.close()
    assert access_records(postgres.admin_url, tenant) == []
