"""Input bounds: what the API refused as UNKNOWN, or took and then crashed on (a review's finds).

A throttle past ``timedelta``'s range or a window too long for a double passed
CreateRule and then stopped the tenant's alerting at the next hit; integers too
large for a double, forged page tokens and rule sources of megabytes answered
UNKNOWN or held an RPC thread for seconds.
"""

from __future__ import annotations

import base64
import datetime as dt

import grpc
import pytest
from google.protobuf import field_mask_pb2

from aiaudit.alerting.evaluate import MAX_SUMMARY_CHARS
from aiaudit.alerting.model import StoredRule
from aiaudit.alerting.rules import (
    MAX_DURATION_DAYS,
    MAX_SOURCE_BYTES,
    RuleSyntaxError,
    compile_rule,
)
from aiaudit.alerting.store import AlertStore
from aiaudit.alerting.v1 import alerting_service_pb2 as pb
from aiaudit.alerting.v1 import alerting_service_pb2_grpc as pb_grpc
from aiaudit.common.store.sql import SqlEventStore
from aiaudit.common.v1 import event_pb2 as ev
from tests.alerting.conftest import alert_rows, append, drain, make_engine, put_rule
from tests.alerting.test_service import Server, send, violations
from tests.helpers import interaction, open_log

BIG = "1" + "0" * 400  # an integer no double holds
THROTTLE = "id: every\nseverity: low\ndedup: {key: '{rule}', throttle: 9999999999d}\n"
WINDOW = (
    f"id: windowed\nseverity: low\nwindow: {{duration: '{BIG}d', aggregate: count, "
    "threshold: {gt: 0}}\ndedup: {key: '{rule}'}\n"
)


def errors(source: str) -> list[str]:
    with pytest.raises(RuleSyntaxError) as info:
        compile_rule(source)
    return [str(e) for e in info.value.errors]


def _window(duration: str, baseline: str = "1h") -> str:
    return (
        f"id: w\nseverity: low\nwindow: {{duration: {duration}, aggregate: count, "
        f"threshold: {{gt: 3}}, baseline: {{duration: {baseline}, factor: 2}}}}\n"
    )


@pytest.mark.parametrize(
    ("source", "where"),
    [
        (THROTTLE, "line 3, dedup.throttle"),
        (WINDOW, "line 3, window.duration"),
        (_window(BIG), "line 3, window.duration"),
        (_window(f"'{BIG}ms'"), "line 3, window.duration"),
        (_window("367d"), "line 3, window.duration"),
        (_window("5m", "400d"), "line 3, window.baseline.duration"),
    ],
)
def test_durations_over_a_year_are_refused(source: str, where: str) -> None:
    (found,) = errors(source)
    assert found.startswith(f"{where}: ")
    assert found.endswith(f"is over the limit of {MAX_DURATION_DAYS} days")


def test_durations_up_to_a_year_compile() -> None:
    rule = compile_rule(_window("366d", "31622400") + "dedup: {key: '{rule}', throttle: 366d}\n")
    assert rule.window is not None
    assert rule.window.seconds == rule.window.baseline_seconds == rule.throttle_seconds
    assert rule.throttle_seconds == MAX_DURATION_DAYS * 86400


@pytest.mark.parametrize(
    ("when", "where"),
    [
        (f"{{field: usage.input_tokens, gt: {BIG}}}", "when.gt"),
        (f"{{detector: pii, min_score: {BIG}}}", "when.min_score"),
        (f"{{field: usage.input_tokens, equals: -{BIG}}}", "when.equals"),
        (f"{{field: usage.input_tokens, in: [1, {BIG}]}}", "when.in"),
        ("{field: usage.input_tokens, lt: .nan}", "when.lt"),
    ],
)
def test_numbers_a_double_cannot_hold_are_refused(when: str, where: str) -> None:
    (found,) = errors(f"id: n\nseverity: low\nwhen: {when}\n")
    assert found.startswith(f"line 3, {where}: expected a finite number (at most 1.798e+308")


def test_window_numbers_a_double_cannot_hold_are_refused() -> None:
    source = f"id: n\nseverity: low\nwindow: {{duration: 5m, aggregate: count, threshold: {{lt: {BIG}}}}}\n"  # noqa: E501
    (found,) = errors(source)
    assert found.startswith("line 3, window.threshold.lt: expected a finite number")
    digits = "1" * 5000  # past Python's 4300 digits: YAML's int() itself fails
    assert errors(f"id: n\nseverity: low\nwhen: {{field: usage.input_tokens, gt: {digits}}}\n") == [
        "line 1: invalid YAML: an integer of more than 4300 digits"
    ]


