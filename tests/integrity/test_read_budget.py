"""verify --mode full and export-bundle read a log of large events by stored bytes, each once."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from aiaudit.common.store import open_store
from aiaudit.common.store.sql import SqlEventStore
from aiaudit.integrity import bundle, storage, verify
from aiaudit.integrity.signers import FileKeys
from tests.contract.test_read_budget import BUDGET, _log
from tests.integrity.conftest import ORIGIN_PREFIX, Notaries, stepping


def test_verify_full_reads_a_page_of_large_events_in_spans_and_checks_each_once(
    store: SqlEventStore, tenant: str, admin_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page is 4,096 entries: of events of a few MB, gigabytes read at once."""
    _log(store, tenant)
    monkeypatch.setattr(verify, "READ_BYTES", BUDGET, raising=False)
    spans: list[tuple[int, int]] = []
    page_rows = verify._page_rows

    def recorded(conn: sa.Connection, log_id: str, full: bool, lo: int, hi: int, *a: Any) -> Any:
        spans.append((lo, hi))
        return page_rows(conn, log_id, full, lo, hi, *a)

    monkeypatch.setattr(verify, "_page_rows", recorded)
    checked: list[int] = []
    json_checks = verify._json_checks

    def counted(batch: list[Any]) -> Any:
        checked.extend(seq for _, seq, *_ in batch)
        return json_checks(batch)

    monkeypatch.setattr(verify, "_json_checks", counted)
    engine = sa.create_engine(admin_url)
    try:
        report = verify.verify_store(engine, [], ORIGIN_PREFIX, None, [tenant], mode="full")
    finally:
        engine.dispose()
    assert report.ok, report.problems
    assert report.events == 12
    assert spans == [(0, 2), (2, 4), (4, 6), (6, 8), (8, verify.PAGE)]
    assert sorted(checked) == list(range(12))


def test_export_bundle_reads_large_events_in_batches_each_once(
    store_url: str,
    store: SqlEventStore,
    tenant: str,
    notaries: Notaries,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _log(store, tenant)
    with stepping(notaries.url, FileKeys(ORIGIN_PREFIX, tmp_path / "key.pem"), tmp_path) as n:
        n.step()
    reader = open_store(notaries.url)
    with reader.engine.connect() as conn:
        cp = storage.latest_checkpoint(conn, tenant)
    assert cp is not None and cp.tree_size == 12
    monkeypatch.setattr(bundle, "READ_BYTES", BUDGET, raising=False)
    batches: list[list[int]] = []
    read_log = reader.read_log

    def recorded(*args: Any, **kw: Any) -> Any:
        got = read_log(*args, **kw)
        batches.append([e.sequence for e in got])
        return got

    monkeypatch.setattr(reader, "read_log", recorded)
    out = io.StringIO()
    try:
        assert bundle.export(reader, cp, out, 0, 12) == 12
    finally:
        reader.close()
    assert batches == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9, 10, 11]]
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 12
    assert len({json.dumps(line, sort_keys=True) for line in lines}) == 12
