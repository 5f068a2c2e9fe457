"""The native encoder (``libs/native``) against the reference construction.

The reference: ``rfc8785.dumps`` of ``json_format``'s proto3 JSON, each content
value replaced by its commitment. Both are independent implementations of the
README's canonical form, so any field the two write differently fails here.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import orjson
import pytest
import rfc8785
from google.protobuf import descriptor, json_format, struct_pb2
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from aiaudit.common import canonical
from aiaudit.common.v1 import event_pb2 as ev
from tests.helpers import interaction

finite = st.floats(allow_nan=False, allow_infinity=False)
text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)


def json_values(depth: int = 2) -> st.SearchStrategy[object]:
    base = st.one_of(st.none(), st.booleans(), finite, text)
    if depth == 0:
        return base
    return st.one_of(
        base,
        st.lists(json_values(depth - 1), max_size=3),
        st.dictionaries(text, json_values(depth - 1), max_size=3),
    )


@st.composite
def events(draw: st.DrawFn) -> ev.Event:
    e = ev.Event(event_id=draw(text), tenant_id=draw(text), event_type=draw(st.integers(0, 20)))
    e.occurred_time.seconds = draw(st.integers(0, 253402300799))
    e.occurred_time.nanos = draw(st.integers(0, 999_999_999))
    if draw(st.booleans()):
        e.model.temperature = draw(finite)
        e.model.name = draw(text)
        params = draw(st.dictionaries(text, json_values(), max_size=4))
        e.model.parameters.update(params)
    for _ in range(draw(st.integers(0, 3))):
        m = e.input.messages.add(role=draw(st.integers(0, 4)))
        for _ in range(draw(st.integers(0, 2))):
            if draw(st.booleans()):
                m.parts.add(text=draw(text))
            else:
                m.parts.add(
                    media=ev.Media(
                        mime_type=draw(text),
                        size_bytes=draw(st.integers(0, 2**62)),
                        data=draw(st.binary(max_size=16)),
                    )
                )
    e.output.reasoning = draw(text)
    for key in draw(st.lists(text, max_size=4)):
        kind = draw(st.sampled_from(["string_value", "int_value", "double_value", "bool_value"]))
        value = {
            "string_value": text,
            "int_value": st.integers(-(2**63), 2**63 - 1),
            "double_value": finite,
            "bool_value": st.booleans(),
        }[kind]
        setattr(e.attributes[key], kind, draw(value))
    if draw(st.booleans()):
        e.timing.latency.seconds = draw(st.integers(0, 10**9))
        e.timing.latency.nanos = draw(st.integers(0, 999_999_999))
    e.usage.input_tokens = draw(st.integers(0, 2**63 - 1))
    e.usage.cost.nanos = draw(st.integers(-(2**31), 2**31 - 1))
    return e


SALT = b"s" * 32


def assert_matches_reference(e: ev.Event) -> None:
    """The native canonical form and content equal the reference's."""
    committed = canonical.commit(e, SALT)
    reference = json_format.MessageToDict(e)
    content = {}
    for slot in list(canonical._content_slots(ev.Event.DESCRIPTOR, reference, "")):
        value = slot.obj[slot.key]
        content[slot.path] = value
        slot.obj[slot.key] = canonical.commitment(SALT, slot.path, canonical._raw(slot, value))
    assert committed.canonical == rfc8785.dumps(reference)
    assert committed.content == content
    assert committed.leaf_hash == hashlib.sha256(b"\x00" + committed.canonical).digest()
    assert committed.content_json == orjson.dumps(committed.content)  # what was stored before


@settings(max_examples=300)
@given(events())
def test_commit_matches_reference(e: ev.Event) -> None:
    assert_matches_reference(e)


def test_struct_keys_sort_by_utf16_code_units() -> None:
    s = struct_pb2.Struct()
    s.update({"\U0001f600": 1, "\uff61": 2})  # astral sorts before U+FF61 in UTF-16
    assert_matches_reference(ev.Event(model=ev.Model(parameters=s)))


@given(finite)
def test_numbers_are_written_as_ecmascript_does(x: float) -> None:
    """RFC 8785 section 3.2.2.3, through a Struct number (a double as it is)."""
    s = struct_pb2.Struct()
    s.update({"x": x})
    assert_matches_reference(ev.Event(model=ev.Model(parameters=s)))


