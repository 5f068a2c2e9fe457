"""IngestService handlers: proto in, receipts out, errors mapped to gRPC status."""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import grpc
from google.protobuf import timestamp_pb2
from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet
from google.rpc import code_pb2, status_pb2

from aiaudit.common import canonical, status
from aiaudit.common.auth import Authenticator, Caller, end_expired
from aiaudit.common.keys.kek import KekError
from aiaudit.common.keys.seal import SealError
from aiaudit.common.receipts import ReceiptSigning, ReceiptSigningUnavailableError
from aiaudit.common.restore import text_column
from aiaudit.common.store.prepare import prepare_batch, timestamp_parts
from aiaudit.common.store.sql import (
    BatchOutcome,
    Conflict,
    NewEvent,
    Receipt,
    RowsRefusedError,
    StoredEvent,
    StoredRetriesDamagedError,
    SubjectKeysDamagedError,
    same_event,
)
from aiaudit.common.stream_slots import StreamSlots
from aiaudit.common.v1 import event_pb2, proof_pb2
from aiaudit.ingest.committer import GroupCommitter, StoppingError
from aiaudit.ingest.erasing import Eraser
from aiaudit.ingest.ip_policy import IpPolicy
from aiaudit.ingest.redaction import ContentRedaction
from aiaudit.ingest.stream_window import StreamWindow
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.ingest.validation import Limits, stored_violations, validate_batch
from aiaudit.ingest.wire import MalformedError, events_with_unknown_fields, locate_bad_event

log = logging.getLogger(__name__)

SERVICE_NAME = "aiaudit.ingest.v1.IngestService"
_OK = status_pb2.Status(code=code_pb2.OK)
_INTERNAL = status.error(
    code_pb2.INTERNAL, "the server failed on this request; nothing was written", "INTERNAL"
)


@dataclass(frozen=True)
class _RefusedError(Exception):
    """A batch that gets no receipts, with the status saying why."""

    status: status_pb2.Status


class _Queued(NamedTuple):
    """A batch handed to the committer: its outcome to come, and its events' (tenant, id)."""

    future: Future[BatchOutcome]
    ids: list[tuple[str, str]]


class _Cost(NamedTuple):
    """What a stream request weighs until it is settled: its bytes as received, its events."""

    size: int
    events: int


def _settle(window: StreamWindow, cost: _Cost, _: Future[BatchOutcome]) -> None:
    """A stream request's batch committed or failed: it weighs on the stream no more."""
    window.settled(*cost)


def _naming(
    code: int,
    message: str,
    reason: str,
    violations: list[tuple[str, str]],
    **metadata: str,
) -> status_pb2.Status:
    """An error naming each event concerned, as a client that sets events aside reads it.

    The ErrorInfo first (its ``field``: the first event named, as before
    2026-12-05, for clients that read only that), then a BadRequest listing
    every one (``events[3].event_id``) as far as the trailers hold, the rest
    counted in the message: the gateway SDK sets them aside together and sends
    the rest again.
    """
    listed = status.bad_request(message, violations)
    out = status.error(code, listed.message, reason, field=violations[0][0], **metadata)
    out.details.extend(listed.details)
    return out


def _conflicts(prefix: str, conflicts: list[tuple[int, str]], why: str) -> _RefusedError:
    """ALREADY_EXISTS naming each event whose id is taken by other content (index, event id)."""
    first, first_id = conflicts[0]
    more = f" and {len(conflicts) - 1} more events" if len(conflicts) > 1 else ""
    return _RefusedError(
        _naming(
            code_pb2.ALREADY_EXISTS,
            f"{prefix}[{first}].event_id {first_id!r}{more}: {why}; nothing was written",
            "EVENT_ID_CONFLICT",
            [(f"{prefix}[{i}].event_id", "taken by other content") for i, _ in conflicts],
            event_id=first_id,
        )
    )


