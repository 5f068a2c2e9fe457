"""Ingest's field checks: each rule, its exact message and path, and their order."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Callable

import pytest
from google.protobuf import struct_pb2

from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.ingest.validation import SERVER_WRITTEN, Limits, Violation, validate_event
from aiaudit.search import catalogue
from tests.helpers import REQUIRED_PAYLOAD, interaction, typed_event

NOW = dt.datetime.now(dt.UTC)
RANGE = "is not a valid timestamp: 0001-01-01 to 9999-12-31, nanos in [0, 999999999]"


def problems(mutate: Callable[[ev.Event], object]) -> list[tuple[str, str]]:
    e = interaction("t")
    mutate(e)
    return [(v.field, v.description) for v in validate_event(e, Limits(), NOW, "events[0]")]


def _struct(value: object) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update({"a": {"b": [1, value]}})
    return s


def _media(**fields: object) -> ev.Part:
    return ev.Part(media=ev.Media(**fields))  # type: ignore[arg-type]


PNG = b"\x89PNG"
PNG_SHA = hashlib.sha256(PNG).hexdigest()


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda e: None, []),
        (
            lambda e: setattr(e.model, "temperature", math.nan),
            [("events[0].model.temperature", "must be a finite number")],
        ),
        (
            lambda e: setattr(e.model, "temperature", -0.5),
            [("events[0].model.temperature", "must not be negative")],
        ),
        (lambda e: setattr(e.model, "temperature", -0.0), []),
        (
            lambda e: setattr(e.usage, "input_tokens", -1),
            [("events[0].usage.input_tokens", "must not be negative")],
        ),
        (  # negative numbers are fine in a typed value...
            lambda e: e.trust_signals.add(name="score", value=ev.AttributeValue(double_value=-1.5)),
            [],
        ),
        (lambda e: e.trust_signals.add(name="n", value=ev.AttributeValue(int_value=-5)), []),
        (  # ...but not infinities
            lambda e: e.trust_signals.add(name="x", value=ev.AttributeValue(double_value=math.inf)),
            [("events[0].trust_signals[0].value.double_value", "must be a finite number")],
        ),
        (
            lambda e: setattr(e.input.messages[0], "role", 42),
            [("events[0].input.messages[0].role", "unknown Role value 42")],
        ),
        (
            lambda e: setattr(e.actor, "user_id", "é" * 4097),
            [("events[0].actor.user_id", "is 4097 characters; the limit is 4096")],
        ),
        (lambda e: setattr(e.output.messages[0].parts[0], "text", "x" * 10_000), []),  # content
        (
            lambda e: e.model.parameters.CopyFrom(_struct(math.nan)),
            [("events[0].model.parameters", "holds a number that is not finite")],
        ),
        (lambda e: e.model.parameters.CopyFrom(_struct(2.5)), []),
        (
            lambda e: setattr(e.timing.latency, "seconds", -1),
            [("events[0].timing.latency", "must be 0 to 315576000000 s, nanos in [0, 999999999]")],
        ),
        (
            lambda e: setattr(e.approval.expire_time, "nanos", 1_000_000_000),
            [("events[0].approval.expire_time", RANGE)],
        ),
        (
            lambda e: e.usage.cost.CopyFrom(ev.Money(currency_code="usd", units=1, nanos=-5)),
            [
                ("events[0].usage.cost.currency_code", "must be an ISO 4217 code such as USD"),
                (
                    "events[0].usage.cost.nanos",
                    "must be in [-999999999, 999999999] with the sign of units",
                ),
            ],
        ),
        (lambda e: e.usage.cost.CopyFrom(ev.Money(currency_code="EUR", units=2, nanos=5)), []),
        (  # a cost is never negative (units is an int64 like the token counts)
            lambda e: e.usage.cost.CopyFrom(ev.Money(currency_code="EUR", units=-1, nanos=-5)),
            [("events[0].usage.cost.units", "must not be negative")],
        ),
        (
            lambda e: e.input.messages[0].parts.append(_media(size_bytes=-1)),
            [
                ("events[0].input.messages[0].parts[1].media.mime_type", "is required"),
                (
                    "events[0].input.messages[0].parts[1].media.sha256",
                    "is required: 64 lowercase hex digits",
                ),
                ("events[0].input.messages[0].parts[1].media", "needs inline data or a uri"),
                ("events[0].input.messages[0].parts[1].media.size_bytes", "must not be negative"),
            ],
        ),
        (  # the bytes in the URI: outside the content, never sealed, masked or erased
            lambda e: e.input.messages[0].parts.append(
                _media(mime_type="text/plain", sha256="0" * 64, uri=" DATA:,jane@example.com")
            ),
            [
                (
                    "events[0].input.messages[0].parts[1].media.uri",
                    "is a data: URI: send the bytes as data, where they are content",
                )
            ],
        ),
        (
            lambda e: e.input.messages[0].parts.append(
                _media(mime_type="text/plain", sha256="0" * 64, uri="https://x.example/data:1")
            ),
            [],
        ),
        (
            lambda e: e.input.messages[0].parts.append(
                _media(mime_type="image/png", sha256="0" * 64, data=PNG, size_bytes=3)
            ),
            [
                (
                    "events[0].input.messages[0].parts[1].media.sha256",
                    "does not match the SHA-256 of data",
                ),
                (
                    "events[0].input.messages[0].parts[1].media.size_bytes",
                    "is 3 but data has 4 bytes",
                ),
            ],
        ),
        (
            lambda e: e.input.messages[0].parts.append(
                _media(mime_type="image/png", sha256=PNG_SHA, data=PNG, size_bytes=4)
            ),
            [],
        ),
        (
            lambda e: e.input.messages[0].parts.append(
                _media(mime_type="image/png", sha256=PNG_SHA, uri="s3://b/k", size_bytes=4)
            ),
            [],
        ),
    ],
)
def test_each_rule_names_its_field(
    mutate: Callable[[ev.Event], object], expected: list[tuple[str, str]]
) -> None:
    assert problems(mutate) == expected


def test_problems_come_in_field_order() -> None:
    def mutate(e: ev.Event) -> None:
        e.usage.input_tokens = -1  # Usage is declared after Model, Timing after Usage
        e.model.temperature = math.inf
        e.timing.latency.nanos = -1

    assert [field for field, _ in problems(mutate)] == [
        "events[0].model.temperature",
        "events[0].usage.input_tokens",
        "events[0].timing.latency",
    ]


def test_every_violation_is_a_violation() -> None:
    e = interaction("t")
    e.usage.output_tokens = -3
    assert validate_event(e, Limits(), NOW, "p") == [
        Violation("p.usage.output_tokens", "must not be negative")
    ]


def _set(path: str, value: object) -> Callable[[ev.Event], None]:
    def mutate(e: ev.Event) -> None:
        *messages, field = path.split(".")
        target = e
        for m in messages:
            target = getattr(target, m)
        setattr(target, field, value)

    return mutate


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_set("event_id", ""), [("event_id", "is required: 1-128 characters of [A-Za-z0-9._:-]")]),
        (_set("event_id", "a" * 128), []),
        (_set("event_id", "Req:2026.A_b-c"), []),  # every character class the rule names
        (
            _set("event_id", "a" * 129),
            [("event_id", "is required: 1-128 characters of [A-Za-z0-9._:-]")],
        ),
        (_set("event_id", "é"), [("event_id", "is required: 1-128 characters of [A-Za-z0-9._:-]")]),
        (
            _set("event_id", "a\n"),
            [("event_id", "is required: 1-128 characters of [A-Za-z0-9._:-]")],
        ),
        (_set("tenant_id", "T"), [("tenant_id", "is required: 1-64 characters of [a-z0-9_-]")]),
        (
            _set("event_type", ev.EVENT_TYPE_UNSPECIFIED),
            [("event_type", "is required")],
        ),
        (
            _set("event_type", ev.EVENT_TYPE_AUDIT_ACCESS),
            [
                (
                    "event_type",
                    "EVENT_TYPE_AUDIT_ACCESS is written by the service itself (erasure and "
                    "retention records, access records, rule changes), never sent by a client",
                )
            ],
        ),
        (_set("event_type", 999), [("event_type", "unknown EventType value 999")]),
        (lambda e: e.ClearField("occurred_time"), [("occurred_time", "is required")]),
        (_set("occurred_time.seconds", -1), [("occurred_time", "is before 1970-01-01T00:00:00Z")]),
        (_set("occurred_time.seconds", 0), []),
        (
            _set("occurred_time.seconds", int(NOW.timestamp()) + 25 * 3600),
            [("occurred_time", "is more than 1 day, 0:00:00 ahead of the server clock")],
        ),
        (_set("occurred_time.seconds", int(NOW.timestamp()) + 23 * 3600), []),
        (_set("model.name", ""), [("model.name", "is required for EVENT_TYPE_INTERACTION events")]),
        (
            _set("actor.environment", "a" * 65),
            [("actor.environment", "is 65 characters; the limit is 64")],
        ),
        (_set("actor.environment", "é" * 64), []),  # characters, not bytes
        (
            _set("correlation.session_id", "a\x00b"),
            [("correlation.session_id", "must not contain U+0000 (NUL)")],
        ),
        (_set("correlation.trace_id", "0" * 32), []),
        (
            _set("correlation.trace_id", "A" * 32),
            [("correlation.trace_id", "must be 32 lowercase hex digits")],
        ),
        (
            _set("correlation.span_id", "f" * 15),
            [("correlation.span_id", "must be 16 lowercase hex digits")],
        ),
        (_set("actor.ip_address", "192.0.2.1"), []),
        (_set("actor.ip_address", "2001:db8::1"), []),
        (_set("actor.ip_address", "::ffff:192.0.2.1"), []),
        (_set("actor.ip_address", "2001:DB8::1"), []),  # not canonical: Python's parser decides
        (_set("actor.ip_address", "fe80::1%eth0"), []),  # a scoped address, as Python takes it
        (
            _set("actor.ip_address", "192.0.2.01"),
            [("actor.ip_address", "is not an IPv4 or IPv6 address")],
        ),
        (
            _set("actor.ip_address", "999.1.1.1"),
            [("actor.ip_address", "is not an IPv4 or IPv6 address")],
        ),
    ],
)
def test_each_event_rule_names_its_field(
    mutate: Callable[[ev.Event], object], expected: list[tuple[str, str]]
) -> None:
    assert problems(mutate) == [(f"events[0].{field}", problem) for field, problem in expected]


_REQUIRED = [(t, path) for t, fields in REQUIRED_PAYLOAD.items() for path, _ in fields]


@pytest.mark.parametrize(
    ("event_type", "path"), _REQUIRED, ids=[f"{ev.EventType.Name(t)}-{p}" for t, p in _REQUIRED]
)
def test_each_event_type_requires_the_payload_it_means_nothing_without(
    event_type: int, path: str
) -> None:
    """An approval decision naming no approver, a tool call no tool, a rate limit no limit
    was stored (only an interaction's model was required, until 2026-12-06)."""
    name = ev.EventType.Name(event_type)
    bare = typed_event("t", event_type, leave_out=[path])
    found = [(v.field, v.description) for v in validate_event(bare, Limits(), NOW, "events[0]")]
    assert found == [(f"events[0].{path}", f"is required for {name} events")]
    assert validate_event(typed_event("t", event_type), Limits(), NOW, "events[0]") == []


def test_every_type_a_client_may_send_has_its_requirements_stated() -> None:
    sendable = set(ev.EventType.values()) - SERVER_WRITTEN - {ev.EVENT_TYPE_UNSPECIFIED}
    assert set(REQUIRED_PAYLOAD) == sendable


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda e: setattr(e.approval, "approver_id", ""), "approval.approver_id"),
        (lambda e: e.ClearField("approval"), "approval.approval_id"),
        (lambda e: e.approval.ClearField("approver_id"), "approval.approver_id"),
    ],
)
def test_a_decision_with_an_empty_or_absent_approver_is_refused(
    mutate: Callable[[ev.Event], object], field: str
) -> None:
    e = typed_event("t", ev.EVENT_TYPE_APPROVAL_REJECTED)
    e.approval.approver_role = "manager"
    mutate(e)
    found = {v.field for v in validate_event(e, Limits(), NOW, "events[0]")}
    assert f"events[0].{field}" in found


