"""A record written in the caller's transaction whose new data key expired at its insert.

``append_record`` (a rule change recorded in the rule write's transaction) takes a
key wrapped ahead; past the bound once inserted (a Transit rotation and a rewrap
meanwhile) it raises ``KeysExpiredError`` and the caller's transaction rolls back.
The caller's operation now runs again, whole, with a fresh key, as
``append_group`` does. Real OpenBao, real PostgreSQL and SQLite; the services'
keyring reads a clock of the test's, moved past the bound at the key's insert.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from google.rpc import code_pb2

from aiaudit.alerting.rulebook import RuleBook
from aiaudit.alerting.service import AlertingService, Changes
from aiaudit.alerting.store import AlertStore
from aiaudit.common import status
from aiaudit.common.keys.kek import KekError
from aiaudit.common.keys.keyring import SPARE_SECONDS
from aiaudit.common.store import open_store
from aiaudit.common.store.sql import SqlEventStore
from aiaudit.common.v1 import event_pb2
from tests.conftest import Postgres
from tests.contract.test_content_kek import openbao  # noqa: F401
from tests.contract.test_content_key_spares import Services
from tests.contract.test_content_rewrap import readable
from tests.integrity.conftest import Vault, vault  # noqa: F401  (the session's OpenBao)

RULE = "id: big-output\nseverity: high\nwhen: {field: usage.output_tokens, gt: 15}\n"
EDITED = RULE.replace("gt: 15", "gt: 20")


class ExpiringAtInsert:
    """Makes the next data key a store inserts expire at its insert, once armed.

    :meth:`arm` wraps a spare under the KEK's current version, rotates the Transit
    key and moves the clock to just within the bound: the spare is taken as usable,
    and the hook moves the clock past the bound once its ``INSERT`` is sent (the
    insert waited, as behind a rewrap's count). ``expired`` counts those inserts.
    """

    def __init__(self, s: Services, store: SqlEventStore) -> None:
        self.s = s
        self.armed = False
        self.expired = 0

        @sa.event.listens_for(store.engine, "before_cursor_execute")
        def expire(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
            if self.armed and statement.startswith("INSERT INTO content_keys"):
                self.armed, self.expired = False, self.expired + 1
                self.s.clock.now += 2

    def arm(self) -> None:
        self.s.keys.stock(1)
        self.s.rotate()
        self.s.clock.now += SPARE_SECONDS - 1
        self.armed = True


def _rules(s: Services) -> tuple[SqlEventStore, AlertStore, AlertingService]:
    """The store, alert tables and rule service on the suite's own login (no
    ``alerting.database_url``), which writes the rules and their records in one transaction."""
    store = open_store(s.admin_url, keys=s.keys)
    assert isinstance(store, SqlEventStore)
    alerts = AlertStore(store.engine)
    return store, alerts, AlertingService(store, alerts, RuleBook(alerts), Changes())


def test_a_rule_change_whose_record_key_expired_is_made_again_once(
    openbao: Vault,  # noqa: F811
    sealed_store: Postgres | str,
) -> None:
    """Rule create, update and delete, each by a new subject (so its record needs a new
    data key) whose spare expires at its insert: each change applies once, with one
    record sealed under a key wrapped again under the rotated version. Until 2026-12-07
    each failed with ``KeysExpiredError`` (the rule change refused at a rotation)."""
    s = Services(openbao, sealed_store)
    store, alerts, service = _rules(s)
    expiring = ExpiringAtInsert(s, store)
    try:
        expiring.arm()
        service.create_rule("alice", "tenants/t", "big-output", RULE, True)
        expiring.arm()
        service.update_rule("bob", "tenants/t/rules/big-output", EDITED, None)
        expiring.arm()
        service.delete_rule("carol", "tenants/t/rules/big-output")
        records = [e.to_event() for e in store.read_log("t", 0, 100)]
        with store.engine.connect() as conn:
            left = [r.rule_id for r in alerts.tenant_rules(conn, "t")]
    finally:
        store.close()
    assert (expiring.armed, expiring.expired) == (False, 3)  # each first insert expired
    assert [
        (r.event_type, r.actor.user_id, r.attributes["rule.action"].string_value) for r in records
    ] == [
        (event_pb2.EVENT_TYPE_RULE_CHANGE, "alice", "create"),
        (event_pb2.EVENT_TYPE_RULE_CHANGE, "bob", "update"),
        (event_pb2.EVENT_TYPE_RULE_CHANGE, "carol", "delete"),
    ]
    assert left == []
    # Each spare was under the version before the rotation: made again under the new one.
    assert s.versions() == {"alice": 2, "bob": 3, "carol": 4}
    assert readable(s.url, s.kek) == {
        r.event_id: src for r, src in zip(records, [RULE, EDITED, EDITED], strict=True)
    }


def test_a_rule_change_whose_keys_expire_twice_is_refused_as_retry_with_nothing_written(
    openbao: Vault,  # noqa: F811
    sealed_store: Postgres | str,
) -> None:
    """Expired again on its one retry (a second rotation meanwhile), the change is a KEK
    error, which every handler answers UNAVAILABLE ``KEYS_UNAVAILABLE`` (retry), and
    neither the rule nor a record is written. Until 2026-12-07 the error was no KEK error
    and reached the caller as UNKNOWN."""
    s = Services(openbao, sealed_store)
    store, alerts, service = _rules(s)
    expiring = ExpiringAtInsert(s, store)

    inserts = []

    @sa.event.listens_for(store.engine, "before_cursor_execute")
    def again(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT INTO content_keys"):
            inserts.append(statement)
            if len(inserts) == 2:  # the retry's fresh key expires at its insert too
                s.clock.now += SPARE_SECONDS + 1

    try:
        expiring.arm()
        with pytest.raises(KekError) as refused:
            service.create_rule("alice", "tenants/t", "big-output", RULE, True)
        records = list(store.read_log("t", 0, 100))
        with store.engine.connect() as conn:
            left = alerts.tenant_rules(conn, "t")
    finally:
        store.close()
    answer = status.sealing(refused.value)
    assert (answer.code, answer.details[0].type_url.endswith("ErrorInfo")) == (
        code_pb2.UNAVAILABLE,
        True,
    )
    assert "retry" in answer.message
    assert (len(inserts), records, left) == (2, [], [])
