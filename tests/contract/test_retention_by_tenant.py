"""Content retention per tenant (``ingest.content_retention_by_tenant``), on both stores.

A tenant's own policy replaces the global one for its log alone, shorter or longer (0:
forever), by classification too; its records say so; the other tenants keep the global one.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from aiaudit.common import config, retention
from aiaudit.common.config import ConfigError
from aiaudit.common.store import SqlEventStore, open_store
from aiaudit.common.store.prepare import prepare_batch
from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.ingest import settings as ingest_settings
from aiaudit.integrity.verify import verify_store
from tests.conftest import as_role, serve_suite, swept_at_start
from tests.helpers import interaction

NOW = dt.datetime.now(dt.UTC)
INTERNAL, R = ev.DATA_CLASSIFICATION_INTERNAL, ev.DATA_CLASSIFICATION_RESTRICTED
SETTING = "ingest.content_retention_by_tenant"


def load(store: SqlEventStore, tenant: str) -> None:
    """An internal and a restricted event received 10 and 40 days ago, and a bare one."""
    for age in (10, 40):
        batch = []
        for level, name in ((INTERNAL, "i"), (R, "r")):
            e = interaction(tenant, f"{name}-{age}", text=f"{name} {age}")
            e.data_classification = level  # type: ignore[assignment]
            batch.append(e)
        store.append_group([prepare_batch(batch, NOW - dt.timedelta(days=age))])
    bare = interaction(tenant, "bare")
    bare.ClearField("input")
    bare.ClearField("output")
    store.append_group([prepare_batch([bare], NOW - dt.timedelta(days=40))])


def erased(store: SqlEventStore, tenant: str) -> set[str]:
    return {s.event_id for s in store.read_log(tenant, 0, 100) if s.content is None}


def reasons(store: SqlEventStore, tenant: str) -> list[str]:
    """The reasons of the tenant's retention records, in log order."""
    records = [s.to_event() for s in store.read_log(tenant, 0, 100)]
    return [
        r.privacy_action.reason for r in records if r.event_type == ev.EVENT_TYPE_RETENTION_APPLIED
    ]


def cutoff(days: int) -> str:
    return (NOW - dt.timedelta(days=days)).isoformat()


def test_each_tenant_is_swept_by_its_own_policy_and_the_others_by_the_global_one(
    store: SqlEventStore,
    store_url: str,
    privacy_url: str,
    tenant: str,
    request: pytest.FixtureRequest,
) -> None:
    short, forever, classes, other = (f"{tenant}-{n}" for n in ("short", "forever", "cls", "oth"))
    tenants = [short, forever, classes, other]
    for t in tenants:
        load(store, t)
    by_tenant = {
        short: retention.Policy(7),  # shorter than the global 30
        forever: retention.Policy(0),  # longer: forever
        classes: retention.Policy(0, {R: 7}),  # restricted 7 days, the rest forever
    }
    privacy = open_store(privacy_url)
    try:
        swept = retention.sweep(privacy, 30, NOW, tenants, by_tenant=by_tenant)
        assert swept == {short: 4, classes: 2, other: 2}
        assert retention.sweep(privacy, 30, NOW, tenants, by_tenant=by_tenant) == {}
    finally:
        privacy.close()
    assert erased(store, short) == {"i-10", "r-10", "i-40", "r-40"}
    assert erased(store, forever) == set()  # not swept by the global 30 days
    assert erased(store, classes) == {"r-10", "r-40"}
    assert erased(store, other) == {"i-40", "r-40"}  # the global policy, as before
    assert reasons(store, short) == [
        f"tenant retention policy: content received more than 7 days ago (before {cutoff(7)})"
    ]
    assert reasons(store, forever) == []
    assert reasons(store, classes) == [
        "tenant retention policy: content classified restricted received more than 7 days "
        f"ago (before {cutoff(7)})"
    ]
    assert reasons(store, other) == [
        f"retention policy: content received more than 30 days ago (before {cutoff(30)})"
    ]
    admin = sa.create_engine(as_role(store_url, request, lambda pg: pg.admin_url))
    try:
        report = verify_store(admin, [], "test.aiaudit/log", None, tenants)
        assert report.ok, report.problems
    finally:
        admin.dispose()


