"""Field values as rules see them, read by the native core from an event's wire bytes;
rules naming every attribute key ingest takes, over the service."""

from __future__ import annotations

import aiaudit_native
import grpc
import pytest
import yaml

from aiaudit.alerting import fields as f
from aiaudit.alerting.v1 import alerting_service_pb2 as pb
from aiaudit.alerting.v1 import alerting_service_pb2_grpc as pb_grpc
from aiaudit.common.canonical import native_schema
from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.ingest.v1 import ingest_service_pb2 as ipb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as ipb_grpc
from tests.helpers import interaction, open_log, wait_until


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


# Keys ingest takes (1-128 characters of [a-z0-9_.-]) whose path has an empty part, and one
# with a dot: a rule names each as search does, ``attributes.`` then the key, dots and all.
ODD_KEYS = ("a..b", ".x", "x.", "a.b")
# Keys a nested, split or trimmed reading of those paths would take for them.
NEIGHBOURS = ("a", "b", "x", "a.", ".b", "ab", "a...b", "..x", "x..", "a.b.", ".a.b")


def test_every_attribute_key_ingest_takes_is_a_path() -> None:
    """Until 2026-12-06 a path with an empty part was refused, key or not (review)."""
    e = ev.Event(event_id="x")
    for key in (*ODD_KEYS, *NEIGHBOURS, ".", "..", "-", "_.-"):
        e.attributes[key].string_value = f"value of {key}"
    for key in (*ODD_KEYS, ".", "..", "-", "_.-"):
        assert values(e, f"attributes.{key}") == [f"value of {key}"], key
    for path, message in (
        ("attributes.", "attributes is a map: name one key after it"),
        (".attributes.x", "is not a dotted field path"),
        ("actor..user_id", "is not a dotted field path"),
        ("actor.user_id.", "is not a dotted field path"),
        ("timing.latency.", "is not a dotted field path"),
        ("model.parameters..top_p", "is not a dotted field path"),  # a Struct's path is nested
        ("", "is not a dotted field path"),
    ):
        with pytest.raises(f.FieldError, match=message):
            f.compile_path(path)


def _odd_rule(i: int, key: str) -> str:
    path = f"attributes.{key}"
    return yaml.safe_dump(
        {
            "id": f"odd-{i}",
            "severity": "low",
            "summary": f"{{{path}}} seen",
            "when": {"field": path, "in": [f"hit {k}" for k in ODD_KEYS]},
            "dedup": {"key": f"{{rule}}:{{{path}}}"},
        }
    )


def test_a_rule_names_attribute_keys_with_empty_parts_as_search_does(
    alerting_server: tuple[grpc.Channel, dict[str, str], str], tenant: str, store_url: str
) -> None:
    """Conditions, summaries, dedup keys and a window's group_by, over the service.

    Until 2026-12-06 CreateRule refused ``attributes.a..b`` (``is not a dotted field
    path``), as ``attributes..x`` and ``attributes.x.``: keys ingest takes and search
    filters on, which no rule could name (review).
    """
    open_log(store_url, tenant)  # a rule change through * of a tenant with no log is NOT_FOUND
    channel, _, _ = alerting_server
    stub = pb_grpc.AlertingServiceStub(channel)  # type: ignore[no-untyped-call]
    parent = f"tenants/{tenant}"
    grouped = (
        "id: grouped\nseverity: low\nsummary: '{group} by {attributes..x}'\n"
        "when: {field: attributes.x., equals: g}\n"
        "window: {duration: 1h, group_by: [attributes..x], aggregate: count,"
        " threshold: {gte: 2}}\n"
    )
    rules = {f"odd-{i}": _odd_rule(i, key) for i, key in enumerate(ODD_KEYS)}
    for rule_id, source in {**rules, "grouped": grouped}.items():
        stub.CreateRule(
            pb.CreateRuleRequest(
                parent=parent, rule_id=rule_id, rule=pb.Rule(source=source, enabled=True)
            )
        )
    decoys = []  # every neighbouring key holds each value a rule looks for
    for key in ODD_KEYS:
        e = interaction(tenant)
        for neighbour in NEIGHBOURS:
            e.attributes[neighbour].string_value = f"hit {key}"
        decoys.append(e)
    carriers = []
    for key in ODD_KEYS:
        e = interaction(tenant)
        e.attributes[key].string_value = f"hit {key}"
        carriers.append(e)
    windowed = []
    for group in ("one", "two", "one"):
        e = interaction(tenant)
        e.attributes["x."].string_value = "g"
        e.attributes[".x"].string_value = group
        e.attributes["x"].string_value = "one"  # what a trimmed path would group by
        windowed.append(e)
    # The log is evaluated in order: once the last event's alert is there, so are all.
    ipb_grpc.IngestServiceStub(channel).Append(  # type: ignore[no-untyped-call]
        ipb.AppendRequest(events=[*decoys, *carriers, *windowed]), timeout=30
    )

    def ours() -> dict[str, list[tuple[str, str, list[str]]]]:
        got: dict[str, list[tuple[str, str, list[str]]]] = {}
        for a in stub.ListAlerts(pb.ListAlertsRequest(parent=parent, page_size=1000)).alerts:
            rule = a.rule.rsplit("/", 1)[1]
            if rule in rules or rule == "grouped":
                got.setdefault(rule, []).append((a.summary, a.dedup_key, list(a.event_ids)))
        return got

    got = wait_until(lambda: (x := ours()) and "grouped" in x and x)
    assert got == {
        **{
            f"odd-{i}": [(f"hit {key} seen", f"odd-{i}:hit {key}", [carriers[i].event_id])]
            for i, key in enumerate(ODD_KEYS)
        },
        "grouped": [("one by one", "grouped:one", [windowed[2].event_id])],
    }