def test_a_model_change_needs_the_new_models_name_not_only_its_message() -> None:
    e = typed_event("t", ev.EVENT_TYPE_MODEL_CHANGE, leave_out=["model_change.current.name"])
    e.model_change.current.provider = "openai"
    e.model_change.previous.name = "gpt-4o"
    assert [v.field for v in validate_event(e, Limits(), NOW, "e")] == [
        "e.model_change.current.name"
    ]


def test_event_rules_come_first_then_attributes_size_and_fields() -> None:
    def mutate(e: ev.Event) -> None:
        e.usage.input_tokens = -1
        e.attributes["Bad Key"].string_value = "x"
        e.correlation.span_id = "x"
        e.event_id = ""
        e.actor.ip_address = "nope"

    limits = Limits(max_event_bytes=100)
    e = interaction("t")
    mutate(e)
    found = [(v.field, v.description) for v in validate_event(e, limits, NOW, "events[0]")]
    size = e.ByteSize()
    assert found == [
        ("events[0].event_id", "is required: 1-128 characters of [A-Za-z0-9._:-]"),
        ("events[0].correlation.span_id", "must be 16 lowercase hex digits"),
        ("events[0].actor.ip_address", "is not an IPv4 or IPv6 address"),
        ("events[0].attributes['Bad Key']", "key must be 1-128 characters of [a-z0-9_.-]"),
        ("events[0]", f"is {size} bytes; the limit is 100"),
        ("events[0].usage.input_tokens", "must not be negative"),
    ]


