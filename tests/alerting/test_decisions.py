"""Alert decisions that must not depend on restarts, other rules, clocks or concurrent edits."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import sqlalchemy as sa

from aiaudit.alerting.engine import Engine
from aiaudit.alerting.rulebook import RuleBook
from aiaudit.alerting.rules import compile_rule
from aiaudit.alerting.service import AlertingService, Changes, ConflictError, simulate
from aiaudit.alerting.store import AlertStore, unpack_samples
from aiaudit.alerting.tables import windows
from aiaudit.common.erasure import erase
from aiaudit.common.store import open_store
from aiaudit.common.store.sql import SqlEventStore
from aiaudit.common.v1 import event_pb2
from tests.alerting.conftest import alert_rows, append, drain, make_engine, put_rule
from tests.helpers import interaction, open_log

PII_BURST = """\
id: pii-burst
severity: high
when: {detector: pii}
window: {duration: 10m, group_by: [actor.user_id], aggregate: count, threshold: {gte: 3}}
"""
REFUSALS = """\
id: refusals
severity: medium
when: {field: output.messages.parts.text, contains: "cannot help"}
window: {duration: 10m, group_by: [actor.user_id], aggregate: count, threshold: {gte: 4}}
"""


def _pii(tenant: str, user: str = "eve") -> event_pb2.Event:
    return interaction(tenant, text="write to me at eve.smith@example.com please", user=user)


def _refused(tenant: str, user: str = "eve") -> event_pb2.Event:
    e = interaction(tenant, user=user)
    e.output.messages[0].parts[0].text = "Sorry, I cannot help with that"
    return e


# ---- 1. a restart replays erased events as they were evaluated the first time ----


@pytest.mark.parametrize("restart", [False, True], ids=["kept", "restarted"])
def test_an_erasure_before_a_restart_does_not_change_a_window_decision(
    store: SqlEventStore, consumer: SqlEventStore, privacy_url: str, tenant: str, restart: bool
) -> None:
    """Two PII events are counted, then erased; the third makes three, restart or not.

    The replay after a restart used to run the PII detector on the erased (empty)
    content: the window came back empty and the third event counted one.
    """
    put_rule(consumer, tenant, PII_BURST)
    first = [_pii(tenant) for _ in range(2)]
    append(store, first)
    engine = make_engine(consumer, window_save_events=20_000)  # rebuilt by replay
    assert drain(engine, tenant) == 2
    privacy = open_store(privacy_url)
    try:
        erased = erase(privacy, tenant, "request", "dpo", event_ids=[e.event_id for e in first])
    finally:
        privacy.close()
    assert sorted(erased.erased) == sorted(e.event_id for e in first)
    if restart:
        engine = make_engine(consumer, window_save_events=20_000)
    append(store, [_pii(tenant)])
    drain(engine, tenant)
    assert [(r.rule_id, r.occurrence_count) for r in alert_rows(consumer, tenant, "pii-burst")] == [
        ("pii-burst", 1)
    ]


def test_an_erasure_seen_by_a_replica_that_took_over_keeps_the_window(
    store: SqlEventStore, consumer: SqlEventStore, privacy_url: str, tenant: str
) -> None:
    """The same through a second replica that rebuilds the windows after the erasure record."""
    put_rule(consumer, tenant, PII_BURST)
    a, b = (make_engine(consumer, window_save_events=20_000) for _ in range(2))
    first = [_pii(tenant) for _ in range(2)]
    append(store, first)
    drain(a, tenant)
    privacy = open_store(privacy_url)
    try:
        erase(privacy, tenant, "request", "dpo", event_ids=[first[0].event_id])
    finally:
        privacy.close()
    drain(b, tenant)  # b processes the erasure record, rebuilding the windows first
    append(store, [_pii(tenant)])
    drain(a, tenant)  # a's kept windows are stale: it rebuilds them too
    assert [r.occurrence_count for r in alert_rows(consumer, tenant, "pii-burst")] == [1]


# ---- 2. a client's wrong clock does not move windows ----


def test_a_future_occurred_time_does_not_move_a_window(
    store: SqlEventStore, consumer: SqlEventStore, tenant: str
) -> None:
    """Windows slide on the log's receive time: an event stamped a century ahead is counted
    like the others and evicts nothing (confirmed, not a bug: regression test)."""
    put_rule(consumer, tenant, REFUSALS)
    engine = make_engine(consumer, window_save_events=1)
    future = _refused(tenant)
    future.occurred_time.FromDatetime(dt.datetime(2126, 1, 1))
    past = _refused(tenant)
    past.occurred_time.FromDatetime(dt.datetime(1990, 1, 1))
    append(store, [_refused(tenant), future])
    drain(engine, tenant)
    append(store, [past])
    drain(engine, tenant)
    with consumer.engine.connect() as c:
        (packed,) = c.execute(
            sa.select(windows.c.samples).where(
                windows.c.tenant == tenant, windows.c.rule_id == "refusals"
            )
        ).scalars()
    times = [t for t, _ in unpack_samples(packed)]
    now = dt.datetime.now(dt.UTC).timestamp()
    assert len(times) == 3 and all(now - 60 < t <= now + 1 for t in times)
    assert alert_rows(consumer, tenant, "refusals") == []
    append(store, [_refused(tenant)])
    drain(engine, tenant)
    assert [r.occurrence_count for r in alert_rows(consumer, tenant, "refusals")] == [1]


# ---- 3. an alert belongs to one rule ----

SAME_KEY = """\
id: {rid}
severity: low
when: {{field: actor.user_id, equals: eve}}
dedup: {{key: "user {{actor.user_id}}"}}
"""


def test_two_rules_with_the_same_dedup_key_raise_an_alert_each(
    store: SqlEventStore, consumer: SqlEventStore, tenant: str
) -> None:
    for rid in ("rule-a", "rule-b"):
        put_rule(consumer, tenant, SAME_KEY.format(rid=rid))
    engine = make_engine(consumer)
    append(store, [interaction(tenant, user="eve")])
    drain(engine, tenant)
    append(store, [interaction(tenant, user="eve")])
    drain(make_engine(consumer), tenant)  # read from the store, not from the kept alerts
    got = [(r.rule_id, r.dedup_key, r.occurrence_count) for r in alert_rows(consumer, tenant)]
    assert got == [("rule-a", "user eve", 2), ("rule-b", "user eve", 2)]


def test_a_dry_run_keeps_the_rules_apart_too() -> None:
    rules = [compile_rule(SAME_KEY.format(rid=rid)) for rid in ("rule-a", "rule-b")]
    now = dt.datetime.now(dt.UTC)
    got = simulate(rules, "t", [(interaction("t", user="eve"), now)])
    assert sorted((a.rule_id, a.occurrence_count) for a in got) == [
        ("rule-a", 1),
        ("rule-b", 1),
    ]


# ---- 4. UpdateRule ----


def _service(store: SqlEventStore, consumer: SqlEventStore, record=None) -> AlertingService:  # type: ignore[no-untyped-def]
    alerts_store = AlertStore(consumer.engine)
    return AlertingService(
        consumer,
        alerts_store,
        RuleBook(alerts_store),
        Changes(),
        record or (lambda e: append(store, [e])),
    )


@pytest.mark.parametrize("window_save_events", [1, 20_000])  # saved at once / rebuilt by replay
def test_an_updated_rule_starts_with_an_empty_window(
    store: SqlEventStore, consumer: SqlEventStore, tenant: str, window_save_events: int
) -> None:
    """Samples counted under the old conditions used to stay, so the first refusal after
    the edit made four and fired."""
    svc = _service(store, consumer)
    svc.create_rule("admin", f"tenants/{tenant}", "refusals", REFUSALS, True)
    engine: Engine = make_engine(consumer, window_save_events=window_save_events)
    append(store, [_refused(tenant) for _ in range(3)])
    drain(engine, tenant)
    edited = REFUSALS.replace('contains: "cannot help"', 'contains: "cannot"')
    svc.update_rule("admin", f"tenants/{tenant}/rules/refusals", edited, None)
    with consumer.engine.connect() as c:
        left = c.execute(
            sa.select(sa.func.count())
            .select_from(windows)
            .where(windows.c.tenant == tenant, windows.c.rule_id == "refusals")
        ).scalar()
    assert left == 0
    append(store, [_refused(tenant)])
    drain(engine, tenant)
    assert alert_rows(consumer, tenant, "refusals") == []
    append(store, [_refused(tenant) for _ in range(3)])
    drain(make_engine(consumer, window_save_events=window_save_events), tenant)
    assert [r.occurrence_count for r in alert_rows(consumer, tenant, "refusals")] == [1]


def test_concurrent_updates_of_one_rule_lose_neither(
    store: SqlEventStore, consumer: SqlEventStore, tenant: str
) -> None:
    """One caller changes the source while another disables the rule in between its read
    and its write: the read-modify-write used to write the source back enabled."""
    name = f"tenants/{tenant}/rules/refusals"
    other = _service(store, consumer)
    svc = _service(store, consumer)
    write = svc.store.write
    interleaved = threading.Event()

    def bob_first() -> sa.Connection:  # bob's update lands just before alice's write
        if not interleaved.is_set():
            interleaved.set()
            other.update_rule("bob", name, None, False)
        return write()

    svc.store.write = bob_first  # type: ignore[method-assign]
    other.create_rule("admin", f"tenants/{tenant}", "refusals", REFUSALS, True)
    edited = REFUSALS.replace("gte: 4", "gte: 5")
    svc.update_rule("alice", name, edited, None)
    got = other.get_rule(name)
    assert (got.source, got.enabled) == (edited, False)


def test_an_update_with_a_stale_etag_is_refused(
    store: SqlEventStore, consumer: SqlEventStore, tenant: str
) -> None:
    svc = _service(store, consumer)
    name = f"tenants/{tenant}/rules/refusals"
    created = svc.create_rule("admin", f"tenants/{tenant}", "refusals", REFUSALS, True)
    assert created.etag
    changed = svc.update_rule("alice", name, None, False, etag=created.etag)
    assert changed.etag and changed.etag != created.etag
    with pytest.raises(ConflictError) as info:
        svc.update_rule("bob", name, REFUSALS.replace("gte: 4", "gte: 5"), None, etag=created.etag)
    assert info.value.reason == "ETAG_MISMATCH"
    got = svc.get_rule(name)
    assert (got.source, got.enabled, got.etag) == (REFUSALS, False, changed.etag)
    # A built-in rule has an etag too, and its first override checks it.
    pack = svc.get_rule(f"tenants/{tenant}/rules/prompt-injection")
    assert pack.etag
    svc.update_rule("alice", pack_name := pack_name_of(tenant), None, False, etag=pack.etag)
    with pytest.raises(ConflictError):
        svc.update_rule("bob", pack_name, None, True, etag=pack.etag)


def pack_name_of(tenant: str) -> str:
    return f"tenants/{tenant}/rules/prompt-injection"


def test_update_rule_over_grpc_checks_the_etag(
    alerting_server: tuple[object, dict[str, str], str], tenant: str, store_url: str
) -> None:
    open_log(store_url, tenant)  # a rule change through * of a tenant with no log is NOT_FOUND
    import grpc
    from google.protobuf import field_mask_pb2

    from aiaudit.alerting.v1 import alerting_service_pb2 as pb
    from aiaudit.alerting.v1 import alerting_service_pb2_grpc as pb_grpc

    channel, _, _ = alerting_server
    stub = pb_grpc.AlertingServiceStub(channel)  # type: ignore[no-untyped-call]
    created = stub.CreateRule(
        pb.CreateRuleRequest(parent=f"tenants/{tenant}", rule=pb.Rule(source=REFUSALS))
    ).rule
    assert created.etag
    mask = field_mask_pb2.FieldMask(paths=["enabled"])
    rule = pb.Rule(name=created.name, enabled=False, etag=created.etag)
    updated = stub.UpdateRule(pb.UpdateRuleRequest(rule=rule, update_mask=mask)).rule
    assert not updated.enabled and updated.etag not in ("", created.etag)
    assert stub.GetRule(pb.GetRuleRequest(name=created.name)).rule.etag == updated.etag
    with pytest.raises(grpc.RpcError) as info:  # the etag read before that update
        stub.UpdateRule(pb.UpdateRuleRequest(rule=rule, update_mask=mask))
    assert info.value.code() == grpc.StatusCode.ABORTED
