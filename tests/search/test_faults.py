"""Faults: OpenSearch stopped while events arrive, then restarted; the indexer restarted.

The OpenSearch case runs on PostgreSQL with the indexer logged in as the
least-privileged consumer role, as in production.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Callable
from pathlib import Path

import grpc
import orjson
import pytest
import sqlalchemy as sa
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aiaudit.common.erasure import erase
from aiaudit.common.keys.kek import FileKek
from aiaudit.common.keys.keyring import Keyring
from aiaudit.common.store import open_store
from aiaudit.common.store.prepare import prepare
from aiaudit.search.v1 import search_service_pb2 as pb
from tests.conftest import REPO, Postgres
from tests.helpers import flip_sealed_content, interaction, wait_until
from tests.search.conftest import NOT_ACCESS, building, indexed_directly, start_suite


def opensearch(command: str) -> None:
    subprocess.run(
        ["bash", str(REPO / "scripts/backends/opensearch.sh"), command],
        check=True,
        capture_output=True,
        timeout=600,
    )


def health(channel: grpc.Channel) -> int:
    check = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="aiaudit.search.v1.SearchService")
    )
    return int(check.status)


def test_opensearch_down_while_events_arrive_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, tenant: str, own_postgres: Postgres, opensearch_url: str, index_prefix: str
) -> None:
    running = start_suite(
        tmp_path,
        "opensearch",
        {
            "opensearch_url": opensearch_url,
            "index_prefix": index_prefix,
            "refresh_interval": "100ms",
            "database_url": own_postgres.consumer_url,
            "opensearch_timeout": 2.0,
        },
        store_url=own_postgres.app_url,
    )
    sent: list[str] = []
    try:
        first = [interaction(tenant, f"before-{i}") for i in range(5)]
        running.append(first)
        sent += [e.event_id for e in first]
        running.wait_indexed(tenant, 5)
        opensearch("stop")
        try:
            for batch in range(4):
                events = [interaction(tenant, f"during-{batch}-{i}") for i in range(5)]
                running.append(events)  # ingest still acknowledges: the store is up
                sent += [e.event_id for e in events]
            wait_until(
                lambda: health(running.channel) == health_pb2.HealthCheckResponse.NOT_SERVING
            )
            with pytest.raises(grpc.RpcError) as caught:
                running.find(tenant)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            opensearch("start")
        running.wait_indexed(tenant, len(sent), timeout=120)
        wait_until(lambda: health(running.channel) == health_pb2.HealthCheckResponse.SERVING)
        ids = running.all_ids(tenant, order_by="sequence")
        assert sorted(ids) == sorted(sent) and len(ids) == len(set(ids))
        count = indexed_directly(opensearch_url, index_prefix, tenant)
        assert count == len(sent), "a document was indexed twice"
    finally:
        running.channel.close()
        running.suite.stop()


def test_sqlite_index_resumes_after_restart_exactly_once(tmp_path: Path, tenant: str) -> None:
    running = start_suite(tmp_path, "sqlite", {})
    running.append([interaction(tenant, f"a-{i}") for i in range(10)])
    running.wait_indexed(tenant, 10)
    running.suite.stop()  # the index file and its positions stay in the data directory
    running.channel.close()

    again = start_suite(tmp_path, "sqlite", {})
    try:
        again.append([interaction(tenant, f"b-{i}") for i in range(10)])
        again.wait_indexed(tenant, 20)
        ids = again.all_ids(tenant)
        assert len(ids) == 20 == len(set(ids))
        page = again.search.SearchEvents(
            pb.SearchEventsRequest(tenant_id=tenant, filter=NOT_ACCESS, page_size=1)
        )
        assert page.total_size == 20
    finally:
        again.channel.close()
        again.suite.stop()


def _junk_canonical(url: str, tenant: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # what an attacker with database access could do
        conn.execute(
            sa.text("UPDATE events SET canonical = :junk WHERE log_id = :t"),
            {"junk": b"not json", "t": tenant},
        )
    engine.dispose()


@pytest.mark.parametrize(
    "damage",
    [
        _junk_canonical,
        # sealed content that no longer opens (a flipped byte) is damage, not an outage
        lambda url, tenant: flip_sealed_content(url, tenant, 1),
    ],
    ids=["canonical form", "sealed content"],
)
def test_a_damaged_log_holds_only_its_own_tenant(
    tmp_path: Path, tenant: str, damage: Callable[[str, str], None]
) -> None:
    damaged = f"{tenant}-dmg"
    url = f"sqlite:///{tmp_path / 'aiaudit.db'}"
    store = open_store(url, run_migrations=True)
    now = dt.datetime.now(dt.UTC)
    store.append_group([[prepare(interaction(damaged, f"d-{i}"), now) for i in range(3)]])
    store.close()
    damage(url, damaged)
    running = start_suite(tmp_path, "sqlite", {})
    try:
        running.append([interaction(tenant, f"ok-{i}") for i in range(4)])
        running.wait_indexed(tenant, 4)  # the healthy tenant is not held up
        assert health(running.channel) == health_pb2.HealthCheckResponse.SERVING
        # What comes before the damaged event is indexed: nothing when every one is damaged.
        # The index is new and the log is not whole in it: its reads say so, and how far.
        indexed = "0" if damage is _junk_canonical else "1"
        assert building(running, damaged) == {  # no retry: waiting does not end the hold
            "code": "FAILED_PRECONDITION",
            "reason": "INDEX_HELD",
            "indexed": indexed,
            "target": "3",
            "held_at_sequence": indexed,
            "retry": "",
        }
    finally:
        running.channel.close()
        running.suite.stop()


def test_get_event_answers_data_loss_for_altered_sealed_content_and_unavailable_without_its_kek(
    tmp_path: Path, tenant: str
) -> None:
    url = f"sqlite:///{tmp_path / 'aiaudit.db'}"
    store = open_store(url, run_migrations=True)  # sealed under the KEK beside the database
    foreign = open_store(url, keys=Keyring(FileKek(tmp_path / "elsewhere" / "content.kek")))
    now = dt.datetime.now(dt.UTC)
    store.append_group([[prepare(interaction(tenant, f"e-{i}"), now) for i in range(2)]])
    foreign.append_group([[prepare(interaction(f"{tenant}-f", "f-0"), now)]])
    store.close()
    flip_sealed_content(url, tenant, 1)
    foreign.close()
    running = start_suite(tmp_path, "sqlite", {})
    try:

        def get(log: str, event_id: str) -> pb.GetEventResponse:
            return running.search.GetEvent(pb.GetEventRequest(tenant_id=log, event_id=event_id))

        assert get(tenant, "e-0").event.input.messages[0].parts[0].text == "hello"
        with pytest.raises(grpc.RpcError) as damaged:
            get(tenant, "e-1")
        assert damaged.value.code() == grpc.StatusCode.DATA_LOSS
        assert "'e-1'" in (damaged.value.details() or "")
        with pytest.raises(grpc.RpcError) as keyless:
            get(f"{tenant}-f", "f-0")
        assert keyless.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "content keys are unavailable" in (keyless.value.details() or "")
    finally:
        running.channel.close()
        running.suite.stop()


def test_an_erased_event_whose_stored_id_was_altered_holds_only_its_own_tenant(
    tmp_path: Path, tenant: str
) -> None:
    """The canonical form of an erased event rewritten with another eventId (valid JSON):
    the erasure's re-index must not stop the indexer's pass for the tenants after it."""
    damaged = f"{tenant}-a"  # sorted before the healthy tenant
    healthy = f"{tenant}-b"
    store = open_store(f"sqlite:///{tmp_path / 'aiaudit.db'}", run_migrations=True)
    now = dt.datetime.now(dt.UTC)
    store.append_group([[prepare(interaction(damaged, "m-1", text="mango"), now)]])
    erase(store, damaged, "request", "dpo", event_ids=["m-1"])
    with store.engine.begin() as conn:  # what an attacker with database access could do
        found = conn.execute(
            sa.text("SELECT canonical FROM events WHERE log_id = :t AND seq = 0"), {"t": damaged}
        ).scalar_one()
        node = orjson.loads(found)
        node["eventId"] = "m-1-altered"
        conn.execute(
            sa.text("UPDATE events SET canonical = :c WHERE log_id = :t AND seq = 0"),
            {"c": orjson.dumps(node), "t": damaged},
        )
    store.close()
    running = start_suite(tmp_path, "sqlite", {})
    try:
        running.append([interaction(healthy, f"ok-{i}") for i in range(4)])
        running.wait_indexed(healthy, 4)
    finally:
        running.channel.close()
        running.suite.stop()
