"""A document OpenSearch refuses for good holds its own log only, and an event with more
multi-valued values than OpenSearch takes is indexed with as many as it takes.

Until 2026-12-05 an event with more than 10,000 attributes was refused (400,
``index.mapping.nested_objects.limit``) and the refusal counted as an outage:
every pass of the indexer ended there, so the logs sorting after it were never
indexed again (nor their erasures), and health went NOT_SERVING.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2
from opensearchpy import OpenSearch

from aiaudit.common.erasure import erase
from aiaudit.common.store.prepare import prepare
from aiaudit.search import catalogue
from aiaudit.search.backends.opensearch import mappings
from aiaudit.search.v1 import search_service_pb2 as pb
from tests.helpers import interaction, secret_word, wait_until
from tests.search.conftest import SearchSuite, start_suite
from tests.search.test_faults import health

SERVING = health_pb2.HealthCheckResponse.SERVING
LIMIT = 10_000
"""OpenSearch's default ``index.mapping.nested_objects.limit`` (``document.MAX_ENTRIES``)."""


def test_an_event_with_more_values_than_opensearch_takes_is_indexed_with_the_first_ones(
    search_suite: SearchSuite, tenant: str, opensearch_url: str, index_prefix: str
) -> None:
    """10,001 attributes: the first 10,000 (in key order) are indexed, the event is found
    by everything else, the document says one value was left out, the store keeps all."""
    big = interaction(tenant, "big")
    for i in range(LIMIT + 1):
        big.attributes[f"k{i}"].int_value = i
    after = interaction(tenant, "after")
    # Into the store directly: ingest now refuses so many attributes, a store may hold them.
    now = dt.datetime.now(dt.UTC)
    search_suite.suite.store.append_group([[prepare(big, now), prepare(after, now)]])
    search_suite.wait_indexed(tenant, 2, timeout=60)
    assert search_suite.all_ids(tenant, 'event_id = "big"') == ["big"]
    assert search_suite.all_ids(tenant, "attributes.k0 = 0") == ["big"]
    assert search_suite.all_ids(tenant, "attributes.k9998 = 9998") == ["big"]
    # Keys sort as text: k9999 is the last, the one left out.
    assert search_suite.all_ids(tenant, "attributes.k9999 = 9999") == []
    got = search_suite.search.GetEvent(pb.GetEventRequest(tenant_id=tenant, event_id="big"))
    assert len(got.event.attributes) == LIMIT + 1
    if search_suite.backend == "opensearch":
        direct = OpenSearch(hosts=[opensearch_url])
        try:
            found = direct.search(
                index=f"{index_prefix}-*",
                body={"query": {"ids": {"values": [f"{tenant}:big", f"{tenant}:after"]}}},
                routing=tenant,
            )["hits"]["hits"]
            omitted = {h["_id"]: h["_source"].get("omitted_entries") for h in found}
            assert omitted == {f"{tenant}:big": 1, f"{tenant}:after": None}
        finally:
            direct.close()


