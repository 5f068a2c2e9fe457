"""WatchAlerts resumes: each message carries a `resume_token`, and a watch opened with one
streams every alert changed after it, those changed while no watch was open first.

Found by a review (2026-12-05): a watch started at the tenant's head, so whatever changed
while a client reconnected (a new alert, an acknowledgement, a fold, a scrub) was never
streamed, and ListAlerts, paged by create time, could not find those updates either.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import queue
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import psycopg
import pytest
import sqlalchemy as sa
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from aiaudit.alerting.rulebook import RuleBook
from aiaudit.alerting.service import AlertingService, Changes, ResumePoint, ResumeTokenError
from aiaudit.alerting.store import AlertStore
from aiaudit.alerting.v1 import alerting_service_pb2 as pb
from aiaudit.alerting.v1 import alerting_service_pb2_grpc as pb_grpc
from aiaudit.common.store import open_store
from tests.alerting.conftest import bare_alert, serving
from tests.alerting.test_service import RULE, Server, send, violations
from tests.conftest import Postgres, _database
from tests.helpers import interaction, open_log, wait_until


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
    alerting_server: Server, tenant: str, store_url: str
) -> None:
    open_log(store_url, tenant)  # a read of a tenant with no log is NOT_FOUND
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


def _decoded(token: str) -> dict[str, object]:
    out = json.loads(base64.urlsafe_b64decode(token))
    assert isinstance(out, dict)
    return out


def _encoded(payload: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


def _forged(token: str, **changed: object) -> str:
    """A token the service returned, with some of what it holds changed."""
    return _encoded({**_decoded(token), **changed})


def _error_info(error: grpc.RpcError) -> tuple[str, dict[str, str]]:
    st = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert st is not None
    info = error_details_pb2.ErrorInfo()
    assert st.details[0].Unpack(info)
    return info.reason, dict(info.metadata)


def test_a_resume_token_not_returned_for_the_parent_or_ahead_of_it_is_refused(
    alerting_server: Server, tenant: str, store_url: str
) -> None:
    for log in (tenant, f"{tenant}-other"):
        open_log(store_url, log)  # a read of a tenant with no log is NOT_FOUND
    channel, _, _ = alerting_server
    stub = pb_grpc.AlertingServiceStub(channel)  # type: ignore[no-untyped-call]
    parent = f"tenants/{tenant}"
    other = stub.ListAlerts(pb.ListAlertsRequest(parent=f"{parent}-other")).resume_token
    head = stub.ListAlerts(pb.ListAlertsRequest(parent=parent)).resume_token
    assert _decoded(head)["after"] == 0
    rules_page = _encoded({"o": 3})
    for token in ("x", "[[[", other, rules_page, _forged(head, after=-1)):
        error = _refusal(stub.WatchAlerts(pb.WatchAlertsRequest(parent=parent, resume_token=token)))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, token
        assert [f for f, _ in violations(error)] == ["resume_token"], token
    # Ahead of the tenant's changes: the store does not hold what the token followed.
    ahead = _forged(head, after=5, head=5)
    error = _refusal(stub.WatchAlerts(pb.WatchAlertsRequest(parent=parent, resume_token=ahead)))
    assert error.code() == grpc.StatusCode.OUT_OF_RANGE
    assert "resume_token" in (error.details() or "")
    assert _error_info(error) == ("RESUME_TOKEN_AHEAD", {"field": "resume_token", "head": "0"})


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
    open_log(store_url, tenant)  # a rule change through * of a tenant with no log is NOT_FOUND
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


# ---- tokens bound to the store and to the history they followed (review, 2026-12-06) ----
#
# A token held a bare change sequence: given to another store, or to this one restored from
# a backup and written since, it was taken as a position there, and the client silently
# missed alerts or was sent another history's.

_RESYNC = "read the alerts again with ListAlerts and watch from its resume_token"


def _fire(channel: grpc.Channel, tenant: str, *users: str) -> None:
    """Sends one big-output interaction per user and waits until each one's alert is listed."""
    stub = pb_grpc.AlertingServiceStub(channel)  # type: ignore[no-untyped-call]
    listed = pb.ListAlertsRequest(parent=f"tenants/{tenant}", page_size=1000)
    for user in users:
        send(channel, [interaction(tenant, user=user)])
    wanted = {f"big-output:{u}" for u in users}
    wait_until(lambda: wanted <= {a.dedup_key for a in stub.ListAlerts(listed).alerts})