def _damaged(exc: SealError, ids: list[tuple[str, str]], prefix: str) -> _RefusedError:
    """DATA_LOSS naming each event of the batch that needed a damaged data key.

    Damage affects that subject's events alone: named, a client sets them aside
    and sends the others again. Until 2026-12-05 the answer named none, and the
    gateway SDK held the whole batch, other subjects' events with it (review).
    """
    affected = exc.event_ids if isinstance(exc, SubjectKeysDamagedError) else frozenset()
    named = [
        (f"{prefix}[{i}]", "its subject's data key is damaged")
        for i, key in enumerate(ids)
        if key in affected
    ]
    message = f"{exc}; nothing was written"
    if not named:
        return _RefusedError(status.error(code_pb2.DATA_LOSS, message, "DATA_KEY_DAMAGED"))
    return _RefusedError(
        _naming(
            code_pb2.DATA_LOSS,
            f"{len(named)} event{'s' if len(named) > 1 else ''} named, of a subject whose "
            f"data key is damaged (the others may be sent again): {message}",
            "DATA_KEY_DAMAGED",
            named,
        )
    )


def _stored_damaged(
    exc: StoredRetriesDamagedError, ids: list[tuple[str, str]], prefix: str
) -> _RefusedError:
    """DATA_LOSS naming each event of the batch already stored whose stored row does not read.

    A retry of such an event (SQLite: a column rewritten as text by raw SQL)
    cannot be compared with what is stored: named, a client sets it aside and
    sends the others again (the reason reads answer for such an event,
    ``STORED_EVENT_DAMAGED``, with its id and sequence). Until 2026-12-06 the
    whole group commit failed, ``UNAVAILABLE`` "retry", for good.
    """
    named = [
        (f"{prefix}[{i}]", f"already stored, and its stored row cannot be read: {why}")
        for i, key in enumerate(ids)
        if (why := _columns(exc, key))
    ]
    message = f"{exc}; nothing was written"
    if not named:  # not this batch's (cannot happen: each batch is retried alone first)
        return _RefusedError(
            status.error(
                code_pb2.DATA_LOSS,
                message,
                "STORED_EVENT_DAMAGED",
                event_id=exc.event_id,
                sequence=str(exc.sequence),
            )
        )
    return _RefusedError(
        _naming(
            code_pb2.DATA_LOSS,
            f"{len(named)} event{'s' if len(named) > 1 else ''} named, already stored, whose "
            f"stored row cannot be read (the others may be sent again): {message}",
            "STORED_EVENT_DAMAGED",
            named,
            event_id=exc.event_id,
            sequence=str(exc.sequence),
        )
    )


def _columns(exc: StoredRetriesDamagedError, key: tuple[str, str]) -> str:
    """What of this (log id, event id)'s stored row does not read; empty if it reads."""
    found = exc.damaged.get(key)
    return "; ".join(map(text_column, found.columns)) if found is not None else ""


def _malformed(bad: MalformedError) -> _RefusedError:
    return _RefusedError(
        status.bad_request("malformed request; nothing was written", [(bad.field, bad.description)])
    )


def add_receipts(
    receipts: list[Receipt], to: RepeatedCompositeFieldContainer[proof_pb2.Receipt]
) -> None:
    """Receipts in their wire form, added to a response's list in place.

    Made by ``add`` (building messages first and passing them in copied each
    one: twice the time), each receive time once (a batch shares one).
    """
    times: dict[dt.datetime, timestamp_pb2.Timestamp] = {}
    add = to.add
    for r in receipts:
        when = times.get(r.receive_time)
        if when is None:
            seconds, nanos = timestamp_parts(r.receive_time)
            when = times[r.receive_time] = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
        add(
            event_id=r.event_id,
            log_id=r.log_id,
            sequence=r.sequence,
            leaf_hash=r.leaf_hash,
            receive_time=when,
            duplicate=r.duplicate,
            content_erased=r.content_erased,
        )


def _fold_repeats(
    batch: list[NewEvent], wires: list[bytes], prefix: str
) -> tuple[list[NewEvent], list[int]] | None:
    """A batch holding an event more than once: each event once, and where each copy went.

    None if every event id occurs once (the usual case). A repeat identical
    to the id's first copy (what an identical retry of a stored event is:
    :func:`same_event`, as the store tells one) is committed once and answered
    with its receipt, as a retry in a later batch is; a repeat with other
    content is refused as an id taken by different content would be, naming the
    repeat (``events[2].event_id``). Until 2026-12-05 any repeat was refused
    as a duplicate id (``INVALID_ARGUMENT``): the gateway SDK set the repeat
    aside as refused and sent the rest again, its first copy included.
    """
    first: dict[tuple[str, str], int] = {}
    for i, e in enumerate(batch):
        first.setdefault((e.event.tenant_id, e.event.event_id), i)
    if len(first) == len(batch):
        return None
    unique: list[NewEvent] = []
    slot: dict[int, int] = {}  # a first copy's index in the batch -> its index in ``unique``
    at: list[int] = []
    conflicts: list[tuple[int, str]] = []
    for i, e in enumerate(batch):
        j = first[(e.event.tenant_id, e.event.event_id)]
        if j == i:
            slot[i] = len(unique)
            unique.append(e)
        elif wires[i] != wires[j] and not same_event(_as_stored(batch[j]), e):
            conflicts.append((i, e.event.event_id))  # every one named in the answer
            continue
        at.append(slot[j])
    if conflicts:
        j = first[(batch[conflicts[0][0]].event.tenant_id, conflicts[0][1])]
        raise _conflicts(prefix, conflicts, f"also {prefix}[{j}].event_id, with different content")
    return unique, at


