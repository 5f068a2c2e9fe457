"""Every read of audit data is itself an audit event in the tenant's log.

Search, export, proof and alert reads call :meth:`AccessLog.record` before
they answer; the record is committed like any event (sequenced, hashed,
covered by checkpoints), so access to evidence is as tamper-evident as the
evidence.

Records are group-committed: concurrent reads share one transaction (one
fsync), and a read may :meth:`AccessLog.submit` its record first, run its
query meanwhile, and wait for the commit before it answers, so the record's
commit overlaps the query instead of adding to it. Either way no read is
answered before its record is durable.

A log whose head another session holds (an erasure of that tenant, a session
left open with it, another replica's long commit) holds that tenant's reads
alone: the writer waits at most :data:`LOCK_TIMEOUT` for a head (the store's
``lock_timeout``; :class:`LogBusyError` names the log), commits the group
without that log's records and sets them aside to a lane of the log's own,
which waits for the head as long as it takes (those reads answer once their
record is durable, as ever). Until the lane has drained, the log's later
records go to it straight away. At most :data:`MAX_LANES` lanes commit at
once (a connection each, waiting); the lanes of further busy logs wait their
turn. Until 2026-12-05 the one writer waited on the lock with no limit: the
reads of every tenant grouped with (or queued behind) a record of the busy
log waited for it too, until their deadline (review).

A record opens a log only for a caller whose key (or token) names the tenant:
that tenant exists by configuration, and its dashboards read it before its
first event. One submitted through ``*`` alone for a tenant with no log yet
is not written, and the read answers NOT_FOUND (:func:`no_log`, through
:func:`unrecorded`), with a warning. A read checks its request before it
submits its record, so bad input is still INVALID_ARGUMENT. Until 2026-12-07
a key covering every tenant (``*``) opened a log for any name it read, its
record the first entry: a typo or a scanner left logs that the notary signed,
the indexer indexed and the lag gauges counted (review). A change that writes
a record of its own (a rule change) asks :meth:`AccessLog.require_log` once its
request is valid, before it writes anything: through ``*`` alone, for a tenant
with no log, it is NOT_FOUND as a read is (until 2026-12-07 it opened the log).

Refusals are recorded too (:meth:`AccessLog.refuse`): a request that a
caller's roles on the tenant do not cover leaves a record of what was asked
(its texts as content), with ``access.outcome`` ``denied`` and the permission
lacking, before it is answered PERMISSION_DENIED.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import threading
import uuid
from collections.abc import Collection, Iterable, Mapping
from concurrent.futures import Future

import grpc
import sqlalchemy as sa
from google.rpc import code_pb2, status_pb2

from aiaudit.common import status, tenants
from aiaudit.common.auth import Caller, denied
from aiaudit.common.store.prepare import prepare, set_timestamp
from aiaudit.common.store.sql import Conflict, LogBusyError, NewEvent, SqlEventStore
from aiaudit.common.v1 import event_pb2

log = logging.getLogger(__name__)


QUOTING = ("filter", "query", "subject_id", "reason")
"""Details that can quote content or personal data (a searched phrase, an IP
address, the person an erasure named, its free-text reason): kept as the
access event's content (``input.messages``, one named after each), so that,
like any content, they enter the leaf as salted commitments, are shown only
to callers with ``content.read`` and can be erased. As attributes, any reader
of the tenant's log saw what a compliance officer had searched for."""


