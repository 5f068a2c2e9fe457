"""Retention: old events leave the index (never the store); the ISM policy the node would take."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opensearchpy import OpenSearch, RequestError

from aiaudit.common.erasure import erase
from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.search import retention, stored_document
from aiaudit.search.backends.opensearch import OpenSearchBackend
from aiaudit.search.v1 import search_service_pb2 as pb
from tests.helpers import interaction, wait_until
from tests.search.conftest import SearchSuite, backend_settings, start_suite
from tests.search.test_erasure import holding, secret_word


def at(tenant: str, event_id: str, when: dt.datetime) -> ev.Event:
    e = interaction(tenant, event_id)
    e.occurred_time.FromDatetime(when)
    return e


@pytest.fixture(params=["sqlite", "opensearch"])
def own_index(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """Search settings of each backend; on OpenSearch a prefix (and template) of its own,
    whose whole months a sweep may delete, removed at the end."""
    settings = backend_settings(request.param, request)
    settings["backend"] = request.param
    if request.param == "sqlite":
        yield settings
        return
    prefix = settings["index_prefix"] = f"aiaudit-test-ret-{uuid.uuid4().hex[:8]}"
    yield settings
    direct = OpenSearch(hosts=[settings["opensearch_url"]])
    direct.indices.delete(index=f"{prefix}-*", params={"ignore_unavailable": "true"})
    direct.indices.delete_index_template(name=prefix, params={"ignore": 404})
    direct.close()


@contextlib.contextmanager
def serving(tmp_path: Path, settings: dict[str, Any]) -> Iterator[SearchSuite]:
    """The suite on ``settings`` until the block ends (a restart keeps the store and index)."""
    running = start_suite(tmp_path, settings["backend"], settings)
    try:
        yield running
    finally:
        running.channel.close()
        running.suite.stop()


def test_events_past_retention_leave_the_index_and_stay_in_the_store(
    own_index: dict[str, Any], tmp_path: Path, tenant: str
) -> None:
    """Indexed while retention was off, an old event is swept when it is turned on; after
    that, nothing puts it back: not its erasure's re-index, not a new event of its age."""
    settings = own_index
    recent = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    opensearch = settings["backend"] == "opensearch"
    os_client = OpenSearch(hosts=[settings["opensearch_url"]]) if opensearch else None
    prefix = settings.get("index_prefix", "")

    def old_month_gone() -> bool:
        return os_client is None or not os_client.indices.exists(index=f"{prefix}-2020.01")

    with serving(tmp_path, settings) as running:  # no retention yet
        running.append(
            [
                at(tenant, "old", dt.datetime(2020, 1, 15, tzinfo=dt.UTC)),
                at(tenant, "recent", recent),
            ]
        )
        running.wait_indexed(tenant, 2)
        assert running.find(tenant).total_size == 2
        assert os_client is None or not old_month_gone()  # OpenSearch: the 2020.01 index exists
    settings |= {"retention_days": 30, "retention_sweep_interval": 0.2}
    with serving(tmp_path, settings) as running:
        wait_until(lambda: old_month_gone() and running.find(tenant).total_size == 1)
        found = running.find(tenant)
        assert [r.event.event_id for r in found.results] == ["recent"]
        kept = running.search.GetEvent(pb.GetEventRequest(tenant_id=tenant, event_id="old"))
        assert kept.event.event_id == "old"
        erase(running.suite.store, tenant, "request", "dpo", subject_id="alice")  # re-indexes
        running.append([at(tenant, "also-old", dt.datetime(2020, 1, 16, tzinfo=dt.UTC))])
        size = running.suite.store.log_sizes()[tenant]
        indexer = running.suite.components["search"].indexer
        assert indexer.wait_indexed(tenant, size, timeout=30)  # the indexer got past both
        data = running.find(tenant, "event_type != privacy_erasure")
        assert [r.event.event_id for r in data.results] == ["recent"]
        assert old_month_gone()  # the month was not created again either
        if os_client is not None:
            assert os_client.indices.exists(index=f"{prefix}-{recent:%Y.%m}")
            os_client.close()


