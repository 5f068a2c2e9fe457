"""AlertingService handlers: proto <-> domain, permissions, errors mapped at the boundary."""

# ruff: noqa: N802 - gRPC method names are CamelCase

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from typing import TypeVar

import grpc
import sqlalchemy as sa
from google.rpc import code_pb2, status_pb2

from aiaudit.alerting import convert
from aiaudit.alerting.evaluate import reads_content, reads_personal
from aiaudit.alerting.model import Alert, StoredRule
from aiaudit.alerting.rulebook import compile_stored
from aiaudit.alerting.rules import Rule, RuleSyntaxError
from aiaudit.alerting.service import (
    AlertingService,
    Check,
    ConflictError,
    DeniedError,
    InvalidError,
    NotFoundError,
    Opens,
    OutOfRangeError,
    QuotaError,
    ResumePoint,
    ResumeTokenError,
    check_reason,
    parse_name,
    parse_parent,
    parse_resume_token,
    resume_token,
)
from aiaudit.alerting.v1 import alerting_service_pb2 as pb
from aiaudit.alerting.v1 import alerting_service_pb2_grpc as pb_grpc
from aiaudit.common import access, status
from aiaudit.common.access import AccessLog
from aiaudit.common.auth import Authenticator, Caller, end_expired
from aiaudit.common.keys.kek import KekError
from aiaudit.common.keys.seal import SealError
from aiaudit.common.restore import DamagedStoredEventError
from aiaudit.common.stream_slots import StreamSlots
from aiaudit.common.v1.event_pb2 import Severity

log = logging.getLogger(__name__)

SERVICE_NAME = "aiaudit.alerting.v1.AlertingService"
T = TypeVar("T")
MAX_TEST_ALERTS = 100
"""Alerts a TestRule answer holds: a rule firing on every event of 10,000 would answer
thousands, past what a gRPC message carries; `alert_count` says how many in all."""
NAMED_PER_RECORD = 100
"""Alert ids one WatchAlerts access record names (33 characters each: within the 4,096 an
access record keeps of a detail)."""

WATCH_STOPPED = status.error(
    code_pb2.UNAVAILABLE,
    "the store is unavailable; the watch stopped: open it again with the last resume_token",
    "STORE_UNAVAILABLE",
)
"""How a watch ends when the store fails while it runs. Until 2026-12-05 it ended UNKNOWN
with the driver's message, the statement's SQL included (review)."""


def _resume_refused(exc: ResumeTokenError) -> status_pb2.Status:
    """FAILED_PRECONDITION: a resume token, or a watch, this store cannot go on from.

    AIP-193: the token is well formed; the store is not in the state it needs.
    """
    return status.error(code_pb2.FAILED_PRECONDITION, str(exc), exc.reason, **exc.metadata)


class _UnrecordedError(Exception):
    """An access record submitted for the request did not commit; ``status`` is the answer."""

    def __init__(self, status: status_pb2.Status) -> None:
        self.status = status


def _wait_records(records: Sequence[Future[None]]) -> None:
    """Waits for every record; raises :class:`_UnrecordedError` if one did not commit.

    Its status is UNAVAILABLE, or NOT_FOUND for a tenant with no log (``access.unrecorded``).
    """
    failed = [f for f in [access.unrecorded(r) for r in records] if f is not None]
    if failed:
        raise _UnrecordedError(failed[0])


def _settled(records: Sequence[Future[None]], fn: Callable[[], T]) -> T:
    """Runs ``fn``, then waits for the access records whatever it did.

    No durable record, no answer, not even an error: NOT_FOUND or
    FAILED_PRECONDITION would tell an unrecorded caller which rule or alert
    exists, or what state it is in (``_guard`` answers UNAVAILABLE, or NOT_FOUND
    for a tenant with no log, instead).
    """
    try:
        return fn()
    finally:
        _wait_records(records)  # its error in place of the answer or the error


def _recorded_first(records: Sequence[Future[None]], fn: Callable[[], T]) -> T:
    """Waits for the access records, then runs ``fn``: for calls that change state.

    A change made before its record failed was answered UNAVAILABLE all the
    same: the caller saw a failure where the alert had changed, and its retry
    was refused (FAILED_PRECONDITION, already acknowledged).
    """
    _wait_records(records)
    return fn()


_TELLING = (NotFoundError, ConflictError, QuotaError)
"""What a rule change may be refused with after reading the tenant's rules (:meth:`_checked`)."""