def _as_stored(e: NewEvent) -> StoredEvent:
    """A prepared event as :func:`same_event` compares a stored one (its position unused)."""
    return StoredEvent(
        e.log_id,
        -1,
        e.event.event_id,
        e.committed.leaf_hash,
        e.receive_time,
        e.committed.canonical,
        e.salt,
        e.committed.content,
    )


def _unfolded(future: Future[BatchOutcome], at: list[int]) -> Future[BatchOutcome]:
    """The outcome of a folded batch (:func:`_fold_repeats`) for the batch as sent.

    Each repeat gets its first copy's receipt, marked ``duplicate`` (the
    receipt of an earlier, identical append); a conflict names every copy of
    each conflicting event, the first copy first. Cancelling the outcome
    cancels the committed batch's (dropped if not yet taken).
    """
    out: Future[BatchOutcome] = Future()

    def done(committed: Future[BatchOutcome]) -> None:
        try:
            try:
                outcome = committed.result()
            except Exception as exc:  # the commit failed: handed on to the waiting handler
                out.set_exception(exc)
                return
            if isinstance(outcome, Conflict):
                # Each copy of a conflicting event: a client setting the first aside
                # would otherwise send its copies again, to be refused again.
                ids = dict(outcome.conflicts)
                every = tuple((i, ids[k]) for i, k in enumerate(at) if k in ids)
                out.set_result(Conflict(*every[0], every=every))
                return
            seen: set[int] = set()
            receipts: list[Receipt] = []
            for k in at:
                r = outcome[k]
                receipts.append(r._replace(duplicate=True) if k in seen else r)
                seen.add(k)
            out.set_result(receipts)
        except InvalidStateError:  # the handler gave up waiting (cancelled)
            pass

    def given_up(answered: Future[BatchOutcome]) -> None:
        if answered.cancelled():
            future.cancel()

    future.add_done_callback(done)
    out.add_done_callback(given_up)
    return out