def test_a_refused_document_holds_only_its_own_log_and_is_tried_again(
    tmp_path: Path, opensearch_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """OpenSearch refuses one event of the first log (its month index takes 5 nested values,
    the event has 6): the log is indexed up to it and held there with one ERROR; the log
    after it is indexed, its erasure reaches the index, health stays SERVING; once the
    index takes the event, the held log goes on."""
    caplog.set_level(logging.INFO, logger="aiaudit.search")
    prefix = f"aiaudit-test-{uuid.uuid4().hex[:8]}"
    narrow = f"{prefix}-2026.03"
    held, victim = f"a{uuid.uuid4().hex[:8]}", f"z{uuid.uuid4().hex[:8]}"
    secret = secret_word()
    direct = OpenSearch(hosts=[opensearch_url])
    direct.indices.create(
        index=narrow,
        body={
            "mappings": mappings(),
            "settings": {
                "number_of_shards": 1,
                "number_of_replicas": 0,
                "mapping.nested_objects.limit": 5,
            },
        },
    )
    running = start_suite(
        tmp_path,
        "opensearch",
        {"opensearch_url": opensearch_url, "index_prefix": prefix, "refresh_interval": "100ms"},
    )
    try:
        refused = interaction(held, "p-1")
        refused.occurred_time.FromDatetime(dt.datetime(2026, 3, 2, tzinfo=dt.UTC))
        for i in range(6):
            refused.attributes[f"k{i}"].int_value = i
        now = dt.datetime.now(dt.UTC)
        events = [interaction(held, "p-0"), refused, interaction(held, "p-2")]
        running.suite.store.append_group([[prepare(e, now) for e in events]])
        running.append([interaction(victim, "m-1", text=f"the {secret} plan", user="alice")])
        running.wait_indexed(victim, 1)
        # p-2 was in the same bulk and may be there: the position is what is sure.
        assert "p-1" not in running.all_ids(held, "event_type = INTERACTION")

        erase(running.suite.store, victim, "gdpr art.17", "dpo", subject_id="alice")
        running.append([interaction(victim, "m-2", user="bob")])
        running.wait_indexed(victim, 2)
        wait_until(lambda: running.all_ids(victim, query=secret) == [])
        assert health(running.channel) == SERVING
        positions = running.suite.components["search"].backend.positions()
        assert positions[held] == 1  # p-0 indexed, held at p-1

        def holds() -> list[str]:
            return [
                r.getMessage()
                for r in caplog.records
                if r.levelno == logging.ERROR and "refused" in r.getMessage()
            ]

        assert len(holds()) == 1, holds()
        assert f"holds log {held} at sequence 1" in holds()[0]
        assert "'p-1'" in holds()[0] and "mapper_parsing_exception" in holds()[0]

        direct.indices.put_settings(index=narrow, body={"mapping.nested_objects.limit": 10_000})
        every = ["p-0", "p-1", "p-2"]
        wait_until(lambda: sorted(running.all_ids(held, "event_type = INTERACTION")) == every)
        assert len(holds()) == 1
        assert health(running.channel) == SERVING
    finally:
        running.channel.close()
        running.suite.stop()
        direct.indices.delete(index=f"{prefix}-*", params={"ignore_unavailable": "true"})
        direct.indices.delete_index_template(name=prefix, params={"ignore": 404})
        direct.close()


def test_an_erasure_past_a_refused_document_takes_the_text_out_of_the_index(
    tmp_path: Path, opensearch_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The log waits at the refused event, its erasure record after it does not: the erased
    event's document is written again without its text, at the record's revision, and a
    count over content answers. Until 2026-12-05 the record was never applied while the
    log was held: OpenSearch matched the erased text."""
    caplog.set_level(logging.INFO, logger="aiaudit.search")
    prefix = f"aiaudit-test-{uuid.uuid4().hex[:8]}"
    tenant = f"t{uuid.uuid4().hex[:8]}"
    secret = secret_word()
    direct = OpenSearch(hosts=[opensearch_url])
    direct.indices.create(
        index=f"{prefix}-2026.03",
        body={
            "mappings": mappings(),
            "settings": {
                "number_of_shards": 1,
                "number_of_replicas": 0,
                "mapping.nested_objects.limit": 5,
            },
        },
    )
    settings = {
        "opensearch_url": opensearch_url,
        "index_prefix": prefix,
        "refresh_interval": "100ms",
        "export_wait": 2.0,
    }
    running = start_suite(tmp_path, "opensearch", settings)
    try:
        running.append([interaction(tenant, "m-0", text=f"the {secret} plan", user="alice")])
        running.wait_indexed(tenant, 1)
        refused = interaction(tenant, "p-1", user="bob")
        refused.occurred_time.FromDatetime(dt.datetime(2026, 3, 2, tzinfo=dt.UTC))
        for i in range(6):
            refused.attributes[f"k{i}"].int_value = i
        running.suite.store.append_group([[prepare(refused, dt.datetime.now(dt.UTC))]])
        wait_until(lambda: any("refused event 'p-1'" in m for m in _errors(caplog)))
        backend = running.suite.components["search"].backend
        hold = backend.positions()[tenant]
        erase(running.suite.store, tenant, "gdpr art.17", "dpo", subject_id="alice")
        running.append([interaction(f"{tenant}-z", "probe")])
        running.wait_indexed(f"{tenant}-z", 1)  # the pass went past the held log

        direct.indices.refresh(index=f"{prefix}-*")
        fields = [f.column for f in catalogue.TEXTS]
        query = {"query": {"multi_match": {"query": secret, "fields": fields}}}
        assert direct.count(index=f"{prefix}-*", body=query)["count"] == 0
        assert backend.positions()[tenant] == hold  # still held at p-1
        by_event = pb.AggregateRequest(tenant_id=tenant, query=f'"{secret}"', group_by=["event_id"])
        assert list(running.as_role("auditor").Aggregate(by_event).buckets) == []
        assert running.all_ids(tenant, 'event_id = "m-0"') == ["m-0"]  # its metadata stays
    finally:
        running.channel.close()
        running.suite.stop()
        direct.indices.delete(index=f"{prefix}-*", params={"ignore_unavailable": "true"})
        direct.indices.delete_index_template(name=prefix, params={"ignore": 404})
        direct.close()


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
