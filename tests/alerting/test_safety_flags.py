"""``safety_flag`` conditions: every test on one gateway safety flag, one hit per category of
the flags a rule holds on, ``{flag.<field>}`` naming that flag, ``severity_from: flag``. Rules
evaluated by the native core, ListAlerts, WatchAlerts and TestRule over the service, and the
rules refused at validation.

Until 2026-12-06 a rule on gateway flags could only test ``safety_flags.<field>``, each
condition on any flag apart: ``category equals hate`` and ``severity equals high`` held on an
event with a low hate flag and a high violence flag, ``not_in: [jailbreak]`` meant that no
flag was a jailbreak, a summary named the first flag, and the alert took the rule's severity.
"""

from __future__ import annotations

import queue
import threading

import grpc
import pytest

from aiaudit.alerting.evaluate import Evaluator, Hit, WindowState
from aiaudit.alerting.rulebook import default_pack
from aiaudit.alerting.rules import RuleSyntaxError, compile_rule
from aiaudit.alerting.v1 import alerting_service_pb2 as pb
from aiaudit.alerting.v1 import alerting_service_pb2_grpc as pb_grpc
from aiaudit.common.store.sql import SqlEventStore
from aiaudit.common.v1 import event_pb2 as ev
from tests.alerting.conftest import alert_rows, append, drain, make_engine, put_rule
from tests.alerting.test_service import send, violations
from tests.helpers import interaction, open_log

Server = tuple[grpc.Channel, dict[str, str], str]
LOW, MEDIUM, HIGH, CRITICAL = (
    ev.SEVERITY_LOW, ev.SEVERITY_MEDIUM, ev.SEVERITY_HIGH, ev.SEVERITY_CRITICAL,
)  # fmt: skip


def flagged(user: str, *flags: tuple[str, int, bool], tenant: str = "t") -> ev.Event:
    """An interaction carrying the gateway's (category, severity, blocked) safety flags."""
    e = interaction(tenant, user=user)
    for category, severity, blocked in flags:
        e.safety_flags.add(
            category=category, severity=severity, score=0.75, source="gw", blocked=blocked
        )
    return e


def hits(source: str, *events: ev.Event) -> list[tuple[int, Hit]]:
    """What the rule fires on the events, in order (receive times 1, 2, ...)."""
    wire = [e.SerializeToString() for e in events]
    times = [float(i) for i in range(1, len(events) + 1)]
    return Evaluator([compile_rule(source)]).evaluate(wire, times, WindowState())


def keys(source: str, *events: ev.Event) -> list[tuple[int, str, int]]:
    """(event index, dedup key, severity) of each hit."""
    return [(i, h.dedup_key, h.severity) for i, h in hits(source, *events)]


HATE_HIGH = """
id: hate-high
severity: medium
summary: "{flag.category} {flag.severity} {flag.score} {flag.source} {flag.blocked}"
when:
  safety_flag:
    all:
      - {field: category, equals: hate}
      - {field: severity, equals: high}
dedup: {key: "{rule}:{flag.category}"}
"""


def test_the_tests_of_a_safety_flag_apply_to_one_flag() -> None:
    """A low hate flag beside a high violence flag is no high hate flag; conditions on
    ``safety_flags.<field>`` read every flag apart, so that rule fires on it."""
    apart = (
        "id: apart\nseverity: low\nwhen:\n  all:\n"
        "    - {field: safety_flags.category, equals: hate}\n"
        "    - {field: safety_flags.severity, equals: high}\n"
    )
    mixed = flagged("bob", ("hate", LOW, False), ("violence", HIGH, False))
    both = flagged("eve", ("violence", LOW, False), ("hate", HIGH, True))
    assert [i for i, _ in hits(apart, mixed, both)] == [0, 1]
    ((i, hit),) = hits(HATE_HIGH, mixed, both)
    assert (i, hit.summary, hit.dedup_key) == (1, "hate high 0.75 gw True", "hate-high:hate")
    assert hit.severity == MEDIUM  # the rule's: it does not take the flag's


