"""Documents from the stored canonical JSON equal ``document.build`` on the protobuf message."""

from __future__ import annotations

import datetime as dt
import decimal
import re

import pytest
from hypothesis import given, settings

from aiaudit.common import canonical
from aiaudit.common.store.prepare import prepare
from aiaudit.common.store.sql import StoredEvent
from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.search import document, stored_document
from tests.helpers import interaction
from tests.unit import test_native_canonical, test_restore


def corpus() -> list[ev.Event]:
    """Every field set (each oneof member in turn), a sparse event, and edge values."""
    out = test_restore.events()
    edges = interaction("t", "edges")
    edges.safety_flags.add(category="", severity=ev.SEVERITY_HIGH, score=0.0, blocked=False)
    edges.trust_signals.add(name="unset")
    edges.trust_signals.add(name="", value=ev.AttributeValue(int_value=3))
    edges.attributes["empty"].string_value = ""
    edges.attributes["no"].bool_value = False
    edges.attributes["no_text"].string_value = "false"
    edges.usage.SetInParent()
    edges.timing.latency.FromNanoseconds(-1_500_000_000)
    edges.tool_call.SetInParent()
    edges.model.temperature = 0.0
    edges.input.messages.add().parts.add(text="")
    out.append(edges)
    return out


def stored(event: ev.Event, sequence: int) -> StoredEvent:
    new = prepare(event, dt.datetime.now(dt.UTC))
    return StoredEvent(
        new.log_id,
        sequence,
        new.event.event_id,
        new.committed.leaf_hash,
        new.receive_time,
        new.committed.canonical,
        new.salt,
        new.committed.content,
    )


@pytest.mark.parametrize("event", corpus(), ids=lambda e: e.event_id[:12] or "x")
def test_fast_path_equals_build_with_content_erased_and_partial(event: ev.Event) -> None:
    s = stored(event, 41)
    assert s.content, "the corpus must carry content"
    full = stored_document.from_canonical(s.canonical, s.content, 41)
    assert full == document.build(s.to_event(), 41)
    assert full.texts, "content must reach the texts"
    erased = stored_document.from_canonical(s.canonical, None, 41)
    assert erased == document.build(canonical.restore(s.canonical, None), 41)
    assert erased.texts == {}
    some = dict(list(s.content.items())[: len(s.content) // 2])
    assert stored_document.from_canonical(s.canonical, some, 41) == document.build(
        canonical.restore(s.canonical, some), 41
    )


@settings(max_examples=200, deadline=None)
@given(test_native_canonical.events())
def test_fast_path_equals_build_on_random_events(event: ev.Event) -> None:
    committed = canonical.commit(event, b"s" * 32)  # nanosecond times: 9 fraction digits
    assert stored_document.from_canonical(
        committed.canonical, committed.content, 7
    ) == document.build(event, 7)


def test_a_boolean_and_the_text_true_are_different_entries_on_both_paths() -> None:
    """Both paths made a boolean the text "true": one entry with an attribute holding it."""
    event = interaction("t", "typed")
    event.attributes["b"].bool_value = True
    event.attributes["s"].string_value = "true"
    event.trust_signals.add(name="b", value=ev.AttributeValue(bool_value=False))
    event.trust_signals.add(name="s", value=ev.AttributeValue(string_value="false"))
    event.safety_flags.add(category="true", severity=ev.SEVERITY_HIGH, blocked=True)
    committed = canonical.commit(event, b"s" * 32)
    fast = stored_document.from_canonical(committed.canonical, committed.content, 7)
    assert fast == document.build(event, 7)
    assert {e for e in fast.entries if e.field != "safety_flags.severity"} == {
        document.Entry("attributes.b", bool_value=True),
        document.Entry("attributes.s", "true"),
        document.Entry("trust_signals.b", bool_value=False),
        document.Entry("trust_signals.s", "false"),
        document.Entry("safety_flags.blocked", bool_value=True),
        document.Entry("safety_flags.category", "true"),
        document.Entry("safety_flags.score", num_value=0.0),
    }


def test_anything_unexpected_falls_back_to_build() -> None:
    s = stored(corpus()[0], 3)
    offset = re.sub(rb'("occurredTime":"[^"]*)Z"', rb'\1+00:00"', s.canonical)
    assert offset != s.canonical
    with pytest.raises(stored_document.FastPathError):
        stored_document.from_canonical(offset, s.content, 3)
    moved = s._replace(canonical=offset)
    assert stored_document.from_stored(moved) == document.build(moved.to_event(), 3)
    by_number = s.canonical.replace(b'"eventType":"EVENT_TYPE_', b'"eventType":"X', 1)
    with pytest.raises(stored_document.FastPathError):
        stored_document.from_canonical(by_number, s.content, 3)
    damaged = s._replace(canonical=b"not json")
    with pytest.raises(ValueError):
        stored_document.from_stored(damaged)


_WIDE = decimal.Context(prec=40)
"""Enough digits for any int64 of units and nine of nanos: the exact sums below."""


@pytest.mark.parametrize(
    ("units", "nanos"),
    [(1, 140_000_000), (0, 300_000_000), (-1, -140_000_000), (2**63 - 1, 999_999_999), (5, 0)],
)
def test_a_cost_is_the_double_nearest_its_decimal_amount_on_both_paths(
    units: int, nanos: int
) -> None:
    """``units + nanos / 1e9`` rounded twice: $1.14 was 1.1400000000000001, not 1.14."""
    event = interaction("t", "cost")
    event.usage.cost.currency_code = "USD"
    event.usage.cost.units, event.usage.cost.nanos = units, nanos
    exact = float(_WIDE.add(decimal.Decimal(units), decimal.Decimal(nanos).scaleb(-9, _WIDE)))
    committed = canonical.commit(event, b"s" * 32)
    fast = stored_document.from_canonical(committed.canonical, committed.content, 7)
    assert fast.scalars["usage.cost"] == document.build(event, 7).scalars["usage.cost"] == exact


def test_both_paths_index_the_same_first_values_of_an_event_with_too_many() -> None:
    """Past ``MAX_ENTRIES`` (OpenSearch's nested-document limit) the rest are left out,
    counted, on both paths alike: safety flags first, attributes last, in key order."""
    event = interaction("t", "many")
    event.safety_flags.add(category="pii", severity=ev.SEVERITY_HIGH, score=0.5)
    for i in range(document.MAX_ENTRIES + 2):
        event.attributes[f"k{i:05d}"].int_value = i
    committed = canonical.commit(event, b"s" * 32)
    fast = stored_document.from_canonical(committed.canonical, committed.content, 7)
    assert fast == document.build(event, 7)
    assert len(fast.entries) == document.MAX_ENTRIES
    assert fast.omitted_entries == 6  # 4 values of the flag (no source), 10,002 attributes
    assert fast.entries[0] == document.Entry("safety_flags.severity", "SEVERITY_HIGH")
    assert fast.entries[-1] == document.Entry("attributes.k09995", num_value=9995)