def _outcome(refusal: NotFoundError | ConflictError | QuotaError) -> str:
    """The ``access.outcome`` of a refusal: its ErrorInfo reason, lower case (``not_found``)."""
    return ("NOT_FOUND" if isinstance(refusal, NotFoundError) else refusal.reason).lower()


def _guard(context: grpc.ServicerContext, fn: Callable[[], T]) -> T:
    """Runs a domain call, mapping its errors to rich statuses."""
    try:
        return fn()
    except _UnrecordedError as exc:
        status.abort(context, exc.status)
    except access.UnknownTenantError as exc:  # a rule change through * alone, no log
        status.abort(context, access.no_log(exc.tenant))
    except InvalidError as exc:
        status.abort(context, status.bad_request(f"invalid request: {exc}", exc.violations))
    except NotFoundError as exc:
        status.abort(context, status.error(code_pb2.NOT_FOUND, str(exc), "NOT_FOUND"))
    except QuotaError as exc:
        status.abort(
            context,
            status.error(code_pb2.RESOURCE_EXHAUSTED, str(exc), exc.reason, limit=str(exc.limit)),
        )
    except OutOfRangeError as exc:
        status.abort(
            context, status.error(code_pb2.OUT_OF_RANGE, str(exc), exc.reason, **exc.metadata)
        )
    except (KekError, SealError) as exc:  # content TestRule reads that does not open
        status.abort(context, status.sealing(exc))
    except DamagedStoredEventError as exc:  # a stored event TestRule reads, altered
        status.abort(context, status.damaged_event(exc))
    except ResumeTokenError as exc:
        status.abort(context, _resume_refused(exc))
    except ConflictError as exc:
        code = {
            "RULE_EXISTS": code_pb2.ALREADY_EXISTS,
            "ETAG_MISMATCH": code_pb2.ABORTED,
        }.get(exc.reason, code_pb2.FAILED_PRECONDITION)
        status.abort(context, status.error(code, str(exc), exc.reason))
    except sa.exc.SQLAlchemyError:
        status.abort(
            context,
            status.error(code_pb2.UNAVAILABLE, "store unavailable; retry", "STORE_UNAVAILABLE"),
        )
    raise AssertionError("unreachable")


def _page_asked(page_size: int, page_token: str) -> dict[str, str | int | bool]:
    """What a list's record says of the page asked for: its size as sent, its token if any."""
    asked: dict[str, str | int | bool] = {"page_size": page_size}
    if page_token:
        asked["page_token"] = page_token
    return asked


def _severity(value: int) -> None:
    """Refuses a severity the enum does not name: none reaches it, so the stream never sent."""
    if value not in Severity.values():
        raise InvalidError(
            [("min_severity", f"{value} is not a Severity (0-{max(Severity.values())})")]
        )


