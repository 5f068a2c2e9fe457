"""Data classification, end to end: raised at ingest, stored beside the content, and kept
as long as ``ingest.content_retention_days_by_classification`` says (both stores)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from aiaudit.common import canonical, client, config, retention
from aiaudit.common.config import ConfigError
from aiaudit.common.store import SqlEventStore, open_store
from aiaudit.common.store.migrate import migrate
from aiaudit.common.store.prepare import prepare_batch
from aiaudit.common.store.sql import expired_content
from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.ingest import settings as ingest_settings
from aiaudit.ingest.redaction import ContentRedaction
from aiaudit.ingest.v1 import ingest_service_pb2 as ipb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as ipb_grpc
from aiaudit.integrity.verify import verify_store
from tests.conftest import as_role, serve_suite, swept_at_start
from tests.helpers import interaction, store_as_text, wait_until

NOW = dt.datetime.now(dt.UTC)
EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
U, P, INTERNAL, C, R = 0, 1, 2, 3, 4  # DataClassification's numbers
NAMES = {U: "u", P: "p", INTERNAL: "i", C: "c", R: "r"}


def classified(tenant: str, event_id: str, level: int, text: str = "hello") -> ev.Event:
    e = interaction(tenant, event_id, text=text)
    e.data_classification = level  # type: ignore[assignment]
    return e


def stored_classes(engine: sa.Engine, tenant: str) -> dict[str, int | None]:
    """``event_content.data_classification`` by event id."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT l.event_id, c.data_classification FROM event_content c "
                "JOIN log_entries l ON l.log_id = c.log_id AND l.seq = c.seq WHERE c.log_id = :t"
            ),
            {"t": tenant},
        )
        return {str(e): c for e, c in rows}


def committed_class(stored_canonical: bytes) -> str | None:
    found = json.loads(stored_canonical).get("dataClassification")
    return None if found is None else str(found)


def test_findings_raise_an_event_to_restricted_never_lower(tenant: str) -> None:
    """Masking's findings classify; without findings, or with the setting off, what was sent
    stays."""
    events = [
        classified(tenant, "email", U, f"write to {EMAIL}"),
        classified(tenant, "public-card", P, f"card {CARD}"),
        classified(tenant, "plain", U),
        classified(tenant, "confidential", C),
        classified(tenant, "restricted", R),
    ]
    wires = [e.SerializeToString() for e in events]
    assert ContentRedaction(("pii",)).apply(events, wires) == [0, 1]
    assert [e.data_classification for e in events] == [R, R, U, C, R]
    assert [ev.Event.FromString(w).data_classification for w in wires] == [R, R, U, C, R]
    off = [classified(tenant, "email", U, f"write to {EMAIL}")]
    wires = [off[0].SerializeToString()]
    assert ContentRedaction(("pii",), classify=False).apply(off, wires) == [0]
    assert ev.Event.FromString(wires[0]).data_classification == U
    unmasked = [classified(tenant, "email", U, f"write to {EMAIL}")]
    assert ContentRedaction().apply(unmasked, [unmasked[0].SerializeToString()]) == []
    assert unmasked[0].data_classification == U  # nothing detected without redact_content


