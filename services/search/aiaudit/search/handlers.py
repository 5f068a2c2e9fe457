"""SearchService handlers: requests parsed and checked, backends queried, errors mapped.

Every call authenticates the caller, checks its permission on the tenant
(``events.read``; ``export`` for exports), records the access in the tenant's
log (who read what, when) before answering, and scopes the backend query to
the tenant. Content (message text, tool arguments, ...) is returned, searched
and highlighted only with ``content.read``; PII fields (``actor.ip_address``)
only with ``pii.read``. Events come from the store, the source of truth; the
index only decides which ones match.

IntegrityService is called with the caller's own credentials (see
``integrity_client``): ``GetEvent`` reports its ``VerifyEvent`` verdict when the
caller holds ``proofs.read`` and the service answers (UNSPECIFIED otherwise,
never an error), and ``Export`` with ``include_proofs`` writes an offline proof
bundle (JSON Lines only) whose every line verifies against one signed
checkpoint covering the export's snapshot.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TypeVar

import grpc
import sqlalchemy as sa
from google.protobuf import any_pb2, duration_pb2, timestamp_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry.trace import Span, StatusCode

from aiaudit.common import access, event_ids, media, restore, status, tenants
from aiaudit.common.auth import Caller, end_expired
from aiaudit.common.component import Context
from aiaudit.common.keys.kek import KekError
from aiaudit.common.keys.seal import SealError
from aiaudit.common.store import SqlEventStore
from aiaudit.common.store.sql import READ_BYTES, StoredEvent
from aiaudit.common.stream_slots import StreamSlots
from aiaudit.common.v1 import event_pb2, proof_pb2
from aiaudit.integrity.v1 import integrity_service_pb2 as ipb
from aiaudit.search import (
    bundle,
    catalogue,
    document,
    exporting,
    fragments,
    language,
    paging,
    stored_document,
)
from aiaudit.search.backends.base import (
    AggregateSpec,
    Aggregation,
    BackendUnavailableError,
    ExpensiveQueryRefusedError,
    Hit,
    Page,
    QueryRejectedError,
    SearchBackend,
    SearchSpec,
    TooManyBucketsError,
)
from aiaudit.search.catalogue import Field, Kind
from aiaudit.search.indexer import Building, Indexer
from aiaudit.search.integrity_client import IntegrityClient, Metadata, forwarded
from aiaudit.search.v1 import search_service_pb2 as pb
from aiaudit.search.v1 import search_service_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = "aiaudit.search.v1.SearchService"
_INTERVAL = re.compile(r"([1-9]\d{0,6})(s|m|h|d)")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_EXPORT_PAGE = 500
_CHUNK_BYTES = 64 * 1024
"""Bytes of an export chunk, at most: one event can be megabytes (twice its text in XML)."""
_PAGE_BYTES = 3 * 1024 * 1024
"""Bytes of results a page holds, past its first: under gRPC's default 4 MiB a message.
Pages of large events answered tens of MB, which no client with the default took."""
_PAGE_READ_BYTES = _PAGE_BYTES
"""Stored bytes (canonical form and content) a page reads, past its first event.

A page read all its hits (up to 1,000) before the reply's cut: 1,000 events of
4 MiB were gigabytes for one query (review). An event's result is no larger than
what is stored of it (the canonical form's JSON and the sealed content carry more
than its protobuf; redaction only removes), so events read past :data:`_PAGE_BYTES`
stored could not be sent in the reply either: the reply's cap is the read's."""
_STORE_ERRORS = (sa.exc.DBAPIError, sa.exc.TimeoutError)
"""What the store raises when its database is out of reach (connection failed, lost,
pool exhausted): answered UNAVAILABLE STORE_UNAVAILABLE, never with the driver's text
(its SQL and parameters)."""
_BUILDING_RETRY = 10
"""Seconds a read answered ``INDEX_BUILDING`` is told to wait before trying again (RetryInfo)."""
_CHECKPOINT_POLL = 0.25
"""Seconds between looks for a covering checkpoint (each look is an audited read)."""
_FORMATS = {
    pb.EXPORT_FORMAT_JSONL: "jsonl",
    pb.EXPORT_FORMAT_CSV: "csv",
    pb.EXPORT_FORMAT_XML: "xml",
}
_QUOTED = (*access.QUOTING, "page_after", "page_token")
"""Details of a search's access record kept as its content (see ``access.QUOTING``).

