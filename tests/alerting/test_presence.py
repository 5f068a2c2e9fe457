"""``exists`` on a field whose presence the event carries asks whether a value is there.

An ``optional`` scalar (``model.temperature``), a map entry (``attributes.<key>``), a Struct
value (``model.parameters.<key>``) and a message (``timing.latency``) are there when set to
their default: until 2026-12-07 ``exists`` asked whether the value differed from the
default, so ``exists: true`` missed ``temperature: 0``, an attribute of 0, false or "" (which
search's ``attributes.<key>:*`` finds) and a 0 ms latency, and ``exists: false`` fired on
them. A proto3 field without presence (``actor.user_id``) cannot tell an unset value from the
default, so there ``exists`` still asks for a value other than it.
"""

from __future__ import annotations

import json

from aiaudit.alerting.evaluate import Evaluator, WindowState
from aiaudit.alerting.rules import compile_rule
from aiaudit.common.store.sql import SqlEventStore
from aiaudit.common.v1 import event_pb2 as ev
from tests.alerting.conftest import alert_rows, append, drain, make_engine, put_rule
from tests.helpers import interaction

PRESENT = (
    "model.temperature",
    "model.seed",
    "attributes.retries",
    "attributes.sampled",
    "attributes.note",
    "model.parameters.top_k",
    "timing.latency",
    "usage.cost",
)
"""Paths set to their default by :func:`defaults` (``usage.cost``, derived, reads $0 without a
cost too; until 2026-12-07 ``exists`` there missed a cost of $0, which search's
``usage.cost:*`` finds)."""


def defaults(tenant: str, event_id: str) -> ev.Event:
    """An event whose fields with presence are set, each to its default value."""
    e = interaction(tenant, event_id)
    e.model.temperature = 0.0
    e.model.seed = 0
    e.attributes["retries"].int_value = 0
    e.attributes["sampled"].bool_value = False
    e.attributes["note"].string_value = ""
    e.model.parameters.update({"top_k": 0})
    e.timing.latency.FromMilliseconds(0)
    e.usage.cost.SetInParent()  # $0
    return e


def unset(tenant: str, event_id: str) -> ev.Event:
    """The same fields left out."""
    e = interaction(tenant, event_id)
    e.model.ClearField("temperature")
    return e


def rule(path: str, exists: bool) -> str:
    name = path.replace(".", "-").replace("_", "-")
    return (
        f"id: {name}-{str(exists).lower()}\nseverity: low\nsummary: x\n"
        f"when: {{field: {path}, exists: {str(exists).lower()}}}\n"
    )


def fires(source: str, event: ev.Event) -> bool:
    program = Evaluator([compile_rule(source)])
    return bool(program.evaluate([event.SerializeToString()], [0.0], WindowState()))


def test_exists_holds_for_a_default_value_of_a_field_with_presence() -> None:
    """Each path set to its default exists, and left out does not."""
    there, missing = defaults("t", "a"), unset("t", "b")
    for path in PRESENT:
        assert fires(rule(path, True), there), path
        assert not fires(rule(path, False), there), path
        assert not fires(rule(path, True), missing), path
        assert fires(rule(path, False), missing), path


def test_exists_on_a_field_without_presence_still_asks_for_a_value() -> None:
    """``actor.user_id`` empty is no user; a repeated field's empty value is no value."""
    e = interaction("t", user="")
    e.safety_flags.add(category="")
    assert not fires(rule("actor.user_id", True), e)
    assert not fires(rule("safety_flags.category", True), e)
    e.actor.user_id = "bob"
    assert fires(rule("actor.user_id", True), e)


def test_the_engine_finds_stored_defaults_present(
    store: SqlEventStore, consumer: SqlEventStore, tenant: str
) -> None:
    """Through the store: the canonical form keeps a default that was set, and the engine's
    rules see it, on both backends."""
    for path in ("model.temperature", "attributes.retries", "timing.latency", "usage.cost"):
        put_rule(consumer, tenant, rule(path, True))
        put_rule(consumer, tenant, rule(path, False))
    append(store, [defaults(tenant, "set"), unset(tenant, "left-out")])
    assert drain(make_engine(consumer), tenant) == 2
    fired = {
        r.rule_id: json.loads(r.event_ids)
        for r in alert_rows(consumer, tenant)
        if r.rule_id.endswith(("-true", "-false"))
    }
    assert fired == {
        "model-temperature-true": ["set"],
        "model-temperature-false": ["left-out"],
        "attributes-retries-true": ["set"],
        "attributes-retries-false": ["left-out"],
        "timing-latency-true": ["set"],
        "timing-latency-false": ["left-out"],
        "usage-cost-true": ["set"],
        "usage-cost-false": ["left-out"],
    }
