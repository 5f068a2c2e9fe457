"""The embedded index reads a page of a user's (or a model's) events, not the tenant's every one.

The results' default order is time, then sequence. ``docs_user`` and
``docs_model`` ended at the time, so SQLite took ``docs_time`` for the order
and walked the tenant's every document for the user's few: 12 ms a page on a
30,000-event log, growing with it (2026-12-06). The plans of the statements
as issued are read, not a clock; a file made before the fix is given the
indexes at open (no rebuild).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from aiaudit.common.store import open_store
from aiaudit.common.store.prepare import prepare_batch
from aiaudit.search import language, stored_document
from aiaudit.search.backends.base import SearchSpec
from aiaudit.search.backends.sqlite_fts import SqliteFtsBackend
from aiaudit.search.language import And
from tests.helpers import interaction

FILTERS = [
    ('actor.user_id = "u3"', "", "docs_user_time", "actor__user_id=?"),
    ('model.name = "m3"', "", "docs_model_time", "model__name=?"),
    ('actor.user_id = "u3"', '"refund"', "docs_user_time", "actor__user_id=?"),
]


def index(path: Path, tmp_path: Path, tenant: str) -> None:
    """1,000 events of 20 users and 20 models, indexed (another tenant's beside them)."""
    store = open_store(f"sqlite:///{tmp_path / 'aiaudit.db'}", run_migrations=True)
    backend = SqliteFtsBackend(path)
    try:
        for log_id in ("other", tenant):
            batch = [
                interaction(log_id, f"e-{i}", "refund please", f"u{i % 20}", f"m{i % 20}")
                for i in range(1000)
            ]
            store.append_group([prepare_batch(batch, dt.datetime.now(dt.UTC))])
            stored = store.read_log(log_id, 0, 1000)
            backend.write(log_id, [stored_document.from_stored(s) for s in stored], len(stored))
    finally:
        backend.close()
        store.close()


def page_plans(backend: SqliteFtsBackend, tenant: str, where: str, query: str) -> list[str]:
    """The query plan of each statement a page of the default order issued (count included)."""
    nodes = [n for n in (language.parse_filter(where), language.parse_query(query)) if n]
    node = nodes[0] if len(nodes) == 1 else And(tuple(nodes))
    conn = backend._conn()
    issued: list[str] = []
    conn.set_trace_callback(issued.append)
    try:
        page = backend.search(SearchSpec(tenant, node, language.parse_order_by(""), 10))
    finally:
        conn.set_trace_callback(None)
    assert page.total == 50 and len(page.hits) == 10
    return [
        " | ".join(str(r[3]) for r in conn.execute(f"EXPLAIN QUERY PLAN {statement}"))
        for statement in issued
        if "FROM docs d" in statement  # not FTS5's own statements
    ]


def assert_read_by(plans: list[str], name: str, key: str) -> None:
    assert len(plans) == 2, plans  # the count, the page
    for plan in plans:
        assert f"INDEX {name} (tenant_id=? AND {key})" in plan, plans
        assert "TEMP B-TREE" not in plan, plans


@pytest.mark.parametrize(("where", "query", "name", "key"), FILTERS)
def test_a_page_of_a_users_or_models_events_reads_their_index_in_order(
    tmp_path: Path, tenant: str, where: str, query: str, name: str, key: str
) -> None:
    path = tmp_path / "search.db"
    index(path, tmp_path, tenant)
    backend = SqliteFtsBackend(path)
    try:
        assert_read_by(page_plans(backend, tenant, where, query), name, key)
    finally:
        backend.close()


def test_an_index_file_made_before_the_ordered_indexes_gets_them_at_open(
    tmp_path: Path, tenant: str
) -> None:
    path = tmp_path / "search.db"
    index(path, tmp_path, tenant)
    conn = sqlite3.connect(path, isolation_level=None)  # as versions before 2026-12-06 made it
    conn.execute("DROP INDEX docs_user_time")
    conn.execute("DROP INDEX docs_model_time")
    conn.execute("CREATE INDEX docs_user ON docs (tenant_id, actor__user_id, occurred_time)")
    conn.execute("CREATE INDEX docs_model ON docs (tenant_id, model__name, occurred_time)")
    conn.close()
    backend = SqliteFtsBackend(path)
    try:
        assert backend.positions()[tenant] == 1000  # kept: no rebuild
        names = {n for (n,) in backend._conn().execute("SELECT name FROM sqlite_master")}
        assert {"docs_user_time", "docs_model_time"} <= names
        assert not {"docs_user", "docs_model"} & names
        assert_read_by(page_plans(backend, tenant, *FILTERS[0][:2]), *FILTERS[0][2:])
    finally:
        backend.close()