NAME_RULE = "must be 1-128 characters of [A-Za-z0-9_.-]"


@pytest.mark.parametrize(
    ("name", "refused"),
    [
        ("user_rating", False),
        ("Fact_Check.v2-b", False),  # case is kept: trust_signals.Fact_Check.v2-b finds it
        ("-", False),
        ("x" * 128, False),
        ("x" * 129, True),
        ("", True),
        ("fact check", True),  # the filter read trust_signals.fact, then "check"
        ("vendor:score", True),  # read as trust_signals.vendor = "score"
        ('say"', True),
        ("a(b)", True),
        ("ñame", True),  # ASCII only, as the filter language's field names
        ("tab\there", True),
    ],
)
def test_a_trust_signal_name_must_be_one_a_filter_can_name(name: str, refused: bool) -> None:
    """The name is the last part of the search field ``trust_signals.<name>``, which search's
    catalogue takes by the same rule (``aiaudit.common.field_names``); names no filter could
    name were stored (review, 2026-12-06)."""
    found = problems(lambda e: e.trust_signals.add(name=name, value=ev.AttributeValue(int_value=1)))
    assert found == ([("events[0].trust_signals[0].name", NAME_RULE)] if refused else [])
    assert (catalogue.lookup(f"trust_signals.{name}") is None) == refused
    if name.lower() == name:  # an attribute key too, if its key rule takes it
        key = problems(lambda e: e.attributes[name].MergeFrom(ev.AttributeValue(int_value=1)))
        assert (catalogue.lookup(f"attributes.{name}") is None) == bool(key)


