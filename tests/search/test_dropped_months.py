"""A month index retention drops is not made again by a write already on its way.

OpenSearch creates a missing index on a write. Until 2026-12-06 a write into a month a
sweep (or ISM) deleted between the backend's look at it and its bulk made the month
again, holding what the write carried: an erased event's text-free document past
retention, or a late bulk's events (swept again by name; under ISM it lived another
retention period). The sweep here runs, in another backend as another process's would,
just before the write's bulk request leaves: the window, driven in order.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from opensearchpy import OpenSearch

from aiaudit.common.store import open_store
from aiaudit.search import document
from aiaudit.search.backends.opensearch import OpenSearchBackend, write_alias
from aiaudit.search.document import Document
from tests.helpers import interaction

DAYS = 30
OLD = dt.datetime(2020, 1, 15, tzinfo=dt.UTC)
"""In a month past retention (``DAYS``): a sweep deletes it."""


class SweptBeforeBulk(OpenSearch):
    """A real client whose next bulk request leaves just after ``sweep`` has run."""

    sweep: Callable[[], object] | None = None

    def bulk(self, *args: Any, **kwargs: Any) -> Any:
        sweep, self.sweep = self.sweep, None
        if sweep is not None:
            sweep()
        return super().bulk(*args, **kwargs)


@pytest.fixture
def prefix(opensearch_url: str) -> Iterator[str]:
    """An index prefix of the test's own (a sweep deletes its months), removed at the end."""
    name = f"aiaudit-test-drop-{uuid.uuid4().hex[:8]}"
    yield name
    direct = OpenSearch(hosts=[opensearch_url])
    direct.indices.delete(index=f"{name}-*", params={"ignore_unavailable": "true"})
    direct.indices.delete_index_template(name=name, params={"ignore": 404})
    direct.close()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    """A store holding the backend's cursor."""
    store = open_store(f"sqlite:///{tmp_path / 'aiaudit.db'}", run_migrations=True)
    yield store.engine
    store.close()


def doc_at(tenant: str, event_id: str, sequence: int, text: str = "mango secret") -> Document:
    event = interaction(tenant, event_id, text=text)
    event.occurred_time.FromDatetime(OLD)
    return document.build(event, sequence)


def count(direct: OpenSearch, index: str) -> int:
    direct.indices.refresh(index=index)
    return int(direct.count(index=index)["count"])


@pytest.mark.parametrize("made", ["by a write", "before write aliases"])
@pytest.mark.parametrize("carried", ["text-free document past retention", "late events"])
def test_a_month_swept_before_the_bulk_lands_is_not_made_again(
    opensearch_url: str, prefix: str, engine: sa.Engine, tenant: str, made: str, carried: str
) -> None:
    """The month is there when the write looks (the text-free document of an erased event
    past retention goes only into a month still there; a late bulk's events were kept by
    its indexer), and swept before the bulk: the write goes through, keeps nothing of that
    month, and the month stays gone. A month made before write aliases (its index has
    none) first takes writes as before."""
    direct = OpenSearch(hosts=[opensearch_url])
    client = SweptBeforeBulk(hosts=[opensearch_url])
    month = f"{prefix}-{OLD:%Y.%m}"
    try:
        keeper = OpenSearchBackend(direct, engine, prefix, "1s")  # before retention was on
        if made == "before write aliases":
            keeper.ensure_template()
            direct.indices.create(index=month)  # as a write made a month until 2026-12-06
        keeper.write(tenant, [doc_at(tenant, "first", 1)], 2)
        assert count(direct, month) == 1

        writer = OpenSearchBackend(client, engine, prefix, "1s", retention_days=DAYS)
        sweeper = OpenSearchBackend(direct, engine, prefix, "1s")
        client.sweep = lambda: sweeper.retain(DAYS, dt.datetime.now(dt.UTC))
        if carried == "late events":
            writer.write(tenant, [doc_at(tenant, "late", 2)], 3)
        else:
            erased = doc_at(tenant, "first", 1, text="")
            erased.revision = 2
            writer.write(tenant, [], 3, gone=[erased])
        assert client.sweep is None  # the sweep ran, between the look and the bulk

        assert not direct.indices.exists(index=month)
        assert not direct.indices.exists_alias(name=write_alias(month))
        assert writer.positions()[tenant] == 3  # nothing to keep: the write is done
    finally:
        client.close()
        direct.close()


def test_a_new_month_is_made_with_its_write_alias_unless_past_retention(
    opensearch_url: str, prefix: str, engine: sa.Engine, tenant: str
) -> None:
    """A write creates a month it keeps events of (with its alias: the template's settings
    and mappings, as a write made one); the late events of a month retention has dropped
    (a deposed indexer's bulk) make no month, whoever swept it."""
    direct = OpenSearch(hosts=[opensearch_url])
    try:
        writer = OpenSearchBackend(direct, engine, prefix, "1s", retention_days=DAYS)
        recent = interaction(tenant, "recent")
        writer.write(tenant, [document.build(recent, 1), doc_at(tenant, "late", 2)], 3)
        assert not direct.indices.exists(index=f"{prefix}-{OLD:%Y.%m}")
        month = f"{prefix}-{recent.occurred_time.ToDatetime(tzinfo=dt.UTC):%Y.%m}"
        assert count(direct, month) == 1
        assert direct.indices.exists_alias(index=month, name=write_alias(month))
        settings = direct.indices.get_settings(index=month)[month]["settings"]["index"]
        assert settings["refresh_interval"] == "1s"  # the template's
        assert writer.positions()[tenant] == 3
    finally:
        direct.close()
