"""Dedup keys: different values always make different keys, whatever the template's text.

Until 2026-12-07 a key was its template with the values pasted in: with
``{rule}:{actor.user_id}:{flag.category}`` user ``a:b`` flagged ``c`` and user ``a`` flagged
``b:c`` had one key, so a caller choosing its user id (a gateway passes the end user's) folded
its hits into another user's open alert and under its throttle, out of the alert list. Values
holding none of the characters a key escapes keep the key they had: an alert opened before
still takes the next hit of its group.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format

from aiaudit.alerting.evaluate import KEY_CHARS, dedup_key
from aiaudit.alerting.rulebook import default_pack
from aiaudit.alerting.rules import compile_rule
from aiaudit.alerting.store import AlertStore
from aiaudit.alerting.v1 import alerting_service_pb2 as pb
from aiaudit.alerting.v1 import alerting_service_pb2_grpc as pb_grpc
from aiaudit.cli.main import main
from aiaudit.common.store.sql import SqlEventStore
from aiaudit.common.v1 import event_pb2 as ev
from tests.alerting.conftest import alert_rows, append, bare_alert, drain, make_engine
from tests.alerting.test_safety_flags import HIGH, flagged
from tests.alerting.test_service import send
from tests.helpers import interaction, wait_until

Server = tuple[grpc.Channel, dict[str, str], str]
RULE = "gateway-safety-flag"
COLLIDING = (("a:b", "c"), ("a", "b:c"))
"""(user, flag category) pairs that made one key, ``gateway-safety-flag:a:b:c``."""


def key(template: str, user: str, category: str) -> str:
    """The key a per-flag rule with ``template`` gives ``user``'s flag of ``category``."""
    rule = compile_rule(
        f"id: r\nseverity: low\nwhen:\n  safety_flag: {{field: blocked, equals: true}}\n"
        f"dedup: {{key: '{template}'}}\n"
    )
    event = interaction("t", user=user).SerializeToString()
    return dedup_key(rule.dedup_key, event, rule, "", 1.0, ev.SafetyFlag(category=category))


def test_values_holding_the_template_s_text_make_different_keys() -> None:
    """Every pair of tricky (user, category) values gets its own key under templates whose
    text is a separator, nothing (two placeholders side by side), ``%`` or an escape's own
    text; ordinary values and a value at the key's end render as before, and a value past
    the key's length is still told apart (the key folds to its SHA-256)."""
    values = ["", "a", "b", ":", "%", "%3A", "%25", "%.", "2", "5", "A", "é", "a:b", "b:c"]
    pairs = list(itertools.product(values, repeat=2))
    for template in ("{rule}:{actor.user_id}:{flag.category}", "{actor.user_id}{flag.category}",
                     "{actor.user_id}%25{flag.category}", "{actor.user_id}{rule}{flag.category}",
                     "{actor.user_id}2{flag.category}"):  # fmt: skip
        keys = {key(template, user, category) for user, category in pairs}
        assert len(keys) == len(pairs), template
    (a, b) = (key("{rule}:{actor.user_id}:{flag.category}", *pair) for pair in COLLIDING)
    assert (a, b) == ("r:a%3Ab:c", "r:a:b:c")
    assert key("{rule}:{actor.user_id}:{flag.category}", "bob@x.org", "self-harm: 50%") == (
        "r:bob@x.org:self-harm: 50%"
    )
    assert key("{rule}-{actor.user_id}", "a:b%", "") == "r-a:b%"
    long_ones = [key("{rule}:{actor.user_id}:{flag.category}", "x" * KEY_CHARS + u, c)
                 for u, c in COLLIDING]  # fmt: skip
    assert all(len(k) == KEY_CHARS and "#sha256:" in k for k in long_ones)
    assert long_ones[0] != long_ones[1]


def test_users_whose_values_met_in_one_key_get_an_alert_each(
    store: SqlEventStore, consumer: SqlEventStore, tenant: str
) -> None:
    """Through the engine with the default rule: user ``a:b`` flagged ``c`` then user ``a``
    flagged ``b:c``. With one key, the second hit folded into the first user's alert (one
    alert, two occurrences) and nothing listed user ``a``."""
    append(store, [flagged(user, (cat, HIGH, False), tenant=tenant) for user, cat in COLLIDING])
    drain(make_engine(consumer), tenant)
    rows = alert_rows(consumer, tenant, RULE)
    assert sorted((r.dedup_key, r.summary, r.occurrence_count) for r in rows) == [
        (f"{RULE}:a%3Ab:c", "Gateway flagged c (high) for a:b", 1),
        (f"{RULE}:a:b:c", "Gateway flagged b:c (high) for a", 1),
    ]


def test_an_alert_open_before_the_change_takes_the_next_hit_of_its_group(
    store: SqlEventStore, consumer: SqlEventStore, tenant: str
) -> None:
    """An alert written with the key as it was rendered before (an ordinary user and
    category) is found by the next hit of that user and category, which folds into it."""
    alerts = AlertStore(consumer.engine)
    before = dataclasses.replace(
        bare_alert(tenant, RULE), dedup_key=f"{RULE}:alice@x.org:violence", severity=HIGH
    )
    with alerts.write() as conn, conn.begin():
        alerts.insert_alert(conn, before)
    append(store, [flagged("alice@x.org", ("violence", HIGH, False), tenant=tenant)])
    drain(make_engine(consumer), tenant)
    rows = alert_rows(consumer, tenant, RULE)
    assert [(r.alert_id, r.occurrence_count) for r in rows] == [(before.alert_id, 2)]


def test_test_rule_shows_the_keys_the_engine_gave(alerting_server: Server, tenant: str) -> None:
    """Over gRPC: the colliding users' events get two alerts, and TestRule of the default
    rule on them shows the keys those alerts have."""
    channel, _, _ = alerting_server
    stub = pb_grpc.AlertingServiceStub(channel)  # type: ignore[no-untyped-call]
    parent = f"tenants/{tenant}"
    send(channel, [flagged(user, (cat, HIGH, False), tenant=tenant) for user, cat in COLLIDING])
    listing = pb.ListAlertsRequest(parent=parent, filter=f"rule = {RULE}")
    wait_until(lambda: len(stub.ListAlerts(listing).alerts) == 2)
    listed = stub.ListAlerts(listing).alerts
    source = next(r.source for r in default_pack() if r.id == RULE)
    tested = stub.TestRule(pb.TestRuleRequest(parent=parent, source=source)).alerts
    expected = [f"{RULE}:a%3Ab:c", f"{RULE}:a:b:c"]
    assert sorted(a.dedup_key for a in listed) == sorted(a.dedup_key for a in tested) == expected


def test_rules_test_shows_the_keys_the_engine_gives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``aiaudit rules test`` of the default rule prints the colliding users' two keys."""
    rules, events = tmp_path / "rules.yaml", tmp_path / "events.jsonl"
    rules.write_text(next(r.source for r in default_pack() if r.id == RULE))
    events.write_text(
        "".join(
            json_format.MessageToJson(flagged(user, (cat, HIGH, False)), indent=None) + "\n"
            for user, cat in COLLIDING
        )
    )
    assert main(["rules", "test", str(rules), str(events)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(" key=")[1].split(" ")[0] for line in out[:2]] == [
        f"{RULE}:a%3Ab:c", f"{RULE}:a:b:c",
    ]  # fmt: skip
