"""``trust_signals.<name>`` in rules, compared as search compares it: the engine on the store,
TestRule over the service, and the rules refused at validation.

Until 2026-12-06 a rule could not tie a trust signal's value to its name: ``trust_signals.name``
and ``trust_signals.value.*`` each read every signal apart, and ``trust_signals.<name>`` was
an unknown field (search's filters had it)."""

from __future__ import annotations

import grpc
import pytest

from aiaudit.alerting import signals
from aiaudit.alerting.rules import RuleSyntaxError, compile_rule
from aiaudit.alerting.v1 import alerting_service_pb2 as pb
from aiaudit.alerting.v1 import alerting_service_pb2_grpc as pb_grpc
from aiaudit.common.canonical import native_schema
from aiaudit.common.store.sql import SqlEventStore
from aiaudit.common.v1 import event_pb2 as ev
from tests.alerting.conftest import alert_rows, append, drain, make_engine, put_rule
from tests.alerting.test_service import send, violations
from tests.helpers import interaction

Server = tuple[grpc.Channel, dict[str, str], str]
TWO_53 = 2**53


def signed(tenant: str, *values: tuple[str, object]) -> ev.Event:
    """An interaction carrying trust signals (name, value), each of the value's own type."""
    e = interaction(tenant)
    for name, value in values:
        v = e.trust_signals.add(name=name).value
        if isinstance(value, bool):
            v.bool_value = value
        elif isinstance(value, int):
            v.int_value = value
        elif isinstance(value, float):
            v.double_value = value
        else:
            assert isinstance(value, str)
            v.string_value = value
    return e


def rule(rule_id: str, when: str, summary: str = "") -> str:
    """A rule raising one alert per event it matches."""
    said = f"summary: '{summary}'\n" if summary else ""
    return (
        f"id: {rule_id}\nseverity: low\n{said}when: {when}\n"
        "dedup: {key: '{rule}:{event_id}'}\n"
    )


def fired(
    store: SqlEventStore, consumer: SqlEventStore, tenant: str, rules: dict[str, str],
    events: dict[str, ev.Event],
) -> dict[str, set[str]]:  # fmt: skip
    """Which events (by label) each rule raised an alert on, through the engine."""
    for source in rules.values():
        put_rule(consumer, tenant, source)
    append(store, list(events.values()))
    drain(make_engine(consumer), tenant)
    label = {e.event_id: name for name, e in events.items()}
    got: dict[str, set[str]] = {r: set() for r in rules}
    for row in alert_rows(consumer, tenant):
        if row.rule_id in rules:
            got[row.rule_id].add(label[row.dedup_key.split(":", 1)[1]])
    return got


def test_a_rule_on_a_trust_signal_reads_the_signals_of_that_name_only(
    store: SqlEventStore, consumer: SqlEventStore, tenant: str
) -> None:
    """Any signal of the name may match (as in search), never a value under another name."""
    events = {
        "low": signed(tenant, ("user_rating", 1)),
        "other name": signed(tenant, ("other_score", 1), ("user_rating", 5)),
        "second of two": signed(tenant, ("user_rating", 5), ("user_rating", 1)),
        "double": signed(tenant, ("user_rating", 1.5)),
        "other case": signed(tenant, ("User_Rating", 1)),
        "text": signed(tenant, ("user_rating", "1")),
        "boolean": signed(tenant, ("user_rating", False)),  # Python's False < 2; search's not
        "dotted": signed(tenant, ("review.outcome", "rejected"), ("outcome", "rejected")),
        "empty": signed(tenant, ("user_rating", "")),
        "unset": signed(tenant),  # a signal without a value holds the empty text, as in search
        "none": signed(tenant),
    }
    events["unset"].trust_signals.add(name="user_rating")
    rules = {
        "low-rating": rule(
            "low-rating", "{field: trust_signals.user_rating, lt: 2}",
            "rated {trust_signals.user_rating}",
        ),
        "rejected": rule("rejected", "{field: trust_signals.review.outcome, equals: rejected}"),
        "unrated": rule("unrated", "{field: trust_signals.user_rating, exists: false}"),
        "empty": rule("empty", "{field: trust_signals.user_rating, equals: ''}"),
        # TrustSignal's own fields keep their meaning: every signal's value, any name
        "any-low": rule("any-low", "{field: trust_signals.value.int_value, lt: 2}"),
    }  # fmt: skip
    assert fired(store, consumer, tenant, rules, events) == {
        "low-rating": {"low", "second of two", "double"},
        "rejected": {"dotted"},
        "unrated": {"other case", "dotted", "none"},
        "empty": {"empty", "unset"},
        "any-low": {"low", "other name", "second of two", "other case"},
    }
    summaries = {r.summary for r in alert_rows(consumer, tenant, "low-rating")}
    assert summaries == {"rated 1", "rated 5", "rated 1.5"}  # the first signal of the name


