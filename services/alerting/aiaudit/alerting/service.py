"""The alerting operations behind the RPCs, on domain types (no grpc).

Errors are domain exceptions that the handlers map to status codes.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import threading
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import sqlalchemy as sa

from aiaudit.alerting import fields, filters
from aiaudit.alerting.engine import evaluated, fold, folds, new_alert
from aiaudit.alerting.evaluate import evaluate_in_receive_order
from aiaudit.alerting.model import ACKNOWLEDGED, FIRING, OPEN_STATES, RESOLVED, Alert, StoredRule
from aiaudit.alerting.rulebook import RuleBook, compile_stored
from aiaudit.alerting.rules import (
    MAX_RULES,
    MAX_SOURCE_BYTES,
    MAX_TEXT_SCANS,
    SEVERITIES,
    Rule,
    RuleSyntaxError,
    compile_rule,
    text_scans,
)
from aiaudit.alerting.store import AlertStore, Position
from aiaudit.alerting.tables import alerts as alerts_t
from aiaudit.common import rfc3339, tenants
from aiaudit.common.restore import DamagedStoredEventError
from aiaudit.common.store.prepare import prepare
from aiaudit.common.store.schema import event_content as content_t
from aiaudit.common.store.schema import events as events_t
from aiaudit.common.store.sql import READ_BYTES, SqlEventStore, StoredEvent, with_fresh_keys
from aiaudit.common.v1 import event_pb2


class InvalidError(ValueError):
    """Bad input: (field, description) pairs."""

    def __init__(self, violations: list[tuple[str, str]]) -> None:
        """Violations name the request field."""
        super().__init__("; ".join(f"{f}: {d}" for f, d in violations))
        self.violations = violations


class DeniedError(PermissionError):
    """The caller lacks a permission on the tenant that the request needs (beyond the RPC's)."""

    def __init__(self, permission: str, tenant: str, why: str) -> None:
        """``why`` names what in the request needs the permission."""
        super().__init__(f"lacks {permission!r} on tenant {tenant!r}: {why}")
        self.permission = permission
        self.tenant = tenant
        self.why = why


Check = Callable[[Rule | None], None]
"""Raises DeniedError when the caller may not have this rule run (what it reads). ``None``:
a stored rule whose source no longer compiles, so what it reads is not known."""


_Changed = TypeVar("_Changed")

TEST_RULE_BYTES = READ_BYTES
"""Stored bytes (canonical forms and content) a TestRule reads past its newest event.

A dry run holds every event it evaluates at once, stored, parsed and as wire bytes,
and an event may be 4 MiB (``max_event_bytes``): up to 10,000 of them were tens of
gigabytes in the alerting process for one call (review, 2026-12-07). The newest
events within it are read; ``evaluated_count`` says how many."""

MAX_DRY_RUNS = 2
"""TestRule calls reading events at once in a process; more are RESOURCE_EXHAUSTED.

One holds up to ~180 MB while it runs (10,000 events of 2.5 KB, or TEST_RULE_BYTES of
large ones: its events stored, parsed and as wire bytes, and its alerts): the server's
64 RPC threads running them at once were gigabytes, past an alerting pod's 1 GiB."""
DRY_RUNS = threading.BoundedSemaphore(MAX_DRY_RUNS)


def _anyone(_rule: Rule | None) -> None:
    pass


Opens = Callable[[str], None]
"""Raises when a rule change may not open the tenant's log (its record the first entry):
asked once the request is valid, before anything is read or written. The handlers
refuse a tenant with no log that the caller reaches only through ``*``
(``AccessLog.require_log``)."""


def _any_log(_tenant: str) -> None:
    pass


def _check_stored(check: Check, source: str) -> None:
    """``check`` on a stored rule (a flag-only update, a delete): what it reads decides.

    Turning a rule off or deleting it decides what its alerts tell about events
    as much as its source does. A source that no longer compiles goes to
    ``check`` as ``None``.
    """
    try:
        rule = compile_stored(source)
    except RuleSyntaxError:
        rule = None
    check(rule)


def _stored_severity(current: StoredRule, enabled: bool) -> int:
    """The severity of a stored rule whose flag alone changes.

    A source that no longer compiles (stored before a check it now fails) keeps
    its stored severity and may be turned off: a rule the engine cannot compile
    must be possible to stop. It answered UNKNOWN (RuleSyntaxError unmapped)
    even to a caller allowed to see it (review, 2026-12-05). Turning it on is
    refused FAILED_PRECONDITION (``RULE_SOURCE_INVALID``): it needs a new source.
    """
    try:
        return compile_stored(current.source).severity
    except RuleSyntaxError as exc:
        if enabled:
            raise ConflictError(
                f"rule {current.rule_id!r}: its stored source no longer compiles ({exc}); it "
                "can be disabled or deleted as it is, and enabled only with a new source",
                "RULE_SOURCE_INVALID",
            ) from None
        return current.severity


def _scans(source: str) -> int:
    """``text_scans`` of a stored rule; 0 for one that no longer compiles (it runs none)."""
    try:
        return text_scans(compile_stored(source))
    except RuleSyntaxError:
        return 0


class NotFoundError(LookupError):
    """No such rule or alert."""


class QuotaError(Exception):
    """A tenant's quota would be exceeded (``reason``: which one; ``limit``: its value)."""

    def __init__(self, message: str, reason: str, limit: int) -> None:
        """``reason`` and ``limit`` go into ErrorInfo."""
        super().__init__(message)
        self.reason = reason
        self.limit = limit


class OutOfRangeError(Exception):
    """A position past what the store holds (``reason`` and ``metadata`` go into ErrorInfo)."""

    def __init__(self, message: str, reason: str, **metadata: str) -> None:
        """``reason`` names the case; ``metadata`` what the caller needs to see it."""
        super().__init__(message)
        self.reason = reason
        self.metadata = metadata


class ResumeTokenError(Exception):
    """A resume token (or a watch) this store cannot go on from: FAILED_PRECONDITION.

    Another store's, or another history's: ``reason`` and ``metadata`` go into ErrorInfo.
    """

    def __init__(self, message: str, reason: str, **metadata: str) -> None:
        """``reason`` names the case; ``metadata`` what the caller needs to see it."""
        super().__init__(message)
        self.reason = reason
        self.metadata = metadata


class ConflictError(Exception):
    """Already exists, or a state change that is not allowed."""

    def __init__(self, message: str, reason: str) -> None:
        """``reason`` goes into ErrorInfo."""
        super().__init__(message)
        self.reason = reason


def parse_parent(parent: str, field: str = "parent") -> str:
    """``tenants/{tenant}`` -> tenant."""
    parts = parent.split("/")
    if len(parts) != 2 or parts[0] != "tenants" or not tenants.valid(parts[1]):
        raise InvalidError(
            [(field, f"expected tenants/{{tenant}} ({tenants.RULE}), got {parent!r}")]
        )
    return parts[1]


_OBJECT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""What a rule's or an alert's id can be (rule ids are narrower, alert ids 32 hex digits):
anything else names nothing. On PostgreSQL an id holding U+0000 failed the lookup's
statement, answered UNAVAILABLE, "retry" (review, 2026-12-04)."""


def parse_name(name: str, kind: str, field: str = "name") -> tuple[str, str]:
    """``tenants/{tenant}/{kind}/{id}`` -> (tenant, id)."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "tenants" or parts[2] != kind or not parts[3]:
        raise InvalidError([(field, f"expected tenants/{{tenant}}/{kind}/{{id}}, got {name!r}")])
    if not tenants.valid(parts[1]):
        raise InvalidError([(field, f"tenant {parts[1]!r} is not {tenants.RULE}")])
    if not _OBJECT_ID.fullmatch(parts[3]):
        raise InvalidError([(field, f"id {parts[3]!r} is not 1-64 characters of [A-Za-z0-9._-]")])
    return parts[1], parts[3]


MAX_REASON_BYTES = 4096
"""UTF-8 bytes of a ResolveAlert ``reason``: a sentence or a ticket link, not a document
(until 2026-12-05 any size was stored, 3 MiB included, and returned with the alert)."""


def check_reason(reason: str, field: str = "reason") -> None:
    """Refuses a resolve reason the alert cannot keep: over the bound, or holding U+0000.

    PostgreSQL text cannot hold U+0000: until 2026-12-05 such a reason failed the
    alert's statement, answered UNAVAILABLE "retry", and every retry failed alike.
    """
    size = len(reason.encode())
    if size > MAX_REASON_BYTES:
        limit = f"{MAX_REASON_BYTES} bytes of UTF-8"
        raise InvalidError([(field, f"the reason is {size} bytes; the limit is {limit}")])
    if "\x00" in reason:
        raise InvalidError([(field, "must not contain U+0000")])


def _rule_violations(source: str, field: str) -> list[tuple[str, str]]:
    size = len(source.encode())
    if size > MAX_SOURCE_BYTES:  # refused before the YAML parser spends seconds on it
        limit = f"{MAX_SOURCE_BYTES} bytes ({MAX_SOURCE_BYTES // 1024} KiB)"
        return [(field, f"the rule source is {size} bytes; the limit is {limit}")]
    try:
        compile_rule(source)
    except RuleSyntaxError as exc:
        return [(field, str(e)) for e in exc.errors]
    return []


def _token(payload: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


def _untoken(token: str, field: str = "page_token") -> dict[str, object]:
    try:
        out = json.loads(base64.urlsafe_b64decode(token.encode()))
        assert isinstance(out, dict)
        return out
    except (ValueError, AssertionError, RecursionError):  # RecursionError: "[" * 100000
        raise InvalidError([(field, "not a token returned by this service")]) from None


def _offset(token: str) -> int:
    """The offset a ListRules token holds: a non-negative integer (-3 gave the last three)."""
    if not token:
        return 0
    start = _untoken(token).get("o")
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise InvalidError([("page_token", "not a token returned by this service")])
    return start


@dataclass(frozen=True)
class ResumePoint:
    """What a ``resume_token`` holds: a change sequence, and the position it was read with.

    ``after`` is where the watch goes on from; ``vouch`` is the store and the
    tenant's (head, epoch) read together with it (``head >= after``), which the
    store checks it still holds (:meth:`AlertStore.holds`).
    """

    after: int
    vouch: Position


def resume_token(tenant: str, change_seq: int, vouch: Position) -> str:
    """The WatchAlerts ``resume_token`` of a position in the tenant's alert changes.

    Bound to the tenant, to the store (its id) and to the history that led
    there (``vouch``: the tenant's head and epoch read at or after the change).
    """
    return _token(
        {
            "tenant": tenant,
            "after": change_seq,
            "store": vouch.store_id,
            "head": vouch.head,
            "epoch": vouch.epoch,
        }
    )


_UNBOUND = (
    "resume_token: issued before tokens named their store (2026-12-06), so it cannot be "
    "told from another store's; read the alerts again with ListAlerts and watch from its "
    "resume_token (or watch without one)"
)


def _count(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= 0


def parse_resume_token(token: str, tenant: str) -> ResumePoint | None:
    """The position a ``resume_token`` of this tenant holds; None when empty.

    Bound to the tenant: one returned for another parent (or a page token) is
    INVALID_ARGUMENT, as is anything this service did not return. A token of
    the earlier form (a bare sequence, naming no store) is ResumeTokenError
    ``RESUME_TOKEN_OTHER_STORE``: nothing tells whether this store gave it.
    """
    if not token:
        return None
    payload = _untoken(token, "resume_token")
    after = payload.get("after")
    if payload.get("tenant") != tenant or not _count(after):
        raise InvalidError(
            [("resume_token", f"not a resume token this service returned for tenants/{tenant}")]
        )
    assert isinstance(after, int)
    if set(payload) == {"tenant", "after"}:
        raise ResumeTokenError(_UNBOUND, "RESUME_TOKEN_OTHER_STORE", field="resume_token")
    store, head, epoch = payload.get("store"), payload.get("head"), payload.get("epoch")
    if (
        not isinstance(store, str)
        or not isinstance(epoch, str)
        or not _count(head)
        or len(store) > 64
        or len(epoch) > 64
    ):
        raise InvalidError(
            [("resume_token", f"not a resume token this service returned for tenants/{tenant}")]
        )
    assert isinstance(head, int)
    if head < after:
        raise InvalidError(
            [("resume_token", f"not a resume token this service returned for tenants/{tenant}")]
        )
    return ResumePoint(after, Position(store, head, epoch))


def _page_size(size: int, default: int = 50, limit: int = 1000) -> int:
    if size < 0:
        raise InvalidError([("page_size", "must not be negative")])
    return min(size or default, limit)


class Changes:
    """Wakes this process's WatchAlerts streams after alert changes commit here.

    Changes committed by other replicas are found by polling; changes committed
    by this process (the engine's batches, acknowledge/resolve) notify at once.
    The notification comes after the COMMIT, so a woken watcher finds them.
    """

    def __init__(self) -> None:
        """No watchers."""
        self._lock = threading.Lock()
        self._watchers: set[threading.Event] = set()

    def subscribe(self) -> threading.Event:
        """An event set on every change from now on."""
        wake = threading.Event()
        with self._lock:
            self._watchers.add(wake)
        return wake

    def unsubscribe(self, wake: threading.Event) -> None:
        """Stops waking the event."""
        with self._lock:
            self._watchers.discard(wake)

    def notify(self) -> None:
        """Some alert changed: every watcher looks again."""
        with self._lock:
            watchers = list(self._watchers)
        for wake in watchers:
            wake.set()


@dataclass(frozen=True)
class Subscription:
    """A WatchAlerts stream: its wake-up, the change sequence it starts after, its vouch.

    ``vouch``: the store's id and the tenant's head and epoch that vouch for ``after``.
    """

    wake: threading.Event
    after: int
    vouch: Position


@dataclass(frozen=True)
class Watched:
    """What one look of a watch found: the alerts to send, in change order.

    ``vouch``: the position read after them, which vouches for each one's ``resume_token``.
    """

    alerts: list[Alert]
    vouch: Position


_OTHER_STORE = (
    "resume_token: issued by another store (another database, deployment or region): its "
    "position means nothing here; read the alerts again with ListAlerts and watch from its "
    "resume_token (or watch without one)"
)
_OTHER_HISTORY = (
    "resume_token: this store no longer holds the alert changes the token followed (restored "
    "from a backup, then changed); read the alerts again with ListAlerts and watch from its "
    "resume_token (or watch without one)"
)
_WATCH_OTHER_STORE = (
    "the store behind the watch was replaced by another one; read the alerts again with "
    "ListAlerts and watch from its resume_token"
)
_WATCH_OTHER_HISTORY = (
    "the store no longer holds the alert changes the watch followed (restored from a backup, "
    "then changed); read the alerts again with ListAlerts and watch from its resume_token"
)


_ALERT_FILTER = frozenset({"state", "severity", "rule", "create_time"})
_EVENT_FILTER = {
    "event_type": events_t.c.event_type,
    "user_id": events_t.c.user_id,
    "application": events_t.c.application,
    "environment": events_t.c.environment,
    "model_provider": events_t.c.model_provider,
    "model_name": events_t.c.model_name,
    "session_id": events_t.c.session_id,
    "conversation_id": events_t.c.conversation_id,
    "correlation_id": events_t.c.correlation_id,
    "trace_id": events_t.c.trace_id,
    "occurred_time": events_t.c.occurred_time,
}


def _op(column: sa.ColumnElement[object], op: str, value: object) -> sa.ColumnElement[bool]:
    return {
        "=": lambda: column == value,
        "!=": lambda: column != value,
        "<": lambda: column < value,
        "<=": lambda: column <= value,
        ">": lambda: column > value,
        ">=": lambda: column >= value,
    }[op]()


def _event_value(term: filters.Term) -> object:
    """A TestRule filter's value as the events' column holds it.

    ``event_type`` by full or short name, as rules and search read it (the column holds
    the full name): ``event_type = interaction`` matched no event, and a name of no
    type answered an empty dry run instead of INVALID_ARGUMENT (until 2026-12-06).
    """
    if term.name == "occurred_time":
        return _time(term.value, "filter")
    if term.name == "event_type":
        try:
            return fields.compile_path("event_type").expand(term.value)
        except fields.FieldError as exc:
            raise InvalidError([("filter", f"event_type: {exc}")]) from None
    return term.value


def _time(value: str, field: str) -> dt.datetime:
    """A filter's time as search reads it (in UTC: SQLite compares the stored UTC texts)."""
    try:
        return rfc3339.parse(value)
    except ValueError as exc:
        raise InvalidError([(field, str(exc))]) from None


def _token_time(value: str) -> dt.datetime:
    """The time a page token carries: a stored time's ``isoformat`` (naive on SQLite: UTC)."""
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidError([("page_token", "not a token returned by this service")]) from None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Page:
    """A page of results."""

    items: list[object]
    next_token: str
    resume_token: str = ""
    """ListAlerts: the tenant's change position read before the page (see ``resume_token``)."""


class AlertingService:
    """Rules, alerts and dry runs over the alerting store."""

    def __init__(
        self,
        events: SqlEventStore,
        store: AlertStore,
        book: RuleBook,
        changes: Changes,
        record: Callable[[event_pb2.Event], None] | None = None,
        watch_interval: float = 0.25,
    ) -> None:
        """Rule changes are EVENT_TYPE_RULE_CHANGE events in the tenant's log.

        By default the event is appended through ``events`` in the very
        transaction that writes the rule, under the tenant's head lock: the
        record and the change commit together or not at all. ``record``, when
        given, commits the event through another connection instead, for a
        login that may not write the log (PostgreSQL, alerting as a login in
        ``aiaudit_alerting``: the suite's writer store records). It is called
        under the head lock, after the re-check and before the rule write
        commits, so a refused change leaves no record and no change commits
        without one. SQLite always takes the first way: it is one file with one
        writer at a time, so another connection could not write the record
        while the rule's transaction holds the lock.

        ``watch_interval``: seconds between WatchAlerts polls for other replicas' changes.
        """
        self.events = events
        self.store = store
        self.book = book
        self.changes = changes
        self.watch_interval = watch_interval
        sqlite = store.engine.dialect.name == "sqlite"
        self._record = None if sqlite else record

    def _audit_change(
        self,
        conn: sa.Connection,
        principal: str,
        tenant: str,
        action: str,
        rule_id: str,
        source: str,
        enabled: bool,
        key_id: str = "",
        roles: Collection[str] = (),
    ) -> None:
        """Records a rule change, in ``conn``'s transaction (see ``__init__``).

        ``key_id`` and ``roles``: the caller's API key (or token) and roles, named
        beside its principal as an access record names its reader.

        Called with the tenant's head lock held, once the change is known to
        apply and before it commits. The source can quote what the rule looks
        for (an IP address, a phrase): like a searched phrase in an access
        record (``access.QUOTING``) it is the event's content, a message named
        ``source`` (salted commitments in the leaf, shown only with
        ``content.read``, erasable). No hash of it beside: unsalted, a hash of a
        rule naming an IP address or a short phrase is guessed by trying them.
        """
        e = event_pb2.Event(
            event_id=f"rule-change-{uuid.uuid4()}",
            tenant_id=tenant,
            event_type=event_pb2.EVENT_TYPE_RULE_CHANGE,
            actor=event_pb2.Actor(
                user_id=principal,
                application="aiaudit-alerting",
                api_key_id=key_id,
                user_role=",".join(sorted(roles)),
            ),
        )
        e.occurred_time.GetCurrentTime()
        e.attributes["rule.action"].string_value = action
        e.attributes["rule.id"].string_value = rule_id
        e.attributes["rule.enabled"].bool_value = enabled
        said = e.input.messages.add(role=event_pb2.ROLE_USER, name="source")
        said.parts.add(text=source)  # whole: at most MAX_SOURCE_BYTES (until 2026-12-05, 4,096)
        if self._record is not None:
            self._record(e)
            return
        self.events.append_record(conn, prepare(e, dt.datetime.now(dt.UTC)))

    def _changing_rules(self, change: Callable[[sa.Connection], _Changed]) -> _Changed:
        """``change`` in a write transaction of its own, run again whole once if needed.

        Needed when the record's new data key expired at its insert
        (:func:`with_fresh_keys`: a Transit rotation and rewrap meanwhile), where
        until 2026-12-07 the rule change failed.
        """

        def once() -> _Changed:
            with self.store.write() as conn, conn.begin():
                return change(conn)

        return with_fresh_keys(once)

    # ---- rules ----

    def _find(self, conn: sa.Connection, tenant: str, rule_id: str) -> StoredRule | None:
        return next((r for r in self.book.stored(conn, tenant) if r.rule_id == rule_id), None)

    def _within_quota(self, conn: sa.Connection, tenant: str, rule: Rule, adding: bool) -> None:
        """Refuses ``rule`` (new when ``adding``, else replacing its namesake) past the quotas.

        The engine tests every rule of a tenant on each of its events, one pass
        for all tenants: without a bound one tenant's rules could slow every
        tenant's alerts. The rule count leaves the built-in pack out; the
        contains/regex count takes every rule the tenant runs, a built-in one
        whose source it replaced included.
        """
        others = [r for r in self.book.stored(conn, tenant) if r.rule_id != rule.id]
        own = sum(1 for r in others if not r.builtin)
        if adding and own >= MAX_RULES:
            raise QuotaError(
                f"tenant {tenant!r} has {own} rules, its limit ({MAX_RULES}): delete one",
                "RULES_PER_TENANT",
                MAX_RULES,
            )
        scans = text_scans(rule) + sum(_scans(r.source) for r in others)
        if scans > MAX_TEXT_SCANS:
            raise QuotaError(
                f"tenant {tenant!r}'s rules would hold {scans} contains/regex conditions, "
                f"over its limit ({MAX_TEXT_SCANS})",
                "TEXT_SCANS_PER_TENANT",
                MAX_TEXT_SCANS,
            )

    def create_rule(
        self,
        principal: str,
        parent: str,
        rule_id: str,
        source: str,
        enabled: bool,
        check: Check = _anyone,
        opens: Opens = _any_log,
        key_id: str = "",
        roles: Collection[str] = (),
    ) -> StoredRule:
        """Validates and stores a new rule (its id must match the source's id).

        ``opens`` is asked once the request is valid (bad input is INVALID_ARGUMENT
        whatever the tenant), before the tenant's rules are read. ``key_id``,
        ``roles``: the caller's, named in the change's record (:meth:`_audit_change`).
        """
        tenant = parse_parent(parent)
        violations = _rule_violations(source, "rule.source")
        if violations:
            raise InvalidError(violations)
        compiled = compile_rule(source)
        check(compiled)
        if rule_id and rule_id != compiled.id:
            raise InvalidError(
                [("rule_id", f"{rule_id!r} differs from the source's id {compiled.id!r}")]
            )
        opens(tenant)
        stored = StoredRule(
            tenant, compiled.id, source, enabled, compiled.severity, dt.datetime.now(dt.UTC)
        )

        def create(conn: sa.Connection) -> StoredRule:
            self.store.lock_head(conn, tenant)  # as updates: neither writes over the other
            if self._find(conn, tenant, compiled.id) is not None:
                raise ConflictError(f"rule {compiled.id!r} exists", "RULE_EXISTS")
            self._within_quota(conn, tenant, compiled, adding=True)
            self._audit_change(
                conn, principal, tenant, "create", compiled.id, source, enabled, key_id, roles
            )
            self.store.put_rule(conn, stored)
            return stored

        return self._changing_rules(create)

    def get_rule(self, name: str) -> StoredRule:
        """One rule (built-in or the tenant's)."""
        tenant, rule_id = parse_name(name, "rules")
        with self.store.engine.connect() as conn:
            found = self._find(conn, tenant, rule_id)
        if found is None:
            raise NotFoundError(f"no rule {name}")
        return found

    def list_rules(self, parent: str, page_size: int, page_token: str) -> Page:
        """Rules of a tenant, built-in first."""
        tenant = parse_parent(parent)
        size = _page_size(page_size)
        start = _offset(page_token)
        with self.store.engine.connect() as conn:
            every = self.book.stored(conn, tenant)
        items = every[start : start + size]
        more = start + size < len(every)
        return Page(list(items), _token({"o": start + size}) if more else "")

    def update_rule(
        self,
        principal: str,
        name: str,
        source: str | None,
        enabled: bool | None,
        etag: str = "",
        check: Check = _anyone,
        opens: Opens = _any_log,
        key_id: str = "",
        roles: Collection[str] = (),
    ) -> StoredRule:
        """Replaces the source and/or the enabled flag, and resets the rule's window samples.

        Under the tenant's head lock (which every rule writer and the engine's
        window saves take) it reads the rule, checks the ``etag`` if given (the
        one read back by the caller, AIP-154: otherwise ETAG_MISMATCH), records
        the change and writes it, in one transaction. Without an etag the
        change applies to the rule as it is then, so two concurrent updates of
        different fields both hold. Exactly one RULE_CHANGE record per update
        applied, none for one refused. The window samples were counted under
        the old rule: they go, and the engine counts only what arrives from now on.

        ``check`` sees the new source, or the stored rule when only the flag
        changes: turning a rule on or off decides what its alerts tell about
        events as much as its source does (and the answer returns the source).
        ``opens`` as for :meth:`create_rule`, once the new source is checked.
        """
        tenant, rule_id = parse_name(name, "rules", "rule.name")
        if source is not None:
            violations = _rule_violations(source, "rule.source")
            if violations:
                raise InvalidError(violations)
            compiled = compile_rule(source)
            if compiled.id != rule_id:
                raise InvalidError([("rule.source", f"the source's id must stay {rule_id!r}")])
            check(compiled)
        opens(tenant)

        def update(conn: sa.Connection) -> StoredRule:
            self.store.lock_head(conn, tenant)
            current = self._find(conn, tenant, rule_id)
            if current is None:
                raise NotFoundError(f"no rule {name}")
            if source is None:
                _check_stored(check, current.source)
            if etag and etag != current.etag:
                raise ConflictError(f"rule {name} changed since read (etag)", "ETAG_MISMATCH")
            new_source = source if source is not None else current.source
            new_enabled = enabled if enabled is not None else current.enabled
            if source is not None:
                new_rule = compile_rule(source)
                self._within_quota(conn, tenant, new_rule, adding=False)
                severity = new_rule.severity
            else:
                severity = _stored_severity(current, new_enabled)
            stored = StoredRule(
                tenant,
                rule_id,
                new_source,
                new_enabled,
                severity,
                dt.datetime.now(dt.UTC),
                current.builtin,
            )
            self._audit_change(
                conn, principal, tenant, "update", rule_id, new_source, new_enabled, key_id, roles
            )
            self.store.put_rule(conn, stored)
            self.store.reset_windows(conn, tenant, rule_id)
            return stored

        return self._changing_rules(update)

    def delete_rule(
        self,
        principal: str,
        name: str,
        check: Check = _anyone,
        opens: Opens = _any_log,
        key_id: str = "",
        roles: Collection[str] = (),
    ) -> None:
        """Deletes a tenant rule; built-in rules can only be disabled.

        ``check`` sees the stored rule, as for an update of the flag alone:
        deleting a rule stops it as disabling it does (until 2026-12-05 a
        caller refused the one could do the other). ``opens`` as for
        :meth:`create_rule`, before the rule is looked for.
        """
        tenant, rule_id = parse_name(name, "rules")
        opens(tenant)

        def delete(conn: sa.Connection) -> None:
            self.store.lock_head(conn, tenant)  # as updates: neither writes over the other
            current = self._find(conn, tenant, rule_id)
            if current is None:
                raise NotFoundError(f"no rule {name}")
            _check_stored(check, current.source)
            if current.builtin:
                raise ConflictError(
                    f"{rule_id!r} is a built-in rule: disable it (UpdateRule enabled=false)",
                    "BUILTIN_RULE",
                )
            self._audit_change(
                conn, principal, tenant, "delete", rule_id, current.source, False, key_id, roles
            )
            self.store.delete_rule(conn, tenant, rule_id)

        self._changing_rules(delete)

    def test_rule(
        self,
        parent: str,
        source: str,
        filter_text: str,
        max_events: int,
        check: Check = _anyone,
        reading: Callable[[int], None] = lambda _: None,
    ) -> tuple[list[Alert], int]:
        """Dry run over stored events (oldest first): the alerts the rule would have raised.

        ``check`` sees the compiled rule before any event is read; ``reading`` is
        told how many events will be, before they are (the handler submits its
        access record there, so that a read that fails is recorded too).
        """
        tenant = parse_parent(parent)
        violations = _rule_violations(source, "source")
        try:
            terms = filters.parse(filter_text, frozenset(_EVENT_FILTER))
        except filters.FilterError as exc:
            violations.append(("filter", str(exc)))
        if max_events < 0:
            violations.append(("max_events", "must not be negative"))
        if violations:
            raise InvalidError(violations)
        rule = compile_rule(source)
        check(rule)
        limit = min(max_events or 1000, 10_000)
        where = [events_t.c.log_id == tenant]
        for t in terms:
            where.append(_op(_EVENT_FILTER[t.name], t.op, _event_value(t)))
        if not DRY_RUNS.acquire(blocking=False):
            raise QuotaError(
                f"{MAX_DRY_RUNS} TestRule calls are reading events in this process, its "
                "limit: try again shortly",
                "DRY_RUNS_EXHAUSTED",
                MAX_DRY_RUNS,
            )
        try:
            return self._dry_run(tenant, rule, where, limit, reading)
        finally:
            DRY_RUNS.release()

    def _dry_run(
        self,
        tenant: str,
        rule: Rule,
        where: list[sa.ColumnElement[bool]],
        limit: int,
        reading: Callable[[int], None],
    ) -> tuple[list[Alert], int]:
        """The alerts ``rule`` raises on the newest ``limit`` events matching ``where``.

        Those within :data:`TEST_RULE_BYTES` stored; ``reading`` is told how many
        before any content is read, their sizes included: when those cannot be read,
        it is told the events selected, as a read of them that fails is recorded.
        """
        ev, ct = events_t, content_t
        content = (  # each kept row's, by its full key
            sa.select(sa.func.length(ct.c.content))
            .where(
                ct.c.log_id == ev.c.log_id,
                ct.c.seq == ev.c.seq,
                ct.c.receive_time == ev.c.receive_time,
            )
            .scalar_subquery()
        )
        size = sa.func.length(ev.c.canonical) + sa.func.coalesce(content, 0)
        newest = sa.select(ev.c.seq).where(*where).order_by(ev.c.seq.desc()).limit(limit)
        try:
            with self.store.engine.connect() as conn:
                seqs = _within(
                    [(r[0], r[1]) for r in conn.execute(newest.add_columns(size))], TEST_RULE_BYTES
                )
        except sa.exc.SQLAlchemyError:
            with self.store.engine.connect() as conn:
                reading(len(conn.execute(newest).all()))
            raise
        reading(len(seqs))
        stored = self.events.read_sequences(tenant, seqs)
        events = [  # as the engine sees them
            _parsed(one, wire) for one, wire in zip(stored, evaluated(stored), strict=True)
        ]
        received = [s.receive_time for s in stored]
        return simulate([rule], tenant, list(zip(events, received, strict=True))), len(stored)

    # ---- alerts ----

    def list_alerts(self, parent: str, filter_text: str, page_size: int, page_token: str) -> Page:
        """Alerts newest first, filtered, a page at a time."""
        tenant = parse_parent(parent)
        size = _page_size(page_size)
        try:
            terms = filters.parse(filter_text, _ALERT_FILTER)
        except filters.FilterError as exc:
            raise InvalidError([("filter", str(exc))]) from None
        where = []
        for t in terms:
            if t.name == "state":
                value = t.value.lower().removeprefix("alert_state_")
                if value not in (FIRING, ACKNOWLEDGED, RESOLVED):
                    raise InvalidError(
                        [("filter", f"state {t.value!r}: firing, acknowledged or resolved")]
                    )
                where.append(_op(alerts_t.c.state, t.op, value))
            elif t.name == "severity":
                sev = SEVERITIES.get(t.value.lower().removeprefix("severity_"))
                if sev is None:
                    raise InvalidError(
                        [("filter", f"severity {t.value!r}: one of {list(SEVERITIES)}")]
                    )
                where.append(_op(alerts_t.c.severity, t.op, sev))
            elif t.name == "rule":
                where.append(_op(alerts_t.c.rule_id, t.op, t.value.rsplit("/", 1)[-1]))
            else:
                where.append(_op(alerts_t.c.create_time, t.op, _time(t.value, "filter")))
        after = None
        if page_token:
            tok = _untoken(page_token)
            last = str(tok.get("i"))
            if not _OBJECT_ID.fullmatch(last):
                raise InvalidError([("page_token", "not a token returned by this service")])
            after = (_token_time(str(tok.get("t"))), last)
        with self.store.engine.connect() as conn:
            # The head first: every change up to it is committed (writers commit in
            # its order), so the page shows at least those, and a watch resumed from it
            # misses none made after (one made between the two reads comes twice).
            here = self.store.position(conn, tenant)
            items = self.store.list_alerts(conn, tenant, where, after, size + 1)
        more = len(items) > size
        items = items[:size]
        token = (
            _token({"t": items[-1].create_time.isoformat(), "i": items[-1].alert_id})
            if more
            else ""
        )
        return Page(list(items), token, resume_token(tenant, here.head, here))

    def _transition(self, principal: str, name: str, to: str, reason: str = "") -> Alert:
        tenant, alert_id = parse_name(name, "alerts")
        now = dt.datetime.now(dt.UTC)
        with self.store.write() as conn, conn.begin():
            seq = self.store.lock_head(conn, tenant) + 1
            a = self.store.get_alert(conn, tenant, alert_id)
            if a is None:
                raise NotFoundError(f"no alert {name}")
            if to == ACKNOWLEDGED:
                if a.state != FIRING:
                    raise ConflictError(
                        f"alert is {a.state}, only a firing alert can be acknowledged",
                        "ALERT_STATE",
                    )
                a.acknowledged_by, a.acknowledge_time = principal, now
            else:
                if a.state not in OPEN_STATES:
                    raise ConflictError("alert is already resolved", "ALERT_STATE")
                a.resolved_by, a.resolve_time, a.resolve_reason = principal, now, reason
            a.state = to
            a.change_seq = seq
            self.store.update_alert(conn, a)
            self.store.set_head(conn, tenant, seq)
        self.changes.notify()
        return a

    def acknowledge(self, principal: str, name: str) -> Alert:
        """Firing -> acknowledged, with who and when."""
        return self._transition(principal, name, ACKNOWLEDGED)

    def resolve(self, principal: str, name: str, reason: str) -> Alert:
        """Firing or acknowledged -> resolved, with who, when and why (:func:`check_reason`)."""
        check_reason(reason)
        return self._transition(principal, name, RESOLVED, reason)

    def subscribe(self, tenant: str, point: ResumePoint | None = None) -> Subscription:
        """Starts watching: changes committed from now on (before the watcher is told).

        ``point`` (from a ``resume_token``): changes after its position
        instead, those committed while no watch was open first. Alerts are
        never deleted and each row carries its last change's number, so every
        alert changed since is found, in its latest state. The token must be
        this store's (ResumeTokenError ``RESUME_TOKEN_OTHER_STORE``), its
        position not past the tenant's head (restored from an older backup:
        OutOfRangeError) and the history it followed still this store's
        (restored, then changed: ResumeTokenError ``RESUME_TOKEN_OTHER_HISTORY``).
        """
        wake = self.changes.subscribe()
        try:
            with self.store.engine.connect() as conn:
                here = self.store.position(conn, tenant)
                if point is not None:
                    self._check(conn, tenant, point, here)
        except BaseException:
            self.changes.unsubscribe(wake)
            raise
        if point is None:
            return Subscription(wake, here.head, here)
        return Subscription(wake, point.after, point.vouch)

    def _check(self, conn: sa.Connection, tenant: str, point: ResumePoint, here: Position) -> None:
        """Raises unless this store holds the history ``point`` was read in, up to it."""
        if point.vouch.store_id != here.store_id:
            raise ResumeTokenError(_OTHER_STORE, "RESUME_TOKEN_OTHER_STORE", field="resume_token")
        if point.after > here.head:
            raise OutOfRangeError(
                f"resume_token: position {point.after} is ahead of the tenant's alert changes "
                f"({here.head}): the store does not hold what it followed (restored from an "
                "older backup?); read the alerts again with ListAlerts and watch from "
                "its resume_token",
                "RESUME_TOKEN_AHEAD",
                field="resume_token",
                head=str(here.head),
            )
        if not self.store.holds(conn, tenant, point.vouch.epoch, point.vouch.head):
            raise ResumeTokenError(
                _OTHER_HISTORY,
                "RESUME_TOKEN_OTHER_HISTORY",
                field="resume_token",
                head=str(here.head),
            )

    def watch(
        self, sub: Subscription, tenant: str, min_severity: int, stop: Callable[[], bool]
    ) -> Iterator[Watched]:
        """Changes of the tenant's alerts at or above a severity until ``stop`` says so.

        Tails the tenant's change sequence, so it sees changes committed by any
        replica on the database, each once, in commit order (an alert changed
        several times between two looks is sent once, in its latest state).
        Yields what each look found (never an empty batch), so the caller can
        record a batch's reads at once before it sends them.

        A look that finds changes, or the tenant's head behind the watch, first
        checks that the store still holds the history the watch followed (the
        position that vouched for the last look): a store restored from a
        backup under the watch, or replaced by another, would otherwise go on
        from a number that now means other changes, and the changes given the
        numbers it is past would never be sent. ResumeTokenError then, before
        anything of it is sent. An idle look costs one more read (the head and
        the epoch that set it): one at the watch's number but set by another
        epoch is checked too, since a store restored and then changed up to
        exactly that number holds no change past it, and the watch went on
        silent until the new history passed it. A writer that sets the head
        again without a change (a new process's window save) passes the check,
        and vouches for the watch from then on.

        A look reads in one snapshot (:meth:`AlertStore.snapshot`): on PostgreSQL
        each statement saw what had committed when it ran, so a store restored
        between the changes and the position, then changed past them, had the
        lost history's changes sent under the new history's position, and the
        new history's changes of those numbers were never sent.
        """
        after, vouch = sub.after, sub.vouch
        try:
            while not stop():
                sub.wake.clear()
                with self.store.snapshot() as conn:
                    found = self.store.changes(conn, tenant, after, 500)
                    # Nothing new: the head behind the watch, or at its number from another
                    # epoch, may be the store gone back (its next changes would take numbers
                    # the watch is past, never sent).
                    if found or self._moved_back(conn, tenant, after, vouch.epoch):
                        here = self.store.position(conn, tenant)
                        self._still(conn, tenant, vouch, here, found[-1].change_seq if found else 0)
                        vouch = here
                if found:
                    after = found[-1].change_seq
                    wanted = [a for a in found if a.severity >= min_severity]
                    if wanted:
                        yield Watched(wanted, here)
                if len(found) < 500:
                    sub.wake.wait(self.watch_interval)
        finally:
            self.changes.unsubscribe(sub.wake)

    def _moved_back(self, conn: sa.Connection, tenant: str, after: int, epoch: str) -> bool:
        """Whether the head is behind ``after``, or at it but set by another epoch."""
        head, by = self.store.head(conn, tenant)
        return head < after or by != epoch

    def _still(
        self, conn: sa.Connection, tenant: str, vouch: Position, here: Position, last: int
    ) -> None:
        """Raises unless the store is still the one, with the history, a watch followed."""
        if here.store_id != vouch.store_id:
            raise ResumeTokenError(_WATCH_OTHER_STORE, "RESUME_TOKEN_OTHER_STORE")
        if last > here.head or not self.store.holds(conn, tenant, vouch.epoch, vouch.head):
            raise ResumeTokenError(
                _WATCH_OTHER_HISTORY, "RESUME_TOKEN_OTHER_HISTORY", head=str(here.head)
            )


def _within(newest: Sequence[tuple[int, int | None]], budget: int) -> list[int]:
    """The sequences of the newest entries (newest first) whose stored bytes fit ``budget``.

    The newest always, whatever its size; then each older one while the total fits.
    """
    seqs: list[int] = []
    total = 0
    for seq, size in newest:
        total += int(size or 0)
        if seqs and total > budget:
            break
        seqs.append(int(seq))
    return seqs


def _parsed(stored: StoredEvent, wire: bytes | Exception) -> event_pb2.Event:
    """An event :func:`evaluated` gave; a damaged one raises DamagedStoredEventError.

    Its parser's error went out as UNKNOWN ("Expecting value: line 1 column 1").
    """
    if isinstance(wire, Exception):
        raise DamagedStoredEventError(stored, wire) from wire
    return event_pb2.Event.FromString(wire)


def simulate(
    rules: list[Rule], tenant: str, events: list[tuple[event_pb2.Event, dt.datetime]]
) -> list[Alert]:
    """Alerts rules would raise on events by receive time, with dedup and throttling, in memory."""
    times = [received.timestamp() for _, received in events]
    wire = [e.SerializeToString() for e, _ in events]
    hits = evaluate_in_receive_order(rules, wire, times)
    open_alerts: dict[tuple[str, str], Alert] = {}  # by rule and dedup key, as the engine
    out: list[Alert] = []
    for i, hit in hits:
        received = events[i][1]
        current = open_alerts.get((hit.rule.id, hit.dedup_key))
        if current is not None and folds(current, hit, received):
            fold(current, hit, received)
            continue
        a = new_alert(tenant, hit, received)
        open_alerts[(hit.rule.id, hit.dedup_key)] = a
        out.append(a)
    return out
