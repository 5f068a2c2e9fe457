"""Field values as rules see them, read by the native core from an event's wire bytes."""

from __future__ import annotations

import aiaudit_native
import pytest

from aiaudit.alerting import fields as f
from aiaudit.common.canonical import native_schema
from aiaudit.common.v1 import event_pb2 as ev
from tests.helpers import interaction


def values(event: ev.Event, path: str) -> list[object]:
    f.compile_path(path)  # every path read here is one a rule may name
    return aiaudit_native.field_values(native_schema(), event.SerializeToString(), path)


def test_values_are_normalised_for_rule_authors() -> None:
    e = interaction("t", user="bob")
    e.occurred_time.FromSeconds(1_700_000_000)
    e.occurred_time.nanos = 250_000_000
    e.timing.latency.FromMilliseconds(2500)
    e.attributes["region"].string_value = "eu"
    e.attributes["retries"].int_value = 3
    e.attributes["sampled"].bool_value = True
    e.attributes["access.outcome"].string_value = "denied"  # a key with dots: the suite's own
    e.attributes["access"].string_value = "a different key"
    e.model.parameters.update(
        {"top_p": 0.9, "stop": ["a", 1, None, {"x": 1}], "nested": {"k": "v"}}
    )
    e.usage.cost.units = 2
    e.usage.cost.nanos = 500_000_000
    e.input.messages[0].parts.add().media.data = b"\x00\xff"
    e.safety_flags.add(category="toxicity", score=0.75)
    e.safety_flags.add(category="pii", score=0.5)
    cases: dict[str, list[object]] = {
        "actor.user_id": ["bob"],
        "event_type": ["EVENT_TYPE_INTERACTION"],
        "occurred_time": [1_700_000_000.25],
        "timing.latency": [2500.0],
        "attributes.region": ["eu"],
        "attributes.retries": [3],
        "attributes.sampled": [True],
        "attributes.missing": [],
        "attributes.access.outcome": ["denied"],
        "attributes.access": ["a different key"],
        "attributes.access.outcome.more": [],
        "model.parameters.top_p": [0.9],
        "model.parameters.stop": ["a", 1.0],  # JSON numbers are floats; null and objects skipped
        "model.parameters.nested.k": ["v"],
        "model.parameters.nested": [],
        "usage.total_tokens": [30],
        "usage.cost": [2.5],
        "input.messages.parts.media.data": ["00ff"],
        "input.messages.parts.text": ["hello"],
        "safety_flags.category": ["toxicity", "pii"],
        "safety_flags.score": [0.75, 0.5],
        "model.temperature": [0.5],
        "tool_call.name": [],  # an unset message gives nothing
        "actor.ip_address": [""],  # a set message gives its scalars' defaults
        "input.messages.role": ["ROLE_USER"],
    }
    for path, want in cases.items():
        got = values(e, path)
        assert got == want and [type(x) for x in got] == [type(x) for x in want], path


def test_derived_values_of_an_event_without_usage() -> None:
    e = ev.Event(event_id="x")
    assert values(e, "usage.total_tokens") == [0]
    assert values(e, "usage.cost") == [0.0]


def test_an_unknown_path_is_an_error() -> None:
    with pytest.raises(ValueError, match="no field"):
        aiaudit_native.field_values(native_schema(), b"", "actor.nope")


def test_a_map_without_its_key_is_an_error() -> None:
    with pytest.raises(f.FieldError, match="attributes is a map: name one key after it"):
        f.compile_path("attributes")
    with pytest.raises(ValueError, match="name one key after the map"):
        aiaudit_native.field_values(native_schema(), b"", "attributes")