def test_large_numbers_in_trust_signals_compare_exactly(
    store: SqlEventStore, consumer: SqlEventStore, tenant: str
) -> None:
    """Past 2^53 doubles skip integers: an ``int_value`` is compared as that integer."""
    events = {
        "2^53": signed(tenant, ("ticket", TWO_53)),
        "2^53 + 1": signed(tenant, ("ticket", TWO_53 + 1)),
        "2^53 as a double": signed(tenant, ("ticket", float(TWO_53))),
        "int64 max": signed(tenant, ("ticket", 2**63 - 1)),
        "other name": signed(tenant, ("serial", TWO_53 + 1), ("ticket", 1)),
    }
    rules = {
        "equal": rule("equal", f"{{field: trust_signals.ticket, equals: {TWO_53 + 1}}}"),
        "above": rule("above", f"{{field: trust_signals.ticket, gt: {TWO_53}}}"),
        "in": rule("in", f"{{field: trust_signals.ticket, in: [{2**63 - 1}, {TWO_53}.0]}}"),
        "below-max": rule("below-max", f"{{field: trust_signals.ticket, lt: {2**63 - 1}}}"),
    }
    assert fired(store, consumer, tenant, rules, events) == {
        "equal": {"2^53 + 1"},
        "above": {"2^53 + 1", "int64 max"},
        "in": {"2^53", "2^53 as a double", "int64 max"},
        "below-max": {"2^53", "2^53 + 1", "2^53 as a double", "other name"},
    }


def test_booleans_in_trust_signals_are_booleans(
    store: SqlEventStore, consumer: SqlEventStore, tenant: str
) -> None:
    """``false`` is not 0 nor the text "false" (to Python False == 0), nor another's false."""
    events = {
        "false": signed(tenant, ("verified", False)),
        "true": signed(tenant, ("verified", True)),
        "zero": signed(tenant, ("verified", 0)),
        "one": signed(tenant, ("verified", 1)),
        "text": signed(tenant, ("verified", "false")),
        "other name": signed(tenant, ("checked", False), ("verified", True)),
    }
    rules = {
        "unverified": rule("unverified", "{field: trust_signals.verified, equals: false}"),
        "not-true": rule("not-true", "{field: trust_signals.verified, not_equals: true}"),
        "one-or-true": rule("one-or-true", "{field: trust_signals.verified, in: [1, true]}"),
        "quoted": rule("quoted", "{field: trust_signals.verified, equals: 'false'}"),
        "no-zero": rule("no-zero", "{field: trust_signals.verified, not_in: [0, false]}"),
    }
    assert fired(store, consumer, tenant, rules, events) == {
        "unverified": {"false"},
        "not-true": {"false", "zero", "one", "text"},
        "one-or-true": {"true", "one", "other name"},
        "quoted": {"text"},
        "no-zero": {"true", "one", "text", "other name"},
    }