def access_event(
    caller: Caller,
    tenant: str,
    action: str,
    details: Mapping[str, str | int | bool],
    when: dt.datetime,
    quoted: Collection[str] = QUOTING,
    event_id: str | None = None,
) -> event_pb2.Event:
    """The EVENT_TYPE_AUDIT_ACCESS event describing one read; ``quoted`` details as content.

    ``event_id``: the record's id, if the reader chose it (see :func:`new_id`).
    """
    event = event_pb2.Event(
        event_id=event_id or new_id(),
        tenant_id=tenant,
        event_type=event_pb2.EVENT_TYPE_AUDIT_ACCESS,
        actor=event_pb2.Actor(
            user_id=caller.principal,
            api_key_id=caller.key_id,
            user_role=",".join(sorted(caller.roles)),
        ),
    )
    set_timestamp(event.occurred_time, when)
    event.attributes["access.action"].string_value = action
    for key, value in details.items():
        if key in quoted:
            if value:
                said = event.input.messages.add(role=event_pb2.ROLE_USER, name=key)
                said.parts.add(text=_kept(event, key, str(value), _MOST_QUOTED))
            continue
        slot = event.attributes[f"access.{key}"]
        if isinstance(value, bool):
            slot.bool_value = value
        elif isinstance(value, int):
            slot.int_value = value
        else:
            slot.string_value = _kept(event, key, str(value), _MOST_ATTRIBUTE)
    return event


def new_id() -> str:
    """A fresh access record id, for a reader that names its record (an export's bundle).

    Picked before the record is submitted, so the reader knows it.
    """
    return f"access-{uuid.uuid4()}"


_MOST_QUOTED = 64 * 1024
"""Characters of a quoted text a record keeps: more than any request may send (a search's
filter and query 8,192 each, a rule's source 64 KiB). Until 2026-12-05 it kept 4,096, and
a filter padded past them ran unrecorded (review)."""
_MOST_ATTRIBUTE = 4096


def named_parts(names: Iterable[str]) -> list[str]:
    """``names`` comma-joined in parts that each fit what a record keeps of a detail.

    A read that hands out many items names every one in its records, one record
    per part (one part, maybe empty, if there are few): a record says what was
    read, not only how many.
    """
    parts: list[str] = []
    part = ""
    for one in names:
        if part and len(part) + 1 + len(one) > _MOST_ATTRIBUTE:
            parts.append(part)
            part = ""
        part = f"{part},{one}" if part else one
    return [*parts, part]


def _kept(event: event_pb2.Event, key: str, text: str, most: int) -> str:
    """``text``, or its first ``most`` characters and ``access.<key>.chars`` its length.

    A record never passes off a cut text as the whole.
    """
    if len(text) <= most:
        return text
    event.attributes[f"access.{key}.chars"].int_value = len(text)
    return text[:most]


LINGER = 0.05
"""Seconds an idle writer waits for another record before it exits, so that a stream
of reads reuses one thread instead of starting one per read."""

LOCK_TIMEOUT = 1.0
"""Seconds the writer waits for a log's head before setting that log's records aside
(as ingest's group committer does its batches). Longer than any commit holds a head
(tens of milliseconds), so that replicas taking turns on a log stay on the writer."""

MAX_LANES = 4
"""Lanes committing at once, each holding a server connection while it waits for its
busy log's head (the store's pool holds 10, and 10 more, by default): many busy tenants
leave connections, and the database's, to the reads themselves. A busy log beyond them
waits, first come first served, for a lane to drain, holding none; the writer, and
every other tenant, go on meanwhile."""

Record = tuple[NewEvent, Future[None]]


class UnknownTenantError(LookupError):
    """A record of a tenant with no log, asked through ``*``: not written, no log opened."""

    def __init__(self, tenant: str) -> None:
        """The tenant named."""
        super().__init__(f"tenant {tenant!r} has no log")
        self.tenant = tenant