@pytest.mark.parametrize(
    ("key", "refused"),
    [
        ("team", False),
        ("a.b-c_1", False),
        ("x" * 128, False),
        ("Team", True),  # lower case, the rule attribute keys have always had
        ("x" * 129, True),
        ("a b", True),
        ("a:b", True),
    ],
)
def test_an_attribute_key_is_lower_case_letters_digits_and_dots(key: str, refused: bool) -> None:
    found = problems(lambda e: e.attributes[key].MergeFrom(ev.AttributeValue(int_value=1)))
    rule = "key must be 1-128 characters of [a-z0-9_.-]"
    assert found == ([(f"events[0].attributes[{key!r}]", rule)] if refused else [])


def test_trust_signal_names_are_named_one_by_one_unless_there_are_too_many() -> None:
    def mutate(e: ev.Event) -> None:
        e.attributes["Bad Key"].string_value = "x"
        e.trust_signals.add(name="ok")
        e.trust_signals.add(name="not ok", value=ev.AttributeValue(double_value=math.nan))
        e.trust_signals.add(name="ok:not")
        e.usage.input_tokens = -1

    assert problems(mutate) == [
        ("events[0].trust_signals[1].name", NAME_RULE),
        ("events[0].trust_signals[2].name", NAME_RULE),
        ("events[0].attributes['Bad Key']", "key must be 1-128 characters of [a-z0-9_.-]"),
        ("events[0].usage.input_tokens", "must not be negative"),
        ("events[0].trust_signals[1].value.double_value", "must be a finite number"),
    ]
    # past the limit the count is the answer, as for attributes
    too_many = [ev.TrustSignal(name=f"bad {i}") for i in range(1001)]
    assert problems(lambda e: e.trust_signals.extend(too_many)) == [
        ("events[0].trust_signals", "has 1001 entries; the limit is 1000")
    ]