def test_a_tenant_policy_by_classification_replaces_the_global_one(
    store: SqlEventStore, privacy_url: str, tenant: str
) -> None:
    """A tenant's unnamed classifications keep its own days, not the global classification's."""
    mine, other = f"{tenant}-mine", f"{tenant}-oth"
    for t in (mine, other):
        load(store, t)
    privacy = open_store(privacy_url)
    try:
        swept = retention.sweep(
            privacy,
            0,
            NOW,
            [mine, other],
            by_class={R: 7},  # globally restricted goes after 7 days, the rest is kept
            by_tenant={mine: retention.Policy(30, {INTERNAL: 5})},
        )
    finally:
        privacy.close()
    assert swept == {mine: 3, other: 2}
    assert erased(store, mine) == {"i-10", "i-40", "r-40"}  # restricted kept 30 days, not 7
    assert erased(store, other) == {"r-10", "r-40"}
    assert reasons(store, mine) == [
        "tenant retention policy: content classified unspecified, internal received more "
        f"than 5 days ago (before {cutoff(5)})",
        "tenant retention policy: content classified public, confidential, restricted "
        f"received more than 30 days ago (before {cutoff(30)})",
    ]


def test_a_tenant_kept_forever_costs_the_sweep_no_query(
    store: SqlEventStore, privacy_url: str, tenant: str
) -> None:
    """Each log is read once per period of its own policy: the many tenants of the global
    policy cost what they did, and one kept forever costs nothing (never the global periods)."""
    forever, short = f"{tenant}-forever", f"{tenant}-short"
    others = [f"{tenant}-{i}" for i in range(6)]
    for t in [forever, short, *others]:
        load(store, t)
    privacy = open_store(privacy_url)
    reads: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "event_content" in statement:
            reads.append(statement)

    sa.event.listen(privacy.engine, "before_cursor_execute", count)
    try:
        swept = retention.sweep(
            privacy,
            30,
            NOW,
            [forever, short, *others],
            by_class={R: 7},  # two periods: restricted 7 days, the rest 30
            by_tenant={forever: retention.Policy(0), short: retention.Policy(7)},
        )
    finally:
        privacy.close()
    assert swept == {short: 4} | {t: 3 for t in others}
    # 6 logs x 2 periods (each found less than a chunk: read once), the short tenant's
    # 1 period, the forever tenant's none.
    assert len(reads) == len(others) * 2 + 1
    assert erased(store, forever) == set()


def test_the_embedded_suite_sweeps_each_tenant_by_its_policy(tmp_path: Path, tenant: str) -> None:
    """The setting reaches the sweeper: the global 30 days go, a tenant's forever stays."""
    forever, short, other = f"{tenant}-forever", f"{tenant}-short", f"{tenant}-oth"
    store = open_store(f"sqlite:///{tmp_path / 'aiaudit.db'}", run_migrations=True)
    try:
        for t in (forever, short, other):
            load(store, t)
    finally:
        store.close()
    policy = {forever: {"days": 0}, short: {"days": 7, "by_classification": {"internal": 0}}}
    swept_at_start(tmp_path, {"content_retention_days": 30, "content_retention_by_tenant": policy})
    store = open_store(f"sqlite:///{tmp_path / 'aiaudit.db'}")
    try:
        assert erased(store, forever) == set()
        assert erased(store, short) == {"r-10", "r-40"}
        assert erased(store, other) == {"i-40", "r-40"}
    finally:
        store.close()


def test_a_tenant_policy_alone_starts_the_sweeper(tmp_path: Path, tenant: str) -> None:
    """No global policy: only the tenant named is swept."""
    mine, other = f"{tenant}-mine", f"{tenant}-oth"
    store = open_store(f"sqlite:///{tmp_path / 'aiaudit.db'}", run_migrations=True)
    try:
        for t in (mine, other):
            load(store, t)
    finally:
        store.close()
    swept_at_start(tmp_path, {"content_retention_by_tenant": {mine: {"days": 7}}})
    store = open_store(f"sqlite:///{tmp_path / 'aiaudit.db'}")
    try:
        assert erased(store, mine) == {"i-10", "r-10", "i-40", "r-40"}
        assert erased(store, other) == set()
    finally:
        store.close()


def test_policies_from_the_file_and_the_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    given = {
        "acme": {"days": 7, "by_classification": {"restricted": 1, "public": 0}},
        "globex": {"days": 0},
    }
    cfg.write_text(yaml.safe_dump({"ingest": {"content_retention_by_tenant": given}}))
    expected = {
        "acme": retention.Policy(7, {R: 1, ev.DATA_CLASSIFICATION_PUBLIC: 0}),
        "globex": retention.Policy(0),
    }
    s = ingest_settings.load(config.load(cfg, env={}, overrides={"data_dir": tmp_path}))
    assert s.content_retention_by_tenant == expected
    assert ingest_settings.erases_by_tenant(s)
    env = {
        "AIAUDIT_INGEST_CONTENT_RETENTION_BY_TENANT": (
            " acme: days=7, restricted=1, public=0 ; globex:days=0;"
        )
    }
    s = ingest_settings.load(config.load(None, env=env, overrides={"data_dir": tmp_path}))
    assert s.content_retention_by_tenant == expected
    forever = {"AIAUDIT_INGEST_CONTENT_RETENTION_BY_TENANT": "globex:days=0"}
    s = ingest_settings.load(config.load(None, env=forever, overrides={"data_dir": tmp_path}))
    assert not ingest_settings.erases_by_tenant(s)


