"""Indices made from an earlier template take the fields a later one adds."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

from opensearchpy import OpenSearch

from aiaudit.search.backends.opensearch import mappings
from tests.helpers import interaction
from tests.search.conftest import start_suite


def test_an_index_from_before_entries_int_takes_integers_and_compares_them_exactly(
    tmp_path: Path, opensearch_url: str, tenant: str
) -> None:
    """Strict mappings refuse an unknown field: the month index this month's events go
    to was made without ``entries.int``, and the new template alone would not reach it."""
    prefix = f"aiaudit-test-{uuid.uuid4().hex[:8]}"
    earlier = mappings()
    del earlier["properties"]["entries"]["properties"]["int"]
    direct = OpenSearch(hosts=[opensearch_url])
    direct.indices.create(
        index=f"{prefix}-2026.03",
        body={"mappings": earlier, "settings": {"number_of_shards": 1, "number_of_replicas": 0}},
    )
    running = start_suite(
        tmp_path,
        "opensearch",
        {"opensearch_url": opensearch_url, "index_prefix": prefix, "refresh_interval": "100ms"},
    )
    try:
        events = []
        for i, n in enumerate((2**53, 2**53 + 1)):
            e = interaction(tenant, f"up-{i}")
            e.occurred_time.FromDatetime(dt.datetime(2026, 3, 2, tzinfo=dt.UTC))
            e.attributes["n"].int_value = n
            events.append(e)
        running.append(events)
        running.wait_indexed(tenant, len(events))
        assert running.all_ids(tenant, "attributes.n = 9007199254740993") == ["up-1"]
        assert running.all_ids(tenant, "attributes.n < 9007199254740993") == ["up-0"]
    finally:
        running.channel.close()
        running.suite.stop()
        direct.indices.delete(index=f"{prefix}-*", params={"ignore_unavailable": "true"})
        direct.indices.delete_index_template(name=prefix, params={"ignore": 404})
        direct.close()
