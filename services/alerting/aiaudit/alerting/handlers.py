"""AlertingService handlers: proto <-> domain, permissions, errors mapped at the boundary."""

# ruff: noqa: N802 - gRPC method names are CamelCase

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

import grpc
import sqlalchemy as sa
from google.rpc import code_pb2

from aiaudit.alerting import convert
from aiaudit.alerting.service import (
    AlertingService,
    ConflictError,
    InvalidError,
    NotFoundError,
    parse_name,
    parse_parent,
)
from aiaudit.alerting.v1 import alerting_service_pb2 as pb
from aiaudit.alerting.v1 import alerting_service_pb2_grpc as pb_grpc
from aiaudit.common import status
from aiaudit.common.auth import Authenticator, Caller, require

SERVICE_NAME = "aiaudit.alerting.v1.AlertingService"
T = TypeVar("T")
Audit = Callable[[Caller, str, str, Mapping[str, str | int | bool]], None]


def _guard(context: grpc.ServicerContext, fn: Callable[[], T]) -> T:
    """Runs a domain call, mapping its errors to rich statuses."""
    try:
        return fn()
    except InvalidError as exc:
        status.abort(context, status.bad_request(f"invalid request: {exc}", exc.violations))
    except NotFoundError as exc:
        status.abort(context, status.error(code_pb2.NOT_FOUND, str(exc), "NOT_FOUND"))
    except ConflictError as exc:
        code = {
            "RULE_EXISTS": code_pb2.ALREADY_EXISTS,
            "ETAG_MISMATCH": code_pb2.ABORTED,
            "CONCURRENT_UPDATE": code_pb2.ABORTED,
        }.get(exc.reason, code_pb2.FAILED_PRECONDITION)
        status.abort(context, status.error(code, str(exc), exc.reason))
    except sa.exc.SQLAlchemyError:
        status.abort(
            context,
            status.error(code_pb2.UNAVAILABLE, "store unavailable; retry", "STORE_UNAVAILABLE"),
        )
    raise AssertionError("unreachable")