def test_an_id_with_a_trailing_newline_is_refused() -> None:
    assert errors('id: "nl\\n"\nseverity: low\n') == [
        "line 1, id: must match [a-z0-9][a-z0-9_-]{0,62}"
    ]


def test_labels_take_single_values_only() -> None:
    assert errors("id: l\nseverity: low\nlabels: {a: {b: c}, d: [1]}\n") == [
        "line 3, labels.a: expected one value: strings, numbers or true/false "
        "(quote dates: '2026-01-01')",
        "line 3, labels.d: expected one value: strings, numbers or true/false "
        "(quote dates: '2026-01-01')",
    ]
    rule = compile_rule("id: l\nseverity: low\nlabels: {a: x, b: 2, c: true}\n")
    assert rule.labels == {"a": "x", "b": "2", "c": "True"}


def test_stored_rules_past_the_bounds_still_run(
    store: SqlEventStore, consumer: SqlEventStore, tenant: str
) -> None:
    """Rules stored before the bounds run with the longest duration allowed, not crash."""
    alerting = AlertStore(consumer.engine)
    with alerting.write() as conn, conn.begin():
        for source in (THROTTLE, WINDOW):
            rule = compile_rule(source, stored=True)
            stored = StoredRule(
                tenant, rule.id, source, True, rule.severity, dt.datetime.now(dt.UTC)
            )
            alerting.put_rule(conn, stored)
    engine = make_engine(consumer)
    for _ in range(2):  # the second hit is folded into the first's alert: the throttle
        append(store, [interaction(tenant, text="hello", user="u")])
        assert drain(engine, tenant) == 1
    counts = {r.rule_id: r.occurrence_count for r in alert_rows(consumer, tenant)}
    assert counts["every"] == 2 and counts["windowed"] == 2


def test_a_summary_is_bounded_however_much_its_placeholders_render(
    store: SqlEventStore, consumer: SqlEventStore, tenant: str
) -> None:
    """A summary rendered whole: 4,000 placeholders of a 4,096-character attribute (a 56 KB
    source) made each alert's summary 16 MB, in its row, its outbox payloads and every
    ListAlerts page (past what a gRPC message carries); a batch of 2,000 users' hits held
    tens of GB. It keeps its first MAX_SUMMARY_CHARS characters, the last one an ellipsis."""
    put_rule(
        consumer,
        tenant,
        'id: loud\nseverity: low\nsummary: "{actor.user_id}: ' + "{attributes.k}" * 4000 + '"\n',
    )
    e = interaction(tenant, user="bob")
    e.attributes["k"].string_value = "x" * 4096
    append(store, [e])
    drain(make_engine(consumer), tenant)
    (row,) = alert_rows(consumer, tenant, "loud")
    assert len(row.summary) == MAX_SUMMARY_CHARS
    assert row.summary == "bob: " + "x" * (MAX_SUMMARY_CHARS - 6) + "\u2026"


# ---- over gRPC ----


def _invalid(info: pytest.ExceptionInfo[grpc.RpcError], field: str) -> str:
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    ((named, description),) = violations(info.value)
    assert named == field
    return description


def test_rule_sources_that_would_crash_evaluation_are_invalid(
    alerting_server: Server, tenant: str, store_url: str
) -> None:
    open_log(store_url, tenant)  # a rule change through * of a tenant with no log is NOT_FOUND
    channel, _, _ = alerting_server
    stub = pb_grpc.AlertingServiceStub(channel)  # type: ignore[no-untyped-call]
    parent = f"tenants/{tenant}"
    for source in (
        THROTTLE,
        WINDOW,
        f"id: g\nseverity: low\nwhen: {{detector: pii, min_score: {BIG}}}\n",
    ):
        with pytest.raises(grpc.RpcError) as info:
            stub.CreateRule(
                pb.CreateRuleRequest(parent=parent, rule=pb.Rule(source=source, enabled=True))
            )
        assert "line 3" in _invalid(info, "rule.source")
        with pytest.raises(grpc.RpcError) as info:
            stub.TestRule(pb.TestRuleRequest(parent=parent, source=source))
        assert "line 3" in _invalid(info, "source")
    created = stub.CreateRule(
        pb.CreateRuleRequest(
            parent=parent, rule=pb.Rule(source="id: every\nseverity: low\n", enabled=True)
        )
    ).rule
    with pytest.raises(grpc.RpcError) as info:
        stub.UpdateRule(
            pb.UpdateRuleRequest(
                rule=pb.Rule(name=created.name, source=THROTTLE),
                update_mask=field_mask_pb2.FieldMask(paths=["source"]),
            )
        )
    assert _invalid(info, "rule.source").endswith(f"over the limit of {MAX_DURATION_DAYS} days")
    with pytest.raises(grpc.RpcError) as info:
        stub.CreateRule(
            pb.CreateRuleRequest(
                parent=parent,
                rule=pb.Rule(source="id: l\nseverity: low\nlabels: {a: {b: c}}\n", enabled=True),
            )
        )
    assert _invalid(info, "rule.source").startswith("line 3, labels.a: expected one value")