class AccessLog:
    """Records reads into the store, concurrent records sharing one transaction."""

    def __init__(
        self,
        store: SqlEventStore,
        lock_timeout: float | None = LOCK_TIMEOUT,
        max_lanes: int = MAX_LANES,
    ) -> None:
        """Access records go to this store; see :data:`LOCK_TIMEOUT` and :data:`MAX_LANES`."""
        self._store = store
        self._lock_timeout = lock_timeout
        self._max_lanes = max(1, max_lanes)
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._queue: list[Record] = []
        self._writing = False
        self._lanes: dict[str, list[Record]] = {}
        """Busy logs, each with its records set aside (from when the head was busy
        until its lane has drained)."""
        self._turns: collections.deque[str] = collections.deque()
        """Busy logs whose lane no thread serves yet, in the order they were found busy."""
        self._lane_threads = 0
        self._logs: set[str] = set()
        """Logs found to exist (a log is never removed): each looked up once per process."""
        self.groups_committed = 0
        """Transactions attempted so far (a metric; tests use it to see grouping)."""
        self.writers_started = 0
        """Writer threads started so far (a metric; tests use it to see a writer reused)."""

    def record(
        self, caller: Caller, tenant: str, action: str, details: Mapping[str, str | int | bool]
    ) -> str:
        """Commits the access record; raises if the store refuses (then the read must fail too).

        Returns the record's event id, so that a caller that wrote through another
        login than it reads with can check the record is an entry of the log it read.
        """
        event_id = new_id()
        self.submit(caller, tenant, action, details, event_id=event_id).result()
        return event_id

    def submit(
        self,
        caller: Caller,
        tenant: str,
        action: str,
        details: Mapping[str, str | int | bool],
        quoted: Collection[str] = QUOTING,
        event_id: str | None = None,
    ) -> Future[None]:
        """Queues the access record; the future resolves once it is committed (or fails).

        The caller must wait for it (:func:`unrecorded`) before it answers the
        read. Never raises: a record that cannot even be built fails the future,
        and so does one of a tenant with no log that the caller's key does not
        name (:class:`UnknownTenantError`, nothing written: ``*`` opens no log).
        ``event_id``: the record's id (:func:`new_id`), for a reader that names it.
        """
        future: Future[None] = Future()
        try:
            record = self._prepared(caller, tenant, action, details, quoted, event_id)
            known = self._may_open(caller, tenant)
        except Exception as exc:
            future.set_exception(exc)
            return future
        if not known:
            future.set_exception(self._unknown(caller, tenant, action))
            return future
        return self._queued(record)

    def require_log(self, caller: Caller, tenant: str, action: str) -> None:
        """Raises :class:`UnknownTenantError` unless a record of ``caller`` may go to the log.

        For a change that writes a record of its own into the tenant's log (a
        rule change): checked once the request is valid, before anything is
        written, so that through ``*`` alone it opens no log, as a read does
        not. The caller answers NOT_FOUND (:func:`no_log`); logged as
        :meth:`submit` logs it. Raises what the store raises if it is down.
        """
        if not self._may_open(caller, tenant):
            raise self._unknown(caller, tenant, action)

    @staticmethod
    def _unknown(caller: Caller, tenant: str, action: str) -> UnknownTenantError:
        """The error of a record not written (``tenant`` has no log), with its warning."""
        log.warning(
            "%s (key %r) asked %s of tenant %r, which has no log: not recorded, answered NOT_FOUND",
            caller.principal,
            caller.key_id,
            action,
            tenant,
        )
        return UnknownTenantError(tenant)

    def _may_open(self, caller: Caller, tenant: str) -> bool:
        """Whether a record of ``caller`` may go to the tenant's log (a refusal's too).

        Its key names the tenant (which exists by configuration: the record may
        open the log), or the log exists.
        """
        return tenant in caller.tenants or self._exists(tenant)

    def _exists(self, tenant: str) -> bool:
        """Whether the tenant has a log: one indexed lookup, then none (a log stays)."""
        if tenant in self._logs:
            return True
        if not self._store.has_log(tenant):
            return False
        self._logs.add(tenant)
        return True

    @staticmethod
    def _prepared(
        caller: Caller,
        tenant: str,
        action: str,
        details: Mapping[str, str | int | bool],
        quoted: Collection[str],
        event_id: str | None = None,
    ) -> NewEvent:
        """The record, ready to append; raises if it cannot be built."""
        if not tenants.valid(tenant):  # the services refuse it first; never a log of it
            raise ValueError(f"tenant id {tenant!r} is not {tenants.RULE}")
        now = dt.datetime.now(dt.UTC)
        return prepare(access_event(caller, tenant, action, details, now, quoted, event_id), now)

    def _queued(self, record: NewEvent) -> Future[None]:
        """Queues a prepared record for the writer; the future resolves once it is committed."""
        future: Future[None] = Future()
        with self._lock:
            self._queue.append((record, future))
            if self._writing:
                self._work.notify()
                return future
            self._writing = True
            self.writers_started += 1
        # A writer only while there is work (it lingers briefly for the next record):
        # no thread to stop, none left idle.
        threading.Thread(target=self._drain, name="access-log", daemon=True).start()
        return future

    def require(
        self,
        context: grpc.ServicerContext,
        caller: Caller,
        permission: str,
        tenant: str,
        action: str,
        details: Mapping[str, str | int | bool],
    ) -> None:
        """Aborts PERMISSION_DENIED, the refusal recorded, unless the caller holds the permission.

        ``action`` and ``details`` are what the granted request's record would say.
        """
        if not caller.allows(permission, tenant):
            status.abort(context, self.refuse(caller, tenant, permission, action, details))

    def refuse(
        self,
        caller: Caller,
        tenant: str,
        permission: str,
        action: str,
        details: Mapping[str, str | int | bool],
        why: str = "",
        must_record: bool = False,
    ) -> status_pb2.Status:
        """Records a refused request; the PERMISSION_DENIED status to answer it with.

        Recorded in the tenant's log, once durable, when the caller holds roles
        on that tenant (a role short of the permission) and the log exists or
        its key names the tenant: wherever the granted request's record would
        go (until 2026-12-07 a key naming a tenant with no log yet read it
        recorded, and was refused there unrecorded). Otherwise it is only
        logged here: any key of one tenant could write into another's log, or
        a key on ``*`` open logs for tenants that do not exist, by asking.
        Nothing of a refused request was checked, so every text it sent is
        kept as content (erasable, shown only with ``content.read``), never as
        an attribute. Never fails: a refusal discloses nothing, so a
        record the store did not take is a warning, and the answer is still
        PERMISSION_DENIED; unless ``must_record``, for a refusal read from
        what is stored (a stored rule the caller may not change): it tells
        that the thing exists, so without its record it answers
        :data:`UNRECORDED` instead, as the thing's absence would.
        """
        answer = denied(caller, permission, tenant, why)
        try:
            ours = caller.member_of(tenant) and self._may_open(caller, tenant)
        except sa.exc.SQLAlchemyError as exc:  # the store is down: the refusal stands
            log.warning("refusal of %s on tenant %r not recorded: %s", action, tenant, exc)
            return UNRECORDED if must_record else answer
        if not ours:
            log.warning(
                "refused %s (key %r) %s on tenant %r: it holds no role there, or the "
                "tenant has no log and its key does not name it; not recorded in a log",
                caller.principal,
                caller.key_id,
                action,
                tenant,
            )
            return answer
        texts = [key for key, value in details.items() if isinstance(value, str)]
        refused = {**details, "outcome": "denied", "permission": permission}
        if not recorded(self.submit(caller, tenant, action, refused, quoted=texts)):
            return UNRECORDED if must_record else answer
        return answer

    def _drain(self) -> None:
        """Commits queued records in groups until none came for ``LINGER``, then exits."""
        while True:
            with self._lock:
                if not self._queue:
                    self._work.wait(LINGER)
                if not self._queue:
                    self._writing = False
                    return
                group, self._queue = self._set_aside(self._queue), []
            if group:
                self._commit(group, self._lock_timeout)

    def _commit(self, group: list[Record], lock_timeout: float | None) -> None:
        """Commits records in one transaction and resolves their futures (writer and lanes)."""
        try:  # a small group: one statement, one round trip on PostgreSQL
            outcomes = self._store.append_group(
                [[record] for record, _ in group], lock_timeout=lock_timeout
            )
        except LogBusyError as busy:  # nothing written: that log's records wait apart
            log.info("log %r busy: its access records wait apart from the others", busy.log_id)
            with self._lock:
                rest = self._set_aside(group, busy.log_id)
            if rest:
                self._commit(rest, lock_timeout)
            return
        except Exception as exc:  # the store is down: every read of the group fails
            log.warning("access records not written (%d): %s", len(group), exc)
            for _, future in group:
                future.set_exception(exc)
            return
        finally:
            self.groups_committed += 1
        for (record, future), outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, Conflict):  # a random id taken: never expected
                future.set_exception(
                    RuntimeError(f"access record id {record.event.event_id} refused")
                )
            else:
                future.set_result(None)

    def _set_aside(self, group: list[Record], busy: str | None = None) -> list[Record]:
        """The records left to the writer: those of a log with a lane (or ``busy``) go to it.

        Called holding the lock. A lane opened for ``busy`` waits its turn for a
        lane thread (at most ``max_lanes``, one started if fewer run).
        """
        if not self._lanes and busy is None:
            return group
        kept: list[Record] = []
        for item in group:
            log_id = item[0].log_id
            lane = self._lanes.get(log_id)
            if lane is None and log_id == busy:
                lane = self._lanes[log_id] = []
                self._turns.append(log_id)
                if self._lane_threads < self._max_lanes:
                    self._lane_threads += 1
                    # it takes the lock to find its lane: not before we let it go
                    threading.Thread(
                        target=self._serve_lanes, name="access-lane", daemon=True
                    ).start()
            if lane is None:
                kept.append(item)
            else:
                lane.append(item)
        return kept

    def _serve_lanes(self) -> None:
        """Drains lanes, one at a time, in their turn; exits when none is waiting.

        A lane waits for its head as long as it takes: its reads answer only once
        their record is durable. A drained lane is closed, so that the log's next
        records go to the writer again.
        """
        log_id: str | None = None
        while True:
            with self._lock:
                if log_id is None:
                    if not self._turns:
                        self._lane_threads -= 1
                        return
                    log_id = self._turns.popleft()
                group, self._lanes[log_id] = self._lanes[log_id], []
                if not group:
                    del self._lanes[log_id]
                    log_id = None
                    continue
            self._commit(group, lock_timeout=None)


