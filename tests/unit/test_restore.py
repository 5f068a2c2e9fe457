"""The fast restore gives exactly what ``canonical.restore`` gives, on every field of Event."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from google.protobuf import descriptor, json_format
from google.protobuf.message import Message

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
    unknown = b'{"eventId":"x","noSuchField":1}'
    with pytest.raises(json_format.ParseError):
        restore.restore(unknown, None)
