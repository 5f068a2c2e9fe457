"""Indices made from an earlier template take the fields a later one adds."""

from __future__ import annotations

import contextlib
import datetime as dt
import string
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from opensearchpy import OpenSearch

from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.search import document
from aiaudit.search.backends.opensearch import KEYWORD_UNITS, body, mappings
from tests.helpers import field_violations, interaction
from tests.search.conftest import SearchSuite, start_suite

KEYS = [a + b for a in string.ascii_lowercase for b in string.ascii_lowercase][:255]
"""255 attribute keys: with the suite's ``AND NOT event_type = ...``, 256 comparisons."""
MONTH = "2026.03"
"""The month of the index made from the earlier mappings, and of the events."""


@contextlib.contextmanager
def over_an_earlier_index(
    tmp_path: Path, opensearch_url: str, earlier: dict[str, Any]
) -> Iterator[tuple[SearchSuite, OpenSearch, str]]:
    """The suite over a month index made with ``earlier`` mappings; the suite, a direct
    client and the index, all dropped at the end."""
    prefix = f"aiaudit-test-{uuid.uuid4().hex[:8]}"
    direct = OpenSearch(hosts=[opensearch_url])
    direct.indices.create(
        index=f"{prefix}-{MONTH}",
        body={"mappings": earlier, "settings": {"number_of_shards": 1, "number_of_replicas": 0}},
    )
    running = start_suite(
        tmp_path,
        "opensearch",
        {"opensearch_url": opensearch_url, "index_prefix": prefix, "refresh_interval": "100ms"},
    )
    try:
        yield running, direct, f"{prefix}-{MONTH}"
    finally:
        running.channel.close()
        running.suite.stop()
        direct.indices.delete(index=f"{prefix}-*", params={"ignore_unavailable": "true"})
        direct.indices.delete_index_template(name=prefix, params={"ignore": 404})
        direct.close()


def index_as_before_entries_bool(
    direct: OpenSearch, index: str, tenant: str, event: ev.Event, sequence: int
) -> None:
    """The event's document as the indexer wrote it before: booleans as text, no flag."""
    doc = document.build(event, sequence)
    source = body(doc)
    source.pop("typed_bools", None)
    for entry in source.get("entries", []):
        if "bool" in entry:
            entry["str"] = "true" if entry.pop("bool") else "false"
    direct.index(
        index=index, id=doc.doc_id, body=source, routing=tenant, params={"refresh": "true"}
    )


def test_an_index_from_before_entries_int_takes_integers_and_compares_them_exactly(
    tmp_path: Path, opensearch_url: str, tenant: str
) -> None:
    """Strict mappings refuse an unknown field: the month index this month's events go
    to was made without ``entries.int``, and the new template alone would not reach it."""
    earlier = mappings()
    del earlier["properties"]["entries"]["properties"]["int"]
    with over_an_earlier_index(tmp_path, opensearch_url, earlier) as (running, _, _):
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


def test_an_index_from_before_takes_keywords_of_4096_characters_outside_the_bmp(
    tmp_path: Path, opensearch_url: str, tenant: str
) -> None:
    """Keywords were ``ignore_above: 8191``, counted in UTF-16 units: 4,096 emoji (the most
    characters ingest takes, 8,192 units) were stored but not indexed, and a filter on them
    found nothing on OpenSearch (SQLite found them). A month index made with the old limit
    takes the new one at start, so the events indexed from then on are found."""
    earlier = mappings()
    earlier["properties"]["entries"]["properties"]["str"]["ignore_above"] = 8191
    earlier["properties"]["error__type"] = {"type": "keyword", "ignore_above": 8191}
    emoji = "\U0001f600" * 4096
    with over_an_earlier_index(tmp_path, opensearch_url, earlier) as (running, direct, index):
        e = interaction(tenant, "astral")
        e.occurred_time.FromDatetime(dt.datetime(2026, 3, 2, tzinfo=dt.UTC))
        e.attributes["k"].string_value = emoji
        e.error.type = emoji
        running.append([e])
        running.wait_indexed(tenant, 1)
        assert running.all_ids(tenant, f'attributes.k = "{emoji}"') == ["astral"]
        assert running.all_ids(tenant, 'error.type = "\U0001f600*"') == ["astral"]
        held = direct.indices.get_mapping(index=index)[index]["mappings"]["properties"]
        assert held["entries"]["properties"]["str"]["ignore_above"] == KEYWORD_UNITS
        assert held["error__type"]["ignore_above"] == KEYWORD_UNITS


