"""The entry limits of multi-valued fields keep a search document under OpenSearch's limit.

The contract (limit+1 refused over gRPC, the limit taken) is tests/contract/test_entry_limits.py;
here the numbers against what the search index makes of an event, and the native count.
"""

from __future__ import annotations

import datetime as dt

import pytest

from aiaudit.common import canonical
from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.ingest.validation import (
    MAX_ENTRIES,
    MAX_NESTED_ENTRIES,
    OPENSEARCH_NESTED_OBJECTS,
    Limits,
    validate_event,
)
from aiaudit.search import document, stored_document
from tests.helpers import interaction

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _at_every_limit() -> ev.Event:
    e = interaction("t", "full")
    e.occurred_time.FromDatetime(NOW)
    for i in range(MAX_ENTRIES["attributes"]):
        e.attributes[f"k{i}"].string_value = "v"
    e.trust_signals.extend(
        ev.TrustSignal(name=f"s{i}", value=ev.AttributeValue(int_value=i))
        for i in range(MAX_ENTRIES["trust_signals"])
    )
    e.safety_flags.extend(
        ev.SafetyFlag(category="c", severity=ev.SEVERITY_LOW, source="g", blocked=True)
        for _ in range(MAX_ENTRIES["safety_flags"])
    )
    e.output.tool_calls.extend(
        ev.ToolCall(id=str(i), name="f") for i in range(MAX_ENTRIES["output.tool_calls"])
    )
    e.output.finish_reasons.extend("stop" for _ in range(MAX_ENTRIES["output.finish_reasons"]))
    return e


def test_an_event_at_every_limit_makes_half_opensearch_limit_of_entries() -> None:
    e = _at_every_limit()
    assert validate_event(e, Limits(), NOW, "events[0]") == []
    built = document.build(e, 0)
    committed = canonical.commit(e, b"s" * 32)
    fast = stored_document.from_canonical(committed.canonical, committed.content, 0)
    assert len(built.entries) == len(fast.entries) == MAX_NESTED_ENTRIES == 5000
    assert MAX_NESTED_ENTRIES <= OPENSEARCH_NESTED_OBJECTS // 2


@pytest.mark.parametrize("field", list(MAX_ENTRIES))
def test_one_over_is_named_with_count_and_limit(field: str) -> None:
    e = _at_every_limit()
    if field == "attributes":
        e.attributes["one.more"].bool_value = True
    elif field == "trust_signals":
        e.trust_signals.add(name="one.more")
    elif field == "safety_flags":
        e.safety_flags.add(category="one more")
    elif field == "output.tool_calls":
        e.output.tool_calls.add(name="one more")
    else:
        e.output.finish_reasons.append("one more")
    limit = MAX_ENTRIES[field]
    found = [(v.field, v.description) for v in validate_event(e, Limits(), NOW, "events[2]")]
    assert found == [(f"events[2].{field}", f"has {limit + 1} entries; the limit is {limit}")]


def test_output_sent_in_two_pieces_is_counted_whole() -> None:
    """The wire merges a message field sent twice: 600 + 401 finish reasons are 1001."""
    e = interaction("t", "pieces")
    e.occurred_time.FromDatetime(NOW)
    e.ClearField("output")
    first = ev.Event(output=ev.Output(finish_reasons=["stop"] * 600)).SerializeToString()
    second = ev.Event(output=ev.Output(finish_reasons=["stop"] * 401)).SerializeToString()
    wire = e.SerializeToString() + first + second
    merged = ev.Event.FromString(wire)
    assert len(merged.output.finish_reasons) == 1001
    found = [(v.field, v.description) for v in validate_event(merged, Limits(), NOW, "e", wire)]
    assert found == [("e.output.finish_reasons", "has 1001 entries; the limit is 1000")]


def test_limits_that_would_let_an_event_make_more_entries_are_refused() -> None:
    raised = tuple({**MAX_ENTRIES, "safety_flags": 201}.items())
    with pytest.raises(ValueError, match="5005 index entries; at most 5000"):
        Limits(max_entries=raised)