def test_expired_months_are_whole_months_past_the_period() -> None:
    names = ["p-2025.12", "p-2026.01", "p-2026.02", "p-x", "other-2020.01", "p-2020.13"]
    names.append("p-9999.12")  # no month after it: never expired, and no error stops the sweep
    now = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    # January ended on Feb 1st: 29 days before now; December ended 60 days before.
    assert retention.expired_months(names, "p", 30, now) == ["p-2025.12"]
    assert retention.expired_months(names, "p", 29, now) == ["p-2025.12", "p-2026.01"]


def test_ism_deletes_a_month_only_once_its_last_event_is_past_retention() -> None:
    """ISM counts from the index's creation, the month's first event: at the earliest
    a day before the month (ingest's 24 h ahead). Deleted ``retention_days`` after it,
    a month's later events left search up to 31 days early."""
    skew = dt.timedelta(hours=24)  # ingest's max_future_skew
    for retention_days in (1, 30, 400):
        policy = retention.ism_policy("p", retention_days)["policy"]
        age = policy["states"][0]["transitions"][0]["conditions"]["min_index_age"]
        assert age.endswith("d")
        for year, month in [(2026, 1), (2026, 2), (2028, 2), (2026, 4), (2026, 12)]:
            start = dt.datetime(year, month, 1, tzinfo=dt.UTC)
            end = retention.month_end(f"p-{year}.{month:02d}", "p")
            assert end is not None
            deleted = start - skew + dt.timedelta(days=int(age[:-1]))
            assert deleted >= end + dt.timedelta(days=retention_days), (retention_days, month)


def test_ism_policy_is_what_this_node_accepts(opensearch_url: str, index_prefix: str) -> None:
    """The test node has no ISM plugin: detection says so, and the policy's parts are
    checked by the node's own parsers (its index pattern, its age as a time value)."""
    os_client = OpenSearch(hosts=[opensearch_url])
    scratch = f"{index_prefix}-ism-{uuid.uuid4().hex[:6]}"
    try:
        backend = OpenSearchBackend(os_client, None, f"{index_prefix}-ism", "1s")  # type: ignore[arg-type]
        plugins = os_client.cat.plugins(format="json")
        has_ism = any("index-management" in str(p.get("component", "")).lower() for p in plugins)
        assert backend.ism_available() is has_ism
        policy = retention.ism_policy(scratch, 400)["policy"]
        states = {s["name"] for s in policy["states"]}
        assert policy["default_state"] in states
        assert all(t["state_name"] in states for s in policy["states"] for t in s["transitions"])
        # The template's pattern matches the monthly indices the backend creates.
        os_client.indices.create(index=f"{scratch}-2026.03")
        resolved = os_client.indices.resolve_index(name=policy["ism_template"][0]["index_patterns"])
        assert [i["name"] for i in resolved["indices"]] == [f"{scratch}-2026.03"]
        # The node parses the age as a time value (ISM uses the same parser) ...
        age = policy["states"][0]["transitions"][0]["conditions"]["min_index_age"]
        os_client.indices.put_settings(
            index=f"{scratch}-2026.03", body={"index.search.idle.after": age}
        )
        # ... and would refuse a malformed one.
        with pytest.raises(RequestError):
            os_client.indices.put_settings(
                index=f"{scratch}-2026.03", body={"index.search.idle.after": "400 days"}
            )
        if has_ism:  # a cluster with the plugin: the policy is installed and read back
            backend.install_ism_policy(400)
            backend.install_ism_policy(400)
    finally:
        os_client.indices.delete(index=f"{scratch}-*", params={"ignore_unavailable": "true"})
        os_client.close()


def test_bad_retention_settings_are_refused(tmp_path: Path) -> None:
    from aiaudit.common.config import ConfigError

    with pytest.raises(ConfigError, match="retention_days"):
        start_suite(tmp_path, "sqlite", {"retention_days": -1})
    with pytest.raises(ConfigError, match="retention_sweep_interval"):
        start_suite(tmp_path, "sqlite", {"retention_sweep_interval": 0})