def test_an_index_from_before_entries_bool_keeps_booleans_apart_and_finds_old_ones_as_before(
    tmp_path: Path, opensearch_url: str, tenant: str
) -> None:
    """An index made without ``entries.bool`` takes documents holding it; a document
    indexed before it (booleans as the text "true") is found as it was, by ``= true``
    and by ``= "true"`` alike, until indexed again; new ones tell the two apart."""
    earlier = mappings()
    # The fields as named in the mappings before: a document then had neither.
    earlier["properties"]["entries"]["properties"].pop("bool", None)
    earlier["properties"].pop("typed_bools", None)
    with over_an_earlier_index(tmp_path, opensearch_url, earlier) as (running, direct, index):
        events = []
        for name, value in (
            ("text", "true"),
            ("bool", True),
            ("old-bool", True),
            ("old-text", "true"),
        ):
            e = interaction(tenant, name)
            e.occurred_time.FromDatetime(dt.datetime(2026, 3, 2, tzinfo=dt.UTC))
            if isinstance(value, bool):
                e.attributes["k"].bool_value = value
                e.safety_flags.add(category="c", blocked=value)
            else:
                e.attributes["k"].string_value = value
            events.append(e)
        sequences = running.append(events)
        running.wait_indexed(tenant, len(events))
        for event, sequence in zip(events[2:], sequences[2:], strict=True):
            index_as_before_entries_bool(direct, index, tenant, event, sequence)
        both_old = ["old-bool", "old-text"]
        assert sorted(running.all_ids(tenant, "attributes.k = true")) == ["bool", *both_old]
        assert sorted(running.all_ids(tenant, 'attributes.k = "true"')) == [*both_old, "text"]
        assert running.all_ids(tenant, "attributes.k != true") == ["text"]
        assert sorted(running.all_ids(tenant, "safety_flags.blocked = true")) == [
            "bool",
            "old-bool",
        ]


def test_the_largest_boolean_filters_over_documents_from_before_entries_bool(
    tmp_path: Path, opensearch_url: str, tenant: str
) -> None:
    """255 booleans ORed (256 comparisons with the suite's) find old documents as before;
    ANDed, with old documents the node cannot hold the query (five clauses each, one
    branch for them): INVALID_ARGUMENT naming ``filter``. Both were UNAVAILABLE, "retry
    later", for good (the node's 500 taken for an outage)."""
    earlier = mappings()
    earlier["properties"]["entries"]["properties"].pop("bool", None)
    earlier["properties"].pop("typed_bools", None)
    with over_an_earlier_index(tmp_path, opensearch_url, earlier) as (running, direct, index):
        events = []
        for name, value in (("text", "true"), ("bool", True), ("old-bool", True), ("false", False)):
            e = interaction(tenant, name)
            e.occurred_time.FromDatetime(dt.datetime(2026, 3, 2, tzinfo=dt.UTC))
            for key in KEYS:
                kind = "bool_value" if isinstance(value, bool) else "string_value"
                e.attributes[key].CopyFrom(ev.AttributeValue(**{kind: value}))
            events.append(e)
        sequences = running.append(events)
        running.wait_indexed(tenant, len(events))
        old = events[2]
        index_as_before_entries_bool(direct, index, tenant, old, sequences[2])
        ored = " OR ".join(f"attributes.{k} = true" for k in KEYS)
        assert sorted(running.all_ids(tenant, ored)) == ["bool", "old-bool"]
        anded = " ".join(f"attributes.{k}=true" for k in KEYS)
        with pytest.raises(grpc.RpcError) as caught:
            running.all_ids(tenant, anded)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "too large" in field_violations(caught.value)["filter"]
        # A filter short of it still finds them all.
        assert sorted(running.all_ids(tenant, " ".join(anded.split()[:150]))) == [
            "bool",
            "old-bool",
        ]
