"""WatchAlerts resumes: each message carries a `resume_token`, and a watch opened with one
streams every alert changed after it, those changed while no watch was open first.

Found by a review (2026-12-05): a watch started at the tenant's head, so whatever changed
while a client reconnected (a new alert, an acknowledgement, a fold, a scrub) was never
streamed, and ListAlerts, paged by create time, could not find those updates either.
"""

from __future__ import annotations

import base64
import contextlib
import json
import queue
import sqlite3
import threading
from collections.abc import Iterator

import grpc
import psycopg
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from aiaudit.alerting.service import resume_token
from aiaudit.alerting.v1 import alerting_service_pb2 as pb
from aiaudit.alerting.v1 import alerting_service_pb2_grpc as pb_grpc
from tests.alerting.test_service import RULE, Server, send, violations
from tests.conftest import Postgres
from tests.helpers import interaction, wait_until


class _Stream:
    """A WatchAlerts stream, subscribed, drained on a thread."""

    def __init__(self, stub: pb_grpc.AlertingServiceStub, request: pb.WatchAlertsRequest) -> None:
        self.call = stub.WatchAlerts(request)
        self.call.initial_metadata()  # sent once the server has subscribed
        self.got: queue.Queue[pb.WatchAlertsResponse] = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        try:
            for r in self.call:
                self.got.put(r)
        except grpc.RpcError:
            pass  # cancelled at the end

    def take(self, n: int) -> list[pb.WatchAlertsResponse]:
        return [self.got.get(timeout=20) for _ in range(n)]

    def close(self) -> None:
        self.call.cancel()


def _seen(messages: list[pb.WatchAlertsResponse]) -> list[tuple[str, int, int, str]]:
    return [
        (m.alert.dedup_key, m.alert.state, m.alert.occurrence_count, m.alert.resolve_reason)
        for m in messages
    ]


def test_a_watch_resumed_streams_what_changed_meanwhile_once_in_order(
    alerting_server: Server, tenant: str
) -> None:
    channel, _, _ = alerting_server
    stub = pb_grpc.AlertingServiceStub(channel)  # type: ignore[no-untyped-call]
    parent = f"tenants/{tenant}"
    before = stub.ListAlerts(pb.ListAlertsRequest(parent=parent)).resume_token
    assert before  # list, then watch from it
    stub.CreateRule(pb.CreateRuleRequest(parent=parent, rule=pb.Rule(source=RULE, enabled=True)))
    first = _Stream(stub, pb.WatchAlertsRequest(parent=parent))
    send(channel, [interaction(tenant, user="u1")])
    (fired,) = first.take(1)
    a_key = "big-output:u1"
    assert _seen([fired]) == [(a_key, pb.ALERT_STATE_FIRING, 1, "")] and fired.resume_token
    first.close()
    # While no watch is open: B fires, A is acknowledged, B resolved, A folds a second hit.
    send(channel, [interaction(tenant, user="u2")])
    listed = pb.ListAlertsRequest(parent=parent, filter="rule = big-output")
    wait_until(lambda: len(stub.ListAlerts(listed).alerts) == 2)
    b = next(a for a in stub.ListAlerts(listed).alerts if a.dedup_key == "big-output:u2")
    stub.AcknowledgeAlert(pb.AcknowledgeAlertRequest(name=fired.alert.name))
    stub.ResolveAlert(pb.ResolveAlertRequest(name=b.name, reason="expected"))
    send(channel, [interaction(tenant, user="u1")])

    def folded() -> bool:
        return any(a.occurrence_count == 2 for a in stub.ListAlerts(listed).alerts)

    wait_until(folded)
    b_key = "big-output:u2"
    meanwhile = [
        (b_key, pb.ALERT_STATE_RESOLVED, 1, "expected"),
        (a_key, pb.ALERT_STATE_ACKNOWLEDGED, 2, ""),
    ]  # each once, in its latest state, in the order of its last change
    resumed = _Stream(stub, pb.WatchAlertsRequest(parent=parent, resume_token=fired.resume_token))
    got = resumed.take(2)
    assert _seen(got) == meanwhile
    # Nothing else was queued before it: the next message is the next change.
    stub.ResolveAlert(pb.ResolveAlertRequest(name=fired.alert.name, reason="done"))
    (last,) = resumed.take(1)
    assert _seen([last]) == [(a_key, pb.ALERT_STATE_RESOLVED, 2, "done")]
    resumed.close()
    # From the list's token, read before anything: every alert, once, in its latest state.
    whole = _Stream(stub, pb.WatchAlertsRequest(parent=parent, resume_token=before))
    assert _seen(whole.take(2)) == [meanwhile[0], _seen([last])[0]]
    whole.close()
    # From the last message's token: nothing but what comes next.
    after_last = _Stream(stub, pb.WatchAlertsRequest(parent=parent, resume_token=last.resume_token))
    send(channel, [interaction(tenant, user="u3")])
    (new,) = after_last.take(1)
    assert _seen([new]) == [("big-output:u3", pb.ALERT_STATE_FIRING, 1, "")]
    after_last.close()