def test_an_erased_event_past_retention_leaves_the_index_with_its_text(
    own_index: dict[str, Any], tmp_path: Path, tenant: str
) -> None:
    """Past retention but in a month a sweep keeps (it drops whole months), an event's old
    document keeps its text; its erasure must remove it, not skip it as too old."""
    settings = own_index
    period = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    # Early in the month the period ends in: past retention, the month not swept.
    old = period.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    old = max(old + dt.timedelta(seconds=1), period - dt.timedelta(hours=1))
    with serving(tmp_path, settings) as running:  # no retention yet
        running.append([interaction(tenant, "now-1", text="mango budget", user="bob")])
        event = at(tenant, "old-text", old)
        event.input.messages[0].parts[0].text = "mango secret"
        running.append([event])
        running.wait_indexed(tenant, 2)
    settings |= {"retention_days": 30, "retention_sweep_interval": 0.2}
    with serving(tmp_path, settings) as running:
        if settings["backend"] == "opensearch":  # the month stays: so does the old document
            assert sorted(running.all_ids(tenant, query="mango")) == ["now-1", "old-text"]
        erase(running.suite.store, tenant, "request", "dpo", event_ids=["old-text"])
        size = running.suite.store.log_sizes()[tenant]
        indexer = running.suite.components["search"].indexer
        assert indexer.wait_indexed(tenant, size, timeout=30)
        # Its text is out of the index; on OpenSearch its text-free document stays in
        # the month until the month is dropped, like the month's other events.
        wait_until(lambda: running.all_ids(tenant, query="mango") == ["now-1"])


@pytest.mark.parametrize("own_index", ["opensearch"], indirect=True)
def test_a_late_bulk_cannot_bring_back_an_erased_event_past_retention(
    own_index: dict[str, Any], tmp_path: Path, tenant: str
) -> None:
    """A deposed indexer filtered its batch while the event was still inside retention; by
    the time its bulk lands the event is past it and erased. The erasure wrote the
    text-free document at its revision into the month (still there), so the late write
    of the event with its text is refused; a delete would have left it nothing to beat.
    (Only OpenSearch has replicas taking turns: an embedded index is its process's.)"""
    settings = own_index
    period = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    old = period.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    old = max(old + dt.timedelta(seconds=1), period - dt.timedelta(hours=1))
    with serving(tmp_path, settings) as running:  # no retention: the month's index exists
        running.append([at(tenant, "sibling", old)])
        running.wait_indexed(tenant, 1)
    settings |= {"retention_days": 30, "retention_sweep_interval": 0.2}
    with serving(tmp_path, settings) as running:
        event = at(tenant, "late", old)
        event.input.messages[0].parts[0].text = "mango secret"
        running.append([event])
        store = running.suite.store
        (before,) = store.read_event_ids(tenant, ["late"])
        deposed_bulk = stored_document.from_stored(before)  # what the old leader had built
        assert deposed_bulk.texts
        erase(store, tenant, "request", "dpo", event_ids=["late"])
        component = running.suite.components["search"]
        assert component.indexer.wait_indexed(tenant, store.log_sizes()[tenant], timeout=30)
        component.backend.write(tenant, [deposed_bulk], 0)  # lands late: refused
        component.backend.make_visible()
        assert running.all_ids(tenant, query="mango") == []


def test_text_past_retention_leaves_every_file_of_the_embedded_index(
    tmp_path: Path, tenant: str
) -> None:
    """Swept as an erasure is: FTS5 keeps a deleted row's terms in its segments until they
    merge, and the WAL keeps old page images (until 2026-12-04 a sweep left both)."""
    secret = secret_word()
    old = interaction(tenant, "old", text=f"the {secret} plan")
    old.occurred_time.FromDatetime(dt.datetime(2020, 1, 15, tzinfo=dt.UTC))
    with serving(tmp_path, {"backend": "sqlite"}) as running:  # no retention yet
        running.append([old, at(tenant, "recent", dt.datetime.now(dt.UTC))])
        running.wait_indexed(tenant, 2)
        assert holding(tmp_path.glob("search.db*"), secret)
    swept = {"backend": "sqlite", "retention_days": 30, "retention_sweep_interval": 0.2}
    with serving(tmp_path, swept) as running:
        wait_until(lambda: running.find(tenant).total_size == 1)
        wait_until(lambda: holding(tmp_path.glob("search.db*"), secret) == [])
        kept = running.search.GetEvent(pb.GetEventRequest(tenant_id=tenant, event_id="old"))
        assert kept.event.input.messages[0].parts[0].text == f"the {secret} plan"  # the store's