def test_the_leaf_commits_to_the_classification_ingest_applied(
    store_url: str, tmp_path: Path, tenant: str
) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"ingest": {"redact_content": ["pii"]}}))
    suite, keys = serve_suite(tmp_path, cfg, database_url=store_url)
    sent = [
        classified(tenant, "email", U, f"write to {EMAIL}"),
        classified(tenant, "public-card", P, f"card {CARD}"),
        classified(tenant, "plain", U),
        classified(tenant, "confidential", C),
    ]
    try:
        with client.channel(f"127.0.0.1:{suite.port}", keys["gateway"]) as channel:
            stub = ipb_grpc.IngestServiceStub(channel)
            first = stub.Append(ipb.AppendRequest(events=sent)).receipts
            again = stub.Append(ipb.AppendRequest(events=sent[:1])).receipts[0]
        assert again.duplicate and again.sequence == first[0].sequence  # a retry stays one
    finally:
        suite.stop()
    store = open_store(store_url)
    try:
        stored = {s.event_id: s for s in store.read_log(tenant, 0, 10)}
        columns = stored_classes(store.engine, tenant)
    finally:
        store.close()
    assert {k: committed_class(s.canonical) for k, s in stored.items()} == {
        "email": "DATA_CLASSIFICATION_RESTRICTED",
        "public-card": "DATA_CLASSIFICATION_RESTRICTED",
        "plain": None,
        "confidential": "DATA_CLASSIFICATION_CONFIDENTIAL",
    }
    for s, receipt in zip([stored[e.event_id] for e in sent], first, strict=True):
        assert canonical.leaf_hash(s.canonical) == s.leaf_hash == receipt.leaf_hash
    assert columns == {"email": R, "public-card": R, "plain": None, "confidential": C}


def test_every_write_path_fills_the_column(store: SqlEventStore, tenant: str) -> None:
    """A small group (PostgreSQL: one statement) and a large one (COPY); NULL is UNSPECIFIED."""
    levels = list(NAMES)
    small = [classified(tenant, f"s-{i}", lv) for i, lv in enumerate(levels)]
    large = [classified(tenant, f"l-{i}", levels[i % 5]) for i in range(40)]
    store.append_group([prepare_batch(small, NOW)])
    store.append_group([prepare_batch(large, NOW)])
    found = stored_classes(store.engine, tenant)
    expected = {e.event_id: (e.data_classification or None) for e in small + large}
    assert found == expected


def load(store: SqlEventStore, tenant: str) -> None:
    """An event of each classification received 40 days ago, and 400 days ago; one bare."""
    for age in (40, 400):
        batch = [classified(tenant, f"{NAMES[lv]}-{age}", lv, f"text {age}") for lv in NAMES]
        store.append_group([prepare_batch(batch, NOW - dt.timedelta(days=age))])
    bare = classified(tenant, "bare", R)
    bare.ClearField("input")
    bare.ClearField("output")
    store.append_group([prepare_batch([bare], NOW - dt.timedelta(days=400))])


def erased(store: SqlEventStore, tenant: str) -> set[str]:
    return {s.event_id for s in store.read_log(tenant, 0, 2_000) if s.content is None}


def test_content_is_kept_as_long_as_its_classification_says(
    store: SqlEventStore,
    store_url: str,
    privacy_url: str,
    tenant: str,
    request: pytest.FixtureRequest,
) -> None:
    load(store, tenant)
    privacy = open_store(privacy_url)
    try:
        # Nothing by default: only restricted (30 days) and confidential (365) expire.
        by_class = {R: 30, C: 365}
        assert retention.sweep(privacy, 0, NOW, [tenant], by_class=by_class) == {tenant: 3}
        assert erased(store, tenant) == {"r-40", "r-400", "c-400"}
        assert retention.sweep(privacy, 0, NOW, [tenant], by_class=by_class) == {}
        # 30 days for the rest, internal kept forever: unspecified is kept as internal.
        assert retention.sweep(privacy, 30, NOW, [tenant], by_class={INTERNAL: 0}) == {tenant: 3}
        assert erased(store, tenant) == {"r-40", "r-400", "c-400", "c-40", "p-40", "p-400"}
    finally:
        privacy.close()
    records = [s.to_event() for s in store.read_log(tenant, 11, 10)]
    assert [(list(r.privacy_action.event_ids), r.event_type) for r in records] == [
        (["r-40", "r-400"], ev.EVENT_TYPE_RETENTION_APPLIED),
        (["c-400"], ev.EVENT_TYPE_RETENTION_APPLIED),
        (["p-40", "c-40", "p-400"], ev.EVENT_TYPE_RETENTION_APPLIED),
    ]
    reasons = [r.privacy_action.reason.split(" (before")[0] for r in records]
    assert reasons == [
        "retention policy: content classified restricted received more than 30 days ago",
        "retention policy: content classified confidential received more than 365 days ago",
        "retention policy: content classified public, confidential, restricted "
        "received more than 30 days ago",
    ]
    admin = sa.create_engine(as_role(store_url, request, lambda pg: pg.admin_url))
    try:
        report = verify_store(admin, [], "test.aiaudit/log", None, [tenant])
        assert report.ok, report.problems
    finally:
        admin.dispose()