def test_not_in_tests_each_flag_and_the_summary_names_the_flag_that_matched() -> None:
    """``not_in: [jailbreak]`` in a safety_flag holds on a violence flag beside a jailbreak
    flag (on ``safety_flags.category`` it means no flag is a jailbreak), and
    ``{flag.category}`` is the violence flag, where ``{safety_flags.category}`` is the first."""
    source = """
id: other
severity: high
summary: "{flag.category}, first {safety_flags.category}"
when:
  safety_flag: {field: category, not_in: [jailbreak]}
"""
    event = flagged("eve", ("jailbreak", HIGH, True), ("violence", HIGH, False))
    assert [h.summary for _, h in hits(source, event)] == ["violence, first jailbreak"]
    apart = "id: apart\nseverity: low\nwhen: {field: safety_flags.category, not_in: [jailbreak]}\n"
    assert hits(apart, event) == []


def test_a_rule_fires_once_per_category_with_the_most_severe_flag_most_severe_first() -> None:
    """Two flags of one category are one hit, named by the more severe; hits of one event go
    most severe first, so a dedup key without the category opens one alert at that severity
    (a hit folds only into an alert at least as severe)."""
    source = """
id: blocked
severity: medium
severity_from: flag
summary: "{flag.category} {flag.severity}"
when:
  safety_flag: {field: blocked, equals: true}
dedup: {key: "{rule}:{actor.user_id}:{flag.category}"}
"""
    event = flagged(
        "bob",
        ("violence", LOW, True),
        ("hate", MEDIUM, True),
        ("violence", CRITICAL, True),
        ("sexual", ev.SEVERITY_UNSPECIFIED, True),  # none: the rule's
        ("self_harm", CRITICAL, False),  # not blocked
    )
    assert [(h.summary, h.severity) for _, h in hits(source, event)] == [
        ("violence critical", CRITICAL),
        ("hate medium", MEDIUM),
        ("sexual unspecified", MEDIUM),
    ]


def test_hits_of_one_event_sharing_a_key_open_one_alert_at_their_highest_severity(
    store: SqlEventStore, consumer: SqlEventStore, tenant: str
) -> None:
    """Through the engine: a flag without a severity takes the rule's (high), above a low
    flag's, so it goes first and the low hit folds into its alert. Ordered by the flags' own
    severities, the low hit opened the alert and the high one could not fold into it: a
    second alert of the same rule, key and event, whose id is the first's."""
    put_rule(
        consumer, tenant,
        "id: blocked\nseverity: high\nseverity_from: flag\n"
        "summary: '{flag.category} {flag.severity}'\n"
        "when:\n  safety_flag: {field: blocked, equals: true}\n",
    )  # fmt: skip
    event = flagged(
        "bob", ("violence", LOW, True), ("sexual", ev.SEVERITY_UNSPECIFIED, True), tenant=tenant
    )
    append(store, [event])
    drain(make_engine(consumer), tenant)
    rows = alert_rows(consumer, tenant, "blocked")
    assert [(r.summary, r.severity, r.occurrence_count) for r in rows] == [
        ("sexual unspecified", HIGH, 2)
    ]


def test_other_conditions_of_the_rule_apply_to_the_event() -> None:
    """Items of ``all`` beside the safety_flag test the event, and a ``not`` inside it tests
    the flag."""
    source = """
id: bob-unblocked
severity: low
when:
  all:
    - {field: actor.user_id, equals: bob}
    - safety_flag:
        all:
          - {field: score, gte: 0.5}
          - not: {field: blocked, equals: true}
dedup: {key: "{rule}:{flag.category}"}
"""
    bob = flagged("bob", ("hate", LOW, True), ("violence", LOW, False))
    eve = flagged("eve", ("violence", LOW, False))
    assert keys(source, bob, eve) == [(0, "bob-unblocked:violence", LOW)]


def test_a_window_counts_events_with_a_matching_flag_once_each() -> None:
    """A window rule fires on a count of events: an event with two matching flags is one."""
    source = """
id: twice
severity: high
when:
  safety_flag: {field: severity, in: [high, critical]}
window: {duration: 10m, group_by: [actor.user_id], aggregate: count, threshold: {gte: 2}}
"""
    two = flagged("bob", ("hate", HIGH, False), ("violence", CRITICAL, False))
    assert keys(source, two) == []
    assert keys(source, two, flagged("bob", ("hate", LOW, False)), two) == [(2, "twice:bob", HIGH)]