def _resumed(stub: pb_grpc.AlertingServiceStub, parent: str, token: str) -> grpc.RpcError:
    """The refusal of a watch resumed from ``token`` (a stream that opened runs out its
    deadline: the refusal is then DEADLINE_EXCEEDED)."""
    request = pb.WatchAlertsRequest(parent=parent, resume_token=token)
    return _refusal(stub.WatchAlerts(request, timeout=15))


def _refused_as(error: grpc.RpcError, reason: str) -> None:
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
    assert "resume_token" in (error.details() or "") and _RESYNC in (error.details() or "")
    assert _error_info(error)[0] == reason
    assert _error_info(error)[1]["field"] == "resume_token"


@contextlib.contextmanager
def _another_store(store_url: str, alerting_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A second, empty store of the same kind: (database URL, alerting URL)."""
    if store_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'other.db'}"
        open_store(url, run_migrations=True).close()
        yield url, url
        return
    with _database() as other:
        database = other.admin_dsn.rsplit("/", 1)[1]
        # aiaudit_alerting is a role of the cluster: the same login, in the other database.
        yield other.app_url, alerting_url.rsplit("/", 1)[0] + f"/{database}"


def test_a_resume_token_of_another_store_is_refused(
    store_url: str,
    alerting_url: str,
    tmp_path: Path,
    tenant: str,
) -> None:
    """Another database (another deployment or region, a new one) with the same tenant: its
    numbers mean other changes. A's token after its first alert, given to B with three, was
    taken as a position there: B's second and third alerts were streamed as if they were
    what A changed next, and a client of A would have missed them had B's been A's."""
    parent = f"tenants/{tenant}"
    rule = pb.CreateRuleRequest(parent=parent, rule=pb.Rule(source=RULE, enabled=True))
    (tmp_path / "a").mkdir()
    open_log(store_url, tenant)  # a rule change through * of a tenant with no log is NOT_FOUND
    with serving(store_url, alerting_url, tmp_path / "a") as (channel, _, _):
        stub = pb_grpc.AlertingServiceStub(channel)  # type: ignore[no-untyped-call]
        stub.CreateRule(rule)
        listed = stub.ListAlerts(pb.ListAlertsRequest(parent=parent)).resume_token
        watch = _Stream(stub, pb.WatchAlertsRequest(parent=parent))
        _fire(channel, tenant, "u1")
        (first,) = watch.take(1)
        watch.close()
    (tmp_path / "b").mkdir()
    with (
        _another_store(store_url, alerting_url, tmp_path) as (other_url, other_alerting),
        serving(other_url, other_alerting, tmp_path / "b") as (channel, _, _),
    ):
        stub = pb_grpc.AlertingServiceStub(channel)  # type: ignore[no-untyped-call]
        open_log(other_url, tenant)
        stub.CreateRule(rule)
        _fire(channel, tenant, "u1", "u2", "u3")
        for token in (first.resume_token, listed):
            _refused_as(_resumed(stub, parent, token), "RESUME_TOKEN_OTHER_STORE")
        # B's own tokens resume as before.
        own = stub.ListAlerts(pb.ListAlertsRequest(parent=parent)).resume_token
        resumed = _Stream(stub, pb.WatchAlertsRequest(parent=parent, resume_token=own))
        _fire(channel, tenant, "u4")
        assert _seen(resumed.take(1)) == [("big-output:u4", pb.ALERT_STATE_FIRING, 1, "")]
        resumed.close()


def test_a_token_from_before_tokens_named_their_store_is_refused(
    alerting_server: Server, tenant: str
) -> None:
    """A token of the earlier form names no store: nothing tells whether this one gave it."""
    channel, _, _ = alerting_server
    stub = pb_grpc.AlertingServiceStub(channel)  # type: ignore[no-untyped-call]
    parent = f"tenants/{tenant}"
    unbound = _encoded({"tenant": tenant, "after": 0})
    error = _resumed(stub, parent, unbound)
    _refused_as(error, "RESUME_TOKEN_OTHER_STORE")
    assert "issued before tokens named their store" in (error.details() or "")


def _engine_as_owner(store_url: str, request: pytest.FixtureRequest) -> sa.Engine:
    if store_url.startswith("sqlite"):
        return sa.create_engine(store_url, connect_args={"timeout": 30})
    pg: Postgres = request.getfixturevalue("postgres")
    return sa.create_engine(pg.admin_url)


Backup = dict[str, list[dict[str, object]]]


def _backup(owner: sa.Engine, tenant: str) -> Backup:
    """The tenant's rows of every alerting table, as a backup holds them."""
    meta = sa.MetaData()
    meta.reflect(owner, only=lambda name, _: name.startswith("alerting_"))
    with owner.connect() as conn:
        return {
            name: [dict(r._mapping) for r in conn.execute(sa.select(t).where(t.c.tenant == tenant))]
            for name, t in meta.tables.items()
            if "tenant" in t.c
        }


def _restore(owner: sa.Engine, tenant: str, backup: Backup) -> None:
    """Puts the tenant's alerting rows back as the backup holds them, in one transaction."""
    meta = sa.MetaData()
    meta.reflect(owner, only=list(backup))
    with owner.begin() as conn:
        for name, rows in backup.items():
            t = meta.tables[name]
            conn.execute(sa.delete(t).where(t.c.tenant == tenant))
            if rows:
                conn.execute(sa.insert(t), rows)


def test_a_store_restored_then_changed_refuses_later_tokens_and_ends_live_watches(
    alerting_server: Server, tenant: str, store_url: str, request: pytest.FixtureRequest
) -> None:
    """Restored from a backup taken after the first alert, then written again: the numbers
    the lost changes had are given to new ones. A token of the lost history was refused
    only while the head was behind it (RESUME_TOKEN_AHEAD); once new changes passed it, it
    was taken as a position, and the alerts changed in between were never streamed. A
    watch open across the restore went on from its number: silent until the new history
    passed it, and the changes numbered up to it were never sent."""
    open_log(store_url, tenant)  # a rule change through * of a tenant with no log is NOT_FOUND
    channel, _, _ = alerting_server
    stub = pb_grpc.AlertingServiceStub(channel)  # type: ignore[no-untyped-call]
    parent = f"tenants/{tenant}"
    stub.CreateRule(pb.CreateRuleRequest(parent=parent, rule=pb.Rule(source=RULE, enabled=True)))
    owner = _engine_as_owner(store_url, request)
    try:
        _fire(channel, tenant, "u1")
        backup = _backup(owner, tenant)
        live = stub.WatchAlerts(pb.WatchAlertsRequest(parent=parent), timeout=60)
        live.initial_metadata()  # subscribed
        _fire(channel, tenant, "u2", "u3")
        got = [next(live), next(live)]
        assert [m.alert.dedup_key for m in got] == ["big-output:u2", "big-output:u3"]
        lost = got[-1].resume_token
        _restore(owner, tenant, backup)
        ahead = _resumed(stub, parent, lost)
        assert ahead.code() == grpc.StatusCode.OUT_OF_RANGE  # as before: the head is behind it
        # The watch ends at once, before the changes given the numbers it is past.
        with pytest.raises(grpc.RpcError) as ended:
            next(live)
        assert ended.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert _error_info(ended.value)[0] == "RESUME_TOKEN_OTHER_HISTORY"
        assert _RESYNC in (ended.value.details() or "")
        _fire(channel, tenant, "u4", "u5", "u6")  # the numbers u2 and u3 had, and one more
        error = _resumed(stub, parent, lost)
        _refused_as(error, "RESUME_TOKEN_OTHER_HISTORY")
        # Read again and watched from there: every later change, and the new history's
        # tokens resume.
        listed = stub.ListAlerts(pb.ListAlertsRequest(parent=parent))
        assert sorted(a.dedup_key for a in listed.alerts) == [
            f"big-output:u{i}" for i in (1, 4, 5, 6)
        ]
        again = _Stream(
            stub, pb.WatchAlertsRequest(parent=parent, resume_token=listed.resume_token)
        )
        _fire(channel, tenant, "u7")
        (seventh,) = again.take(1)
        assert _seen([seventh]) == [("big-output:u7", pb.ALERT_STATE_FIRING, 1, "")]
        again.close()
        after_seventh = _Stream(
            stub, pb.WatchAlertsRequest(parent=parent, resume_token=seventh.resume_token)
        )
        _fire(channel, tenant, "u8")
        assert [m.alert.dedup_key for m in after_seventh.take(1)] == ["big-output:u8"]
        after_seventh.close()
    finally:
        owner.dispose()


def _alert_changed(store: AlertStore, tenant: str, key: str) -> None:
    """A new alert of dedup key ``key``, written as the engine writes one (the next number)."""
    with store.write() as conn, conn.begin():
        seq = store.lock_head(conn, tenant) + 1
        alert = dataclasses.replace(bare_alert(tenant, change_seq=seq), dedup_key=key)
        store.insert_alert(conn, dataclasses.replace(alert, alert_id=uuid.uuid4().hex))
        store.set_head(conn, tenant, seq)


def test_a_restore_between_the_reads_of_one_look_ends_the_watch(
    store_url: str, alerting_url: str, tenant: str, request: pytest.FixtureRequest
) -> None:
    """A look read the changes, then the head and epoch that vouch for them, in statements
    of their own (on PostgreSQL each saw what had committed when it ran). The store restored
    between the two (to a backup of the first change), then changed up to past what the
    look had read: the look sent the lost history's second and third changes under the new
    history's position, the watch went on from there, and the new history's second and
    third changes were never sent; the look's tokens resumed as if they had been. Now a
    look reads in one snapshot: the lost history's changes go out under the lost history's
    position, and the next look ends the watch before the new history's changes are sent.
    The restore lands in the statement's own event, after the changes were read. (SQLite:
    a look was one snapshot already, the engine BEGINs and a WAL reader keeps the snapshot
    of its first read; the case keeps it so.)"""
    events = open_store(alerting_url)
    owner = _engine_as_owner(store_url, request)
    alerts = AlertStore(events.engine)
    service = AlertingService(events, alerts, RuleBook(alerts), Changes())
    armed = False

    def between(_c: object, _cur: object, statement: str, *_: object) -> None:
        nonlocal armed
        if armed and "alerting_alerts.change_seq >" in statement:
            armed = False
            _restore(owner, tenant, backup)
            for key in ("b2", "b3", "b4"):  # numbered 2 to 4 in the new history
                _alert_changed(alerts, tenant, key)

    sa.event.listen(events.engine, "after_cursor_execute", between)
    try:
        _alert_changed(alerts, tenant, "a1")
        backup = _backup(owner, tenant)
        sub = service.subscribe(tenant)
        _alert_changed(alerts, tenant, "a2")
        _alert_changed(alerts, tenant, "a3")
        looks = service.watch(sub, tenant, 0, lambda: False)
        armed = True
        first = next(looks)
        assert not armed  # the restore landed after the look's changes were read
        assert [a.dedup_key for a in first.alerts] == ["a2", "a3"]
        assert first.vouch.head == 3  # the history they were read in
        service.changes.notify()  # the next look at once
        with pytest.raises(ResumeTokenError) as ended:
            next(looks)
        assert ended.value.reason == "RESUME_TOKEN_OTHER_HISTORY"
        for after in (2, 3):  # the look's tokens follow the lost history
            with pytest.raises(ResumeTokenError) as refused:
                service.subscribe(tenant, ResumePoint(after, first.vouch))
            assert refused.value.reason == "RESUME_TOKEN_OTHER_HISTORY"
    finally:
        sa.event.remove(events.engine, "after_cursor_execute", between)
        events.close()
        owner.dispose()


def test_a_store_restored_and_changed_up_to_the_watchs_number_ends_the_watch(
    store_url: str, alerting_url: str, tenant: str, request: pytest.FixtureRequest
) -> None:
    """An idle look compared the head alone with the watch's number: the store restored (to
    a backup of the first change) and then changed up to exactly that number held no change
    past it, so the watch went on silent until the new history passed it, and the new
    history's changes of the numbers it had were never sent. Now a head at the watch's
    number set by another epoch is checked, and the watch ends. A head set again without a
    change by another writer (a window save of a new process) passes that check."""
    events = open_store(alerting_url)
    owner = _engine_as_owner(store_url, request)
    alerts = AlertStore(events.engine)
    service = AlertingService(events, alerts, RuleBook(alerts), Changes(), watch_interval=0.05)
    looks_taken = 0

    def stop() -> bool:  # called as each look begins
        nonlocal looks_taken
        looks_taken += 1
        if looks_taken == 3:  # after the second look: restored, then number 2 again
            _restore(owner, tenant, backup)
            _alert_changed(AlertStore(events.engine), tenant, "b2")
        return looks_taken > 4  # the old code looked on in silence: ended after four looks

    try:
        _alert_changed(alerts, tenant, "a1")
        backup = _backup(owner, tenant)
        sub = service.subscribe(tenant)
        _alert_changed(alerts, tenant, "a2")
        looks = service.watch(sub, tenant, 0, stop)
        first = next(looks)
        assert [a.dedup_key for a in first.alerts] == ["a2"]
        # Another writer sets the head again with no change, seen by the second look.
        other = AlertStore(events.engine)
        with other.write() as conn, conn.begin():
            other.set_head(conn, tenant, other.lock_head(conn, tenant))
        with pytest.raises(ResumeTokenError) as ended:
            next(looks)
        assert ended.value.reason == "RESUME_TOKEN_OTHER_HISTORY"
        assert looks_taken == 3  # the second look went on, the third ended the watch
    finally:
        events.close()
        owner.dispose()
