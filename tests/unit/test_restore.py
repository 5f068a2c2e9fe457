"""The fast restore gives exactly what ``canonical.restore`` gives, on every field of Event."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from google.protobuf import descriptor, json_format
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from aiaudit.common import canonical, restore
from aiaudit.common.store.prepare import prepare
from aiaudit.common.v1 import event_pb2 as ev

FD = descriptor.FieldDescriptor


def fill(msg: Message, variant: int, depth: int = 0) -> None:
    """Sets every field (one member of each oneof, chosen by ``variant``), recursively."""
    desc = msg.DESCRIPTOR
    for field in desc.fields:
        oneof = field.containing_oneof
        if oneof is not None and not oneof.name.startswith("_"):
            members = list(oneof.fields)
            if members[variant % len(members)] is not field:
                continue
        mt = field.message_type
        if mt is not None and mt.GetOptions().map_entry:
            target = getattr(msg, field.name)
            for k in ("k1", "k.two"):
                fill(target[k], variant + len(k), depth + 1)
            continue
        count = 2 if field.is_repeated else 1
        for i in range(count):
            set_value(msg, field, variant + i, depth)


def set_value(msg: Message, field: Any, variant: int, depth: int) -> None:
    mt = field.message_type
    if mt is not None:
        sub = getattr(msg, field.name).add() if field.is_repeated else getattr(msg, field.name)
        if mt.full_name == "google.protobuf.Timestamp":
            fraction = [0, 123_000_000, 123_456_000, 123_456_789][variant % 4]
            sub.seconds, sub.nanos = 1_772_000_000 + variant, fraction
        elif mt.full_name == "google.protobuf.Duration":
            sub.seconds, sub.nanos = (-1, -500_000_000) if variant % 2 else (3, 250_000)
        elif mt.full_name == "google.protobuf.Struct":
            json_format.ParseDict({"a": [1, "x", True, None], "b": {"c": 2.5}}, sub)
        elif depth < 5:
            fill(sub, variant, depth + 1)
        return
    value: Any
    if field.cpp_type == FD.CPPTYPE_STRING:
        value = b"\x00\xff-bytes" if field.type == FD.TYPE_BYTES else f"{field.name} é {variant}"
    elif field.cpp_type == FD.CPPTYPE_BOOL:
        value = True
    elif field.cpp_type == FD.CPPTYPE_ENUM:
        value = field.enum_type.values[-1 - variant % (len(field.enum_type.values) - 1)].number
    elif field.cpp_type in (FD.CPPTYPE_DOUBLE, FD.CPPTYPE_FLOAT):
        value = 0.25 + variant
    elif field.cpp_type in (FD.CPPTYPE_INT64, FD.CPPTYPE_UINT64):
        value = 2**40 + variant
    else:
        value = 7 + variant
    if field.is_repeated:
        getattr(msg, field.name).append(value)
    else:
        setattr(msg, field.name, value)


def events() -> list[ev.Event]:
    out = []
    for variant in range(6):
        e = ev.Event()
        fill(e, variant)
        out.append(e)
    sparse = ev.Event(event_id="sparse", tenant_id="t")
    sparse.output.reasoning = "only this"
    sparse.occurred_time.FromDatetime(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    out.append(sparse)
    return out


@pytest.mark.parametrize("event", events(), ids=lambda e: e.event_id[:12] or "x")
def test_fast_restore_equals_canonical_restore(event: ev.Event) -> None:
    stored = prepare(event, dt.datetime.now(dt.UTC))
    body, content = stored.committed.canonical, stored.committed.content
    assert content, "the corpus must carry content"
    full = restore.restore_fast(body, content)
    assert full == canonical.restore(body, content) == stored.event
    erased = restore.restore_fast(body, None)
    assert erased == canonical.restore(body, None)
    assert erased != full
    assert restore.restore(body, content) == full
    some = dict(list(content.items())[: len(content) // 2])
    assert restore.restore_fast(body, some) == canonical.restore(body, some)


def test_anything_unexpected_falls_back_to_the_exact_parser() -> None:
    stored = prepare(events()[0], dt.datetime.now(dt.UTC))
    offset = stored.committed.canonical.replace(b'Z"', b'+00:00"', 1)
    with pytest.raises(restore.FastPathError):
        restore.restore_fast(offset, stored.committed.content)
    assert restore.restore(offset, stored.committed.content) == canonical.restore(
        offset, stored.committed.content
    )
    into = ev.Event()  # as a search page restores into its response's messages
    restore.restore_into(into, offset, stored.committed.content)
    assert into == canonical.restore(offset, stored.committed.content)
    unknown = b'{"eventId":"x","noSuchField":1}'
    with pytest.raises(json_format.ParseError):
        restore.restore(unknown, None)


def test_a_batch_restores_to_wire_bytes_with_the_exact_parser_where_needed() -> None:
    stored = [prepare(e, dt.datetime.now(dt.UTC)).committed for e in events()]
    rows: list[tuple[bytes, dict[str, str] | None]] = [(c.canonical, c.content) for c in stored]
    rows += [(c.canonical, None) for c in stored]  # erased
    offset = stored[0].canonical.replace(b'Z"', b'+00:00"', 1)  # only the exact parser reads it
    rows += [(offset, stored[0].content), (b"not json", None)] * 40  # and a batch split in threads
    got = restore.restore_wires(rows)
    assert len(got) == len(rows)
    for (body, content), wire in zip(rows, got, strict=True):
        if body == b"not json":
            assert isinstance(wire, ValueError)  # the exact parser's error, for the caller
            continue
        assert isinstance(wire, bytes)
        assert ev.Event.FromString(wire) == canonical.restore(body, content)


@pytest.mark.parametrize(
    ("stored", "why"),
    [
        (b"[1]", "content is not a JSON object"),
        (b'"input.messages[0].parts[0].text"', "content is not a JSON object"),
        (b"1", "content is not a JSON object"),
        (b"null", "content is not a JSON object"),
        (b'{"input.messages[0].parts[0].text": 1}', "content holds a value that is not a string"),
        (b"not json", "content is not JSON"),
    ],
)
def test_content_that_is_not_a_json_object_is_damage_not_erased_content(
    stored: bytes, why: str
) -> None:
    """Until 2026-12-06 the exact restore took ``[1]`` (and a string holding no content
    path) for erased content, and the batch restore refused a whole batch holding any of
    them (TypeError) instead of that event."""
    with pytest.raises(restore.ContentError, match=f"^{why}$"):
        restore.parse_content(stored)
    good = prepare(events()[0], dt.datetime.now(dt.UTC)).committed
    assert restore.parse_content(good.content_json) == good.content
    try:
        parsed: Any = json.loads(stored)
    except ValueError:
        return
    if parsed is None or isinstance(parsed, dict):
        return  # None is erased content to restore; the store's read refused `null` above
    with pytest.raises(TypeError, match="content is not a JSON object"):
        restore.restore(good.canonical, parsed)
    rows = [(good.canonical, good.content), (good.canonical, parsed), (good.canonical, None)]
    whole, damaged, erased = restore.restore_wires(rows)
    assert isinstance(damaged, TypeError)
    assert isinstance(whole, bytes)
    assert ev.Event.FromString(whole) == canonical.restore(good.canonical, good.content)
    assert isinstance(erased, bytes)
    assert ev.Event.FromString(erased) == canonical.restore(good.canonical, None)


# ---- properties over random events and damaged canonical forms ---------------

_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FD.TYPE_STRING: st.text(max_size=6),
    FD.TYPE_BYTES: st.binary(max_size=6),
    FD.TYPE_BOOL: st.booleans(),
    # + 0.0: JCS writes -0 as 0 (the canonical form does not keep the sign of zero)
    FD.TYPE_DOUBLE: st.floats(allow_nan=False, allow_infinity=False).map(lambda x: x + 0.0),
    FD.TYPE_INT32: st.integers(-(2**31), 2**31 - 1),
    FD.TYPE_INT64: st.integers(-(2**63), 2**63 - 1),
}
_MAX_SECONDS = 315_576_000_000
_EVENT = ev.Event.DESCRIPTOR


def draw_into(data: st.DataObject, msg: Message, depth: int = 0) -> None:
    """Sets a random subset of a message's fields to random values (one member per oneof)."""
    chosen = {o.name: data.draw(st.sampled_from(list(o.fields))) for o in msg.DESCRIPTOR.oneofs}
    for field in msg.DESCRIPTOR.fields:
        oneof = field.containing_oneof
        if (oneof is not None and chosen[oneof.name] is not field) or not data.draw(st.booleans()):
            continue
        mt = field.message_type
        if mt is not None and mt.GetOptions().map_entry:
            for k in data.draw(st.lists(st.text(max_size=4), max_size=2)):
                draw_into(data, getattr(msg, field.name)[k], depth + 1)
            continue
        for _ in range(data.draw(st.integers(1, 2)) if field.is_repeated else 1):
            if mt is None:
                value = draw_scalar(data, field)
                if field.is_repeated:
                    getattr(msg, field.name).append(value)
                else:
                    setattr(msg, field.name, value)
                continue
            sub = getattr(msg, field.name).add() if field.is_repeated else getattr(msg, field.name)
            sub.SetInParent()
            draw_message(data, sub, depth)