def test_the_default_rule_and_prompt_injection_split_the_gateway_flags_between_them() -> None:
    """Every flag at the bar is alerted by exactly one of the two: a jailbreak or prompt
    injection flag by prompt-injection, any other by gateway-safety-flag."""
    pack = {r.id: r for r in default_pack()}
    evaluator = Evaluator([pack["prompt-injection"], pack["gateway-safety-flag"]])
    events = [
        flagged("a", ("jailbreak", HIGH, True), ("violence", HIGH, False)),
        flagged("b", ("prompt_injection", CRITICAL, False), ("hate", LOW, False)),
        flagged("c", ("violence", LOW, False), ("hate", HIGH, False)),
        flagged("d", ("pii", MEDIUM, False)),
    ]
    wire = [e.SerializeToString() for e in events]
    got = evaluator.evaluate(wire, [1.0] * len(wire), WindowState())
    assert [(i, h.dedup_key, h.severity) for i, h in got] == [
        (0, "prompt-injection:a", HIGH),
        (0, "gateway-safety-flag:a:violence", HIGH),
        (1, "prompt-injection:b", HIGH),
        (2, "gateway-safety-flag:c:hate", HIGH),
    ]


@pytest.mark.parametrize(
    ("rule", "line", "field", "fragment"),
    [
        (
            "when:\n  any:\n    - safety_flag: {field: blocked, equals: true}\n",
            5, "when.any[0].safety_flag", "must be when itself or an item of when's all",
        ),
        (
            "when:\n  not:\n    safety_flag: {field: blocked, equals: true}\n",
            5, "when.not.safety_flag", "must be when itself or an item of when's all",
        ),
        (
            "when:\n  all:\n    - safety_flag: {field: blocked, equals: true}\n"
            "    - safety_flag: {field: category, equals: hate}\n",
            6, "when.all[1].safety_flag", "one safety_flag condition",
        ),
        (
            "when:\n  safety_flag: {field: colour, equals: red}\n",
            4, "when.safety_flag.field",
            "unknown field 'colour' of a safety flag (known: blocked, category, score, "
            "severity, source)",
        ),
        (
            "when:\n  safety_flag:\n    detector: harmful\n",
            5, "when.safety_flag.detector", "tests the flag's fields",
        ),
        (
            "when:\n  safety_flag: {field: severity, gte: 3}\n",
            4, "when.safety_flag.gte", "safety_flags.severity is an enum",
        ),
        (
            "when:\n  safety_flag: {field: blocked, equals: 'yes'}\n",
            4, "when.safety_flag.equals", "holds true or false",
        ),
        (
            "when:\n  safety_flag:\n    field: severity\n    in: [loud]\n",
            6, "when.safety_flag.in", "'loud' is not a value of Severity",
        ),
        (
            'summary: "{flag.category}"\nwhen: {field: actor.user_id, exists: true}\n',
            3, "summary", "placeholder {flag.category}: the rule has no safety_flag condition",
        ),
        (
            'summary: "{flag.colour}"\nwhen:\n  safety_flag: {field: blocked, equals: true}\n',
            3, "summary", "placeholder {flag.colour}: unknown field 'colour' of a safety flag",
        ),
        (
            "dedup: {key: '{flag.category}'}\n"
            "when:\n  safety_flag: {field: blocked, equals: true}\n"
            "window: {duration: 1m, aggregate: count, threshold: {gte: 2}}\n",
            3, "dedup.key", "a window rule fires on a count of events, not on one flag",
        ),
        (
            "severity_from: flag\nwhen: {field: safety_flags.blocked, equals: true}\n",
            3, "severity_from", "takes the severity of one flag: the rule has no safety_flag",
        ),
        (
            "severity_from: rule\nwhen:\n  safety_flag: {field: blocked, equals: true}\n",
            3, "severity_from", "expected flag, got 'rule'",
        ),
    ],
)  # fmt: skip
def test_safety_flag_syntax_is_checked_naming_line_and_field(
    rule: str, line: int, field: str, fragment: str
) -> None:
    with pytest.raises(RuleSyntaxError) as info:
        compile_rule("id: x\nseverity: low\n" + rule)
    (error,) = info.value.errors
    assert (error.line, error.field) == (line, field), error
    assert fragment in error.message, error


