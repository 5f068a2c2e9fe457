"""Ingest's field checks: each rule, its exact message and path, and their order."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Callable

import pytest
from google.protobuf import struct_pb2

from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.ingest.validation import Limits, Violation, validate_event
from tests.helpers import interaction

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