UNSET_VALUE = (
    "must have a kind: null_value, number_value, string_value, bool_value, struct_value or "
    "list_value (a Value with none set is not JSON null)"
)


def _unset_in_list(e: ev.Event) -> None:
    e.model.parameters.update({"a": {"b": [1, None, "x"]}})
    e.model.parameters.fields["a"].struct_value.fields["b"].list_value.values[1].Clear()


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda e: e.model.parameters.fields["k"].Clear(), ["model.parameters.fields['k']"]),
        (
            _unset_in_list,
            ["model.parameters.fields['a'].struct_value.fields['b'].list_value.values[1]"],
        ),
        (
            lambda e: (
                e.input.tool_definitions.add(name="f").parameters_schema.fields["it's"].Clear()
            ),
            ['input.tool_definitions[0].parameters_schema.fields["it\'s"]'],
        ),
        (
            lambda e: e.model.parameters.fields["a\\b\n"].struct_value.fields["c"].Clear(),
            ["model.parameters.fields['a\\\\b\\n'].struct_value.fields['c']"],
        ),
        (lambda e: e.model.parameters.update({"k": None, "l": [None], "m": {}, "n": []}), []),
    ],
)
def test_a_struct_value_with_no_kind_is_named(
    mutate: Callable[[ev.Event], object], expected: list[str]
) -> None:
    """Committed as JSON null before, a value the client never sent (``null_value`` is one)."""
    assert problems(mutate) == [(f"events[0].{path}", UNSET_VALUE) for path in expected]


def _len(number: int, body: bytes) -> bytes:
    assert number < 16 and len(body) < 128
    return bytes([number << 3 | 2, len(body)]) + body


def _parameters(*entries: bytes) -> bytes:
    """Event.model (8).parameters (13) holding these Struct.fields (1) entries, as wire."""
    return _len(8, _len(13, b"".join(_len(1, entry) for entry in entries)))


_KEY_Z = _len(1, b"z")
_STRING_X = _len(2, _len(3, b"x"))  # Value.string_value
_EMPTY = _len(2, b"")  # a Value with nothing set


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ((_KEY_Z,), ["model.parameters.fields['z']"]),  # an entry without a value
        ((_KEY_Z + _EMPTY,), ["model.parameters.fields['z']"]),
        ((_KEY_Z + _EMPTY, _KEY_Z + _STRING_X), []),  # the last entry of a key wins
        ((_KEY_Z + _STRING_X, _KEY_Z + _EMPTY), ["model.parameters.fields['z']"]),
        ((_KEY_Z + _EMPTY + _STRING_X,), []),  # a Value met twice is merged
    ],
)
def test_struct_values_are_read_as_protobuf_parses_them(
    entries: tuple[bytes, ...], expected: list[str]
) -> None:
    wire = interaction("t").SerializeToString() + _parameters(*entries)
    event = ev.Event.FromString(wire)
    found = [(v.field, v.description) for v in validate_event(event, Limits(), NOW, "e", wire)]
    assert found == [(f"e.{path}", UNSET_VALUE) for path in expected]
    # protobuf agrees: what is named is what the parsed event holds unset
    holds = event.model.parameters.fields["z"].WhichOneof("kind")
    assert (holds is None) == bool(expected)