def _refusal(call: grpc.Future) -> grpc.RpcError:  # type: ignore[type-arg]
    with pytest.raises(grpc.RpcError) as info:
        next(call)
    return info.value


def test_a_resume_token_not_returned_for_the_parent_or_ahead_of_it_is_refused(
    alerting_server: Server, tenant: str
) -> None:
    channel, _, _ = alerting_server
    stub = pb_grpc.AlertingServiceStub(channel)  # type: ignore[no-untyped-call]
    parent = f"tenants/{tenant}"
    other = stub.ListAlerts(pb.ListAlertsRequest(parent=f"{parent}-other")).resume_token
    rules_page = base64.urlsafe_b64encode(json.dumps({"o": 3}).encode()).decode()
    for token in ("x", "[[[", other, rules_page, resume_token(tenant, -1)):
        error = _refusal(stub.WatchAlerts(pb.WatchAlertsRequest(parent=parent, resume_token=token)))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, token
        assert [f for f, _ in violations(error)] == ["resume_token"], token
    # Ahead of the tenant's changes: the store does not hold what the token followed.
    head = stub.ListAlerts(pb.ListAlertsRequest(parent=parent)).resume_token
    assert head == resume_token(tenant, 0)
    error = _refusal(
        stub.WatchAlerts(pb.WatchAlertsRequest(parent=parent, resume_token=resume_token(tenant, 5)))
    )
    assert error.code() == grpc.StatusCode.OUT_OF_RANGE
    assert "resume_token" in (error.details() or "")
    st = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert st is not None
    info = error_details_pb2.ErrorInfo()
    assert st.details[0].Unpack(info)
    assert (info.reason, dict(info.metadata)) == (
        "RESUME_TOKEN_AHEAD",
        {"field": "resume_token", "head": "0"},
    )


@contextlib.contextmanager
def _alerts_unreadable(store_url: str, request: pytest.FixtureRequest) -> Iterator[None]:
    """The alerts table out of reach for a while, as a store failing under a watch."""
    if store_url.startswith("sqlite"):
        db = sqlite3.connect(store_url.removeprefix("sqlite:///"), timeout=30, isolation_level=None)
        db.execute("ALTER TABLE alerting_alerts RENAME TO alerting_alerts_away")
        try:
            yield
        finally:
            db.execute("ALTER TABLE alerting_alerts_away RENAME TO alerting_alerts")
            db.close()
        return
    pg: Postgres = request.getfixturevalue("postgres")
    with psycopg.connect(pg.admin_dsn, autocommit=True) as db:
        db.execute("REVOKE SELECT ON alerting_alerts FROM aiaudit_alerting, aiaudit_reader")
        try:
            yield
        finally:
            db.execute("GRANT SELECT ON alerting_alerts TO aiaudit_alerting, aiaudit_reader")


def test_a_watch_the_store_fails_under_ends_unavailable_and_resumes(
    alerting_server: Server, tenant: str, store_url: str, request: pytest.FixtureRequest
) -> None:
    """It ended UNKNOWN with the driver's message, the statement's SQL included (review,
    2026-12-05): now UNAVAILABLE, saying to open it again from the last resume_token."""
    channel, _, _ = alerting_server
    stub = pb_grpc.AlertingServiceStub(channel)  # type: ignore[no-untyped-call]
    parent = f"tenants/{tenant}"
    stub.CreateRule(pb.CreateRuleRequest(parent=parent, rule=pb.Rule(source=RULE, enabled=True)))
    watch = stub.WatchAlerts(pb.WatchAlertsRequest(parent=parent), timeout=30)
    watch.initial_metadata()  # subscribed
    send(channel, [interaction(tenant, user="u1")])
    last = next(watch)
    with _alerts_unreadable(store_url, request), pytest.raises(grpc.RpcError) as info:
        next(watch)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert info.value.details() == (
        "the store is unavailable; the watch stopped: open it again with the last resume_token"
    )
    st = rpc_status.from_call(info.value)  # type: ignore[arg-type]
    assert st is not None
    reason = error_details_pb2.ErrorInfo()
    assert st.details[0].Unpack(reason) and reason.reason == "STORE_UNAVAILABLE"
    send(channel, [interaction(tenant, user="u2")])
    resumed = stub.WatchAlerts(
        pb.WatchAlertsRequest(parent=parent, resume_token=last.resume_token), timeout=30
    )
    assert _seen([next(resumed)]) == [("big-output:u2", pb.ALERT_STATE_FIRING, 1, "")]
    resumed.cancel()
