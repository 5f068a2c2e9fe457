"""IngestService contract, run against SQLite and PostgreSQL through real gRPC."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from aiaudit.common import client
from aiaudit.common.store import open_store
from aiaudit.common.store.prepare import prepare_batch
from aiaudit.common.store.sql import NewEvent
from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from tests.conftest import Postgres, Running, serve_suite
from tests.helpers import (
    REQUIRED_PAYLOAD,
    assert_not_protobuf,
    concurrently,
    field_violations,
    interaction,
    not_protobuf,
    typed_event,
)


def stub(server: Running) -> pb_grpc.IngestServiceStub:
    return pb_grpc.IngestServiceStub(server.channel)


def stored_count(server: Running, tenant: str) -> int:
    return server.suite.store.log_sizes().get(tenant, 0)  # type: ignore[attr-defined]


def test_append_returns_receipts_in_order(server: Running, tenant: str) -> None:
    events = [interaction(tenant, f"id-{i}") for i in range(5)]
    response = stub(server).Append(pb.AppendRequest(events=events))
    assert [r.event_id for r in response.receipts] == [f"id-{i}" for i in range(5)]
    assert [r.sequence for r in response.receipts] == list(range(5))
    assert all(
        len(r.leaf_hash) == 32 and r.log_id == tenant and not r.duplicate for r in response.receipts
    )
    stored = server.suite.store.get_event(tenant, "id-3")  # type: ignore[attr-defined]
    assert stored.leaf_hash == response.receipts[3].leaf_hash
    original = events[3]
    restored = stored.to_event()
    assert restored.receive_time == response.receipts[3].receive_time  # to the microsecond
    assert response.receipts[3].receive_time.ToDatetime(dt.UTC) == stored.receive_time
    restored.ClearField("receive_time")
    assert restored == original


def test_retry_returns_original_receipt_and_stores_once(server: Running, tenant: str) -> None:
    e = interaction(tenant, "retry-me")
    first = stub(server).Append(pb.AppendRequest(events=[e])).receipts[0]
    again = stub(server).Append(pb.AppendRequest(events=[e, interaction(tenant, "new")])).receipts
    assert again[0].duplicate and again[0].sequence == first.sequence
    assert again[0].leaf_hash == first.leaf_hash and again[0].receive_time == first.receive_time
    assert again[1].sequence == 1 and not again[1].duplicate
    assert stored_count(server, tenant) == 2


def test_same_id_different_content_is_already_exists(server: Running, tenant: str) -> None:
    stub(server).Append(pb.AppendRequest(events=[interaction(tenant, "taken", text="one")]))
    with pytest.raises(grpc.RpcError) as err:
        stub(server).Append(
            pb.AppendRequest(
                events=[interaction(tenant, "fresh"), interaction(tenant, "taken", text="two")]
            )
        )
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "events[1].event_id" in err.value.details()
    assert stored_count(server, tenant) == 1  # the whole batch, "fresh" included, was refused


def _other_user(e: ev.Event) -> None:
    e.actor.user_id = "mallory"


def _other_model(e: ev.Event) -> None:
    e.model.name = "gpt-3.5-turbo"


def _other_type(e: ev.Event) -> None:
    e.event_type = ev.EVENT_TYPE_TOOL_CALL
    e.tool_call.name = "search"  # ingest requires the tool's name there


@pytest.mark.parametrize("change", [_other_user, _other_model, _other_type])
def test_same_id_same_content_other_metadata_is_already_exists(
    server: Running, tenant: str, change: Any
) -> None:
    """The whole committed event is compared, not its content alone: the same words under
    another user, model or event type are another event (mutation review 2026-12-05)."""
    sent = interaction(tenant, "taken", text="same words")
    first = stub(server).Append(pb.AppendRequest(events=[sent])).receipts[0]
    other = ev.Event()
    other.CopyFrom(sent)
    change(other)
    with pytest.raises(grpc.RpcError) as err:
        stub(server).Append(pb.AppendRequest(events=[interaction(tenant, "fresh"), other]))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    status = rpc_status.from_call(err.value)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.reason == "EVENT_ID_CONFLICT"
    assert dict(info.metadata) == {"field": "events[1].event_id", "event_id": "taken"}
    assert field_violations(err.value) == {"events[1].event_id": "taken by other content"}
    assert stored_count(server, tenant) == 1
    restored = server.suite.store.get_event(tenant, "taken").to_event()  # type: ignore[attr-defined]
    restored.ClearField("receive_time")
    assert restored == sent  # unchanged
    again = stub(server).Append(pb.AppendRequest(events=[sent])).receipts[0]
    assert again.duplicate and (again.sequence, again.leaf_hash, again.receive_time) == (
        first.sequence,
        first.leaf_hash,
        first.receive_time,
    )
    assert stored_count(server, tenant) == 1


def _bad(server: Running, events: list[ev.Event]) -> dict[str, str]:
    with pytest.raises(grpc.RpcError) as err:
        stub(server).Append(pb.AppendRequest(events=events))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    return field_violations(err.value)


def _streamed_bad_then_good(server: Running, bad: ev.Event, good: ev.Event) -> dict[str, str]:
    """``AppendStream`` of two requests: the first refused INVALID_ARGUMENT (its violations
    returned), the second stored."""
    requests = [
        pb.AppendStreamRequest(request_id=1, events=[bad]),
        pb.AppendStreamRequest(request_id=2, events=[good]),
    ]
    answers = list(stub(server).AppendStream(iter(requests)))
    assert [(a.request_id, a.status.code) for a in answers] == [
        (1, grpc.StatusCode.INVALID_ARGUMENT.value[0]),
        (2, 0),
    ]
    detail = error_details_pb2.BadRequest()
    assert answers[0].status.details[0].Unpack(detail)
    return {v.field: v.description for v in detail.field_violations}


def test_one_invalid_event_rejects_the_batch(server: Running, tenant: str) -> None:
    events = [interaction(tenant) for _ in range(4)]
    events[3].model.name = ""
    assert _bad(server, events) == {
        "events[3].model.name": "is required for EVENT_TYPE_INTERACTION events"
    }
    assert stored_count(server, tenant) == 0


@pytest.mark.parametrize("event_type", list(REQUIRED_PAYLOAD), ids=ev.EventType.Name)
def test_an_event_without_the_payload_its_type_requires_is_refused(
    server: Running, tenant: str, event_type: int
) -> None:
    """An ``EVENT_TYPE_APPROVAL_APPROVED`` naming no approver (or no approval at all), a tool
    call no tool, a budget exceeded no budget was stored: records no evidence of what they
    say happened (only an interaction's model was required until 2026-12-06). Now refused,
    each missing field named, nothing written, on Append and AppendStream alike."""
    name = ev.EventType.Name(event_type)
    fields = [path for path, _ in REQUIRED_PAYLOAD[event_type]]
    bare = typed_event(tenant, event_type, "bare", leave_out=fields)
    assert _bad(server, [typed_event(tenant, event_type, "fine"), bare]) == {
        f"events[1].{f}": f"is required for {name} events" for f in fields
    }
    assert stored_count(server, tenant) == 0

    complete = typed_event(tenant, event_type, "bare")
    assert _streamed_bad_then_good(server, bare, complete) == {
        f"events[0].{f}": f"is required for {name} events" for f in fields
    }
    assert stored_count(server, tenant) == 1
    stored = server.suite.store.get_event(tenant, "bare").to_event()  # type: ignore[attr-defined]
    stored.ClearField("receive_time")
    assert stored == complete


def test_empty_batch(server: Running) -> None:
    assert "events" in _bad(server, [])


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda e: e.ClearField("event_id"), "events[0].event_id"),
        (lambda e: setattr(e, "event_id", "has space"), "events[0].event_id"),
        (lambda e: e.ClearField("tenant_id"), "events[0].tenant_id"),
        (lambda e: e.ClearField("event_type"), "events[0].event_type"),
        (lambda e: setattr(e, "event_type", 999), "events[0].event_type"),
        (lambda e: e.ClearField("occurred_time"), "events[0].occurred_time"),
        (lambda e: setattr(e.occurred_time, "seconds", -10), "events[0].occurred_time"),
        (lambda e: setattr(e.occurred_time, "seconds", 4_000_000_000), "events[0].occurred_time"),
        (lambda e: setattr(e.occurred_time, "nanos", -1), "events[0].occurred_time"),
        (
            lambda e: setattr(e.approval.expire_time, "seconds", 253_402_300_800),  # year 10000
            "events[0].approval.expire_time",
        ),
        (lambda e: setattr(e.timing.latency, "nanos", 1_000_000_000), "events[0].timing.latency"),
        (lambda e: setattr(e.model, "temperature", float("nan")), "events[0].model.temperature"),
        (lambda e: setattr(e.usage, "input_tokens", -1), "events[0].usage.input_tokens"),
        (lambda e: setattr(e.actor, "ip_address", "999.1.1.1"), "events[0].actor.ip_address"),
        (lambda e: setattr(e.correlation, "trace_id", "xyz"), "events[0].correlation.trace_id"),
        (
            lambda e: e.input.messages[0].parts.add(
                media=ev.Media(mime_type="image/png", sha256="0" * 64, data=b"abc", size_bytes=3)
            ),
            "events[0].input.messages[0].parts[1].media.sha256",
        ),
        (lambda e: setattr(e.input.messages[0], "role", 42), "events[0].input.messages[0].role"),
        (lambda e: setattr(e.actor, "user_id", "u" * 5000), "events[0].actor.user_id"),
        (
            lambda e: e.attributes["Bad Key"].string_value.__class__,
            "events[0].attributes['Bad Key']",
        ),
        (  # answered UNKNOWN ("inf has no JSON form") before
            lambda e: setattr(e.attributes["x"], "double_value", float("inf")),
            "events[0].attributes['x'].double_value",
        ),
        (  # past the index's longest keyword: prefix filters missed it on OpenSearch
            lambda e: setattr(e.attributes["x"], "string_value", "a" * 9000),
            "events[0].attributes['x'].string_value",
        ),
    ],
)
def test_bad_fields_are_named(server: Running, tenant: str, mutate: object, field: str) -> None:
    e = interaction(tenant)
    mutate(e)  # type: ignore[operator]
    assert field in _bad(server, [e])
    assert stored_count(server, tenant) == 0


NAME_RULE = "must be 1-128 characters of [A-Za-z0-9_.-]"


def test_a_trust_signal_name_no_filter_can_name_is_refused(server: Running, tenant: str) -> None:
    """A trust signal's name is the last part of its search field, ``trust_signals.<name>``:
    one holding a space, a colon or a non-ASCII letter, or over 128 characters, was stored
    and no filter could name it (``trust_signals.vendor:score`` read as ``trust_signals.vendor
    = "score"``). Now refused as a bad attribute key is, nothing written, on Append and
    AppendStream alike (review, 2026-12-06)."""
    taken = ("Fact_Check.v2-b", "x" * 128, "-")
    e = interaction(tenant, "signals")
    for name in (taken[0], "fact check", "vendor:score", "ñame", "x" * 129, "", *taken[1:]):
        e.trust_signals.add(name=name).value.double_value = 0.9
    refused = {f"events[1].trust_signals[{i}].name": NAME_RULE for i in range(1, 6)}
    assert _bad(server, [interaction(tenant, "fine"), e]) == refused
    assert stored_count(server, tenant) == 0

    fine = interaction(tenant, "signals")
    for name in taken:
        fine.trust_signals.add(name=name).value.double_value = 0.9
    assert _streamed_bad_then_good(server, e, fine) == {
        f"events[0].trust_signals[{i}].name": NAME_RULE for i in range(1, 6)
    }
    assert stored_count(server, tenant) == 1
    stored = server.suite.store.get_event(tenant, "signals").to_event()  # type: ignore[attr-defined]
    assert [t.name for t in stored.trust_signals] == list(taken)


def test_fields_kept_in_columns_of_their_own_state_the_column_limit(
    server: Running, tenant: str
) -> None:
    """What PostgreSQL could not store is refused up front, named, on both stores alike."""
    e = interaction(tenant)
    e.actor.user_id = "u" * 300
    e.actor.environment = "e" * 65
    e.model.name = "gpt\x00-4o"
    e.correlation.session_id = "s" * 256  # at the limit: fine
    assert _bad(server, [e]) == {
        "events[0].actor.user_id": "is 300 characters; the limit is 256",
        "events[0].actor.environment": "is 65 characters; the limit is 64",
        "events[0].model.name": "must not contain U+0000 (NUL)",
    }
    assert stored_count(server, tenant) == 0


@pytest.mark.parametrize(
    "event_type",
    [ev.EVENT_TYPE_PRIVACY_ERASURE, ev.EVENT_TYPE_AUDIT_ACCESS, ev.EVENT_TYPE_RULE_CHANGE],
)
def test_records_only_the_service_writes_are_refused(
    server: Running, tenant: str, event_type: int
) -> None:
    """A gateway key appended an erasure record naming another event: the index and alert
    evidence dropped its content as erased, and `verify` took it as cover for a deletion."""
    forged = interaction(tenant, "forged")
    forged.event_type = event_type
    forged.privacy_action.event_ids.append("victim")
    problems = _bad(server, [interaction(tenant, "fine"), forged])
    assert list(problems) == ["events[1].event_type"]
    assert "written by the service itself" in problems["events[1].event_type"]
    assert stored_count(server, tenant) == 0


UNSET_VALUE = (
    "must have a kind: null_value, number_value, string_value, bool_value, struct_value or "
    "list_value (a Value with none set is not JSON null)"
)


def _with_unset_value(tenant: str) -> ev.Event:
    """An interaction whose parameters hold a google.protobuf.Value with no kind, in a list."""
    e = interaction(tenant)
    e.model.parameters.update({"top": {"stop": ["a", None]}, "seed": 3})
    e.model.parameters.fields["top"].struct_value.fields["stop"].list_value.values[1].Clear()
    return e


_UNSET_AT = "model.parameters.fields['top'].struct_value.fields['stop'].list_value.values[1]"


def test_a_struct_value_with_no_kind_is_refused_not_stored_as_null(
    server: Running, tenant: str
) -> None:
    """An unset google.protobuf.Value in a Struct was committed as JSON null, a value the
    client never sent (a null is sent as `null_value`); now refused and named."""
    schema = interaction(tenant)
    schema.input.tool_definitions.add(name="lookup").parameters_schema.fields["type"].Clear()
    assert _bad(server, [interaction(tenant), _with_unset_value(tenant), schema]) == {
        f"events[1].{_UNSET_AT}": UNSET_VALUE,
        "events[2].input.tool_definitions[0].parameters_schema.fields['type']": UNSET_VALUE,
    }
    assert stored_count(server, tenant) == 0

    fine = interaction(tenant, "null-sent")
    fine.model.parameters.update({"stop": None})  # a null sent as one: kept
    answers = list(
        stub(server).AppendStream(
            iter(
                [
                    pb.AppendStreamRequest(
                        request_id=1, events=[interaction(tenant), _with_unset_value(tenant)]
                    ),
                    pb.AppendStreamRequest(request_id=2, events=[fine]),
                ]
            )
        )
    )
    assert [(a.request_id, a.status.code) for a in answers] == [
        (1, grpc.StatusCode.INVALID_ARGUMENT.value[0]),
        (2, 0),
    ]
    detail = error_details_pb2.BadRequest()
    assert answers[0].status.details[0].Unpack(detail)
    assert [(v.field, v.description) for v in detail.field_violations] == [
        (f"events[1].{_UNSET_AT}", UNSET_VALUE)
    ]
    assert stored_count(server, tenant) == 1
    stored = server.suite.store.get_event(tenant, "null-sent")  # type: ignore[attr-defined]
    assert stored.to_event().model.parameters.fields["stop"].WhichOneof("kind") == "null_value"


def test_invalid_utf8_names_the_event(server: Running, tenant: str) -> None:
    good = interaction(tenant).SerializeToString()
    bad = (
        interaction(tenant, text="PLACEHOLDER")
        .SerializeToString()
        .replace(b"PLACEHOLDER", b"\xff\xfeLACEHOLD\xc3")
    )
    frame = lambda b: b"\x0a" + _varint(len(b)) + b  # noqa: E731  (field 1, length-delimited)
    call = server.channel.unary_unary("/aiaudit.ingest.v1.IngestService/Append")
    with pytest.raises(grpc.RpcError) as err:
        call(frame(good) + frame(bad))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "events[1]" in field_violations(err.value)
    assert stored_count(server, tenant) == 0


@pytest.mark.parametrize(
    "extra",
    [
        b"\x08\x05",  # field 1 (event_id, a string) sent as a varint: a wrong type
        b"\xf8\x3e\x01",  # field 999, unknown to this server (a newer client)
    ],
)
def test_unknown_or_wrongly_typed_fields_are_refused(
    server: Running, tenant: str, extra: bytes
) -> None:
    good = interaction(tenant).SerializeToString()
    frame = lambda b: b"\x0a" + _varint(len(b)) + b  # noqa: E731
    call = server.channel.unary_unary("/aiaudit.ingest.v1.IngestService/Append")
    with pytest.raises(grpc.RpcError) as err:
        call(frame(good) + frame(good.replace(b"e-", b"f-", 1) + extra))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(field_violations(err.value)) == ["events[1]"]
    assert stored_count(server, tenant) == 0


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _group(number: int, body: bytes = b"") -> bytes:
    """Field ``number`` as a group (wire types 3 and 4): ``body`` between its start and end tags."""
    return _varint(number << 3 | 3) + body + _varint(number << 3 | 4)


def _frame(event: bytes) -> bytes:
    """``event`` as field 1 (events) of an AppendRequest."""
    return b"\x0a" + _varint(len(event)) + event


def _append_refused(server: Running, raw: bytes) -> grpc.RpcError:
    """The error of an Append whose request is ``raw``."""
    call = server.channel.unary_unary(
        "/aiaudit.ingest.v1.IngestService/Append",
        request_serializer=None,
        response_deserializer=None,
    )
    with pytest.raises(grpc.RpcError) as err:
        call(raw)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    return err.value


NOT_AN_EVENT = b"\x0a\x02\xff\xff"  # field 1 (events in an AppendRequest), not a valid Event


@pytest.mark.parametrize(
    ("in_event", "group", "field"),
    [
        (False, _group(99, NOT_AN_EVENT), "events"),
        (False, _group(99, _group(98, NOT_AN_EVENT) + b"\x08\x01" + _group(98)), "events"),
        (True, _group(99, NOT_AN_EVENT + _group(99)), "events[1]"),
    ],
    ids=["in-request", "nested-in-request", "in-event"],
)
def test_unknown_groups_are_refused_like_other_unknown_fields(
    server: Running, tenant: str, in_event: bool, group: bytes, field: str
) -> None:
    """A group's contents were walked as fields of the request: a field-1 blob in it was
    parsed as an event and the call failed UNKNOWN ("Exception calling application")."""
    good = interaction(tenant).SerializeToString()
    second = good.replace(b"e-", b"f-", 1) + (group if in_event else b"")
    err = _append_refused(server, _frame(good) + _frame(second) + (b"" if in_event else group))
    assert "unknown fields" in (err.details() or "")
    assert list(field_violations(err)) == [field]
    assert stored_count(server, tenant) == 0


@pytest.mark.parametrize(
    ("tail", "problem"),
    [
        (_varint(99 << 3 | 3) + b"\x08\x01", "group of field 99 has no end-group tag"),
        (
            _varint(99 << 3 | 3) + _varint(98 << 3 | 4),
            "end-group tag of field 98 closes the group of field 99",
        ),
        (_varint(99 << 3 | 4), "end-group tag of field 99 without its start"),
    ],
    ids=["unterminated", "mismatched-end", "stray-end"],
)
def test_malformed_groups_are_named(
    server: Running, tenant: str, tail: bytes, problem: str
) -> None:
    err = _append_refused(server, _frame(interaction(tenant).SerializeToString()) + tail)
    assert field_violations(err) == {"events": problem}
    assert stored_count(server, tenant) == 0


def test_a_bad_event_after_a_group_is_named(server: Running, tenant: str) -> None:
    """The walk naming a broken event stopped at any group ("unsupported wire type 3")."""
    bad = (
        interaction(tenant, text="PLACEHOLDER")
        .SerializeToString()
        .replace(b"PLACEHOLDER", b"\xff\xfeLACEHOLD\xc3")
    )
    good = interaction(tenant).SerializeToString()
    err = _append_refused(server, _frame(good) + _group(99, NOT_AN_EVENT) + _frame(bad))
    assert list(field_violations(err)) == ["events[1]"]


def test_oversized_event_states_the_limit(server: Running, tenant: str) -> None:
    out = _bad(server, [interaction(tenant, text="x" * 300_000)])
    assert out["events[0]"].endswith("the limit is 262144")


def test_oversized_batch_states_the_limit(server: Running, tenant: str) -> None:
    assert _bad(server, [interaction(tenant) for _ in range(101)]) == {
        "events": "has 101 events; the limit is 100"
    }


def test_oversized_message_is_resource_exhausted(server: Running, tenant: str) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub(server).Append(pb.AppendRequest(events=[interaction(tenant, text="x" * 5_000_000)]))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "4194304" in err.value.details()


def test_stream_answers_each_request_on_its_own(server: Running, tenant: str) -> None:
    bad = interaction(tenant)
    bad.ClearField("event_type")
    s1 = interaction(tenant, "s1")
    requests = [
        pb.AppendStreamRequest(request_id=1, events=[s1]),
        pb.AppendStreamRequest(request_id=2, events=[bad]),
        pb.AppendStreamRequest(
            request_id=3, events=[interaction(tenant, "s2"), interaction(tenant, "s3")]
        ),
        pb.AppendStreamRequest(request_id=4, events=[s1]),
        pb.AppendStreamRequest(request_id=5, events=[interaction(tenant, "s1", text="changed")]),
    ]
    responses = list(stub(server).AppendStream(iter(requests)))
    assert [r.request_id for r in responses] == [1, 2, 3, 4, 5]
    assert responses[0].status.code == 0 and responses[0].receipts[0].sequence == 0
    assert responses[1].status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    detail = error_details_pb2.BadRequest()
    assert responses[1].status.details[0].Unpack(detail)
    assert detail.field_violations[0].field == "events[0].event_type"
    assert [r.sequence for r in responses[2].receipts] == [1, 2]
    assert responses[3].receipts[0].duplicate and responses[3].receipts[0].sequence == 0
    assert responses[4].status.code == grpc.StatusCode.ALREADY_EXISTS.value[0]


def test_stream_answers_requests_with_unknown_fields_by_their_id_and_goes_on(
    server: Running, tenant: str
) -> None:
    """A group holding a field-2 blob (events, in a stream request) ended the stream with OK,
    requests 3 and 4 unanswered and 4 not committed; request 2 was answered as request 0."""

    def request(i: int) -> bytes:
        events = [interaction(tenant, f"s{i}")]
        return pb.AppendStreamRequest(request_id=i, events=events).SerializeToString()

    not_an_event = b"\x12\x02\xff\xff"  # field 2: events in an AppendStreamRequest
    call = server.channel.stream_stream(
        "/aiaudit.ingest.v1.IngestService/AppendStream",
        request_serializer=None,
        response_deserializer=pb.AppendStreamResponse.FromString,
    )
    sent = [
        request(1),
        request(2) + b"\xf8\x3e\x01",  # field 999, a varint
        request(3) + _group(99, not_an_event),
        request(4),
    ]
    answers = list(call(iter(sent)))
    invalid = grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert [(r.request_id, r.status.code) for r in answers] == [
        (1, 0),
        (2, invalid),
        (3, invalid),
        (4, 0),
    ]
    assert "unknown fields" in answers[2].status.message
    assert [r.receipts[0].event_id for r in (answers[0], answers[3])] == ["s1", "s4"]
    assert stored_count(server, tenant) == 2


def test_a_stream_request_the_server_fails_on_is_answered_and_the_stream_goes_on(
    server: Running, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server fault in accepting a request ended the stream with OK, the rest unanswered."""

    def failing(events: list[ev.Event], *args: Any) -> list[NewEvent]:
        if events[0].event_id == "boom":
            raise RuntimeError("a fault of the server")
        return prepare_batch(events, *args)

    monkeypatch.setattr("aiaudit.ingest.handlers.prepare_batch", failing)
    requests = [
        pb.AppendStreamRequest(request_id=i, events=[interaction(tenant, name)])
        for i, name in ((1, "s1"), (2, "boom"), (3, "s3"))
    ]
    answers = list(stub(server).AppendStream(iter(requests)))
    internal = grpc.StatusCode.INTERNAL.value[0]
    assert [(r.request_id, r.status.code) for r in answers] == [(1, 0), (2, internal), (3, 0)]
    assert stored_count(server, tenant) == 2


def test_an_append_the_server_fails_on_is_internal_nothing_written(
    server: Running, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gRPC's own answer was UNKNOWN quoting the exception: the SDK read it as the network
    failing and spooled the batch to retry it for good (review, 2026-12-05)."""

    def failing(events: list[ev.Event], *args: Any) -> list[NewEvent]:
        raise RuntimeError("a fault of the server, quoting the content")

    monkeypatch.setattr("aiaudit.ingest.handlers.prepare_batch", failing)
    with pytest.raises(grpc.RpcError) as err:
        stub(server).Append(pb.AppendRequest(events=[interaction(tenant, "boom")]))
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert err.value.details() == "the server failed on this request; nothing was written"
    assert stored_count(server, tenant) == 0


def test_concurrent_clients_get_gap_free_unique_sequences(server: Running, tenant: str) -> None:
    sequences: list[int] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        s = stub(server)
        for i in range(10):
            batch = [interaction(tenant, f"c{k}-{i}-{j}") for j in range(1 + (i % 3))]
            got = [r.sequence for r in s.Append(pb.AppendRequest(events=batch)).receipts]
            assert got == list(range(got[0], got[0] + len(got)))  # a batch is contiguous
            with lock:
                sequences.extend(got)

    concurrently(8, client)
    assert sorted(sequences) == list(range(len(sequences)))
    assert stored_count(server, tenant) == len(sequences)


def test_health_and_reflection(server: Running) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    health = health_pb2_grpc.HealthStub(server.channel)
    reply = health.Check(health_pb2.HealthCheckRequest(service="aiaudit.ingest.v1.IngestService"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(server.channel)
    answers = list(
        refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    )
    names = {s.name for s in answers[0].list_services_response.service}
    assert "aiaudit.ingest.v1.IngestService" in names


def test_a_request_stream_ends_invalid_argument_at_a_message_that_is_not_protobuf(
    server: Running,
) -> None:
    """Every method parses its requests alike, a request stream's too (reflection's is the one
    with a deserializer; ingest's AppendStream parses its own): what came before is answered,
    the call ends at the message that does not parse. It ended INTERNAL (review, 2026-12-06)."""
    from grpc_reflection.v1alpha import reflection_pb2

    good = reflection_pb2.ServerReflectionRequest(list_services="").SerializeToString()
    bad = not_protobuf(reflection_pb2.ServerReflectionRequest(file_by_filename="ABCD"), "ABCD")
    same = lambda b: b  # noqa: E731
    call = server.channel.stream_stream(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", same, same
    )
    answers = call(iter([good, bad, good]), timeout=10)
    first = reflection_pb2.ServerReflectionResponse.FromString(next(answers))
    assert "aiaudit.ingest.v1.IngestService" in {
        s.name for s in first.list_services_response.service
    }
    with pytest.raises(grpc.RpcError) as err:
        next(answers)
    assert_not_protobuf(err.value, "grpc.reflection.v1alpha.ServerReflectionRequest")


def test_unique_tenant_logs_are_independent(server: Running) -> None:
    a, b = f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"
    r = (
        stub(server)
        .Append(pb.AppendRequest(events=[interaction(a), interaction(b), interaction(a)]))
        .receipts
    )
    assert [(x.log_id, x.sequence) for x in r] == [(a, 0), (b, 0), (a, 1)]


def test_a_value_the_database_refuses_is_invalid_argument_and_nothing_is_written(
    postgres: Postgres, tmp_path: Path, tenant: str
) -> None:
    """Should validation ever let through what PostgreSQL refuses (here a constraint the
    schema gained), the caller hears it is the batch, not the store, and not to retry."""
    name = f"aiaudit_refuses_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres.admin_dsn, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    dsn = postgres.admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    try:
        url = dsn.replace("postgresql://", "postgresql+psycopg://", 1)
        open_store(url, run_migrations=True).close()
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(
                "ALTER TABLE events ADD CONSTRAINT no_refused_app"
                " CHECK (application IS DISTINCT FROM 'refused-app')"
            )
        suite, keys = serve_suite(tmp_path, database_url=url)
        channel = client.channel(f"127.0.0.1:{suite.port}", keys["admin"])
        try:
            ingest = pb_grpc.IngestServiceStub(channel)
            refused = interaction(tenant)
            refused.actor.application = "refused-app"
            with pytest.raises(grpc.RpcError) as err:
                ingest.Append(pb.AppendRequest(events=[interaction(tenant), refused]))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "no_refused_app" in (err.value.details() or "")
            assert "nothing was written" in (err.value.details() or "")
            (receipt,) = ingest.Append(pb.AppendRequest(events=[interaction(tenant)])).receipts
            assert receipt.sequence == 0  # the refused batch took no sequence number
        finally:
            channel.close()
            suite.stop()
    finally:
        with psycopg.connect(postgres.admin_dsn, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