class IngestHandlers:
    """Validates, commits through the group committer, answers with receipts."""

    def __init__(
        self,
        committer: GroupCommitter,
        limits: Limits,
        auth: Authenticator,
        streams: StreamSlots,
        commit_timeout: float = 30.0,
        receipt_signing: ReceiptSigning | None = None,
        ip_policy: IpPolicy | None = None,
        redaction: ContentRedaction | None = None,
    ) -> None:
        """Handlers over a committer.

        ``streams`` caps open AppendStreams; ``receipt_signing`` serves ``sign_receipts``;
        ``ip_policy`` and ``redaction`` rewrite what the event may not keep before it is hashed.
        """
        self._auth = auth
        self._streams = streams
        self._signing = receipt_signing or ReceiptSigning()
        self._committer = committer
        self._limits = limits
        self._timeout = commit_timeout
        self._ip = ip_policy or IpPolicy()
        self._redaction = redaction or ContentRedaction()

    def _submit(
        self,
        events: list[event_pb2.Event],
        wires: list[bytes],
        prefix: str,
        caller: Caller,
        sign: bool = False,
    ) -> _Queued:
        """Validates, applies the policies and queues a batch (``wires``: its events serialised)."""
        now = dt.datetime.now(dt.UTC)
        violations = validate_batch(events, self._limits, now, prefix, wires)
        if violations:
            raise _RefusedError(
                status.bad_request(
                    f"{len(violations)} invalid field(s); nothing was written",
                    [(v.field, v.description) for v in violations],
                )
            )
        for tenant in sorted({e.tenant_id for e in events}):
            if not caller.allows("events.write", tenant):
                raise _RefusedError(
                    status.error(
                        code_pb2.PERMISSION_DENIED,
                        f"{caller.principal!r} lacks 'events.write' on tenant {tenant!r}; "
                        "nothing was written",
                        "PERMISSION_DENIED",
                        permission="events.write",
                        tenant=tenant,
                    )
                )
        if sign and self._signing.get() is None:
            raise _RefusedError(
                status.error(
                    code_pb2.FAILED_PRECONDITION,
                    "sign_receipts: no receipt signer in this server (the integrity service "
                    "runs elsewhere); nothing was written",
                    "RECEIPT_SIGNING_NOT_AVAILABLE",
                    field="sign_receipts",
                )
            )
        self._ip.apply(events, wires)  # before the canonical form: the leaf keeps what is left
        for i in self._redaction.apply(events, wires):  # a marker can outgrow what it hides
            if len(wires[i]) > self._limits.max_event_bytes:
                raise _RefusedError(
                    status.bad_request(
                        "an event outgrew its limit once PII and secrets were masked; "
                        "nothing was written",
                        [
                            (
                                f"{prefix}[{i}]",
                                f"is {len(wires[i])} bytes once masked "
                                f"(ingest.redact_content); the limit is "
                                f"{self._limits.max_event_bytes}",
                            )
                        ],
                    )
                )
        prepared = prepare_batch(events, now, wires)
        stored = [
            (len(p.committed.canonical) + len(p.stored_content), len(p.committed.content))
            for p in prepared
        ]
        violations = stored_violations(stored, self._limits, prefix)
        if violations:
            raise _RefusedError(
                status.bad_request(
                    "too large once stored (canonical form and content); nothing was written",
                    [(v.field, v.description) for v in violations],
                )
            )
        ids = [(e.tenant_id, e.event_id) for e in events]
        folded = _fold_repeats(prepared, wires, prefix)
        if folded is None:
            return _Queued(self._committer.submit(prepared), ids)
        unique, at = folded
        return _Queued(_unfolded(self._committer.submit(unique), at), ids)

    def _receipts(
        self, queued: _Queued, prefix: str, sign: bool = False
    ) -> tuple[list[Receipt], list[str]]:
        try:
            outcome = queued.future.result(timeout=self._timeout)
        except TimeoutError as exc:
            # Still queued: dropped. Already in a transaction (or waiting for a log
            # head held elsewhere): it may yet commit. Until 2026-12-05 this said
            # "nothing was acknowledged" of a batch committed moments later (review).
            queued.future.cancel()
            log.warning("append not committed within %.0f s", self._timeout)
            raise _RefusedError(
                status.error(
                    code_pb2.UNAVAILABLE,
                    f"the store did not commit the batch within {self._timeout:.0f} s; it may "
                    "still be committed: retry with the same event ids (events already stored "
                    "are answered with their original receipts)",
                    "STORE_UNAVAILABLE",
                )
            ) from exc
        except RowsRefusedError as exc:
            raise _RefusedError(
                status.error(
                    code_pb2.INVALID_ARGUMENT,
                    f"the store refused a value of this batch ({exc}); nothing was written",
                    "STORE_REFUSED_VALUE",
                )
            ) from exc
        except SealError as exc:  # a subject's data key is damaged: no retry mends it
            log.error("append refused: %s", exc)
            raise _damaged(exc, queued.ids, prefix) from exc
        except StoredRetriesDamagedError as exc:  # a retry of a stored event that does not read
            log.error("append refused: %s", exc)
            raise _stored_damaged(exc, queued.ids, prefix) from exc
        except StoppingError as exc:  # its log's head held elsewhere until the server stopped
            log.warning("append not committed: %s", exc)
            raise _RefusedError(
                status.error(
                    code_pb2.UNAVAILABLE,
                    "the server is stopping, and this batch's log head was held by another "
                    "session until then; nothing of this batch was written: retry with the "
                    "same event ids",
                    "SERVER_STOPPING",
                )
            ) from exc
        except KekError as exc:  # raised before any write of this batch
            log.warning("append not committed: %s", exc)
            raise _RefusedError(
                status.error(
                    code_pb2.UNAVAILABLE,
                    "the content keys are out of reach (the KEK: Vault or its key file); "
                    "nothing of this batch was written: retry with the same event ids",
                    "KEYS_UNAVAILABLE",
                )
            ) from exc
        except Exception as exc:
            log.warning("append not committed: %s", exc)
            raise _RefusedError(
                status.error(
                    code_pb2.UNAVAILABLE,
                    "the store did not commit the batch (if its commit was under way, it may "
                    "have been); retry with the same event ids (events already stored are "
                    "answered with their original receipts)",
                    "STORE_UNAVAILABLE",
                )
            ) from exc
        if isinstance(outcome, Conflict):
            raise _conflicts(
                prefix, list(outcome.conflicts), "already stored with different content"
            )
        return outcome, self._sign(outcome) if sign else []

    def _sign(self, receipts: list[Receipt]) -> list[str]:
        """One signed receipt note per log of a committed batch (one signature per log)."""
        signer = self._signing.get()
        try:
            if signer is None:
                raise ReceiptSigningUnavailableError("the receipt signer stopped")
            return signer.sign(receipts)
        except ReceiptSigningUnavailableError as exc:
            log.warning("receipts not signed: %s", exc)
            raise _RefusedError(
                status.error(
                    code_pb2.UNAVAILABLE,
                    "the batch is committed but its receipts could not be signed; retry with "
                    "the same event ids for signed receipts",
                    "RECEIPT_SIGNING_UNAVAILABLE",
                )
            ) from exc

    def _parse(
        self,
        raw: bytes,
        message: type[pb.AppendRequest] | type[pb.AppendStreamRequest],
        field: int,
        prefix: str,
    ) -> object:
        try:
            return message.FromString(raw)
        except DecodeError:
            raise _malformed(locate_bad_event(raw, field, prefix)) from None

    def _refuse_unknown_fields(
        self, request: Message, wires: list[bytes], raw: bytes, field: int, prefix: str
    ) -> None:
        """Unknown fields (a newer client, a wrong type, a group) would be dropped: refused.

        ``wires``: the request's events serialised (they keep their unknown fields).
        """
        maybe = canonical.native_schema().maybe_unknown_fields
        if not UnknownFieldSet(request) and not any(map(maybe, wires)):
            return  # the usual case, told without walking the parsed request
        size = request.ByteSize()
        request.DiscardUnknownFields()
        if request.ByteSize() == size:
            return
        try:
            paths = events_with_unknown_fields(raw, field, prefix)
        except MalformedError as bad:
            raise _malformed(bad) from None
        raise _RefusedError(
            status.bad_request(
                "unknown fields; nothing was written",
                [
                    (f, "has fields unknown to this server (wrong type, or a newer client)")
                    for f in paths
                ],
            )
        )

    def append(self, raw: bytes, context: grpc.ServicerContext) -> pb.AppendResponse:
        """Append: the whole batch or nothing.

        A fault of this server is INTERNAL, "nothing was written", as on a
        stream: gRPC's own UNKNOWN quoted the exception's text, and a client
        could not tell it from a fault of the network (review, 2026-12-05).
        """
        caller = self._auth.authenticate(context)  # before anything is said about the request
        try:
            return self._append(raw, caller)
        except _RefusedError as refused:
            status.abort(context, refused.status)
        except Exception:
            log.exception("append request not accepted")
            status.abort(context, _INTERNAL)
        raise AssertionError("unreachable")

    def _append(self, raw: bytes, caller: Caller) -> pb.AppendResponse:
        request = self._parse(raw, pb.AppendRequest, 1, "events")
        assert isinstance(request, pb.AppendRequest)
        events = list(request.events)
        wires = [e.SerializeToString() for e in events]  # checked and committed alike
        self._refuse_unknown_fields(request, wires, raw, 1, "events")
        sign = request.sign_receipts
        receipts, notes = self._receipts(
            self._submit(events, wires, "events", caller, sign), "events", sign
        )
        response = pb.AppendResponse(signed_receipts=notes)
        add_receipts(receipts, response.receipts)
        return response

    def append_stream(
        self, requests: Iterator[bytes], context: grpc.ServicerContext
    ) -> Iterator[pb.AppendStreamResponse]:
        """AppendStream: requests are pipelined and each is answered, in order, on its own.

        An open stream holds one of the server's RPC threads: past the limits of
        ``streams`` it is refused, so the other RPCs (unary ``Append``) keep theirs.
        """
        caller = self._auth.authenticate(context)
        if not caller.holds("events.write"):  # it could only hold a thread, writing nothing
            status.abort(
                context,
                status.error(
                    code_pb2.PERMISSION_DENIED,
                    f"{caller.principal!r} lacks 'events.write' on every tenant",
                    "PERMISSION_DENIED",
                    permission="events.write",
                ),
            )
        self._streams.take_or_abort(
            context, caller.principal, "APPEND_STREAMS_EXHAUSTED", "close one, or send unary Append"
        )
        try:  # given back however the stream ends: done, cancelled, failed, token expired
            yield from self._answer(requests, context, caller)
        finally:
            self._streams.give_back(caller.principal)

    def _answer(
        self, requests: Iterator[bytes], context: grpc.ServicerContext, caller: Caller
    ) -> Iterator[pb.AppendStreamResponse]:
        pending: queue.SimpleQueue[
            tuple[_Cost, tuple[int, bool, _Queued | _RefusedError]] | None
        ] = queue.SimpleQueue()
        expired = threading.Event()
        window = StreamWindow(self._limits.max_message_bytes)

        def read() -> None:
            try:
                for raw in requests:
                    if caller.expired():  # authenticated once, at the start: not forever
                        expired.set()
                        return
                    accepted = self._accept(raw, caller)
                    queued = accepted[2]
                    cost = _Cost(len(raw), len(queued.ids) if isinstance(queued, _Queued) else 1)
                    pending.put((cost, accepted))
                    if isinstance(queued, _Queued):  # its weight is the store's until it commits
                        queued.future.add_done_callback(partial(_settle, window, cost))
                    window.read(*cost)  # the next is read once this stream may hold it
            except grpc.RpcError as exc:  # the client went away: answer what was accepted
                log.info("append stream reader ended: %s", exc)
            finally:
                pending.put(None)

        threading.Thread(target=read, name="append-stream-reader", daemon=True).start()
        try:
            while (item := pending.get()) is not None:
                cost, (request_id, sign, accepted) = item
                yield self._answer_one(request_id, sign, accepted)
                window.answered(cost.events)
                if isinstance(accepted, _RefusedError):
                    window.settled(*cost)
        finally:  # however the stream ends, its reader waits no more
            window.close()
        if expired.is_set():  # what was read is answered; the rest is sent again on a new stream
            end_expired(context)

    def _answer_one(
        self, request_id: int, sign: bool, accepted: _Queued | _RefusedError
    ) -> pb.AppendStreamResponse:
        """A stream request's answer: its receipts once committed, or why not."""
        if isinstance(accepted, _RefusedError):
            return pb.AppendStreamResponse(request_id=request_id, status=accepted.status)
        try:
            receipts, notes = self._receipts(accepted, "events", sign)
        except _RefusedError as refused:
            return pb.AppendStreamResponse(request_id=request_id, status=refused.status)
        response = pb.AppendStreamResponse(request_id=request_id, status=_OK, signed_receipts=notes)
        add_receipts(receipts, response.receipts)
        return response

    def _accept(self, raw: bytes, caller: Caller) -> tuple[int, bool, _Queued | _RefusedError]:
        request_id, sign = 0, False
        try:
            request = self._parse(raw, pb.AppendStreamRequest, 2, "events")
            assert isinstance(request, pb.AppendStreamRequest)
            request_id, sign = request.request_id, request.sign_receipts
            events = list(request.events)
            wires = [e.SerializeToString() for e in events]
            self._refuse_unknown_fields(request, wires, raw, 2, "events")
            return request_id, sign, self._submit(events, wires, "events", caller, sign)
        except _RefusedError as refused:
            return request_id, sign, refused
        except Exception:  # a fault of this server: the stream goes on, the request is answered
            log.exception("append stream request %d not accepted", request_id)
            return request_id, sign, _RefusedError(_INTERNAL)


def add_to_server(server: grpc.Server, handlers: IngestHandlers, eraser: Eraser) -> None:
    """Registers IngestService: appends with raw-bytes requests (parsed by the handlers)."""
    methods = {
        "EraseEvents": grpc.unary_unary_rpc_method_handler(
            eraser.erase_events,
            request_deserializer=pb.EraseEventsRequest.FromString,
            response_serializer=pb.EraseEventsResponse.SerializeToString,
        ),
        "Append": grpc.unary_unary_rpc_method_handler(
            handlers.append, response_serializer=pb.AppendResponse.SerializeToString
        ),
        "AppendStream": grpc.stream_stream_rpc_method_handler(
            handlers.append_stream, response_serializer=pb.AppendStreamResponse.SerializeToString
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, methods),))