def errors(source: str) -> list[str]:
    with pytest.raises(RuleSyntaxError) as info:
        compile_rule(source)
    return [str(e) for e in info.value.errors]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            "when: {field: trust_signals.user_rating, lt: true}",
            "line 3, when.lt: trust_signals.user_rating: lt compares numbers only, and True is "
            "a boolean (a number unquoted; true/false or text take equals, not_equals, in or "
            "not_in)",
        ),
        (
            "when: {field: trust_signals.user_rating, gte: '2'}",
            "line 3, when.gte: trust_signals.user_rating: gte compares numbers only, and '2' is "
            "not a number (a number unquoted; true/false or text take equals, not_equals, in "
            "or not_in)",
        ),
        (
            "when: {field: 'trust_signals.fact check', equals: 1}",
            "line 3, when.field: 'trust_signals.fact check' names no trust signal: a name is "
            "1-128 characters of [A-Za-z0-9_.-]",
        ),
        (
            "when: {field: 'trust_signals.vendor:score', exists: true}",
            "line 3, when.field: 'trust_signals.vendor:score' names no trust signal: a name is "
            "1-128 characters of [A-Za-z0-9_.-]",
        ),
        (
            f"when: {{field: trust_signals.{'x' * 129}, exists: true}}",
            f"line 3, when.field: 'trust_signals.{'x' * 129}' names no trust signal: a name is "
            "1-128 characters of [A-Za-z0-9_.-]",
        ),
        (
            "when: {field: trust_signals., equals: 1}",
            "line 3, when.field: 'trust_signals.' names no trust signal: a name is "
            "1-128 characters of [A-Za-z0-9_.-]",
        ),
        (
            "summary: 'rated {trust_signals.ñame}'",
            "line 3, summary: placeholder {trust_signals.ñame}: 'trust_signals.ñame' names no "
            "trust signal: a name is 1-128 characters of [A-Za-z0-9_.-]",
        ),
        (
            "window: {duration: 1h, aggregate: count, group_by: ['trust_signals.a b'], "
            "threshold: {gte: 2}}",
            "line 3, window.group_by[0]: 'trust_signals.a b' names no trust signal: a name is "
            "1-128 characters of [A-Za-z0-9_.-]",
        ),
    ],
)
def test_a_bad_trust_signal_condition_is_refused_naming_the_field(lines: str, message: str) -> None:
    assert errors(f"id: x\nseverity: low\n{lines}\n") == [message]


def test_test_rule_and_create_rule_take_trust_signals(alerting_server: Server, tenant: str) -> None:
    """A dry run fires as the engine would, windows included; CreateRule refuses a bad one."""
    channel, _, _ = alerting_server
    stub = pb_grpc.AlertingServiceStub(channel)  # type: ignore[no-untyped-call]
    parent = f"tenants/{tenant}"
    events = [
        signed(tenant, ("team", "a"), ("user_rating", 1)),
        signed(tenant, ("team", "b"), ("user_rating", 2)),
        signed(tenant, ("team", "a"), ("other_rating", 2)),  # the rating under another name
        signed(tenant, ("team", "a"), ("user_rating", 2)),
    ]
    send(channel, events)
    source = (
        "id: low-team\nseverity: low\nsummary: 'team {group}: {trust_signals.user_rating}'\n"
        "when: {field: trust_signals.user_rating, lte: 2}\n"
        "window: {duration: 1h, group_by: [trust_signals.team], aggregate: sum,"
        " field: trust_signals.user_rating, threshold: {gte: 3}}\n"
    )
    result = stub.TestRule(pb.TestRuleRequest(parent=parent, source=source))
    assert result.evaluated_count == 4
    assert [(a.summary, a.dedup_key, list(a.event_ids)) for a in result.alerts] == [
        ("team a: 2", "low-team:a", [events[3].event_id])
    ]
    bad = "id: bad\nseverity: low\nwhen: {field: trust_signals.verified, gt: false}\n"
    for call in (
        lambda: stub.TestRule(pb.TestRuleRequest(parent=parent, source=bad)),
        lambda: stub.CreateRule(pb.CreateRuleRequest(parent=parent, rule=pb.Rule(source=bad))),
    ):
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        ((_, said),) = violations(info.value)
        assert said.startswith("line 3, when.gt: trust_signals.verified: gt compares numbers only")


def test_the_views_schema_reads_events_as_the_canonical_one() -> None:
    """It copies Event's types from the descriptors (detectors read content by it)."""
    e = signed("t", ("user_rating", 1))
    e.input.messages[0].parts.add().media.data = b"\x00\xff"
    e.attributes["k"].string_value = "v"
    wire = e.SerializeToString()
    assert signals.schema().commit(wire, b"s" * 32) == native_schema().commit(wire, b"s" * 32)
    assert signals.schema().content_texts(wire) == native_schema().content_texts(wire)