def test_a_sweep_of_one_classification_reads_its_index(store: SqlEventStore, tenant: str) -> None:
    """The restricted sweep reads ``event_content_classified``, not every older content row.

    SQLite's plan says so. PostgreSQL plans by statistics: with this test's few rows it took
    the primary key as cheap in one full run of four, so there the test checks that the
    index answers the query: its predicate is the query's, and it leads with the log, the
    classification and the receive time the query bounds.
    """
    load(store, tenant)
    query = expired_content(tenant, NOW - dt.timedelta(days=30), 10_000, frozenset({R}))
    compiled = query.compile(store.engine, compile_kwargs={"render_postcompile": True})
    with store.engine.connect() as conn:
        if store.engine.dialect.name == "sqlite":
            values = tuple(compiled.params[k] for k in compiled.positiontup or ())
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", values)
            lines = [str(r[3]) for r in plan]
            assert any("INDEX event_content_classified" in line for line in lines), lines
        else:
            (definition,) = conn.exec_driver_sql(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'event_content_classified'"
            ).scalars()
            assert "(log_id, data_classification, receive_time)" in definition, definition
            assert definition.endswith("WHERE (data_classification IS NOT NULL)"), definition
            assert "data_classification IS NOT NULL" in str(compiled), compiled


def test_events_stored_before_the_column_keep_their_classification(
    new_store: sa.Engine, tenant: str
) -> None:
    """Revision ``0013`` reads the classification of the rows already there from their
    canonical form: a restricted event stored before it still expires as restricted
    (more than one page of them: 1,000 a page)."""
    engine = new_store
    store = open_store(engine.url.render_as_string(hide_password=False))
    try:
        load(store, tenant)
        many = [classified(tenant, f"many-{i}", R) for i in range(1_000)]
        store.append_group([prepare_batch(many, NOW - dt.timedelta(days=40))])
        set_back_to_0012(engine)
        migrate(engine)
        migrate(engine)  # again: nothing to do
        assert stored_classes(engine, tenant) == {
            **{f"{NAMES[lv]}-{age}": (lv or None) for lv in NAMES for age in (40, 400)},
            "bare": None,  # no content to keep: never read
            **{e.event_id: R for e in many},
        }
        assert retention.sweep(store, 0, NOW, [tenant], by_class={R: 30}) == {tenant: 1_002}
        assert {"r-40", "r-400"} <= erased(store, tenant)
    finally:
        store.close()


def set_back_to_0012(engine: sa.Engine) -> None:
    """The tables as 0012 left them, the rows already in them."""
    with engine.begin() as conn:
        conn.execute(sa.text("DROP INDEX event_content_classified"))
        conn.execute(sa.text("ALTER TABLE event_content DROP COLUMN data_classification"))
        conn.execute(
            sa.text(
                "UPDATE alembic_version SET version_num = '0012' "
                "WHERE version_num IN ('0013', '0014')"
            )
        )