class AlertingHandlers(pb_grpc.AlertingServiceServicer):
    """The RPCs of AlertingService."""

    def __init__(self, service: AlertingService, auth: Authenticator, audit: Audit) -> None:
        """Handlers over the domain service."""
        self.service = service
        self.auth = auth
        self.audit = audit

    def _caller(
        self, context: grpc.ServicerContext, permission: str, tenant_of: Callable[[], str]
    ) -> Caller:
        caller = self.auth.authenticate(context)
        tenant = _guard(context, tenant_of)
        require(context, caller, permission, tenant)
        return caller

    def CreateRule(
        self, request: pb.CreateRuleRequest, context: grpc.ServicerContext
    ) -> pb.CreateRuleResponse:
        """Validates and stores a rule; the change is an audit event."""
        caller = self._caller(context, "rules.write", lambda: parse_parent(request.parent))
        stored = _guard(
            context,
            lambda: self.service.create_rule(
                caller.principal, request.parent, request.rule_id, request.rule.source,
                request.rule.enabled if request.HasField("rule") else True,
            ),
        )  # fmt: skip
        return pb.CreateRuleResponse(rule=convert.rule(stored))

    def GetRule(
        self, request: pb.GetRuleRequest, context: grpc.ServicerContext
    ) -> pb.GetRuleResponse:
        """One rule."""
        self._caller(context, "rules.read", lambda: parse_name(request.name, "rules")[0])
        return pb.GetRuleResponse(
            rule=convert.rule(_guard(context, lambda: self.service.get_rule(request.name)))
        )

    def ListRules(
        self, request: pb.ListRulesRequest, context: grpc.ServicerContext
    ) -> pb.ListRulesResponse:
        """Rules of a tenant, built-in pack first."""
        self._caller(context, "rules.read", lambda: parse_parent(request.parent))
        page = _guard(
            context,
            lambda: self.service.list_rules(request.parent, request.page_size, request.page_token),
        )
        return pb.ListRulesResponse(
            rules=[convert.rule(r) for r in page.items],  # type: ignore[arg-type]
            next_page_token=page.next_token,
        )

    def UpdateRule(
        self, request: pb.UpdateRuleRequest, context: grpc.ServicerContext
    ) -> pb.UpdateRuleResponse:
        """Replaces source and/or enabled (update_mask; empty = both); checks an etag given."""
        caller = self._caller(
            context, "rules.write", lambda: parse_name(request.rule.name, "rules", "rule.name")[0]
        )
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
        stored = _guard(
            context,
            lambda: self.service.update_rule(
                caller.principal, request.rule.name, source, enabled, request.rule.etag
            ),
        )
        return pb.UpdateRuleResponse(rule=convert.rule(stored))

    def DeleteRule(
        self, request: pb.DeleteRuleRequest, context: grpc.ServicerContext
    ) -> pb.DeleteRuleResponse:
        """Deletes a tenant rule (built-in ones are disabled instead)."""
        caller = self._caller(context, "rules.write", lambda: parse_name(request.name, "rules")[0])
        _guard(context, lambda: self.service.delete_rule(caller.principal, request.name))
        return pb.DeleteRuleResponse()

    def TestRule(
        self, request: pb.TestRuleRequest, context: grpc.ServicerContext
    ) -> pb.TestRuleResponse:
        """Dry run over stored events; reading events is audited."""
        caller = self._caller(context, "rules.read", lambda: parse_parent(request.parent))
        require(context, caller, "events.read", parse_parent(request.parent))
        tenant = parse_parent(request.parent)
        alerts, evaluated = _guard(
            context,
            lambda: self.service.test_rule(
                request.parent, request.source, request.filter, request.max_events
            ),
        )
        self.audit(
            caller, tenant, "alerting.test_rule", {"filter": request.filter, "evaluated": evaluated}
        )
        return pb.TestRuleResponse(
            alerts=[convert.alert(a) for a in alerts], evaluated_count=evaluated
        )

    def ListAlerts(
        self, request: pb.ListAlertsRequest, context: grpc.ServicerContext
    ) -> pb.ListAlertsResponse:
        """Alerts newest first; the read is audited."""
        caller = self._caller(context, "alerts.read", lambda: parse_parent(request.parent))
        page = _guard(
            context,
            lambda: self.service.list_alerts(
                request.parent, request.filter, request.page_size, request.page_token
            ),
        )
        self.audit(
            caller, parse_parent(request.parent), "alerting.list_alerts",
            {"filter": request.filter, "returned": len(page.items)},
        )  # fmt: skip
        return pb.ListAlertsResponse(
            alerts=[convert.alert(a) for a in page.items],  # type: ignore[arg-type]
            next_page_token=page.next_token,
        )

    def AcknowledgeAlert(
        self, request: pb.AcknowledgeAlertRequest, context: grpc.ServicerContext
    ) -> pb.AcknowledgeAlertResponse:
        """Firing -> acknowledged."""
        caller = self._caller(
            context, "alerts.write", lambda: parse_name(request.name, "alerts")[0]
        )
        a = _guard(context, lambda: self.service.acknowledge(caller.principal, request.name))
        return pb.AcknowledgeAlertResponse(alert=convert.alert(a))

    def ResolveAlert(
        self, request: pb.ResolveAlertRequest, context: grpc.ServicerContext
    ) -> pb.ResolveAlertResponse:
        """-> resolved, with the reason."""
        caller = self._caller(
            context, "alerts.write", lambda: parse_name(request.name, "alerts")[0]
        )
        a = _guard(
            context, lambda: self.service.resolve(caller.principal, request.name, request.reason)
        )
        return pb.ResolveAlertResponse(alert=convert.alert(a))

    def WatchAlerts(
        self, request: pb.WatchAlertsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.WatchAlertsResponse]:
        """Streams alert changes of the tenant until the client goes away."""
        caller = self._caller(context, "alerts.read", lambda: parse_parent(request.parent))
        tenant = parse_parent(request.parent)
        self.audit(
            caller, tenant, "alerting.watch_alerts", {"min_severity": int(request.min_severity)}
        )
        sub = self.service.subscribe(tenant)
        context.send_initial_metadata(())  # the client knows it is subscribed from here on
        stop = lambda: not context.is_active()  # noqa: E731
        for a in self.service.watch(sub, tenant, int(request.min_severity), stop):
            yield pb.WatchAlertsResponse(alert=convert.alert(a))


def add_to_server(server: grpc.Server, handlers: AlertingHandlers) -> None:
    """Registers the service."""
    pb_grpc.add_AlertingServiceServicer_to_server(handlers, server)  # type: ignore[no-untyped-call]