NOT_RECORDED = "the access record could not be written; nothing was returned, retry"
"""What a read answers (UNAVAILABLE) when its access record did not commit."""

UNRECORDED = status.error(code_pb2.UNAVAILABLE, NOT_RECORDED, "STORE_UNAVAILABLE")
"""The status of that answer, whatever the read found (every service gives the same)."""


RECORD_WAIT_SECONDS = 30.0
"""How long a read waits for its access record. A record whose log's head is
held elsewhere (a session left open) waits in its lane as long as that lasts;
its read gives up at this, so such reads cannot take every server thread."""


def no_log(tenant: str) -> status_pb2.Status:
    """NOT_FOUND: what a read of a tenant with no log answers, nothing written.

    Not an empty answer: such a tenant is no collection that exists and is
    empty (AIP-193), and an answer without a record is never given.
    """
    return status.error(
        code_pb2.NOT_FOUND,
        f"tenant {tenant!r} has no events (no log yet); nothing was answered or recorded",
        "TENANT_NOT_FOUND",
        tenant_id=tenant,
    )


def unrecorded(record: Future[None]) -> status_pb2.Status | None:
    """Waits for an access record; None once it is durable, else what the read answers.

    No durable record, no answer: :func:`no_log` for a tenant with no log,
    else UNAVAILABLE :data:`UNRECORDED` (logged). A record given up on may
    still commit later: a record without an answer is allowed, never the reverse.
    """
    try:
        record.result(timeout=RECORD_WAIT_SECONDS)
    except TimeoutError:
        log.warning(
            "access record not committed within %.0f s (its log's head is held "
            "elsewhere); the read is refused",
            RECORD_WAIT_SECONDS,
        )
        return UNRECORDED
    except UnknownTenantError as exc:
        return no_log(exc.tenant)
    except Exception as exc:
        log.warning("access record not written: %s", exc)
        return UNRECORDED
    return None


def recorded(record: Future[None]) -> bool:
    """Whether an access record is durable (:func:`unrecorded` says what to answer if not)."""
    return unrecorded(record) is None
