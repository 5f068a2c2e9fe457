"""One EVENT_TYPE_RULE_CHANGE record per rule change made, none for one refused.

Until 2026-12-03 the service recorded a change before it took the tenant's head
lock and checked the rule again: an update refused there (ETAG_MISMATCH, a
concurrent writer won) still left a record of a change that never happened, an
update made again on the rule as it then was left one record per attempt, a
refused duplicate CreateRule and a DeleteRule of a rule deleted meanwhile left
one too. Now the record is written under the lock, after the check, with the
change (in its transaction, or just before its commit through the writer store).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from aiaudit.alerting.service import AlertingService, ConflictError, NotFoundError
from aiaudit.common.store.sql import SqlEventStore
from aiaudit.common.v1 import event_pb2
from tests.alerting.test_decisions import REFUSALS, _service
from tests.helpers import concurrently


def _records(store: SqlEventStore, tenant: str) -> list[tuple[str, str, str, bool]]:
    """(actor, action, source, enabled) of the tenant's RULE_CHANGE events, in log order.

    The source is the record's content (the message named ``source``), never an attribute
    (``test_a_rule_change_record_keeps_the_source_as_content``).
    """
    out = []
    for s in store.read_log(tenant, 0, 10_000):
        e = s.to_event()
        if e.event_type == event_pb2.EVENT_TYPE_RULE_CHANGE:
            a = e.attributes
            (said,) = [m.parts[0].text for m in e.input.messages if m.name == "source"]
            assert set(a) == {"rule.action", "rule.id", "rule.enabled"}  # the source: content only
            out.append(
                (
                    e.actor.user_id,
                    a["rule.action"].string_value,
                    said,
                    a["rule.enabled"].bool_value,
                )
            )
    return out


def _before_write(svc: AlertingService, first: Callable[[], None]) -> None:
    """Runs ``first`` (another caller's change) once, just before ``svc`` opens its write."""
    write = svc.store.write
    done = threading.Event()

    def hooked() -> sa.Connection:
        if not done.is_set():
            done.set()
            first()
        return write()

    svc.store.write = hooked  # type: ignore[method-assign]


def test_a_refused_stale_etag_update_leaves_no_record(
    store: SqlEventStore, consumer: SqlEventStore, tenant: str
) -> None:
    name = f"tenants/{tenant}/rules/refusals"
    bob, alice = _service(store, consumer), _service(store, consumer)
    created = bob.create_rule("admin", f"tenants/{tenant}", "refusals", REFUSALS, True)
    _before_write(alice, lambda: bob.update_rule("bob", name, None, False, etag=created.etag))
    with pytest.raises(ConflictError) as info:
        alice.update_rule("alice", name, REFUSALS.replace("gte: 4", "gte: 9"), None, created.etag)
    assert info.value.reason == "ETAG_MISMATCH"
    assert _records(store, tenant) == [
        ("admin", "create", REFUSALS, True),
        ("bob", "update", REFUSALS, False),
    ]
    # Refused without a race too: the etag is still the one from before bob's update.
    with pytest.raises(ConflictError):
        alice.update_rule("alice", name, None, True, etag=created.etag)
    assert len(_records(store, tenant)) == 2


def test_a_successful_update_leaves_exactly_one_record(
    store: SqlEventStore, consumer: SqlEventStore, tenant: str
) -> None:
    """Without an etag an update applies to the rule as it is at the write: one record,
    of what was written (it used to record each attempt, the first one of a rule
    that bob had changed by then)."""
    name = f"tenants/{tenant}/rules/refusals"
    bob, alice = _service(store, consumer), _service(store, consumer)
    created = bob.create_rule("admin", f"tenants/{tenant}", "refusals", REFUSALS, True)
    _before_write(alice, lambda: bob.update_rule("bob", name, None, False))
    edited = REFUSALS.replace("gte: 4", "gte: 9")
    alice.update_rule("alice", name, edited, None)
    got = bob.get_rule(name)
    assert (got.source, got.enabled) == (edited, False)
    updated = bob.update_rule("carol", name, None, True, etag=got.etag)
    assert updated.etag not in (created.etag, got.etag)
    assert _records(store, tenant) == [
        ("admin", "create", REFUSALS, True),
        ("bob", "update", REFUSALS, False),
        ("alice", "update", edited, False),
        ("carol", "update", edited, True),
    ]


def test_concurrent_updates_without_etag_leave_one_record_per_update(
    store: SqlEventStore, consumer: SqlEventStore, tenant: str
) -> None:
    """All callers get to their writes at once (the barrier): each update is applied,
    one after the other, with its one record (each used to record every attempt, and
    a caller that lost three times got CONCURRENT_UPDATE, its records left)."""
    name = f"tenants/{tenant}/rules/refusals"
    callers = 6
    services = [_service(store, consumer) for _ in range(callers)]
    services[0].create_rule("admin", f"tenants/{tenant}", "refusals", REFUSALS, True)
    barrier = threading.Barrier(callers)
    for svc in services:
        _before_write(svc, lambda: barrier.wait(timeout=30))
    applied: list[str] = []

    def update(i: int) -> None:
        source = REFUSALS.replace("gte: 4", f"gte: {10 + i}")
        services[i].update_rule(f"user-{i}", name, source, None)
        applied.append(source)

    concurrently(callers, update)  # re-raises the first failure
    assert len(applied) == callers
    updates = [r for r in _records(store, tenant) if r[1] == "update"]
    assert sorted(r[2] for r in updates) == sorted(applied)
    assert services[0].get_rule(name).source == updates[-1][2]  # the last record is the rule


def test_a_refused_duplicate_create_leaves_no_record(
    store: SqlEventStore, consumer: SqlEventStore, tenant: str
) -> None:
    parent = f"tenants/{tenant}"
    bob, alice = _service(store, consumer), _service(store, consumer)
    _before_write(alice, lambda: bob.create_rule("bob", parent, "refusals", REFUSALS, False))
    with pytest.raises(ConflictError) as info:
        alice.create_rule("alice", parent, "refusals", REFUSALS, True)
    assert info.value.reason == "RULE_EXISTS"
    with pytest.raises(ConflictError):
        alice.create_rule("alice", parent, "refusals", REFUSALS, True)
    assert _records(store, tenant) == [("bob", "create", REFUSALS, False)]


def test_a_delete_records_only_the_deletion_made(
    store: SqlEventStore, consumer: SqlEventStore, tenant: str
) -> None:
    name = f"tenants/{tenant}/rules/refusals"
    bob, alice = _service(store, consumer), _service(store, consumer)
    bob.create_rule("admin", f"tenants/{tenant}", "refusals", REFUSALS, True)
    _before_write(alice, lambda: bob.delete_rule("bob", name))
    with pytest.raises(NotFoundError):  # it used to "delete" it again, and record that
        alice.delete_rule("alice", name)
    with pytest.raises(ConflictError):  # a built-in rule is only disabled
        alice.delete_rule("alice", f"tenants/{tenant}/rules/prompt-injection")
    assert _records(store, tenant) == [
        ("admin", "create", REFUSALS, True),
        ("bob", "delete", REFUSALS, False),
    ]


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_on_sqlite_the_record_commits_with_the_change(
    store: SqlEventStore, consumer: SqlEventStore, tenant: str
) -> None:
    """SQLite appends the record in the rule write's own transaction: a write that fails
    takes its record with it (it used to stay). Through the writer store (PostgreSQL
    as the alerting login) the record commits just before the change."""
    name = f"tenants/{tenant}/rules/refusals"
    svc = _service(store, consumer)
    svc.create_rule("admin", f"tenants/{tenant}", "refusals", REFUSALS, True)

    def broken(*_args: object) -> None:
        raise RuntimeError("the disk is full")

    svc.store.put_rule = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        svc.update_rule("alice", name, None, False)
    assert svc.get_rule(name).enabled
    assert _records(store, tenant) == [("admin", "create", REFUSALS, True)]


def test_a_rule_longer_than_4096_characters_is_recorded_whole(
    store: SqlEventStore, consumer: SqlEventStore, tenant: str
) -> None:
    """The record kept the first 4,096 characters of a source of up to 64 KiB: what a long
    rule matched on went unrecorded (review, 2026-12-05)."""
    source = "# " + "x" * 5000 + "\n" + REFUSALS
    _service(store, consumer).create_rule("admin", f"tenants/{tenant}", "refusals", source, True)
    assert _records(store, tenant) == [("admin", "create", source, True)]