def test_rule_sources_over_64_kib_are_invalid(
    alerting_server: Server, tenant: str, store_url: str
) -> None:
    open_log(store_url, tenant)  # a read of a tenant with no log is NOT_FOUND
    channel, _, _ = alerting_server
    stub = pb_grpc.AlertingServiceStub(channel)  # type: ignore[no-untyped-call]
    parent = f"tenants/{tenant}"
    head = "id: big\nseverity: low\n#"
    fits = head + "x" * (MAX_SOURCE_BYTES - len(head) - 1) + "\n"
    assert len(fits.encode()) == MAX_SOURCE_BYTES
    stub.TestRule(pb.TestRuleRequest(parent=parent, source=fits))
    over = fits + "#é\n"  # bytes, not characters, are counted
    limit = f"{len(over.encode())} bytes; the limit is {MAX_SOURCE_BYTES} bytes (64 KiB)"
    with pytest.raises(grpc.RpcError) as info:
        stub.TestRule(pb.TestRuleRequest(parent=parent, source=over))
    assert limit in _invalid(info, "source")
    with pytest.raises(grpc.RpcError) as info:
        stub.CreateRule(
            pb.CreateRuleRequest(parent=parent, rule=pb.Rule(source=over, enabled=True))
        )
    assert limit in _invalid(info, "rule.source")
    created = stub.CreateRule(
        pb.CreateRuleRequest(parent=parent, rule=pb.Rule(source=fits, enabled=True))
    ).rule
    with pytest.raises(grpc.RpcError) as info:
        stub.UpdateRule(
            pb.UpdateRuleRequest(rule=pb.Rule(name=created.name, source=over, enabled=True))
        )
    assert limit in _invalid(info, "rule.source")


def _token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def test_page_tokens_not_from_the_service_are_invalid(
    alerting_server: Server, tenant: str, store_url: str
) -> None:
    open_log(store_url, tenant)  # a read of a tenant with no log is NOT_FOUND
    channel, _, _ = alerting_server
    stub = pb_grpc.AlertingServiceStub(channel)  # type: ignore[no-untyped-call]
    parent = f"tenants/{tenant}"
    forged = [b'{"o":"x"}', b'{"o":1.5}', b'{"o":-3}', b'{"o":true}', b'{"o":null}', b"[" * 100_000]
    for raw in forged:
        with pytest.raises(grpc.RpcError) as info:
            stub.ListRules(pb.ListRulesRequest(parent=parent, page_token=_token(raw)))
        _invalid(info, "page_token")
    with pytest.raises(grpc.RpcError) as info:
        stub.ListAlerts(pb.ListAlertsRequest(parent=parent, page_token=_token(b"[" * 100_000)))
    _invalid(info, "page_token")
    page = stub.ListRules(pb.ListRulesRequest(parent=parent, page_size=2))
    rest = stub.ListRules(pb.ListRulesRequest(parent=parent, page_token=page.next_page_token))
    assert page.next_page_token and rest.rules  # the service's own tokens still work


def test_watch_alerts_refuses_a_severity_the_enum_does_not_name(
    alerting_server: Server, tenant: str
) -> None:
    channel, _, _ = alerting_server
    stub = pb_grpc.AlertingServiceStub(channel)  # type: ignore[no-untyped-call]
    request = pb.WatchAlertsRequest(parent=f"tenants/{tenant}", min_severity=999)  # type: ignore[arg-type]
    with pytest.raises(grpc.RpcError) as info:
        next(stub.WatchAlerts(request, timeout=10))  # it used to stay open, never sending
    assert "999 is not a Severity" in _invalid(info, "min_severity")


def test_create_rule_stores_the_flag_as_sent(
    alerting_server: Server, tenant: str, store_url: str
) -> None:
    """``enabled`` is a proto3 bool: unset is false, a disabled rule (as the README says)."""
    open_log(store_url, tenant)  # a rule change through * of a tenant with no log is NOT_FOUND
    channel, _, _ = alerting_server
    stub = pb_grpc.AlertingServiceStub(channel)  # type: ignore[no-untyped-call]
    parent = f"tenants/{tenant}"
    off = stub.CreateRule(
        pb.CreateRuleRequest(parent=parent, rule=pb.Rule(source="id: dormant\nseverity: low\n"))
    ).rule
    on = stub.CreateRule(
        pb.CreateRuleRequest(
            parent=parent, rule=pb.Rule(source="id: active\nseverity: low\n", enabled=True)
        )
    ).rule
    assert (off.enabled, on.enabled) == (False, True)
    assert not stub.GetRule(pb.GetRuleRequest(name=off.name)).rule.enabled
    assert on.severity == ev.SEVERITY_LOW