class AlertingHandlers(pb_grpc.AlertingServiceServicer):
    """The RPCs of AlertingService.

    Every read of audit data (rules, alerts, a dry run's events) submits an
    access record and answers, an error too, only once it is committed
    (UNAVAILABLE when it is not). Evidence excerpts quote content: a caller
    without ``content.read`` on the tenant gets them blank, as after an
    erasure; a rule's source is withheld from a caller who may not test it.
    """

    def __init__(
        self,
        service: AlertingService,
        auth: Authenticator,
        access_log: AccessLog,
        watches: StreamSlots,
    ) -> None:
        """Handlers over the domain service; ``access_log`` records reads and refusals."""
        self.service = service
        self.auth = auth
        self.access = access_log
        self.watches = watches

    def _caller(
        self,
        context: grpc.ServicerContext,
        permission: str,
        tenant_of: Callable[[], str],
        action: str,
        asked: Mapping[str, str | int | bool],
    ) -> Caller:
        """The caller, holding ``permission``; a refusal is recorded as ``action``, ``asked``.

        ``asked`` names the resource (``name``: the rule, the alert or the tenant's parent)
        and what else the request sent that its granted record would keep.
        """
        caller = self.auth.authenticate(context)
        tenant = _guard(context, tenant_of)
        self.access.require(context, caller, permission, tenant, action, asked)
        return caller

    def _checked(
        self,
        context: grpc.ServicerContext,
        caller: Caller,
        tenant: str,
        action: str,
        asked: Mapping[str, str | int | bool],
        fn: Callable[[], T],
    ) -> T:
        """``fn`` run under :meth:`_check`: a rule the caller may not run is refused, recorded.

        A refusal that tells what the tenant's rules are (no such rule, one
        exists, its etag changed, it is built-in, the tenant's rule count) is a
        read of them: it is recorded as ``action`` with ``access.outcome`` naming
        why, and answered once the record commits (else UNAVAILABLE), as GetRule
        answers its NOT_FOUND. Until 2026-12-05 UpdateRule, DeleteRule and
        CreateRule answered whether a rule exists with no record, even while the
        access log refused records (review).
        """

        def told() -> T:
            try:
                return fn()
            except _TELLING as exc:
                details = {**asked, "outcome": _outcome(exc)}
                try:
                    _wait_records([self._record(caller, tenant, action, details)])
                except _UnrecordedError as unrecorded:
                    raise unrecorded from exc
                raise

        try:
            return _guard(context, told)
        except DeniedError as exc:  # maybe about a stored rule (it exists): no record, no answer
            refused = self.access.refuse(
                caller, tenant, exc.permission, action, asked, exc.why, must_record=True
            )
            status.abort(context, refused)
            raise AssertionError("unreachable") from None

    def _record(
        self, caller: Caller, tenant: str, action: str, details: Mapping[str, str | int | bool]
    ) -> Future[None]:
        """Starts committing the access record; wait with :meth:`_recorded` before answering."""
        return self.access.submit(caller, tenant, action, details)

    @staticmethod
    def _recorded(context: grpc.ServicerContext, *records: Future[None]) -> None:
        """Waits for the access records: no durable record, no answer."""
        _guard(context, lambda: _settled(records, lambda: None))

    @staticmethod
    def _after(context: grpc.ServicerContext, record: Future[None], fn: Callable[[], T]) -> T:
        """A domain call made once its access record is submitted.

        The record is waited for on every exit: an unrecorded call answers
        UNAVAILABLE, whether the call succeeded or failed.
        """
        return _guard(context, lambda: _settled([record], fn))

    def _opens(self, caller: Caller, action: str) -> Opens:
        """Whether a rule change of ``caller`` may open the tenant's log: its record would.

        A rule change writes a record of its own (``EVENT_TYPE_RULE_CHANGE``) into
        the tenant's log. Through ``*`` alone, for a tenant with no log, it is
        answered NOT_FOUND (``TENANT_NOT_FOUND``) and nothing is written, as a
        read is; a key naming the tenant may open its log. Until 2026-12-07 any
        name a ``*`` key stored a rule for (a typo) became a log that the notary
        signed and the indexer indexed, holding a rule that never fired.
        """
        return lambda tenant: self.access.require_log(caller, tenant, action)

    @staticmethod
    def _check(caller: Caller, tenant: str) -> Check:
        """What a rule the caller tests or stores may read: content and PII need their permission.

        Whether a rule fires on an event tells what the event holds, so a rule
        reading content (a detector, message text, tool arguments) needs
        ``content.read`` and one reading personal data (``actor.ip_address``)
        ``pii.read``, as filtering on them in search does.

        A stored rule whose source no longer compiles (``None``) may read
        either, so it needs both, as :meth:`_shown` shows its source.
        """

        def check(rule: Rule | None) -> None:
            for permission, reads, what in (
                ("content.read", reads_content, "content (a detector or a content field)"),
                ("pii.read", reads_personal, "personal data (actor.ip_address)"),
            ):
                if caller.allows(permission, tenant):
                    continue
                if rule is None:
                    why = f"the stored rule no longer compiles, so it may read {what}"
                    raise DeniedError(permission, tenant, why)
                if reads(rule):
                    raise DeniedError(permission, tenant, f"rule {rule.id!r} reads {what}")

        return check

    @classmethod
    def _shown(cls, caller: Caller, tenant: str) -> Callable[[StoredRule], pb.Rule]:
        """Rules as the caller may see them: the source only if :meth:`_check` passes.

        A source quotes what its rule looks for (an IP address, a phrase in
        messages): whoever may not test or store the rule may not read it either.
        A stored source that no longer compiles is shown only to a caller with
        both permissions, as it is not known what it reads.
        """
        check = cls._check(caller, tenant)
        everything = caller.allows("content.read", tenant) and caller.allows("pii.read", tenant)

        def shown(r: StoredRule) -> pb.Rule:
            try:
                check(compile_stored(r.source))
            except DeniedError:
                return convert.rule(r, source=False)
            except RuleSyntaxError:
                return convert.rule(r, source=everything)
            return convert.rule(r, source=True)

        return shown

    def CreateRule(
        self, request: pb.CreateRuleRequest, context: grpc.ServicerContext
    ) -> pb.CreateRuleResponse:
        """Validates and stores a rule; the change is an audit event.

        The rule is stored with ``rule.enabled`` as sent: a proto3 ``bool`` has no
        presence, so a request without it asks for a disabled rule (the README says so).
        """
        action = "alerting.create_rule"
        asked = {"name": request.parent, "rule": request.rule_id}
        caller = self._caller(
            context, "rules.write", lambda: parse_parent(request.parent), action, asked
        )
        tenant = parse_parent(request.parent)
        check = self._check(caller, tenant)
        stored = self._checked(
            context, caller, tenant, action, asked,
            lambda: self.service.create_rule(
                caller.principal, request.parent, request.rule_id, request.rule.source,
                request.rule.enabled, check, self._opens(caller, action),
                key_id=caller.key_id, roles=caller.roles,
            ),
        )  # fmt: skip
        return pb.CreateRuleResponse(rule=self._shown(caller, stored.tenant)(stored))

    def GetRule(
        self, request: pb.GetRuleRequest, context: grpc.ServicerContext
    ) -> pb.GetRuleResponse:
        """One rule; the read is audited."""
        caller = self._caller(
            context, "rules.read", lambda: parse_name(request.name, "rules")[0],
            "alerting.get_rule", {"name": request.name},
        )  # fmt: skip
        tenant, rule_id = parse_name(request.name, "rules")
        record = self._record(caller, tenant, "alerting.get_rule", {"rule": rule_id})
        found = self._after(context, record, lambda: self.service.get_rule(request.name))
        return pb.GetRuleResponse(rule=self._shown(caller, tenant)(found))

    def ListRules(
        self, request: pb.ListRulesRequest, context: grpc.ServicerContext
    ) -> pb.ListRulesResponse:
        """Rules of a tenant, built-in pack first; the read is audited."""
        caller = self._caller(
            context, "rules.read", lambda: parse_parent(request.parent),
            "alerting.list_rules", {"name": request.parent},
        )  # fmt: skip
        tenant = parse_parent(request.parent)
        page = _guard(
            context,
            lambda: self.service.list_rules(request.parent, request.page_size, request.page_token),
        )
        shown = self._shown(caller, tenant)
        rules = [shown(r) for r in page.items]  # type: ignore[arg-type]
        asked = {
            **_page_asked(request.page_size, request.page_token),
            "returned": len(rules),
        }
        self._recorded(
            context,
            *(
                self._record(caller, tenant, "alerting.list_rules", {**asked, "rules": part})
                for part in access.named_parts([r.rule_id for r in page.items])  # type: ignore[attr-defined]
            ),
        )
        return pb.ListRulesResponse(rules=rules, next_page_token=page.next_token)

    def UpdateRule(
        self, request: pb.UpdateRuleRequest, context: grpc.ServicerContext
    ) -> pb.UpdateRuleResponse:
        """Replaces source and/or enabled (update_mask; empty = both); checks an etag given."""
        action = "alerting.update_rule"
        asked = {"name": request.rule.name}
        caller = self._caller(
            context, "rules.write", lambda: parse_name(request.rule.name, "rules", "rule.name")[0],
            action, asked,
        )  # fmt: skip
        paths = set(request.update_mask.paths) or {"source", "enabled"}
        unknown = paths - {"source", "enabled"}
        if unknown:
            status.abort(
                context,
                status.bad_request(
                    "invalid update_mask",
                    [("update_mask", f"unknown paths {sorted(unknown)}; use source, enabled")],
                ),
            )
        source = request.rule.source if "source" in paths else None
        enabled = request.rule.enabled if "enabled" in paths else None
        tenant = parse_name(request.rule.name, "rules", "rule.name")[0]
        stored = self._checked(
            context, caller, tenant, action, asked,
            lambda: self.service.update_rule(
                caller.principal, request.rule.name, source, enabled, request.rule.etag,
                self._check(caller, tenant), self._opens(caller, action),
                key_id=caller.key_id, roles=caller.roles,
            ),
        )  # fmt: skip
        return pb.UpdateRuleResponse(rule=self._shown(caller, tenant)(stored))

    def DeleteRule(
        self, request: pb.DeleteRuleRequest, context: grpc.ServicerContext
    ) -> pb.DeleteRuleResponse:
        """Deletes a tenant rule (built-in ones are disabled instead).

        Checked against the stored rule as an update of its flag alone is: a
        caller who may not turn a rule off may not delete it either.
        """
        action = "alerting.delete_rule"
        asked = {"name": request.name}
        caller = self._caller(
            context, "rules.write", lambda: parse_name(request.name, "rules")[0], action, asked
        )
        tenant = parse_name(request.name, "rules")[0]
        self._checked(
            context, caller, tenant, action, asked,
            lambda: self.service.delete_rule(
                caller.principal, request.name, self._check(caller, tenant),
                self._opens(caller, action), key_id=caller.key_id, roles=caller.roles,
            ),
        )  # fmt: skip
        return pb.DeleteRuleResponse()

    def TestRule(
        self, request: pb.TestRuleRequest, context: grpc.ServicerContext
    ) -> pb.TestRuleResponse:
        """Dry run over stored events; the read is audited with the rule tested.

        A rule reading content or personal data needs ``content.read`` or
        ``pii.read``: which events it fires on tells what they hold. The record
        is submitted once the request is checked, before any event is read, and
        waited for whatever the reads did: until 2026-12-05 it followed them, and
        a read that failed (sealed content that does not open: DATA_LOSS naming
        the event) was answered unrecorded (review).
        """
        action = "alerting.test_rule"
        asked = {"name": request.parent, "filter": request.filter, "query": request.source}
        caller = self._caller(
            context, "rules.read", lambda: parse_parent(request.parent), action, asked
        )
        tenant = parse_parent(request.parent)
        self.access.require(context, caller, "events.read", tenant, action, asked)
        records: list[Future[None]] = []

        def reading(count: int) -> None:
            # The source is what was looked for (a regex over messages, say): kept as the
            # record's content ("query"), like a searched phrase, with the filter.
            details: dict[str, str | int | bool] = {
                "filter": request.filter,
                "query": request.source,
                "evaluated": count,
            }
            records.append(self._record(caller, tenant, action, details))

        alerts, evaluated = self._checked(
            context, caller, tenant, action, asked,
            lambda: _settled(records, lambda: self.service.test_rule(
                request.parent, request.source, request.filter, request.max_events,
                self._check(caller, tenant), reading,
            )),
        )  # fmt: skip
        content = caller.allows("content.read", tenant)
        return pb.TestRuleResponse(
            alerts=[convert.alert(a, content=content) for a in alerts[:MAX_TEST_ALERTS]],
            evaluated_count=evaluated,
            alert_count=len(alerts),
        )

    def ListAlerts(
        self, request: pb.ListAlertsRequest, context: grpc.ServicerContext
    ) -> pb.ListAlertsResponse:
        """Alerts newest first; the read is audited."""
        caller = self._caller(
            context, "alerts.read", lambda: parse_parent(request.parent),
            "alerting.list_alerts", {"name": request.parent, "filter": request.filter},
        )  # fmt: skip
        tenant = parse_parent(request.parent)
        page = _guard(
            context,
            lambda: self.service.list_alerts(
                request.parent, request.filter, request.page_size, request.page_token
            ),
        )
        asked = {
            "filter": request.filter,
            **_page_asked(request.page_size, request.page_token),
            "returned": len(page.items),
        }
        self._recorded(
            context,
            *(
                self._record(caller, tenant, "alerting.list_alerts", {**asked, "alerts": part})
                for part in access.named_parts([a.alert_id for a in page.items])  # type: ignore[attr-defined]
            ),
        )
        content = caller.allows("content.read", tenant)
        return pb.ListAlertsResponse(
            alerts=[convert.alert(a, content=content) for a in page.items],  # type: ignore[arg-type]
            next_page_token=page.next_token,
            resume_token=page.resume_token,
        )

    def _transition(
        self,
        context: grpc.ServicerContext,
        name: str,
        action: str,
        change: Callable[[str], Alert],
        validate: Callable[[], None] = lambda: None,
    ) -> pb.Alert:
        """Acknowledge or resolve: the alert comes back whole, so it is a read too.

        ``validate`` checks the rest of the request once the caller may ask, before
        anything is recorded or read. The change waits for its record: unrecorded,
        the alert stays as it was.
        """
        caller = self._caller(
            context, "alerts.write", lambda: parse_name(name, "alerts")[0], action, {"name": name}
        )
        _guard(context, validate)
        tenant, alert_id = parse_name(name, "alerts")
        record = self._record(caller, tenant, action, {"alert": alert_id})
        a = _guard(context, lambda: _recorded_first([record], lambda: change(caller.principal)))
        return convert.alert(a, content=caller.allows("content.read", tenant))

    def AcknowledgeAlert(
        self, request: pb.AcknowledgeAlertRequest, context: grpc.ServicerContext
    ) -> pb.AcknowledgeAlertResponse:
        """Firing -> acknowledged."""
        alert = self._transition(
            context, request.name, "alerting.acknowledge_alert",
            lambda who: self.service.acknowledge(who, request.name),
        )  # fmt: skip
        return pb.AcknowledgeAlertResponse(alert=alert)

    def ResolveAlert(
        self, request: pb.ResolveAlertRequest, context: grpc.ServicerContext
    ) -> pb.ResolveAlertResponse:
        """-> resolved, with the reason (4 KiB at most, no U+0000): its ``resolve_reason``."""
        alert = self._transition(
            context, request.name, "alerting.resolve_alert",
            lambda who: self.service.resolve(who, request.name, request.reason),
            lambda: check_reason(request.reason),
        )  # fmt: skip
        return pb.ResolveAlertResponse(alert=alert)

    def WatchAlerts(
        self, request: pb.WatchAlertsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.WatchAlertsResponse]:
        """Streams alert changes of the tenant until the client goes away.

        The subscription is recorded, then every alert sent: the alerts each
        look found are named in records (at most ``NAMED_PER_RECORD`` a record)
        committed together before any of them is sent. Each message carries
        the ``resume_token`` of its change; a request with one resumes after it.
        A token of another store, or of a history this store no longer holds
        (restored from a backup, then changed), is FAILED_PRECONDITION
        (``RESUME_TOKEN_OTHER_STORE``, ``RESUME_TOKEN_OTHER_HISTORY``), and so
        ends a stream the store is restored or replaced under.
        """
        caller = self._caller(
            context, "alerts.read", lambda: parse_parent(request.parent),
            "alerting.watch_alerts", {"name": request.parent},
        )  # fmt: skip
        tenant = parse_parent(request.parent)
        _guard(context, lambda: _severity(request.min_severity))
        point = _guard(context, lambda: parse_resume_token(request.resume_token, tenant))
        self.watches.take_or_abort(
            context, caller.principal, "WATCH_STREAMS_EXHAUSTED", "close one, or poll ListAlerts"
        )
        try:
            yield from self._watch(request, context, caller, tenant, point)
        finally:
            self.watches.give_back(caller.principal)

    def _watch(
        self,
        request: pb.WatchAlertsRequest,
        context: grpc.ServicerContext,
        caller: Caller,
        tenant: str,
        point: ResumePoint | None,
    ) -> Iterator[pb.WatchAlertsResponse]:
        asked: dict[str, str | int | bool] = {"min_severity": int(request.min_severity)}
        if point is not None:
            asked["resume_after"] = point.after
        self._recorded(context, self._record(caller, tenant, "alerting.watch_alerts", asked))
        content = caller.allows("content.read", tenant)
        sub = _guard(context, lambda: self.service.subscribe(tenant, point))
        context.send_initial_metadata(())  # the client knows it is subscribed from here on
        # Authenticated once, when it opened: the stream ends when the token does.
        stop = lambda: not context.is_active() or caller.expired()  # noqa: E731
        try:
            for look in self.service.watch(sub, tenant, int(request.min_severity), stop):
                if caller.expired():  # found after the end: not sent
                    break
                found = look.alerts
                parts = [
                    found[i : i + NAMED_PER_RECORD] for i in range(0, len(found), NAMED_PER_RECORD)
                ]
                records = [
                    self._record(
                        caller,
                        tenant,
                        "alerting.watch_alerts.sent",
                        {"alerts": ",".join(a.alert_id for a in part), "returned": len(part)},
                    )
                    for part in parts
                ]
                self._recorded(context, *records)
                for a in found:
                    yield pb.WatchAlertsResponse(
                        alert=convert.alert(a, content=content),
                        resume_token=resume_token(tenant, a.change_seq, look.vouch),
                    )
        except ResumeTokenError as exc:
            log.warning("WatchAlerts of tenant %r stopped: %s", tenant, exc)
            status.abort(context, _resume_refused(exc))
        except sa.exc.SQLAlchemyError as exc:
            # The driver's message quotes the statement: it goes to the log, not to the caller.
            log.warning("WatchAlerts of tenant %r stopped: the store failed: %s", tenant, exc)
            status.abort(context, WATCH_STOPPED)
        if caller.expired():
            end_expired(context)


def add_to_server(server: grpc.Server, handlers: AlertingHandlers) -> None:
    """Registers the service."""
    pb_grpc.add_AlertingServiceServicer_to_server(handlers, server)  # type: ignore[no-untyped-call]