def test_the_service_shows_the_flag_s_severity_and_refuses_bad_syntax(
    alerting_server: Server, tenant: str, store_url: str
) -> None:
    """WatchAlerts (from critical), ListAlerts and TestRule show each alert with its flag's
    severity; CreateRule of a misplaced safety_flag is INVALID_ARGUMENT naming line and field."""
    open_log(store_url, tenant)  # a read of a tenant with no log is NOT_FOUND
    channel, _, _ = alerting_server
    stub = pb_grpc.AlertingServiceStub(channel)  # type: ignore[no-untyped-call]
    parent = f"tenants/{tenant}"
    watched: queue.Queue[pb.Alert] = queue.Queue()
    stream = stub.WatchAlerts(pb.WatchAlertsRequest(parent=parent, min_severity=CRITICAL))

    def drain() -> None:
        try:
            for r in stream:
                watched.put(r.alert)
        except grpc.RpcError:
            pass  # cancelled at the end of the test

    stream.initial_metadata()  # sent once the server has subscribed
    threading.Thread(target=drain, daemon=True).start()
    event = flagged("bob", ("violence", HIGH, False), ("hate", CRITICAL, True), tenant=tenant)
    send(channel, [event])
    alert = watched.get(timeout=30)  # only bounds a failure, as wait_until's default
    assert (alert.summary, alert.severity) == ("Gateway flagged hate (critical) for bob", CRITICAL)
    listing = pb.ListAlertsRequest(parent=parent, filter="rule = gateway-safety-flag")
    listed = stub.ListAlerts(listing).alerts  # the violence alert committed with the hate one
    assert sorted((a.summary, a.severity) for a in listed) == [
        ("Gateway flagged hate (critical) for bob", CRITICAL),
        ("Gateway flagged violence (high) for bob", HIGH),
    ]
    source = next(r.source for r in default_pack() if r.id == "gateway-safety-flag")
    tested = stub.TestRule(
        pb.TestRuleRequest(parent=parent, source=source, filter='user_id = "bob"')
    )
    assert sorted((a.dedup_key, a.severity) for a in tested.alerts) == [
        ("gateway-safety-flag:bob:hate", CRITICAL),
        ("gateway-safety-flag:bob:violence", HIGH),
    ]
    stream.cancel()
    misplaced = (
        "id: x\nseverity: low\nwhen:\n  not:\n    safety_flag: {field: blocked, equals: true}\n"
    )
    with pytest.raises(grpc.RpcError) as info:
        stub.CreateRule(pb.CreateRuleRequest(parent=parent, rule=pb.Rule(source=misplaced)))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    ((field, description),) = violations(info.value)
    assert field == "rule.source"
    assert description.startswith("line 5, when.not.safety_flag: a safety_flag condition must be")


def test_an_event_s_hits_of_a_rule_have_at_most_sixteen_keys_the_most_severe() -> None:
    """200 flags in 200 categories: the default rule alerts on the 16 most severe (the
    critical ones first, then the first high ones), each summary saying so; until 2026-12-07
    it opened 200 alerts for one event. Hits that share a key are not counted apart: a key
    without the category keeps every hit, which fold into one alert."""
    pack = {r.id: r for r in default_pack()}
    cats = [f"c{n}" for n in range(200)]
    event = flagged(
        "bob", *((c, CRITICAL if n >= 190 else HIGH, False) for n, c in enumerate(cats))
    )
    evaluator = Evaluator([pack["gateway-safety-flag"]])
    got = [h for _, h in evaluator.evaluate([event.SerializeToString()], [1.0], WindowState())]
    expected = [*cats[190:], *cats[:6]]
    assert [h.dedup_key for h in got] == [f"gateway-safety-flag:bob:{c}" for c in expected]
    assert [h.severity for h in got] == [CRITICAL] * 10 + [HIGH] * 6
    note = " (alerted on the 16 most severe of the event's 200 matching flag categories)"
    assert got[0].summary == f"Gateway flagged c190 (critical) for bob{note}"
    one_key = "id: one\nseverity: high\nwhen:\n  safety_flag: {field: severity, equals: high}\n"
    assert [(h.dedup_key, h.summary) for _, h in hits(one_key, event)] == [("one:bob", "one")] * 190


def test_an_event_with_200_flag_categories_opens_sixteen_alerts(
    store: SqlEventStore, consumer: SqlEventStore, tenant: str
) -> None:
    """Through the engine, the default rule: 16 alerts of one occurrence each."""
    cats = [f"c{n:03}" for n in range(200)]
    append(store, [flagged("bob", *((c, HIGH, True) for c in cats), tenant=tenant)])
    drain(make_engine(consumer), tenant)
    rows = alert_rows(consumer, tenant, "gateway-safety-flag")
    assert sorted((r.dedup_key, r.occurrence_count) for r in rows) == [
        (f"gateway-safety-flag:bob:{c}", 1) for c in cats[:16]
    ]