BAD_FILE = [
    ({"Acme": {"days": 7}}, f"'{SETTING}': 'Acme' is not a tenant id \\(1-64 characters"),
    ({"a/b": {"days": 7}}, f"'{SETTING}': 'a/b' is not a tenant id"),
    ({"x" * 65: {"days": 7}}, f"'{SETTING}': 'x{{65}}' is not a tenant id"),
    ({7: {"days": 7}}, f"'{SETTING}': 7 is not a tenant id .*quote it"),
    ({"acme": {"days": -1}}, f"'{SETTING}.acme.days': -1 is invalid: 0 \\(keep forever\\)"),
    ({"acme": {"days": 36_501}}, f"'{SETTING}.acme.days': 36501 is invalid"),
    ({"acme": {"days": "7d"}}, f"'{SETTING}.acme.days': '7d' is invalid: must be a whole"),
    ({"acme": {"days": True}}, f"'{SETTING}.acme.days': True is invalid"),
    ({"acme": {}}, f"'{SETTING}.acme.days': required"),
    ({"acme": {"days": 7, "keep": 1}}, f"'{SETTING}.acme.keep': unknown key"),
    ({"acme": 7}, f"'{SETTING}.acme': expected a mapping"),
    (
        {"acme": {"days": 7, "by_classification": {"secret": 1}}},
        f"'{SETTING}.acme.by_classification.secret': 'secret' is not one of \\('public'",
    ),
    (
        {"acme": {"days": 7, "by_classification": {"unspecified": 1}}},
        f"'{SETTING}.acme.by_classification.unspecified'.*kept as internal",
    ),
    (
        {"acme": {"days": 7, "by_classification": {"restricted": -3}}},
        f"'{SETTING}.acme.by_classification.restricted': -3 is invalid",
    ),
    ({"acme": {"days": 7, "by_classification": [1]}}, f"'{SETTING}.acme.by_classification'"),
    (["acme"], f"'{SETTING}': expected a mapping of tenant ids"),
]


@pytest.mark.parametrize(("value", "message"), BAD_FILE)
def test_bad_policies_in_the_file_are_refused_naming_the_key(
    tmp_path: Path, value: object, message: str
) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"ingest": {"content_retention_by_tenant": value}}))
    with pytest.raises(ConfigError, match=f"setting {message}"):
        ingest_settings.load(config.load(cfg, env={}, overrides={"data_dir": tmp_path}))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("acme", f"'{SETTING}': 'acme' is not tenant:days=N"),
        ("acme:days=1;acme:days=2", f"'{SETTING}': tenant 'acme' is named twice"),
        ("acme:days=1,days=2", f"'{SETTING}.acme': 'days' is named twice"),
        ("acme:days", f"'{SETTING}.acme': 'days' is not name=number"),
        ("acme:restricted=1", f"'{SETTING}.acme.days': required"),
        ("acme:days=-1", f"'{SETTING}.acme.days': -1 is invalid"),
        ("acme:days=1,secret=2", f"'{SETTING}.acme.by_classification.secret': 'secret' is not"),
        ("ACME:days=1", f"'{SETTING}': 'ACME' is not a tenant id"),
    ],
)
def test_bad_policies_in_the_environment_are_refused_naming_the_key(
    tmp_path: Path, value: str, message: str
) -> None:
    env = {"AIAUDIT_INGEST_CONTENT_RETENTION_BY_TENANT": value}
    with pytest.raises(ConfigError, match=f"setting {message}"):
        ingest_settings.load(config.load(None, env=env, overrides={"data_dir": tmp_path}))


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_tenant_policy_on_postgresql_needs_the_privacy_login(
    tmp_path: Path, store_url: str
) -> None:
    cfg = tmp_path / "config.yaml"
    kept = {"content_retention_by_tenant": {"acme": {"days": 0}}}
    cfg.write_text(yaml.safe_dump({"ingest": kept}))
    settings = config.load(cfg, env={}, overrides={"database_url": store_url})
    assert ingest_settings.load(settings)  # keeping forever deletes nothing: no login needed
    cfg.write_text(
        yaml.safe_dump({"ingest": {"content_retention_by_tenant": {"acme": {"days": 7}}}})
    )
    with pytest.raises(ConfigError, match=r"'ingest\.content_retention_by_tenant' needs"):
        serve_suite(tmp_path, cfg, database_url=store_url)