Where a later page started (``page_after``) is as private as the filter and query
it is a position in: it names the last event of the page before, so it tells an
event the search matched. As an attribute any reader of the log would have seen
which event a compliance officer's (withheld) search had found; and without the
filter it says nothing of what the page held."""
T = TypeVar("T")


class _AbortError(Exception):
    """A call refused with a status."""

    def __init__(self, st: status_pb2.Status) -> None:
        super().__init__(st.message)
        self.status = st


def _invalid(field: str, description: str) -> _AbortError:
    return _AbortError(status.bad_request(f"{field}: {description}", [(field, description)]))


def _language_error(exc: language.LanguageError) -> _AbortError:
    description = f"{exc.detail} (at column {exc.position + 1}, offset {exc.position})"
    return _AbortError(
        status.bad_request(f"{exc.field}: {description}", [(exc.field, description)])
    )


def _unavailable(exc: Exception) -> _AbortError:
    log.warning("search backend unavailable: %s", exc)
    return _AbortError(
        status.error(
            code_pb2.UNAVAILABLE,
            "the search backend is unavailable; retry later",
            "SEARCH_UNAVAILABLE",
        )
    )


def _building(tenant: str, found: Building) -> _AbortError:
    """UNAVAILABLE ``INDEX_BUILDING``: the index is new or rebuilt and misses this tenant's events.

    Said instead of a partial answer: a search or a count over an index still
    being built from the store found only what it held so far, as if whole, and
    an event not indexed yet read as one that never happened (until 2026-12-06).
    ErrorInfo's metadata says how far the tenant's log is (``indexed`` of
    ``target`` entries), and a RetryInfo when to try again. A log held below its
    target is refused otherwise (:func:`_held`).
    """
    if found.held is not None:
        return _held(tenant, found)
    metadata = {"indexed": str(found.indexed)}
    if found.target is None:
        how_far = f"tenant {tenant!r}: how far is not known yet (the store was out of reach)"
    else:
        how_far = f"tenant {tenant!r} has {found.indexed} of its {found.target} log entries indexed"
        metadata["target"] = str(found.target)
    st = status.error(
        code_pb2.UNAVAILABLE,
        "the search index is being built from the store (new, or rebuilt for a new version): "
        f"{how_far}; its searches, aggregates and exports would miss events, so nothing was "
        "returned; retry later",
        "INDEX_BUILDING",
        **metadata,
    )
    retry = any_pb2.Any()
    retry.Pack(
        error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=_BUILDING_RETRY))
    )
    st.details.append(retry)
    return _AbortError(st)


def _held(tenant: str, found: Building) -> _AbortError:
    """FAILED_PRECONDITION ``INDEX_HELD``: the build of this tenant's log waits at an event.

    An event the indexer cannot index (damaged in the store, or a document the
    backend refuses for good) holds the log below the size it must reach, and it
    stays there until the event is repaired (or the backend takes the document):
    waiting does not end it, so no RetryInfo (google.rpc.Code: FAILED_PRECONDITION,
    the system is not in the state the call needs, and a retry does not help
    until it is changed). Until 2026-12-06 this was UNAVAILABLE ``INDEX_BUILDING``
    with ``held_at_sequence`` and a RetryInfo of 10 s: a client honouring it
    retried forever. The metadata is ``INDEX_BUILDING``'s.
    """
    assert found.held is not None
    metadata = {"indexed": str(found.indexed), "held_at_sequence": str(found.held)}
    if found.target is None:
        how_far = f"tenant {tenant!r} has {found.indexed} log entries indexed"
    else:
        how_far = f"tenant {tenant!r} has {found.indexed} of its {found.target} log entries indexed"
        metadata["target"] = str(found.target)
    return _AbortError(
        status.error(
            code_pb2.FAILED_PRECONDITION,
            f"the search index is being built and {how_far}: the log is held at sequence "
            f"{found.held} by an event that cannot be indexed; retrying will not help until "
            "that event is repaired or the backend accepts it (the search service's log names "
            "it at ERROR; `aiaudit verify` finds damaged events); its reads would miss events, "
            "so nothing was returned",
            "INDEX_HELD",
            **metadata,
        )
    )


def _rejected(exc: QueryRejectedError) -> status_pb2.Status:
    """INVALID_ARGUMENT on ``filter``: too large, or needing what the cluster refuses."""
    why = str(exc) if isinstance(exc, ExpensiveQueryRefusedError) else f"too large: {exc}"
    return status.bad_request(str(exc), [("filter", why)])


def _store_unavailable(exc: Exception, done: str = "nothing was returned") -> _AbortError:
    """The store out of reach: UNAVAILABLE, saying nothing of the statement that failed.

    The driver's message quotes the SQL and its parameters (tenant, sequences):
    those go to the log, not to the caller.
    """
    log.warning("search read failed in the store: %s", exc)
    return _AbortError(
        status.error(
            code_pb2.UNAVAILABLE, f"the store is unavailable; {done}, retry", "STORE_UNAVAILABLE"
        )
    )


def _damaged(exc: restore.DamagedStoredEventError) -> _AbortError:
    """A stored event that no longer parses (see :func:`status.damaged_event`), logged here.

    It was UNKNOWN with the parser's message, which quotes the damaged bytes
    (an ``actor.ip_address`` to a caller without ``pii.read``).
    """
    log.warning("search read a damaged stored event: %s", exc)
    return _AbortError(status.damaged_event(exc))


def _sealing_error(exc: KekError | SealError) -> _AbortError:
    """Stored content that does not open (see :func:`status.sealing`), logged here."""
    log.warning("search read met sealed content it cannot open: %s", exc)
    return _AbortError(status.sealing(exc))


def _integrity_error(
    exc: grpc.RpcError, integrity: IntegrityClient, done: str = "nothing was exported"
) -> _AbortError:
    """An IntegrityService failure as this call's status (the caller's own denials kept).

    ``done``: what the caller has of the export, said with a refusal worth retrying
    ("the export stopped before its end" once chunks were sent; until 2026-12-06 a
    proofs batch refused mid-stream said "nothing was exported" too).

    A damaged log (``DATA_LOSS``: an entry missing under a signed size, a node
    that does not match its checkpoint) is said as the integrity service said
    it, reason and metadata kept: it was FAILED_PRECONDITION "include_proofs
    needs IntegrityService", as if the service were missing (review).

    A call that outlived ``search.integrity_timeout`` is DEADLINE_EXCEEDED
    and says so: it was reported as the service being unavailable, and a
    retry of the same export timed out again (review: 500 proofs of a large
    embedded log took longer than the default 5 s).

    A load refusal (``RESOURCE_EXHAUSTED``: the caller's key at its share of
    the integrity server's threads, ``CALLER_SHARE_EXHAUSTED``, or grpcio's
    "Concurrent RPC limit exceeded!", which carries no ErrorInfo) is said as
    the integrity service said it, with "retry": until 2026-12-06 it was
    FAILED_PRECONDITION "include_proofs needs IntegrityService", telling the
    caller the service was missing rather than to retry later (review).
    """
    code: grpc.StatusCode = exc.code()
    details = str(exc.details())
    address = integrity.address
    if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
        return _AbortError(status.error(code.value[0], f"integrity service: {details}", code.name))
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        log.warning(
            "integrity service at %s timed out after %gs: %s", address, integrity.timeout, details
        )
        return _AbortError(
            status.error(
                code_pb2.DEADLINE_EXCEEDED,
                f"the integrity service at {address} did not answer within "
                f"{integrity.timeout:g}s (search.integrity_timeout); the export was stopped",
                "INTEGRITY_TIMEOUT",
                timeout_seconds=f"{integrity.timeout:g}",
            )
        )
    if code == grpc.StatusCode.DATA_LOSS:  # the log is damaged (ENTRY_MISSING, TREE_MISMATCH)
        told = rpc_status.from_call(exc)  # type: ignore[arg-type]
        if told is None:
            told = status.error(code_pb2.DATA_LOSS, details, "INTEGRITY_DATA_LOSS")
        told.message = f"integrity service at {address}: {told.message}"
        return _AbortError(told)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:  # the integrity server's load: retry later
        log.warning("integrity service at %s refused a call for its load: %s", address, details)
        told = rpc_status.from_call(exc)  # type: ignore[arg-type]
        if told is None:  # grpcio's own limit
            told = status.error(code_pb2.RESOURCE_EXHAUSTED, details, "INTEGRITY_EXHAUSTED")
        told.message = f"integrity service at {address}: {told.message}; {done}, retry"
        return _AbortError(told)
    if code == grpc.StatusCode.UNAVAILABLE:
        log.warning("integrity service at %s unavailable: %s", address, details)
        return _AbortError(
            status.error(
                code_pb2.UNAVAILABLE,
                f"the integrity service at {address} is unavailable; {done}, retry",
                "INTEGRITY_UNAVAILABLE",
            )
        )
    return _AbortError(
        status.error(
            code_pb2.FAILED_PRECONDITION,
            f"include_proofs needs IntegrityService at {address}: {code.name}: {details}",
            "INTEGRITY_UNAVAILABLE",
        )
    )


@dataclass(frozen=True)
class _Asked:
    """What a request asks: its access record's action and details, granted or refused."""

    action: str
    details: Mapping[str, str | int | bool]


@dataclass(frozen=True)
class _Export:
    """A prepared export: who, what, up to which sequence, and the proofs' checkpoint."""

    caller: Caller
    where: language.Node | None
    fmt: str
    snapshot: int
    proofs: Metadata | None = None
    """The caller's forwarded credentials when proofs are attached."""
    checkpoint: proof_pb2.Checkpoint | None = None
    """The checkpoint the lines are proven against; None with proofs when the log was empty
    at the snapshot and had none yet (the export then holds no event line: its scope says
    tree_size 0, and its seal proves it matched nothing)."""
    erasure: int | None = None
    """The tenant's latest erasure record the index had applied when the export began
    (-1: none); None when the export reads no content (see ``_erasures_kept``)."""
    scope: str = ""
    """A proof bundle's first line (:func:`bundle.scope`); '' for other exports."""
    record_id: str = ""
    """The event id of the export's access record (a proof bundle's seal names it)."""