def test_number_edges() -> None:
    cases = {
        1e21: "1e+21",
        1e20: "100000000000000000000",
        1e-7: "1e-7",
        1e-6: "0.000001",
        0.1: "0.1",
        -0.0: "0",
        123.0: "123",
        5e-324: "5e-324",
        1.7976931348623157e308: "1.7976931348623157e+308",
        # exactly halfway between two shortest candidates: the even one, as ECMAScript
        70368744177664.625: "70368744177664.62",
    }
    for x, expected in cases.items():
        e = ev.Event(model=ev.Model(temperature=x))
        assert b'"temperature":' + expected.encode() + b"}" in canonical.commit(e, SALT).canonical


def _fill_any(draw: st.DrawFn, msg: Message, depth: int) -> None:
    """Sets a random subset of every field of ``msg``, defaults and -0.0 included."""
    fd = descriptor.FieldDescriptor
    for field in msg.DESCRIPTOR.fields:
        if not draw(st.booleans()):
            continue
        mt = field.message_type
        if mt is not None and mt.GetOptions().map_entry:
            value_field = mt.fields_by_name["value"]
            for key in draw(st.lists(text, max_size=2)):
                target = getattr(msg, field.name)
                if value_field.message_type is not None:
                    if depth > 0:
                        _fill_any(draw, target[key], depth - 1)
                else:
                    target[key] = _scalar_value(draw, value_field)
            continue
        if mt is not None:
            if depth == 0 or (
                mt.full_name.startswith("google.protobuf.")
                and not (mt.full_name.endswith(("Timestamp", "Duration")))
            ):
                continue
            count = draw(st.integers(0, 2)) if field.is_repeated else 1
            for _ in range(count):
                sub = (
                    getattr(msg, field.name).add()
                    if field.is_repeated
                    else getattr(msg, field.name)
                )
                sub.SetInParent()
                if mt.full_name == "google.protobuf.Timestamp":  # 0001-01-01 to 9999-12-31
                    sub.seconds = draw(st.integers(-62135596800, 253402300799))
                    sub.nanos = draw(st.integers(0, 999_999_999))
                elif mt.full_name == "google.protobuf.Duration":
                    sub.seconds = draw(st.integers(0, 10**9))
                    sub.nanos = draw(st.integers(0, 999_999_999))
                else:
                    _fill_any(draw, sub, depth - 1)
            continue
        if field.is_repeated:
            getattr(msg, field.name).extend(
                [_scalar_value(draw, field) for _ in range(draw(st.integers(0, 2)))]
            )
        elif field.type == fd.TYPE_DOUBLE and not field.has_presence:
            setattr(msg, field.name, draw(st.sampled_from([0.0, -0.0, 1.5, -2.25e-7])))
        else:
            setattr(msg, field.name, _scalar_value(draw, field))


def _scalar_value(draw: st.DrawFn, field: Any) -> object:
    fd = descriptor.FieldDescriptor
    if field.type == fd.TYPE_STRING:
        return draw(text)
    if field.type == fd.TYPE_BYTES:
        return draw(st.binary(max_size=8))
    if field.type == fd.TYPE_BOOL:
        return draw(st.booleans())
    if field.type == fd.TYPE_ENUM:
        return draw(st.sampled_from([v.number for v in field.enum_type.values] + [99]))
    if field.type in (fd.TYPE_DOUBLE, fd.TYPE_FLOAT):
        return draw(st.sampled_from([0.0, -0.0, 0.5, 1e21, -3.0]))
    if field.type in (fd.TYPE_INT64, fd.TYPE_SINT64, fd.TYPE_SFIXED64):
        return draw(st.integers(-(2**63), 2**63 - 1))
    if field.type in (fd.TYPE_UINT64, fd.TYPE_FIXED64):
        return draw(st.integers(0, 2**64 - 1))
    if field.type in (fd.TYPE_UINT32, fd.TYPE_FIXED32):
        return draw(st.integers(0, 2**32 - 1))
    return draw(st.integers(-(2**31), 2**31 - 1))


@st.composite
def any_events(draw: st.DrawFn) -> ev.Event:
    e = ev.Event()
    _fill_any(draw, e, 4)
    return e


@settings(max_examples=300)
@given(any_events())
def test_commit_matches_reference_on_every_field(e: ev.Event) -> None:
    """Any field set or not, optional zeros, -0.0 and unknown enum numbers included."""
    assert_matches_reference(e)


@settings(max_examples=300)
@given(any_events())
def test_proto_json_is_the_reference_mapping_content_included(e: ev.Event) -> None:
    """What exports write for each event: the proto3 JSON mapping itself (no commitments)."""
    assert canonical.proto_json(e) == rfc8785.dumps(json_format.MessageToDict(e))


def test_timestamps_of_every_era() -> None:
    """Years below 1000 keep their four digits; leap days and era boundaries land right."""
    for seconds in (-62135596800, -30610224001, -30610224000, -1, 0, 951782400, 253402300799):
        e = ev.Event()
        e.occurred_time.seconds = seconds
        e.occurred_time.nanos = 5000
        assert_matches_reference(e)


