"""Lone surrogates in a rule's YAML (``"\\ud800"``): text UTF-8 cannot hold (review, 2026-12-06).

YAML's double-quoted escapes make any code point, a lone surrogate too, which no
event value holds (protobuf strings are UTF-8). Such a rule was accepted and then,
in a summary, a dedup key or an operand, held its tenant's log at its first event
(every rule of the tenant, the default pack too, stopped alerting), and in a label
made every ListAlerts and WatchAlerts answer holding its alerts UNKNOWN for good.
"""

from __future__ import annotations

import datetime as dt

import grpc
import pytest

from aiaudit.alerting.model import StoredRule
from aiaudit.alerting.rules import RuleSyntaxError, compile_rule
from aiaudit.alerting.store import AlertStore
from aiaudit.alerting.v1 import alerting_service_pb2 as pb
from aiaudit.alerting.v1 import alerting_service_pb2_grpc as pb_grpc
from aiaudit.common.store.sql import SqlEventStore
from tests.alerting.conftest import alert_rows, append, bare_alert, drain, make_engine
from tests.alerting.test_service import violations
from tests.helpers import interaction, open_log

HEAD = "id: odd\nseverity: low\n"


@pytest.mark.parametrize(
    ("body", "line"),
    [
        ('summary: "x\\ud800"\n', 3),
        ('dedup: {key: "{rule}\\udfff"}\n', 3),
        ('labels: {team: "\\ud800"}\n', 3),
        ('labels: {"k\\ud800": x}\n', 3),
        ('when: {field: actor.user_id, equals: "\\ud800"}\n', 3),
        ('when:\n  field: actor.user_id\n  in: [a, "\\U0000d800"]\n', 5),
        ('description: "\\ud800"\n', 3),
    ],
)
def test_a_lone_surrogate_in_a_rule_is_invalid(body: str, line: int) -> None:
    with pytest.raises(RuleSyntaxError) as info:
        compile_rule(HEAD + body)
    (error,) = info.value.errors
    assert error.line == line and "lone surrogate" in error.message


def test_a_surrogate_pair_escaped_is_one_character_and_valid() -> None:
    rule = compile_rule(HEAD + 'summary: "\\ud83d\\ude00 {rule}"\n')
    assert rule.summary == "\U0001f600 {rule}"


def test_a_stored_rule_with_a_lone_surrogate_runs_with_a_replacement_character(
    store: SqlEventStore, consumer: SqlEventStore, tenant: str
) -> None:
    """Stored before the check: it runs, the surrogate read as U+FFFD, instead of holding
    the tenant's log at its first event (the alert's statement could not encode it)."""
    source = HEAD + 'summary: "x\\ud800"\nlabels: {team: "a\\udc00"}\n'
    rule = compile_rule(source, stored=True)
    alerting = AlertStore(consumer.engine)
    with alerting.write() as conn, conn.begin():
        now = dt.datetime.now(dt.UTC)
        alerting.put_rule(conn, StoredRule(tenant, rule.id, source, True, rule.severity, now))
    append(store, [interaction(tenant, user="u")])
    assert drain(make_engine(consumer), tenant) == 1
    (row,) = alert_rows(consumer, tenant, "odd")
    assert row.summary == "x\ufffd" and row.labels == '{"team": "a\\ufffd"}'


def test_list_alerts_answers_an_alert_whose_stored_labels_hold_a_lone_surrogate(
    alerting_server: tuple[grpc.Channel, dict[str, str], str],
    consumer: SqlEventStore,
    tenant: str,
    store_url: str,
) -> None:
    """An alert raised by such a rule before the check kept the label (as JSON's \\ud800):
    every ListAlerts page holding it answered UNKNOWN, and alerts are never deleted."""
    open_log(store_url, tenant)  # a read of a tenant with no log is NOT_FOUND
    channel, _, _ = alerting_server
    alert = bare_alert(tenant)
    alert.labels = {"team": "a\ud800", "k\udfff": "v"}
    alerting = AlertStore(consumer.engine)
    with alerting.write() as conn, conn.begin():
        alerting.insert_alert(conn, alert)
    stub = pb_grpc.AlertingServiceStub(channel)  # type: ignore[no-untyped-call]
    (listed,) = stub.ListAlerts(pb.ListAlertsRequest(parent=f"tenants/{tenant}")).alerts
    assert dict(listed.labels) == {"team": "a\ufffd", "k\ufffd": "v"}


def test_create_rule_refuses_a_lone_surrogate_naming_the_source(
    alerting_server: tuple[grpc.Channel, dict[str, str], str], tenant: str
) -> None:
    channel, _, _ = alerting_server
    stub = pb_grpc.AlertingServiceStub(channel)  # type: ignore[no-untyped-call]
    source = HEAD + 'summary: "x\\ud800"\n'
    with pytest.raises(grpc.RpcError) as info:
        stub.CreateRule(
            pb.CreateRuleRequest(
                parent=f"tenants/{tenant}", rule=pb.Rule(source=source, enabled=True)
            )
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    ((field, description),) = violations(info.value)
    assert (
        field == "rule.source" and description.startswith("line 3") and "surrogate" in description
    )