@dataclass(frozen=True)
class Visibility:
    """What of a tenant's events a caller may see: decided once a request, not per event."""

    content: bool
    pii: bool

    @classmethod
    def of(cls, caller: Caller, tenant: str) -> Visibility:
        """The caller's ``content.read`` and ``pii.read`` on the tenant."""
        return cls(caller.allows("content.read", tenant), caller.allows("pii.read", tenant))

    def redact(self, found: StoredEvent, into: event_pb2.Event | None = None) -> event_pb2.Event:
        """The stored event as the caller may see it (content and PII removed without permission).

        Without ``content.read`` the event is rebuilt from its canonical form
        alone, exactly as if its content had been erased; so is a suite record
        without ``pii.read`` (see :data:`QUOTING_RECORDS`). ``into``: the empty
        message to rebuild it in (a page's result), returned. A stored form that
        no longer parses raises ``restore.DamagedStoredEventError``.
        """
        event = event_pb2.Event() if into is None else into
        restore.restore_stored_into(event, found, found.content if self.content else None)
        shown = self.shows_content(event)
        if self.content and not shown:
            event.Clear()
            restore.restore_stored_into(event, found, None)
        self.withhold(event, shown and found.content is not None)
        return event

    def withhold(self, event: event_pb2.Event, shown: bool) -> None:
        """Clears what the caller may not see but content: PII, media hashes without content.

        ``shown``: the event was restored with its content. CSV and XML exports
        withhold the same from their columns (``exporting.Writer.stored``).
        """
        if not self.pii:
            event.actor.ClearField("ip_address")
        if not shown:
            media.drop_hashes(event)

    def shows_content(self, event: event_pb2.Event) -> bool:
        """Whether :meth:`redact` left ``event`` its content (and so its highlights)."""
        return self.shows_content_of(event.event_type)

    def shows_content_of(self, event_type: int) -> bool:
        """Whether an event of this type keeps its content for the caller."""
        return self.content and (self.pii or event_type not in QUOTING_RECORDS)


def _reads_content(where: language.Node | None) -> bool:
    """Whether matching reads content: full text or a text field, under ``NOT`` too.

    ``input.text:*`` too: whether there is content is itself read from it. Such a
    request is answered from an index that has applied the tenant's erasures
    (see ``SearchHandlers._erasures_applied``).
    """
    return any(_on_content(n) for n in language.leaves(where))


def _on_content(leaf: language.Node) -> bool:
    """A full-text leaf, or a condition on a text (content) field."""
    return isinstance(leaf, language.Text) or (
        getattr(getattr(leaf, "field", None), "kind", None) is Kind.TEXT
    )


QUOTING_RECORDS = frozenset({event_pb2.EVENT_TYPE_AUDIT_ACCESS, event_pb2.EVENT_TYPE_RULE_CHANGE})
"""Suite records whose content quotes what someone typed: a search's filter and query, a
rule's source. Those may name personal data (``actor.ip_address = "198.51.100.23"``), which
the caller could not have searched for without ``pii.read``: without it, their content is
withheld and full-text queries do not match them (review, 2026-12-04)."""
_NOT_QUOTING = language.parse_filter(
    "NOT event_type = AUDIT_ACCESS AND NOT event_type = RULE_CHANGE"
)