def reference_of_wire(data: bytes) -> tuple[bytes, dict[str, str]]:
    """The reference construction of the event protobuf parses from ``data``."""
    parsed = ev.Event.FromString(data)
    committed = canonical.commit(parsed, SALT)  # re-serialised: one occurrence per field
    assert_matches_reference(parsed)
    return committed.canonical, committed.content


@settings(max_examples=150)
@given(any_events(), any_events())
def test_concatenated_events_merge_as_protobuf_does(a: ev.Event, b: ev.Event) -> None:
    """Wire bytes with repeated occurrences: the last scalar wins, messages merge,
    repeated fields append, a oneof keeps its last member: as protobuf parses them."""
    data = a.SerializeToString() + b.SerializeToString()
    committed = canonical.commit_wire(data, SALT)
    assert (committed.canonical, committed.content) == reference_of_wire(data)


def test_unknown_fields_are_not_part_of_the_canonical_form() -> None:
    e = interaction("t", "hello")
    unknown = b"\xf8\x3f\x07" + b"\xfa\x3f\x03abc"  # field 1023 as a varint, then as bytes
    committed = canonical.commit_wire(e.SerializeToString() + unknown, SALT)
    assert (committed.canonical, committed.content) == reference_of_wire(e.SerializeToString())


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\x0a\x05ab", "truncated field"),
        (b"\x08" + b"\xff" * 11, "varint longer than 10 bytes"),
        (b"\x0b", "unsupported wire type 3"),
        (b"\x0a\x02\xff\xfe", "not UTF-8"),
        (b"\x0d\x00\x00\x00\x00", "wire type 5, expected 2"),
    ],
)
def test_malformed_bytes_are_refused_with_the_reason(data: bytes, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        canonical.native_schema().commit(data, SALT)


def test_values_without_a_canonical_form_are_refused() -> None:
    """Timestamps outside 0001-9999 and non-finite numbers: an error, never a guess."""
    late = ev.Event()
    late.occurred_time.seconds = 253402300800
    bad_nanos = ev.Event()
    bad_nanos.occurred_time.nanos = -1
    infinite = ev.Event(model=ev.Model(temperature=math.inf))
    for e, error in ((late, "outside 0001-01-01"), (bad_nanos, "outside"), (infinite, "no JSON")):
        with pytest.raises(ValueError, match=error):
            canonical.commit(e, SALT)


def test_ties_between_shortest_candidates_go_to_the_even_digit() -> None:
    """Doubles whose exact value is a decimal midpoint, where rounding up is wrong."""
    for power in range(40, 53):
        for eighths in range(1, 64, 2):
            x = 2.0**power + eighths / 8
            s = struct_pb2.Struct()
            s.update({"x": x})
            assert_matches_reference(ev.Event(model=ev.Model(parameters=s)))


def test_stored_content_json_escapes_what_json_must() -> None:
    e = interaction("t", text='quote " backslash \\ tab \t nul \x00 \x1f del \x7f \u2028 é 😀')
    committed = canonical.commit(e, SALT)
    assert committed.content_json == orjson.dumps(committed.content)
    assert orjson.loads(committed.content_json) == committed.content


@settings(max_examples=300)
@given(st.text(alphabet=st.sampled_from('ab "\\\n\t\x00\x08\x1f\x7fé😀'), max_size=40))
def test_strings_are_escaped_wherever_the_escape_falls(text: str) -> None:
    """Plain bytes are skipped eight at a time: an escape at any offset is still written."""
    committed = canonical.commit(interaction("t", text=text, user=text.replace("\x00", "")), SALT)
    assert committed.content_json == orjson.dumps(committed.content)
    assert_matches_reference(interaction("t", text=text, user=text.replace("\x00", "")))


@settings(max_examples=200)
@given(any_events())
def test_content_texts_are_the_committed_content_strings(e: ev.Event) -> None:
    """What ingest's masking scans: every non-empty content string, at its content path,
    and the path of every non-empty content bytes field (inline media)."""
    content = canonical.commit(e, SALT).content
    texts, media = canonical.native_schema().content_texts(e.SerializeToString())
    assert len(texts) == len(dict(texts))
    strings = {p: v for p, v in content.items() if not p.endswith(".data") and v}  # data: bytes
    assert dict(texts) == strings
    assert media == [p for p, v in content.items() if p.endswith(".data") and v]


def test_the_schema_is_built_once() -> None:
    """Every commit, check and restore asks for it: building it each time cost ~0.4 ms."""
    assert canonical.native_schema() is canonical.native_schema()