def draw_scalar(data: st.DataObject, field: Any) -> Any:
    if field.type == FD.TYPE_ENUM:
        return data.draw(st.sampled_from([v.number for v in field.enum_type.values]))
    return data.draw(_SCALARS[field.type])


def draw_message(data: st.DataObject, sub: Any, depth: int) -> None:
    name = sub.DESCRIPTOR.full_name
    if name == "google.protobuf.Timestamp":
        sub.seconds = data.draw(st.integers(-62_135_596_800, 253_402_300_799))  # years 1-9999
        sub.nanos = data.draw(st.sampled_from([0, 5_000_000, 5_000, 5, 999_999_999]))
    elif name == "google.protobuf.Duration":
        seconds = data.draw(st.integers(-_MAX_SECONDS, _MAX_SECONDS))
        nanos = data.draw(st.sampled_from([0, 500_000_000, 250_000, 7]))
        sub.seconds, sub.nanos = seconds, -nanos if seconds < 0 else nanos
    elif name == "google.protobuf.Struct":
        json_format.ParseDict(data.draw(st.dictionaries(st.text(max_size=3), st.text())), sub)
    elif depth < 4:
        draw_into(data, sub, depth + 1)


@given(st.data())
@settings(max_examples=150, deadline=None)
def test_fast_restore_equals_canonical_restore_on_random_events(data: st.DataObject) -> None:
    event = ev.Event()
    draw_into(data, event)
    stored = prepare(event, dt.datetime.now(dt.UTC))
    body, content = stored.committed.canonical, stored.committed.content
    assert restore.restore_fast(body, content) == canonical.restore(body, content) == stored.event
    assert restore.restore_fast(body, None) == canonical.restore(body, None)
    some = {k: v for k, v in content.items() if data.draw(st.booleans())}
    assert restore.restore_fast(body, some) == canonical.restore(body, some)


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4)
    | st.sampled_from(
        [
            "1",
            " 1",
            "-0",
            "1.5",
            "1e3",
            "ROLE_USER",
            "NaN",
            "AAE",
            "AAE=",
            "hmac-sha256:00",
            "2026-01-01T00:00:05Z",
            "2026-02-30T00:00:05Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:05.1Z",
            "2026-01-01T00:00:05+00:00",
            "2026-W01-1T00:00:05Z",
            "1.500s",
            "-0.500s",
            "1.5s",
            "315576000001s",
            "+1s",
        ]
    ),
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2)
    ),
    max_leaves=4,
)


