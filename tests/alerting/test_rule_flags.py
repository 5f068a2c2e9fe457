"""A rule's stored flag is its only switch: what the API shows is what runs.

Found by a review (2026-12-05): ``enabled: false`` in a rule's source was compiled into
the rule and handed to the native core, which skipped the rule, while the service decided
by the stored flag. CreateRule, UpdateRule and GetRule showed such a rule enabled and it
never fired (TestRule: 0 alerts, no warning); a ``rules_files`` rule shipped with
``enabled: false`` stayed off for a tenant that switched it on. Now a source sent through
the API may not carry ``enabled`` (INVALID_ARGUMENT naming the line), a rule file's is the
built-in rule's initial flag, and a stored source's is ignored.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from aiaudit.alerting.engine import Engine
from aiaudit.alerting.model import StoredRule
from aiaudit.alerting.rulebook import RuleBook
from aiaudit.alerting.service import AlertingService, Changes, InvalidError, NotFoundError
from aiaudit.alerting.sinks import alert_json
from aiaudit.alerting.store import AlertStore
from aiaudit.common.store.sql import SqlEventStore
from tests.alerting.conftest import alert_rows, append, drain
from tests.helpers import interaction

BIG, EXFIL = "big-output", "exfil-watch"
# interaction() writes output_tokens=20
FLAGGED = (
    "id: big-output\nseverity: high\nenabled: false\nwhen: {field: usage.output_tokens, gt: 15}\n"
)
SHIPPED_OFF = (
    "rules:\n"
    "  - id: exfil-watch\n"
    "    severity: high\n"
    "    enabled: false\n"
    "    when: {field: usage.output_tokens, gt: 15}\n"
)


def _suite(
    store: SqlEventStore, consumer: SqlEventStore, book: RuleBook | None = None
) -> tuple[AlertingService, Engine]:
    """The service and an engine over one rule book, as the alerting component builds them."""
    alerts = AlertStore(consumer.engine)
    book = book or RuleBook(alerts)
    svc = AlertingService(consumer, alerts, book, Changes(), lambda e: append(store, [e]))
    return svc, Engine(consumer, alerts, book, (), 500, alert_json, window_save_events=1)


def _hits(
    store: SqlEventStore, engine: Engine, consumer: SqlEventStore, tenant: str, rule: str
) -> int:
    """Hits of ``rule`` (its alerts' occurrences) after one more matching event."""
    append(store, [interaction(tenant)])
    drain(engine, tenant)
    return sum(r.occurrence_count for r in alert_rows(consumer, tenant, rule))


def test_a_rule_files_disabled_rule_runs_once_a_tenant_switches_it_on(
    store: SqlEventStore, consumer: SqlEventStore, tenant: str, tmp_path: Path
) -> None:
    """The built-in rule's compiled ``enabled: false`` went to the native core whatever the
    tenant's stored flag: ListRules showed it on, the engine skipped it."""
    path = tmp_path / "rules.yaml"
    path.write_text(SHIPPED_OFF)
    book = RuleBook(AlertStore(consumer.engine), pack=False, files=(path,))
    svc, engine = _suite(store, consumer, book)
    name = f"tenants/{tenant}/rules/{EXFIL}"
    shown = svc.get_rule(name)
    assert not shown.enabled and "enabled" not in shown.source  # off as shipped, flag apart
    assert _hits(store, engine, consumer, tenant, EXFIL) == 0
    assert svc.update_rule("admin", name, None, True).enabled
    assert [(r.rule_id, r.enabled) for r in svc.list_rules(f"tenants/{tenant}", 10, "").items] == [
        (EXFIL, True)
    ]
    assert _hits(store, engine, consumer, tenant, EXFIL) == 1
    # The source a tenant reads goes back through UpdateRule as it is.
    edited = svc.update_rule("admin", name, shown.source.replace("15", "16"), None)
    assert edited.enabled and _hits(store, engine, consumer, tenant, EXFIL) == 2
    assert not svc.get_rule(f"tenants/{tenant}x/rules/{EXFIL}").enabled  # others: as shipped


def test_a_source_with_enabled_is_refused_naming_the_line(
    store: SqlEventStore, consumer: SqlEventStore, tenant: str
) -> None:
    """Stored with the request's flag on, the rule was shown enabled and never ran."""
    svc, _ = _suite(store, consumer)
    message = (
        "line 3, enabled: a rule's source does not switch it on or off: its enabled field "
        "does (CreateRule, UpdateRule; GetRule shows it); remove this line"
    )
    with pytest.raises(InvalidError) as info:
        svc.create_rule("admin", f"tenants/{tenant}", "", FLAGGED, True)
    assert info.value.violations == [("rule.source", message)]
    with pytest.raises(InvalidError) as info:
        svc.test_rule(f"tenants/{tenant}", FLAGGED, "", 0)
    assert info.value.violations == [("source", message)]
    with pytest.raises(NotFoundError):
        svc.get_rule(f"tenants/{tenant}/rules/{BIG}")


def test_a_stored_source_with_enabled_runs_by_its_stored_flag(
    store: SqlEventStore, consumer: SqlEventStore, tenant: str
) -> None:
    """A rule stored before the refusal keeps loading, and its stored flag decides."""
    svc, engine = _suite(store, consumer)
    alerts = AlertStore(consumer.engine)
    with alerts.write() as conn, conn.begin():
        alerts.put_rule(conn, StoredRule(tenant, BIG, FLAGGED, True, 4, dt.datetime.now(dt.UTC)))
    name = f"tenants/{tenant}/rules/{BIG}"
    assert svc.get_rule(name).enabled
    assert _hits(store, engine, consumer, tenant, BIG) == 1
    svc.update_rule("admin", name, None, False)
    assert _hits(store, engine, consumer, tenant, BIG) == 1