@pytest.mark.parametrize("new_store", ["sqlite"], indirect=True)
def test_the_backfill_reads_a_canonical_form_sqlite_keeps_as_text(
    new_store: sa.Engine, tenant: str
) -> None:
    """SQLite keeps any type in any column, and the store reads a canonical form rewritten
    as text as its bytes (``sql._blob``): revision ``0013`` failed on it (``bytes()`` of a
    str), so such a store could not be upgraded at all. It now reads its classification."""
    engine = new_store
    url = engine.url.render_as_string(hide_password=False)
    store = open_store(url)
    try:
        batch = [classified(tenant, "as-text", R), classified(tenant, "as-bytes", C)]
        store.append_group([prepare_batch(batch, NOW - dt.timedelta(days=40))])
    finally:
        store.close()
    set_back_to_0012(engine)
    store_as_text(url, tenant, 0, "events.canonical")
    migrate(engine)
    assert stored_classes(engine, tenant) == {"as-text": R, "as-bytes": C}


@pytest.mark.parametrize(
    ("value", "env", "message"),
    [
        ({"secret": 30}, None, r"'secret' is not one of \('public', 'internal', "),
        ({"unspecified": 30}, None, r"\(unspecified is kept as internal\)"),
        ({"restricted": 100_000}, None, r"'restricted': 100000 is invalid: 0 \(keep forever\)"),
        ({"restricted": -1}, None, r"'restricted': must be 0 or more"),
        ({"restricted": "30d"}, None, r"'restricted': must be a whole number"),
        (None, "restricted=30,restricted=40", r"'restricted' is named twice"),
        (None, "restricted:30", r"'restricted:30' is not name=number"),
    ],
)
def test_bad_policies_are_refused_at_start(
    tmp_path: Path, value: object, env: str | None, message: str
) -> None:
    cfg = tmp_path / "config.yaml"
    variables = {}
    if value is not None:
        cfg.write_text(
            yaml.safe_dump({"ingest": {"content_retention_days_by_classification": value}})
        )
    else:
        cfg.write_text("{}")
        variables = {"AIAUDIT_INGEST_CONTENT_RETENTION_DAYS_BY_CLASSIFICATION": str(env)}
    with pytest.raises(ConfigError, match=message) as err:
        ingest_settings.load(config.load(cfg, env=variables, overrides={"data_dir": tmp_path}))
    assert "ingest.content_retention_days_by_classification" in str(err.value)


def test_a_policy_from_the_environment(tmp_path: Path) -> None:
    env = {
        "AIAUDIT_INGEST_CONTENT_RETENTION_DAYS_BY_CLASSIFICATION": "restricted=30,confidential=365",
        "AIAUDIT_INGEST_CLASSIFY_CONTENT": "false",
    }
    s = ingest_settings.load(config.load(None, env=env, overrides={"data_dir": tmp_path}))
    assert ingest_settings.by_class(s) == {R: 30, C: 365}
    assert s.classify_content is False
    assert ingest_settings.load(config.load(None, env={})).classify_content is True


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_policy_by_classification_on_postgresql_needs_the_privacy_login(
    tmp_path: Path, store_url: str
) -> None:
    cfg = tmp_path / "config.yaml"
    policy = {"content_retention_days_by_classification": {"restricted": 30}}
    cfg.write_text(yaml.safe_dump({"ingest": policy}))
    with pytest.raises(ConfigError, match=r"content_retention_days_by_classification' needs"):
        serve_suite(tmp_path, cfg, database_url=store_url)


def test_a_policy_by_classification_alone_starts_the_sweeper(tmp_path: Path, tenant: str) -> None:
    """The embedded suite sweeps with only a per-classification policy; what it names goes."""
    swept_at_start(tmp_path, {"content_retention_days_by_classification": {"restricted": 30}})
    store = open_store(f"sqlite:///{tmp_path / 'aiaudit.db'}")
    try:
        load(store, tenant)
        sweeper = retention.RetentionSweeper(store, 0, 3600, lambda: NOW, by_class={R: 30})
        sweeper.start()
        wait_until(lambda: sweeper.sweeps >= 1)
        sweeper.stop()
        assert erased(store, tenant) == {"r-40", "r-400"}
    finally:
        store.close()