def test_a_nul_in_a_name_filter_or_token_is_invalid_not_unavailable(
    alerting_server: Server, tenant: str
) -> None:
    """On PostgreSQL each failed the lookup's statement, answered UNAVAILABLE, "retry"."""
    channel, _, _ = alerting_server
    stub = pb_grpc.AlertingServiceStub(channel)  # type: ignore[no-untyped-call]
    parent = f"tenants/{tenant}"
    token = base64.urlsafe_b64encode(b'{"t": "2026-01-01T00:00:00+00:00", "i": "a\\u0000"}')
    rule = "id: r\nseverity: low\nwhen: {field: event_type, equals: interaction}\n"
    calls = {
        "filter": [
            lambda: stub.TestRule(
                pb.TestRuleRequest(parent=parent, source=rule, filter="user_id = a\x00b")
            ),
            lambda: stub.ListAlerts(pb.ListAlertsRequest(parent=parent, filter="rule = a\x00b")),
        ],
        "name": [
            lambda: stub.AcknowledgeAlert(
                pb.AcknowledgeAlertRequest(name=f"{parent}/alerts/a\x00b")
            ),
            lambda: stub.ResolveAlert(pb.ResolveAlertRequest(name=f"{parent}/alerts/a\x00b")),
            lambda: stub.GetRule(pb.GetRuleRequest(name=f"{parent}/rules/a\x00b")),
        ],
        "page_token": [
            lambda: stub.ListAlerts(pb.ListAlertsRequest(parent=parent, page_token=token.decode())),
        ],
    }
    for field, refused in calls.items():
        for call in refused:
            with pytest.raises(grpc.RpcError) as info:
                call()
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value
            assert [f for f, _ in violations(info.value)] == [field]


def test_a_filter_longer_than_a_search_may_send_is_invalid(
    alerting_server: Server, tenant: str, store_url: str
) -> None:
    """Its access record quotes it whole: unbounded, a filter padded past what a record
    keeps ran unrecorded (review, 2026-12-05)."""
    open_log(store_url, tenant)  # a read of a tenant with no log is NOT_FOUND
    channel, _, _ = alerting_server
    stub = pb_grpc.AlertingServiceStub(channel)  # type: ignore[no-untyped-call]
    parent = f"tenants/{tenant}"
    long = " " * 8192 + "rule = a"
    rule = "id: r\nseverity: low\nwhen: {field: event_type, equals: interaction}\n"
    for call in (
        lambda: stub.ListAlerts(pb.ListAlertsRequest(parent=parent, filter=long)),
        lambda: stub.TestRule(pb.TestRuleRequest(parent=parent, source=rule, filter=long)),
    ):
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value
        assert violations(info.value) == [("filter", "is 8200 characters; at most 8192")]
    stub.ListAlerts(pb.ListAlertsRequest(parent=parent, filter=long[8:]))  # 8,192: taken


def test_test_rule_answers_are_bounded_and_folded_as_the_engine_folds(
    alerting_server: Server, tenant: str
) -> None:
    """A rule firing on every event of 10,000 answered every alert and every event id,
    past what a gRPC message carries; the engine keeps 100 event ids an alert."""
    channel, _, _ = alerting_server
    stub = pb_grpc.AlertingServiceStub(channel)  # type: ignore[no-untyped-call]
    parent = f"tenants/{tenant}"
    send(channel, [interaction(tenant, user=f"u{i}") for i in range(150)])
    per_user = "id: per-user\nseverity: low\ndedup: {key: '{rule}:{actor.user_id}'}\n"
    got = stub.TestRule(pb.TestRuleRequest(parent=parent, source=per_user))
    assert (got.evaluated_count, got.alert_count, len(got.alerts)) == (150, 150, 100)
    assert [a.dedup_key for a in got.alerts] == [f"per-user:u{i}" for i in range(100)]
    # the first answer's access record is in the log now: the rule counts interactions
    source = (
        "id: one\nseverity: low\nwhen: {field: event_type, equals: interaction}\n"
        "dedup: {key: '{rule}'}\n"
    )
    one = stub.TestRule(pb.TestRuleRequest(parent=parent, source=source))
    assert (one.alert_count, len(one.alerts)) == (1, 1)
    assert one.alerts[0].occurrence_count == 150
    assert len(one.alerts[0].event_ids) == 100