class SearchHandlers(pb_grpc.SearchServiceServicer):
    """The four RPCs over a backend, the store and the indexer."""

    def __init__(
        self,
        ctx: Context,
        store: SqlEventStore,
        backend: SearchBackend,
        indexer: Indexer,
        export_wait: float,
        exports: StreamSlots,
        integrity: IntegrityClient | None = None,
        proof_wait: float = 10.0,
    ) -> None:
        """Handlers; ``store`` is the store readers use (maybe a consumer-role login)."""
        self._ctx = ctx
        self._store = store
        self._backend = backend
        self._indexer = indexer
        self._export_wait = export_wait
        self._exports = exports
        self._integrity = integrity
        self._proof_wait = proof_wait
        self._shown_erasures: dict[str, int] = {}
        """Per tenant, the latest erasure record the index was made searchable after."""
        self._tracer = ctx.tracer_provider.get_tracer(__name__)

    # ---- shared steps ---------------------------------------------------

    def _run(self, context: grpc.ServicerContext, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except _AbortError as refused:
            status.abort(context, refused.status)
        except BackendUnavailableError as exc:
            status.abort(context, _unavailable(exc).status)
        except QueryRejectedError as exc:
            status.abort(context, _rejected(exc))
        except (KekError, SealError) as exc:
            status.abort(context, _sealing_error(exc).status)
        except restore.DamagedStoredEventError as exc:
            status.abort(context, _damaged(exc).status)
        except _STORE_ERRORS as exc:
            status.abort(context, _store_unavailable(exc).status)
        raise AssertionError("unreachable")

    def _caller(
        self, context: grpc.ServicerContext, tenant: str, permission: str, asked: _Asked
    ) -> Caller:
        caller = self._ctx.auth.authenticate(context)
        if not tenants.valid(tenant):
            raise _invalid("tenant_id", f"required: {tenants.RULE}")
        self._ctx.access.require(context, caller, permission, tenant, asked.action, asked.details)
        return caller

    def _refused(
        self, caller: Caller, tenant: str, permission: str, asked: _Asked, why: str
    ) -> _AbortError:
        """PERMISSION_DENIED, once the refusal is recorded (see ``AccessLog.refuse``)."""
        return _AbortError(
            self._ctx.access.refuse(caller, tenant, permission, asked.action, asked.details, why)
        )

    def _where(
        self, caller: Caller, tenant: str, asked: _Asked, filter_text: str, query_text: str
    ) -> language.Node | None:
        try:
            where = language.parse_filter(filter_text)
            query = language.parse_query(query_text)
        except language.LanguageError as exc:
            raise _language_error(exc) from None
        combined = language.combine(where, query)
        self._check_fields(
            caller, tenant, asked, [getattr(n, "field", None) for n in language.leaves(combined)]
        )
        reads_content = _reads_content(combined)
        if reads_content and not caller.allows("content.read", tenant):
            raise self._refused(
                caller, tenant, "content.read", asked, "full-text search reads content"
            )
        if reads_content and not caller.allows("pii.read", tenant):
            combined = language.combine(combined, _NOT_QUOTING)
        return combined

    def _check_fields(
        self, caller: Caller, tenant: str, asked: _Asked, fields: list[Field | None]
    ) -> None:
        for f in fields:
            pii = f is not None and f.name in catalogue.PII_FIELDS
            if pii and not caller.allows("pii.read", tenant):
                assert f is not None
                raise self._refused(caller, tenant, "pii.read", asked, f"{f.name} is personal data")

    def _audit(self, caller: Caller, tenant: str, asked: _Asked) -> None:
        self._recorded(self._record(caller, tenant, asked))

    def _record(self, caller: Caller, tenant: str, asked: _Asked) -> Future[None]:
        """Starts committing the access record; wait with :meth:`_recorded` before answering."""
        return self._ctx.access.submit(caller, tenant, asked.action, asked.details, _QUOTED)

    def _built(self, tenant: str) -> None:
        """Refuses a read of a tenant whose log the index is still building (``INDEX_BUILDING``).

        ``INDEX_HELD`` when an event it cannot index holds the log below its target.
        The ordinary lag (events appended after the build began, or after a built
        index) is not this: those reads answer as the index is.
        """
        found = self._indexer.building(tenant)
        if found is not None:
            raise _building(tenant, found)

    @staticmethod
    def _recorded(record: Future[None]) -> None:
        """Waits for the access record: no record, no answer (reads must be accountable)."""
        failed = access.unrecorded(record)
        if failed is not None:  # UNAVAILABLE; NOT_FOUND for a tenant with no log
            raise _AbortError(failed)

    @contextlib.contextmanager
    def _phase(self, name: str) -> Iterator[Span]:
        """A span of one phase of this call, under the call's span.

        A failed phase is marked as an error with the exception's type only: its
        message can quote what was searched (a phrase, an address), which the
        trace backend could not erase.
        """
        with self._tracer.start_as_current_span(
            name, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                yield span
            except Exception as exc:
                span.set_status(StatusCode.ERROR)
                span.set_attribute("error.type", type(exc).__qualname__)
                raise

    def _page_events(self, tenant: str, hits: list[Hit]) -> tuple[list[Hit], list[StoredEvent]]:
        """The hits a page reads and their stored events (those in sequence order).

        The longest prefix of ``hits`` (in their order) within
        :data:`_PAGE_READ_BYTES` stored, at least one hit (``read_page``).
        """
        if not hits:
            return hits, []
        got = self._store.read_page(tenant, [h.sequence for h in hits], _PAGE_READ_BYTES)
        if got.cut:  # the hits up to the last one read (a prefix in their order)
            read = {e.sequence for e in got}
            last = max(i for i, h in enumerate(hits) if h.sequence in read)
            hits = hits[: last + 1]
        return hits, got

    # ---- RPCs -----------------------------------------------------------

    def SearchEvents(  # noqa: N802 (gRPC method name)
        self, request: pb.SearchEventsRequest, context: grpc.ServicerContext
    ) -> pb.SearchEventsResponse:
        """Filter + full text, ordered, one page."""
        return self._run(context, lambda: self._search(request, context))

    def _search(
        self, request: pb.SearchEventsRequest, context: grpc.ServicerContext
    ) -> pb.SearchEventsResponse:
        tenant = request.tenant_id
        asked = _Asked("search.events", _search_details(request))
        caller = self._caller(context, tenant, "events.read", asked)
        where = self._where(caller, tenant, asked, request.filter, request.query)
        try:
            order = language.parse_order_by(request.order_by)
        except language.LanguageError as exc:
            raise _language_error(exc) from None
        try:
            size = paging.page_size(request.page_size)
        except ValueError as exc:
            raise _invalid("page_size", str(exc)) from None
        bound = paging.digest(tenant, request.filter, request.query, request.order_by)
        after = None
        if request.page_token:
            try:
                after = paging.decode(request.page_token, bound, len(order))
            except paging.TokenError as exc:
                raise _invalid("page_token", str(exc)) from None
        # The record commits while the query runs; the answer waits for both.
        record = self._record(caller, tenant, asked)
        try:
            self._built(tenant)
            response = self._page(caller, tenant, where, order, size, after, bound, context)
        except Exception:
            # An error is an answer too: it waits for the record (bounded), and without
            # one says so instead. It waited with no bound, and answered unrecorded.
            self._recorded(record)
            raise
        with self._phase("access.record.wait"):
            self._recorded(record)
        return response

    def _page(
        self,
        caller: Caller,
        tenant: str,
        where: language.Node | None,
        order: tuple[language.SortKey, ...],
        size: int,
        after: tuple[int, ...] | None,
        bound: str,
        context: grpc.ServicerContext,
    ) -> pb.SearchEventsResponse:
        def query() -> tuple[Page, list[Hit], list[StoredEvent]]:
            with self._phase("search.query") as span:
                page = self._backend.search(
                    SearchSpec(tenant, where, order, size + 1, after, highlight=True)
                )
                span.set_attribute("search.hits", len(page.hits))
            with self._phase("store.read") as span:
                read, found = self._page_events(tenant, page.hits[:size])
                span.set_attribute("store.events", len(found))
            return page, read, found

        page, read, found = self._erasures_kept(tenant, where, context, query)
        stored = {s.sequence: s for s in found}
        more = len(page.hits) > size or len(read) < min(len(page.hits), size)
        with self._phase("search.rebuild"):
            return self._reply(caller, tenant, page, read, stored, more, bound)

    @staticmethod
    def _reply(
        caller: Caller,
        tenant: str,
        page: Page,
        hits: list[Hit],
        stored: dict[int, StoredEvent],
        more: bool,
        bound: str,
    ) -> pb.SearchEventsResponse:
        """The page as the caller may see it, highlights where its content is shown.

        ``hits``: those read (see :meth:`_page_events`); ``more``: whether the
        next page starts after the last of them.
        """
        response = pb.SearchEventsResponse(total_size=page.total)
        view = Visibility.of(caller, tenant)
        used = 0
        for i, hit in enumerate(hits):
            found = stored.get(hit.sequence)
            if found is None:
                continue
            result = response.results.add(sequence=hit.sequence)
            view.redact(found, into=result.event)
            # Erased content's highlights may outlive it while the index lags.
            if view.shows_content(result.event) and found.content is not None:
                texts = functools.partial(_indexed_texts, found)
                # Bounded: counted in `used` below.
                for name, marks in fragments.shown(hit.highlights, texts).items():
                    result.highlights[name].fragments.extend(marks)
            used += result.ByteSize()
            if used > _PAGE_BYTES and len(response.results) > 1:  # the rest on the next page
                del response.results[-1]
                response.next_page_token = paging.encode(bound, hits[i - 1].sort)
                return response
        if more:
            response.next_page_token = paging.encode(bound, hits[-1].sort)
        return response

    def GetEvent(  # noqa: N802 (gRPC method name)
        self, request: pb.GetEventRequest, context: grpc.ServicerContext
    ) -> pb.GetEventResponse:
        """One event from the store."""
        return self._run(context, lambda: self._get(request, context))

    def _get(
        self, request: pb.GetEventRequest, context: grpc.ServicerContext
    ) -> pb.GetEventResponse:
        tenant = request.tenant_id
        asked = _Asked("search.get_event", {"event_id": request.event_id})
        caller = self._caller(context, tenant, "events.read", asked)
        if not event_ids.valid(request.event_id):
            raise _invalid("event_id", f"required: {event_ids.RULE}")
        self._audit(caller, tenant, asked)
        found = self._store.get_event(tenant, request.event_id)
        if found is None:
            raise _AbortError(
                status.error(
                    code_pb2.NOT_FOUND,
                    f"event {request.event_id!r} is not in tenant {tenant!r}",
                    "EVENT_NOT_FOUND",
                    event_id=request.event_id,
                )
            )
        return pb.GetEventResponse(
            event=Visibility.of(caller, tenant).redact(found),
            sequence=found.sequence,
            integrity_status=self._integrity_status(context, caller, tenant, request.event_id),
        )

    def _integrity_status(
        self, context: grpc.ServicerContext, caller: Caller, tenant: str, event_id: str
    ) -> ipb.VerifyStatus:
        """VerifyEvent's verdict; UNSPECIFIED when not allowed or not answered (never fails)."""
        if self._integrity is None or not caller.allows("proofs.read", tenant):
            return ipb.VERIFY_STATUS_UNSPECIFIED
        try:
            return self._integrity.verify_event(forwarded(context), tenant, event_id).status
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:  # said, not taken for an outage
                log.warning(
                    "integrity service at %s refused VerifyEvent of %s for %s for its load, "
                    "integrity_status UNSPECIFIED: %s",
                    self._integrity.address,
                    event_id,
                    caller.principal,
                    exc.details(),
                )
            else:
                log.info("integrity status of %s not available: %s", event_id, exc)
            return ipb.VERIFY_STATUS_UNSPECIFIED

    def Aggregate(  # noqa: N802 (gRPC method name)
        self, request: pb.AggregateRequest, context: grpc.ServicerContext
    ) -> pb.AggregateResponse:
        """Counts per group, statistics, histogram."""
        return self._run(context, lambda: self._aggregate(request, context))

    def _aggregate(
        self, request: pb.AggregateRequest, context: grpc.ServicerContext
    ) -> pb.AggregateResponse:
        tenant = request.tenant_id
        asked = _Asked("search.aggregate", _aggregate_details(request))
        caller = self._caller(context, tenant, "events.read", asked)
        bound = paging.digest(
            tenant,
            caller.principal,
            *(str(asked.details[k]) for k in _AGGREGATE_BOUND),
        )
        start = None
        if request.page_token:
            try:
                start = paging.decode_groups(request.page_token, bound, len(request.group_by))
            except paging.TokenError as exc:
                raise _invalid("page_token", str(exc)) from None
        if start is not None:  # where it starts, as a search page's record says it
            details = {k: v for k, v in asked.details.items() if k != "page_token"}
            details["page_after"] = ", ".join(
                f"{name}={'' if value is None else value}"
                for name, value in zip(request.group_by, start[1], strict=True)
            )
            details["up_to_sequence"] = start[0]
            asked = _Asked(asked.action, details)
        where = self._where(caller, tenant, asked, request.filter, request.query)
        group_by = tuple(
            _field(f"group_by[{i}]", name, (Kind.KEYWORD, Kind.ENUM))
            for i, name in enumerate(request.group_by)
        )
        metrics = tuple(
            _field(f"metrics[{i}]", name, (Kind.INT, Kind.FLOAT, Kind.DURATION))
            for i, name in enumerate(request.metrics)
        )
        if len(set(group_by)) != len(group_by) or len(group_by) > 4:
            raise _invalid("group_by", "at most 4 distinct fields")
        if len(set(metrics)) != len(metrics) or len(metrics) > 8:
            raise _invalid("metrics", "at most 8 distinct fields")
        self._check_fields(caller, tenant, asked, [*group_by, *metrics])
        for i, p in enumerate(request.percentiles):
            if not 0 < p <= 100:
                raise _invalid(f"percentiles[{i}]", "must be in (0, 100]")
        if len(request.percentiles) > 10 or (request.percentiles and not metrics):
            raise _invalid("percentiles", "at most 10, and only with metrics")
        interval = None
        if request.HasField("histogram"):
            m = _INTERVAL.fullmatch(request.histogram.interval)
            if m is None:
                raise _invalid("histogram.interval", "e.g. 30s, 5m, 1h, 1d")
            interval = int(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        try:
            size = paging.groups_page_size(request.page_size)
        except ValueError as exc:
            raise _invalid("page_size", str(exc)) from None
        if request.page_token and not size:
            raise _invalid("page_token", "continues the groups of an aggregate with page_size")
        snapshot, after = start if start is not None else (None, None)
        if size and snapshot is None:  # the first page: what is indexed now, for every page
            snapshot = self._indexer.position(tenant)
            asked = _Asked(asked.action, {**asked.details, "up_to_sequence": snapshot})
        self._audit(caller, tenant, asked)
        self._built(tenant)
        if size and after is None:  # everything below the snapshot searchable (OpenSearch)
            self._backend.make_visible()
        spec = AggregateSpec(
            tenant,
            where,
            group_by,
            metrics,
            tuple(request.percentiles),
            None if after is not None else interval,  # the histogram on the first page only
            size,
            after,
            snapshot,
        )
        try:
            result = self._erasures_kept(
                tenant, where, context, lambda: self._backend.aggregate(spec)
            )
        except TooManyBucketsError as exc:  # others (a filter too large) as _run says them
            raise _invalid(exc.part, str(exc)) from None
        return _aggregate_reply(result, size, bound, snapshot)

    def _erasures_kept(
        self,
        tenant: str,
        where: language.Node | None,
        context: grpc.ServicerContext,
        read: Callable[[], T],
    ) -> T:
        """``read()`` (a page, an aggregate) against an index holding no erased text.

        Until the indexer reaches an erasure record the index still holds the
        erased text, and whatever matches it says what the text was: a page or an
        aggregate over ``input.text:"hiv"`` counted the erased event
        (``total_size``, buckets), one over ``NOT input.text:"hiv"`` left it out
        while it listed it for ``NOT input.text:"cancer"`` (review, 2026-12-05).
        A request that reads content (:func:`_reads_content`) therefore waits for
        the index to apply the tenant's latest erasure first; one that reads none
        costs nothing more. An erasure committed while ``read()`` ran is seen
        after it (it may have met the new record's events in the store, or the
        index before it): the index is waited for again, and ``read()`` repeated.
        """
        if not _reads_content(where):
            return read()
        with self._phase("search.erasures.wait"):
            seen = self._erasures_applied(tenant, context)
        while True:
            out = read()
            later = self._erasures_applied(tenant, context, seen)
            if later == seen:
                return out
            seen = later

    def _erasures_applied(
        self,
        tenant: str,
        context: grpc.ServicerContext,
        seen: int | None = None,
        done: str = "nothing was returned",
    ) -> int:
        """Waits (up to ``export_wait``) for the index to apply the tenant's latest erasure.

        Returns its sequence (-1: the tenant has none; retention records count
        too). ``seen``: the one this request waited for already; the same
        answer means no erasure came since, and nothing is waited for. Else
        ``UNAVAILABLE`` ``ERASURE_NOT_INDEXED`` (``done``: what the caller got
        so far). The index is made searchable once per erasure, not per request.
        """
        found = self._store.last_record(tenant)
        last = -1 if found is None else found
        if last < 0 or last == seen:
            return last
        if not self._indexer.wait_indexed(tenant, last + 1, self._export_wait, context.is_active):
            _raise_if_cancelled(context)
            raise _AbortError(
                status.error(
                    code_pb2.UNAVAILABLE,
                    f"the index has not yet applied the erasure at sequence {last}; searches, "
                    "aggregates and exports that read content (a query, or a text field in the "
                    f"filter, under NOT too) wait for it, so as not to match erased text; {done}, "
                    "retry",
                    "ERASURE_NOT_INDEXED",
                    sequence=str(last),
                )
            )
        if self._shown_erasures.get(tenant, -1) < last:
            self._backend.make_visible()
            self._shown_erasures[tenant] = last
        return last

    def Export(  # noqa: N802 (gRPC method name)
        self, request: pb.ExportRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.ExportResponse]:
        """Matching events as a file, streamed in chunks, oldest first.

        An export holds one of the server's RPC threads until its client has
        read the last chunk (or the index caught up): past the limits of
        ``exports`` it is refused, so the other RPCs keep theirs.
        """
        asked = _Asked(
            "search.export",
            {
                "filter": request.filter,
                "query": request.query,
                "include_proofs": request.include_proofs,
                "format": _format_name(request.format),
            },
        )
        caller = self._run(
            context, lambda: self._caller(context, request.tenant_id, "export", asked)
        )
        self._exports.take_or_abort(
            context, caller.principal, "EXPORT_STREAMS_EXHAUSTED", "wait for one to end"
        )
        try:  # given back however the export ends: done, cancelled, refused, failed
            yield from self._export(request, context, caller, asked)
        finally:
            self._exports.give_back(caller.principal)

    def _export(
        self,
        request: pb.ExportRequest,
        context: grpc.ServicerContext,
        caller: Caller,
        asked: _Asked,
    ) -> Iterator[pb.ExportResponse]:
        prepared = self._run(context, lambda: self._export_start(request, context, caller, asked))
        try:
            for chunk in self._export_chunks(request.tenant_id, prepared, context):
                if caller.expired():  # authenticated once, when it opened: not for ever
                    end_expired(context)
                yield chunk
        except BackendUnavailableError as exc:
            status.abort(context, _unavailable(exc).status)
        except QueryRejectedError as exc:  # the backend refused a page: as _run answers it
            status.abort(context, _rejected(exc))
        except _AbortError as refused:
            status.abort(context, refused.status)
        except (KekError, SealError) as exc:
            status.abort(context, _sealing_error(exc).status)
        except restore.DamagedStoredEventError as exc:
            status.abort(context, _damaged(exc).status)
        except _STORE_ERRORS as exc:  # the chunks already sent are not the whole export
            done = "the export stopped before its end"
            status.abort(context, _store_unavailable(exc, done).status)

    def _export_start(
        self,
        request: pb.ExportRequest,
        context: grpc.ServicerContext,
        caller: Caller,
        asked: _Asked,
    ) -> _Export:
        tenant = request.tenant_id
        where = self._where(caller, tenant, asked, request.filter, request.query)
        fmt = _FORMATS.get(request.format)
        if fmt is None:
            raise _invalid("format", "choose EXPORT_FORMAT_JSONL, EXPORT_FORMAT_CSV or _XML")
        if request.include_proofs:
            self._check_proofs(caller, tenant, asked, fmt)
        # Checked and allowed: what stops the export from here on is an answer about the log
        # (INDEX_BUILDING and INDEX_HELD name its size, NOT_YET_CHECKPOINTED how many of its
        # events wait), so it is recorded before it is answered (:meth:`_stopped`).
        try:
            self._built(tenant)  # not waited for: a build takes longer than export_wait
            # The snapshot: every event committed before the export began, once indexed.
            snapshot = self._store.log_sizes().get(tenant, 0)
            # The waits below hold the export's stream slot: a cancelled export lets go at
            # once. Every event of the snapshot (``whole``): a log held at a damaged event has
            # the erasure records past it applied, which would do for a wait on the record alone.
            if not self._indexer.wait_indexed(
                tenant, snapshot, self._export_wait, context.is_active, whole=True
            ):
                _raise_if_cancelled(context)
                raise _unavailable(RuntimeError("the index has not caught up with the log"))
            erased = self._erasures_applied(tenant, context) if _reads_content(where) else None
            self._backend.make_visible()
            md: Metadata | None = None
            checkpoint = None
            if request.include_proofs:
                md = forwarded(context)
                checkpoint = self._covering_checkpoint(md, tenant, snapshot, context)
        except Exception as exc:
            self._stopped(caller, tenant, asked, fmt, exc)
            raise
        done: dict[str, str | int | bool] = {
            **asked.details,
            "format": fmt,
            "up_to_sequence": snapshot,
        }
        scope = ""
        record_id = access.new_id()
        if md is not None:  # the bundle names its record, which says what it holds
            with_content = caller.allows("content.read", tenant)
            # No checkpoint only for an empty snapshot of a log never signed: size 0, and
            # no line to prove (until 2026-12-06 its export failed UNKNOWN at its seal).
            size = checkpoint.tree_size if checkpoint is not None else 0
            done |= {"tree_size": size, "include_content": with_content}
            scope = bundle.scope(
                tenant,
                size,
                document.iso(time.time_ns() // 1000),
                caller.principal,
                record_id,
                with_content,
                request.filter,
                request.query,
                snapshot,
            )
        self._recorded(
            self._ctx.access.submit(caller, tenant, asked.action, done, _QUOTED, record_id)
        )
        return _Export(caller, where, fmt, snapshot, md, checkpoint, erased, scope, record_id)

    def _stopped(
        self, caller: Caller, tenant: str, asked: _Asked, fmt: str, exc: Exception
    ) -> None:
        """Records an export stopped after its checks, before its own record was written.

        ``access.outcome`` is the stop's ErrorInfo reason in lower case (``index_held``,
        ``not_yet_checkpointed``, ``search_unavailable``); returns once it is durable, else
        raises UNAVAILABLE :data:`access.NOT_RECORDED` in place of the stop's answer. Until
        2026-12-06 these answers left no record (the export's own is written once its
        snapshot and checkpoint are known), though they tell the log's size, where a damaged
        event holds it, or how many of its events no checkpoint covers yet; a search answers
        the same stops only once its record is durable.
        """
        details = {**asked.details, "format": fmt, "outcome": _outcome(exc)}
        self._recorded(self._ctx.access.submit(caller, tenant, asked.action, details, _QUOTED))

    def _check_proofs(self, caller: Caller, tenant: str, asked: _Asked, fmt: str) -> None:
        """Refuses what a proof bundle cannot be: not JSON Lines, or shown without PII rights."""
        if fmt != "jsonl":
            raise _invalid(
                "include_proofs",
                "proofs are attached only to EXPORT_FORMAT_JSONL (the offline bundle format "
                "`aiaudit verify --bundle` checks); export CSV/XML for reading and a JSONL "
                "bundle with the same filter for verification",
            )
        # The committed bytes carry actor.ip_address verbatim (it is no sensitive_content),
        # and they cannot be redacted without breaking the leaf hash.
        if not caller.allows("pii.read", tenant):
            why = "proof bundles carry the committed events, PII included"
            raise self._refused(caller, tenant, "pii.read", asked, why)
        if not caller.allows("proofs.read", tenant):
            why = "include_proofs attaches proofs"
            raise self._refused(caller, tenant, "proofs.read", asked, why)
        if self._integrity is None:
            raise _AbortError(
                status.error(
                    code_pb2.FAILED_PRECONDITION,
                    "include_proofs needs the integrity service; it is turned off here "
                    "(search.integrity_address is 'none')",
                    "INTEGRITY_UNAVAILABLE",
                )
            )

    def _covering_checkpoint(
        self, md: Metadata, tenant: str, snapshot: int, context: grpc.ServicerContext
    ) -> proof_pb2.Checkpoint | None:
        """A signed checkpoint covering ``snapshot`` events, waiting at most ``proof_wait``."""
        assert self._integrity is not None
        deadline = time.monotonic() + self._proof_wait
        while True:
            _raise_if_cancelled(context)
            try:
                cp = self._integrity.latest_checkpoint(md, tenant)
            except grpc.RpcError as exc:
                raise _integrity_error(exc, self._integrity) from None
            covered = cp.tree_size if cp is not None else 0
            if covered >= snapshot:
                return cp
            left = deadline - time.monotonic()
            if left <= 0:
                pending = snapshot - covered
                raise _AbortError(
                    status.error(
                        code_pb2.FAILED_PRECONDITION,
                        f"{pending} event(s) of tenant {tenant!r} (sequences {covered}.."
                        f"{snapshot - 1}) are not yet covered by a signed checkpoint after "
                        f"waiting {self._proof_wait:g}s; retry once the notary has signed one",
                        "NOT_YET_CHECKPOINTED",
                        pending=str(pending),
                    )
                )
            time.sleep(min(_CHECKPOINT_POLL, left))

    def _export_chunks(
        self, tenant: str, plan: _Export, context: grpc.ServicerContext
    ) -> Iterator[pb.ExportResponse]:
        """The export's messages; the first carries the proofs' checkpoint, if any.

        The proto promises it ("the checkpoint the attached proofs are against
        (first message only)"); no message carried it (review, 2026-12-05).
        """
        first = True
        for data in self._export_data(tenant, plan, context):
            if first and plan.checkpoint is not None:
                yield pb.ExportResponse(data=data, checkpoint=plan.checkpoint)
            else:
                yield pb.ExportResponse(data=data)
            first = False

    def _export_data(
        self, tenant: str, plan: _Export, context: grpc.ServicerContext
    ) -> Iterator[bytes]:
        """Pages of the index joined with the store; memory bounded by one page and one chunk.

        An export that reads content starts from an index that has applied the
        tenant's erasures (:meth:`_export_start`). One committed while it runs
        shows after a batch's store read: that batch is not written, the export
        waits for the index to apply the erasure (``ERASURE_NOT_INDEXED`` past
        ``export_wait``), and reads the page again from the first event not yet
        written. The page had been matched against the erased text: it left an
        event that held "hiv" out of ``NOT input.text:"hiv"`` and listed those
        that did not, telling which (review, 2026-12-05).
        """
        where, fmt, snapshot = plan.where, plan.fmt, plan.snapshot
        view = Visibility.of(plan.caller, tenant)
        writer = exporting.Writer(fmt, tenant)
        pending = bytearray((plan.scope or writer.header()).encode())
        order = language.parse_order_by("sequence asc")
        after: tuple[int, ...] | None = None
        seen = plan.erasure
        sealed = hashlib.sha256()  # the seal's digest of the event lines, in their order
        count = 0
        while True:
            page = self._backend.search(
                SearchSpec(
                    tenant, where, order, _EXPORT_PAGE, after, below_sequence=snapshot, count=False
                )
            )
            again = False
            for last, found_events in self._export_events(tenant, page.hits):
                if seen is not None:
                    done = "the export stopped before its end"
                    later = self._erasures_applied(tenant, context, seen, done)
                    if later != seen:  # this page again, from the first event not written
                        seen, again = later, True
                        break
                if plan.proofs is not None:
                    texts: Iterable[str] = self._bundle_lines(tenant, plan, found_events, sealed)
                    count += len(found_events)
                else:
                    texts = (writer.write(found, view) for found in found_events)
                for text in texts:
                    pending += text.encode()
                    while len(pending) >= _CHUNK_BYTES:
                        yield bytes(pending[:_CHUNK_BYTES])
                        del pending[:_CHUNK_BYTES]
                after = last.sort
            if not again and len(page.hits) < _EXPORT_PAGE:
                break
        pending += writer.footer().encode()
        if plan.proofs is not None:  # every event line out before the seal is waited for
            yield bytes(pending)
            pending.clear()
            pending += self._seal(tenant, plan, count, sealed.hexdigest(), context).encode()
            if not pending:
                return
        yield bytes(pending)

    def _export_events(
        self, tenant: str, hits: list[Hit]
    ) -> Iterator[tuple[Hit, list[StoredEvent]]]:
        """A page's stored events (in sequence order, as the page is) by READ_BYTES stored at most.

        Each batch with the last hit it covers. 500 events of a few MB each were
        gigabytes at once: the server was killed for its memory, and the export
        with it.
        """
        while hits:
            got = self._store.read_sequences(
                tenant, [h.sequence for h in hits], max_bytes=READ_BYTES
            )
            last = got[-1].sequence if got.cut else None
            stored = {s.sequence: s for s in got}
            now = hits if last is None else [h for h in hits if h.sequence <= last]
            hits = [] if last is None else [h for h in hits if h.sequence > last]
            yield now[-1], [found for h in now if (found := stored.get(h.sequence)) is not None]

    def _bundle_lines(
        self, tenant: str, plan: _Export, found: list[StoredEvent], sealed: hashlib._Hash
    ) -> list[str]:
        """Bundle lines of one page: one batch of proofs against the export's checkpoint.

        Each line's sequence and leaf hash go into ``sealed``, the running SHA-256 the
        export's seal records (:func:`bundle.sealed_item`): one small update a line.
        """
        if not found:
            return []
        assert self._integrity is not None and plan.checkpoint is not None
        assert plan.proofs is not None
        for e in found:
            if not 0 <= e.sequence < plan.checkpoint.tree_size:
                raise _not_a_leaf(tenant, e, plan.checkpoint.tree_size)
        try:
            proofs = self._integrity.proofs(
                plan.proofs, tenant, plan.checkpoint.tree_size, [e.sequence for e in found]
            )
        except grpc.RpcError as exc:
            done = "the export stopped before its end"
            raise _integrity_error(exc, self._integrity, done) from None
        with_content = plan.caller.allows("content.read", tenant)
        out = []
        for e, proof in zip(found, proofs, strict=True):
            sealed.update(bundle.sealed_item(e.sequence, e.leaf_hash))
            keep = with_content and e.salt is not None
            out.append(
                bundle.line(
                    tenant,
                    e.sequence,
                    e.event_id,
                    e.canonical,
                    bundle.tlog_proof(e.sequence, proof.hashes, plan.checkpoint.signed_note),
                    e.salt if keep else None,
                    e.content if keep else None,
                )
            )
        return out

    def _seal(
        self, tenant: str, plan: _Export, count: int, digest: str, context: grpc.ServicerContext
    ) -> str:
        """The bundle's seal line (:func:`bundle.seal`), or '' (a WARNING) if none was got.

        The export's closing record (action :data:`bundle.SEAL_ACTION`: the export's
        access record, ``count`` event lines, their ``digest``, the snapshot, the
        checkpoint size and the salted digest of the scope line, :func:`bundle.scope_digest`)
        is committed through the access log like any record; then the
        export waits at most ``proof_wait`` for a signed checkpoint covering it, and
        fetches its inclusion proof and the consistency proof from the lines' checkpoint.
        The events were delivered already: an export that cannot seal them ends
        without a seal, and its bundle verifies as unsealed ("not proven").
        """
        assert self._integrity is not None and plan.proofs is not None
        size = plan.checkpoint.tree_size if plan.checkpoint is not None else 0
        salt = secrets.token_bytes(bundle.SCOPE_SALT_BYTES)
        details: dict[str, str | int | bool] = {
            "export_record": plan.record_id,
            "count": count,
            "lines_sha256": digest,
            "up_to_sequence": plan.snapshot,
            "tree_size": size,
            # The scope line is unsigned: without this, a sealed export's scope edited to
            # another filter (or requester, time, content) verified "complete" (review).
            "scope_sha256": bundle.scope_digest(salt, plan.scope),
        }
        record_id = access.new_id()
        submitted = self._ctx.access.submit(
            plan.caller, tenant, bundle.SEAL_ACTION, details, (), record_id
        )
        if not access.recorded(submitted):
            log.warning(
                "export %s of %r ends unsealed: its closing record was not written",
                plan.record_id,
                tenant,
            )
            return ""
        try:
            found = self._store.get_event(tenant, record_id)
            if found is None:
                raise LookupError(f"closing record {record_id} not found in the log")
            deadline = time.monotonic() + self._proof_wait
            while True:
                if not context.is_active():
                    return ""
                cp = self._integrity.latest_checkpoint(plan.proofs, tenant)
                if cp is not None and cp.tree_size > found.sequence:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    log.warning(
                        "export %s of %r ends unsealed: no signed checkpoint covered its closing "
                        "record %s (sequence %d) within %gs (search.proof_wait)",
                        plan.record_id,
                        tenant,
                        record_id,
                        found.sequence,
                        self._proof_wait,
                    )
                    return ""
                time.sleep(min(_CHECKPOINT_POLL, left))
            (proof,) = self._integrity.proofs(plan.proofs, tenant, cp.tree_size, [found.sequence])
            consistency = (  # from the empty tree: nothing to prove, no hash
                self._integrity.consistency(plan.proofs, tenant, plan.checkpoint, cp.tree_size)
                if plan.checkpoint is not None and size
                else []
            )
        except (grpc.RpcError, LookupError, *_STORE_ERRORS) as exc:
            log.warning("export %s of %r ends unsealed: %s", plan.record_id, tenant, exc)
            return ""
        return bundle.seal(
            tenant,
            found.sequence,
            record_id,
            found.canonical,
            bundle.tlog_proof(found.sequence, proof.hashes, cp.signed_note),
            consistency,
            salt,
        )


def _not_a_leaf(tenant: str, found: StoredEvent, tree_size: int) -> _AbortError:
    """An exported event stored outside its log's sequences: no line may claim a proof of it.

    Only raw SQL puts one there (an erasure naming it has the indexer index it);
    BatchGetInclusionProofs would refuse the sequence as a bad argument, which
    read as the integrity service being unusable.
    """
    return _AbortError(
        status.error(
            code_pb2.DATA_LOSS,
            f"event {found.event_id!r} of tenant {tenant!r} is stored at sequence "
            f"{found.sequence}, which is not a leaf of the log (the export's checkpoint covers "
            f"sequences 0..{tree_size - 1}): no proof can include it, so the export was "
            "stopped; run `aiaudit verify` on the store",
            "NOT_A_LEAF",
            event_id=found.event_id,
            sequence=str(found.sequence),
        )
    )


def _indexed_texts(found: StoredEvent) -> dict[str, str]:
    """The event's texts as the indexer made them, which the highlights were cut from."""
    return stored_document.from_stored(found).texts


def _outcome(exc: Exception) -> str:
    """What stopped a read, as its record's ``access.outcome``: the answer's reason, lower case.

    A refusal's ErrorInfo reason, else its code's name; ``failed`` for an error ``_run``
    maps to its own status (the backend or the store out of reach).
    """
    if isinstance(exc, _AbortError):
        for detail in exc.status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                return str(info.reason).lower()
        return str(code_pb2.Code.Name(exc.status.code)).lower()
    return "failed"


def _raise_if_cancelled(context: grpc.ServicerContext) -> None:
    """Ends a call its client has left (nobody reads the status; the waits stop)."""
    if not context.is_active():
        raise _AbortError(
            status.error(code_pb2.CANCELLED, "the client cancelled the call", "CANCELLED")
        )


def _field(where: str, name: str, kinds: tuple[Kind, ...]) -> Field:
    field = catalogue.lookup(name)
    if field is None or field.multi or field.kind not in kinds:
        allowed = [f.name for f in catalogue.SCALARS if f.kind in kinds]
        raise _invalid(where, f"{name!r} cannot be used here; use one of {', '.join(allowed)}")
    return field


def _percent_key(p: float) -> str:
    return str(int(p)) if float(p).is_integer() else repr(p)


def _search_details(request: pb.SearchEventsRequest) -> dict[str, str | int | bool]:
    """What a search's access record says it asked, granted or refused.

    ``page_size`` is the size the page gets (50 for 0); one out of range,
    refused, is recorded as sent. A later page says where it started
    (``page_after``, see :func:`_page_start`); a token that is none this
    service issued for the request (refused, never answered) is recorded as
    sent (``page_token``), and only a refusal of the request can say it.
    """
    details: dict[str, str | int | bool] = {
        "filter": request.filter,
        "query": request.query,
        "order_by": request.order_by,
        "page": bool(request.page_token),
    }
    try:
        details["page_size"] = paging.page_size(request.page_size)
    except ValueError:
        details["page_size"] = request.page_size
    if request.page_token:
        start = _page_start(request)
        if start is None:
            details["page_token"] = request.page_token
        else:
            details["page_after"] = start
    return details


def _aggregate_reply(
    result: Aggregation, size: int, bound: str, snapshot: int | None
) -> pb.AggregateResponse:
    """The answer: every group (``size`` 0), else a page of them and the next one's token.

    A page also stops before its groups pass :data:`_PAGE_BYTES`, as a search page
    does: 1,000 groups of four 4,096-character keys are 16 MB, which no client with
    gRPC's default 4 MiB could read.
    """
    response = pb.AggregateResponse()
    for begin, count in result.time_buckets:
        ts = timestamp_pb2.Timestamp(seconds=begin // 1_000_000, nanos=begin % 1_000_000 * 1000)
        response.time_buckets.add(start_time=ts, count=count)
    shown = result.buckets[:size] if size else result.buckets
    used = response.ByteSize()
    for i, b in enumerate(shown):
        bucket = response.buckets.add(keys=list(b.keys), count=b.count)
        for name, s in b.stats.items():
            out = bucket.stats[name]
            out.count, out.min, out.max, out.avg, out.sum = s.count, s.min, s.max, s.avg, s.sum
            for p, value in s.percentiles.items():
                out.percentiles[_percent_key(p)] = value
        used += bucket.ByteSize()
        # With the token after it, which holds its keys (four of 16 KB made an 87 KB token).
        over = used + paging.groups_token_room(b.keys) > _PAGE_BYTES
        if size and over and len(response.buckets) > 1:  # the rest on the next page
            assert snapshot is not None
            del response.buckets[-1]
            response.next_page_token = paging.encode_groups(bound, snapshot, shown[i - 1].order)
            return response
    if size and len(result.buckets) > size:
        assert snapshot is not None
        response.next_page_token = paging.encode_groups(bound, snapshot, shown[-1].order)
    return response


_AGGREGATE_BOUND = ("filter", "query", "group_by", "metrics", "percentiles", "histogram.interval")
"""What of an aggregate's record its page tokens are bound to, with its tenant and caller."""


def _aggregate_details(request: pb.AggregateRequest) -> dict[str, str | int | bool]:
    """What an aggregate's access record says it asked, granted or refused.

    ``page_size`` as sent (0: every group in one answer); a later page's token as
    sent until it is known to be this caller's for this request (then ``page_after``,
    the last group of the page before, and ``up_to_sequence``, the pages' snapshot).
    """
    details: dict[str, str | int | bool] = {
        "filter": request.filter,
        "query": request.query,
        "group_by": ",".join(request.group_by),
        "metrics": ",".join(request.metrics),
        "percentiles": ",".join(_percent_key(p) for p in request.percentiles),
        "histogram.interval": request.histogram.interval if request.HasField("histogram") else "",
        "page_size": request.page_size,
        "page": bool(request.page_token),
    }
    if request.page_token:
        details["page_token"] = request.page_token
    return details


def _page_start(request: pb.SearchEventsRequest) -> str | None:
    """Where a later page starts, as its token says; None for a token not issued for it.

    The sort values of the page before's last event, each named after its
    ``order_by`` key: ``occurred_time=2026-03-02T00:00:00.000000Z, sequence=41``.
    The page holds the events after that one in the request's order. The token itself
    says no more (its other part binds it to the tenant, filter, query and order, which
    the record holds): the same values, base64 JSON that no auditor reads as they are.
    """
    try:
        order = language.parse_order_by(request.order_by)
        bound = paging.digest(request.tenant_id, request.filter, request.query, request.order_by)
        values = paging.decode(request.page_token, bound, len(order))
    except (language.LanguageError, paging.TokenError):
        return None
    return ", ".join(
        f"{k.field.name}={_sort_value(k.field, v)}" for k, v in zip(order, values, strict=True)
    )


def _sort_value(field: Field, value: int) -> str:
    """A sort value as written: a time in RFC 3339 (UTC, microseconds), else the integer.

    A time no calendar date holds (a token made by hand) is its microseconds.
    """
    if field.kind is Kind.TIMESTAMP:
        try:
            return document.iso(value)
        except (OverflowError, ValueError):
            return f"{value} microseconds since the epoch"
    return str(value)


def _format_name(value: pb.ExportFormat) -> str:
    """An export format as its record names it: ``jsonl``, ``csv``, ``xml``, else as sent."""
    known = _FORMATS.get(value)
    if known is not None:
        return known
    if value in pb.ExportFormat.values():
        return str(pb.ExportFormat.Name(value))
    return str(value)
