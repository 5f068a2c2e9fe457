"""Content retention on every store: old content goes, recorded; leaves and proofs stay."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
import yaml

from aiaudit.common import canonical, client, config, retention
from aiaudit.common.config import ConfigError
from aiaudit.common.store import SqlEventStore, open_store
from aiaudit.common.store.prepare import prepare_batch
from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.ingest import settings as ingest_settings
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from aiaudit.integrity.verify import verify_store
from tests.conftest import as_role, serve_suite, swept_at_start
from tests.helpers import field_violations, interaction, wait_until

NOW = dt.datetime.now(dt.UTC)


def load(store: SqlEventStore, tenant: str) -> None:
    """Three events received 40 days ago, one without content fields, one 2 days ago."""
    old = [interaction(tenant, f"old-{i}", text=f"old secret {i}") for i in range(3)]
    bare = interaction(tenant, "bare-0")
    bare.ClearField("input")
    bare.ClearField("output")
    store.append_group([prepare_batch([*old, bare], NOW - dt.timedelta(days=40))])
    recent = [interaction(tenant, "new-0", text="recent message")]
    store.append_group([prepare_batch(recent, NOW - dt.timedelta(days=2))])


def test_content_past_the_policy_goes_recorded_and_every_leaf_stays(
    store: SqlEventStore,
    store_url: str,
    privacy_url: str,
    tenant: str,
    request: pytest.FixtureRequest,
) -> None:
    load(store, tenant)
    before = {s.event_id: s for s in store.read_log(tenant, 0, 10)}
    assert before["bare-0"].content == {}  # stored, with nothing in it
    privacy = open_store(privacy_url)
    try:
        assert retention.sweep(privacy, 30, NOW, [tenant]) == {tenant: 3}
        assert retention.sweep(privacy, 30, NOW, [tenant]) == {}  # nothing left: no record
    finally:
        privacy.close()
    after = store.read_log(tenant, 0, 10)
    assert [s.event_id for s in after[:5]] == ["old-0", "old-1", "old-2", "bare-0", "new-0"]
    assert len(after) == 6
    for stored in after[:5]:
        old = before[stored.event_id]
        assert (stored.canonical, stored.leaf_hash) == (old.canonical, old.leaf_hash)
        assert canonical.leaf_hash(stored.canonical) == stored.leaf_hash
        if stored.event_id.startswith("old-"):
            assert stored.content is None and stored.salt is None
            assert not stored.to_event().input.messages[0].parts[0].text
        else:
            assert stored.content == old.content
    assert after[4].to_event().input.messages[0].parts[0].text == "recent message"
    record = after[5].to_event()
    assert record.event_type == ev.EVENT_TYPE_RETENTION_APPLIED
    assert list(record.privacy_action.event_ids) == ["old-0", "old-1", "old-2"]
    assert record.privacy_action.requested_by == retention.REQUESTER
    assert record.privacy_action.reason.startswith(
        "retention policy: content received more than 30 days ago (before "
    )
    admin = sa.create_engine(as_role(store_url, request, lambda pg: pg.admin_url))
    try:
        report = verify_store(admin, [], "test.aiaudit/log", None, [tenant])
        assert report.ok, report.problems
        with admin.begin() as conn:  # the control: a deletion without its record is named
            conn.execute(
                sa.text("DELETE FROM event_content WHERE log_id = :t AND seq = 4"), {"t": tenant}
            )
        problems = verify_store(admin, [], "test.aiaudit/log", None, [tenant]).problems
        assert [p.what for p in problems] == [
            "content deleted without a privacy-erasure record naming the event"
        ]
    finally:
        admin.dispose()


def test_a_sweep_records_at_most_a_chunk_of_events_a_record(
    store: SqlEventStore, privacy_url: str, tenant: str
) -> None:
    load(store, tenant)
    privacy = open_store(privacy_url)
    try:
        assert retention.sweep(privacy, 30, NOW, [tenant], chunk=2) == {tenant: 3}
    finally:
        privacy.close()
    records = [s.to_event() for s in store.read_log(tenant, 5, 10)]
    assert [list(r.privacy_action.event_ids) for r in records] == [["old-0", "old-1"], ["old-2"]]


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_the_writer_role_cannot_apply_retention(store: SqlEventStore, tenant: str) -> None:
    load(store, tenant)
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
        retention.sweep(store, 30, NOW, [tenant])
    assert all(s.content is not None for s in store.read_log(tenant, 0, 10))


def test_a_gateway_cannot_append_a_retention_record(tmp_path: Path, tenant: str) -> None:
    """Consumers take the record as cover for deleted content: only the service writes one."""
    suite, keys = serve_suite(tmp_path)
    try:
        channel = client.channel(f"127.0.0.1:{suite.port}", keys["gateway"])
        forged = interaction(tenant)
        forged.event_type = ev.EVENT_TYPE_RETENTION_APPLIED
        forged.privacy_action.event_ids.append("e-1")
        with pytest.raises(grpc.RpcError) as err:
            pb_grpc.IngestServiceStub(channel).Append(pb.AppendRequest(events=[forged]))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert list(field_violations(err.value)) == ["events[0].event_type"]
        channel.close()
    finally:
        suite.stop()


def test_the_sweeper_runs_at_start_and_leaves_recent_content(tmp_path: Path, tenant: str) -> None:
    """The embedded suite with a policy sweeps on its own; what is younger stays."""
    swept_at_start(tmp_path, {"content_retention_days": 30})
    store = open_store(f"sqlite:///{tmp_path / 'aiaudit.db'}")
    try:
        load(store, tenant)
        sweeper = retention.RetentionSweeper(store, 30, 3600, clock=lambda: NOW)
        sweeper.start()
        wait_until(lambda: sweeper.sweeps >= 1)
        sweeper.stop()
        contents = {s.event_id: s.content for s in store.read_log(tenant, 0, 10)}
    finally:
        store.close()
    assert [e for e, c in contents.items() if c is None] == ["old-0", "old-1", "old-2"]


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_policy_on_postgresql_needs_the_privacy_login(tmp_path: Path, store_url: str) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"ingest": {"content_retention_days": 30}}))
    with pytest.raises(ConfigError, match=r"ingest\.content_retention_days' needs"):
        serve_suite(tmp_path, cfg, database_url=store_url)


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("content_retention_days", 1_000_000, r"'ingest\.content_retention_days': 1000000 is"),
        ("content_retention_days", -1, r"'ingest\.content_retention_days'"),
        ("retention_sweep_interval", 1e10, r"'ingest\.retention_sweep_interval': 1e\+10 is"),
    ],
)
def test_policies_that_cannot_work_are_refused_at_start(
    tmp_path: Path, setting: str, value: float, message: str
) -> None:
    """A huge interval overflowed the sweeper's wait and ended its thread, a huge policy the
    cut-off's date on every sweep; both were taken at start (review, 2026-12-04)."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"ingest": {"content_retention_days": 30, setting: value}}))
    with pytest.raises(ConfigError, match=message):
        ingest_settings.load(config.load(cfg, env={}, overrides={"data_dir": tmp_path}))