def places(node: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every value in a JSON tree (keys and indexes), the root included."""
    found = [at]
    if isinstance(node, dict):
        for k, v in node.items():
            found += places(v, (*at, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += places(v, (*at, i))
    return found


def damaged(data: st.DataObject, root: dict[str, Any]) -> dict[str, Any]:
    """The JSON with one value replaced, or a key added beside it or renamed to snake_case."""
    at = data.draw(st.sampled_from(places(root)[1:]))
    parent = root
    for step in at[:-1]:
        parent = parent[step]
    last = at[-1]
    how = data.draw(st.sampled_from(["replace", "add", "snake"]))
    if how == "replace" or not isinstance(parent, dict):
        parent[last] = data.draw(_JSON)
    elif how == "add":
        parent[data.draw(st.sampled_from(["media", "uri", "intValue", "event_id", "x"]))] = 1
    else:
        parent[re.sub("([A-Z])", lambda m: "_" + m.group(1).lower(), last)] = parent.pop(last)
    return root


def outcome(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as exc:  # the exact parser's error is what both must give
        return type(exc)


@given(st.data())
@settings(max_examples=400, deadline=None)
def test_damaged_rows_restore_as_the_exact_parser_does(data: st.DataObject) -> None:
    """Whatever a row holds, restore gives canonical.restore's result or its error."""
    event = ev.Event()
    fill(event, data.draw(st.integers(0, 5)))
    stored = prepare(event, dt.datetime.now(dt.UTC))
    body = json.dumps(damaged(data, json.loads(stored.committed.canonical))).encode()
    for content in (stored.committed.content, None):
        assert outcome(restore.restore, body, content) == outcome(canonical.restore, body, content)


_TEXT = "input.messages[0].parts[0].text"


@pytest.mark.parametrize(
    "body",
    [
        b'{"safetyFlags":[{"blocked":1}]}',
        b'{"privacyAction":{"consentGranted":0}}',
        b'{"model":{"temperature":true,"seed":true}}',
        b'{"usage":{"inputTokens":" 15"}}',
        b'{"usage":{"inputTokens":"1_5","outputTokens":1.0}}',
        b'{"usage":{"inputTokens":"99999999999999999999"}}',
        b'{"eventType":1.0}',
        b'{"eventType":"1"}',
        b'{"eventType":99}',
        b'{"occurredTime":"2026-W01-1T00:00:05Z"}',
        b'{"occurredTime":"2026-02-30T00:00:05Z"}',
        b'{"occurredTime":"2026-01-01T00:00:05.1234Z"}',
        b'{"occurredTime":"1969-12-31T23:59:59.500Z"}',
        b'{"timing":{"latency":"+1s","timeToFirstToken":"-0.500s"}}',
        b'{"timing":{"latency":"315576000001s"}}',
        b'{"input":{"messages":[{"parts":[{"text":"c","media":{"uri":"u"}}]}]}}',
        b'{"input":{"messages":[{"parts":[{"text":null,"media":{"uri":"u"}}]}]}}',
        b'{"input":{"messages":[{"parts":[{"media":{"data":"c","uri":"u"}}]}]}}',
        b'{"trustSignals":[{"value":{"intValue":"1","boolValue":null}}]}',
        b'{"eventId":"a","event_id":"b"}',
        b'{"event_id":"b"}',
        b'{"input":null}',
        b'{"actor":null,"eventId":null,"safetyFlags":null}',
        b'{"input":{"messages":[null]}}',
        b'{"model":{"stopSequences":"abc"}}',
        b'{"model":{"parameters":{"a":[1,"x",null],"fields":{"b":true}}}}',
        b'{"model":{"parameters":[1]}}',
        b'{"model":{"parameters":"x"}}',
        b'{"attributes":{"k":{"intValue":"1"}}}',
        b'{"attributes":{"k":null}}',
        b'{"attributes":{"k":{"doubleValue":"NaN"}}}',
        b'{"output":{"reasoning":null}}',
        b'{"noSuchField":1}',
        b"[]",
    ],
)
def test_unusual_rows_restore_as_the_exact_parser_does(body: bytes) -> None:
    content = {
        _TEXT: "hello",
        "output.reasoning": "why",
        "input.messages[0].parts[0].media.data": "AAE",
    }
    for given_content in (content, None):
        expected = outcome(canonical.restore, body, given_content)
        assert outcome(restore.restore, body, given_content) == expected
