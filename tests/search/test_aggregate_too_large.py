"""An aggregate refused as too large names what is too large: the filter, or the buckets."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import grpc
import pytest

from aiaudit.search.backends.base import MAX_BUCKETS
from aiaudit.search.backends.opensearch import mappings
from aiaudit.search.v1 import search_service_pb2 as pb
from tests.helpers import field_violations, interaction
from tests.search.conftest import NOT_ACCESS
from tests.search.test_index_upgrade import (
    KEYS,
    index_as_before_entries_bool,
    over_an_earlier_index,
)

START = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
"""Within the month of the index made from the earlier mappings."""


def test_a_filter_too_large_for_the_node_is_named_as_the_filter_in_an_aggregate(
    tmp_path: Path, opensearch_url: str, tenant: str
) -> None:
    """255 booleans ANDed over a document from before ``entries.bool`` are more clauses
    than the node holds: a page answers INVALID_ARGUMENT naming ``filter``, an aggregate
    named ``group_by`` (``histogram.interval`` with a histogram), which were fine, as it
    named them for every refusal of the backend. Too many buckets still name them."""
    earlier = mappings()
    earlier["properties"]["entries"]["properties"].pop("bool", None)
    earlier["properties"].pop("typed_bools", None)
    with over_an_earlier_index(tmp_path, opensearch_url, earlier) as (running, direct, index):
        flagged = []
        for name in ("new-bool", "old-bool"):
            e = interaction(tenant, name)
            e.occurred_time.FromDatetime(START)
            for key in KEYS:
                e.attributes[key].bool_value = True
            flagged.append(e)
        # One more group and one more second than an aggregate may answer.
        many = []
        for i in range(MAX_BUCKETS + 1):
            e = interaction(tenant, f"many-{i:05d}")
            e.occurred_time.FromDatetime(START + dt.timedelta(seconds=i))
            many.append(e)
        sequences = running.append(flagged)
        for i in range(0, len(many), 1000):
            running.append(many[i : i + 1000])
        running.wait_indexed(tenant, len(flagged) + len(many), timeout=120)
        index_as_before_entries_bool(direct, index, tenant, flagged[1], sequences[1])

        anded = " ".join(f"attributes.{k}=true" for k in KEYS)
        too_large = f"({anded}) AND {NOT_ACCESS}"
        asked = [
            pb.AggregateRequest(tenant_id=tenant, filter=too_large, group_by=["event_id"]),
            pb.AggregateRequest(
                tenant_id=tenant, filter=too_large, histogram=pb.Histogram(interval="1h")
            ),
            pb.AggregateRequest(tenant_id=tenant, filter=too_large, metrics=["usage.input_tokens"]),
        ]
        for request in asked:
            with pytest.raises(grpc.RpcError) as caught:
                running.search.Aggregate(request)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            named = field_violations(caught.value)
            assert list(named) == ["filter"], named
            assert "too large" in named["filter"]
        # A filter short of it is answered: both events, the old one as before.
        short = " ".join(anded.split()[:150])
        answer = running.search.Aggregate(
            pb.AggregateRequest(
                tenant_id=tenant, filter=f"({short}) AND {NOT_ACCESS}", group_by=["event_id"]
            )
        )
        assert sorted(b.keys[0] for b in answer.buckets) == ["new-bool", "old-bool"]

        # Too many buckets name what makes them, as before.
        for request, field in (
            (
                pb.AggregateRequest(tenant_id=tenant, filter=NOT_ACCESS, group_by=["event_id"]),
                "group_by",
            ),
            (
                pb.AggregateRequest(
                    tenant_id=tenant, filter=NOT_ACCESS, histogram=pb.Histogram(interval="1s")
                ),
                "histogram.interval",
            ),
        ):
            with pytest.raises(grpc.RpcError) as caught:
                running.search.Aggregate(request)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert list(field_violations(caught.value)) == [field]
            assert f"more than {MAX_BUCKETS}" in field_violations(caught.value)[field]
