"""The indexer reads a log of large events in batches bounded by stored bytes, each event once."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from aiaudit.common.store.sql import SqlEventStore
from aiaudit.search import indexer
from aiaudit.search.backends.sqlite_fts import SqliteFtsBackend
from tests.contract.test_read_budget import BUDGET, _log


def test_a_log_of_large_events_is_indexed_in_several_batches_each_event_once(
    store: SqlEventStore, tenant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2,000 events of a few MB were one batch of gigabytes: the indexer was killed for its
    memory and read the same batch again on restart. Batches now end at READ_BYTES."""
    _log(store, tenant)
    monkeypatch.setattr(indexer, "READ_BYTES", BUDGET, raising=False)
    backend = SqliteFtsBackend(tmp_path / "index.db")
    written: list[tuple[list[int], int]] = []
    write = backend.write

    def recorded(log_id: str, docs: Any, position: int, *args: Any, **kw: Any) -> None:
        if log_id == tenant:
            written.append(([d.sequence for d in docs], position))
        write(log_id, docs, position, *args, **kw)

    monkeypatch.setattr(backend, "write", recorded)
    running = indexer.Indexer(store, backend, 2000, 0.05, 1.0, lambda _: None)
    try:
        assert running._catch_up(tenant, 0, 12)
    finally:
        running._writer.shutdown(wait=True)  # never started: its bulk thread only
    assert written == [
        ([0, 1], 2),
        ([2, 3], 4),
        ([4, 5], 6),
        ([6, 7], 8),
        ([8, 9, 10, 11], 12),
    ]
    assert backend.positions()[tenant] == 12
    with sqlite3.connect(tmp_path / "index.db") as conn:
        rows = conn.execute("SELECT sequence FROM docs WHERE tenant_id = ?", (tenant,)).fetchall()
    assert sorted(seq for (seq,) in rows) == list(range(12))
    backend.close()


def test_an_export_of_large_events_reads_them_in_pieces_each_once(
    tmp_path: Path, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page of the export is 500 events: of a few MB each, gigabytes read at once."""
    import json

    from aiaudit.common.store import sql
    from aiaudit.search import handlers
    from aiaudit.search.v1 import search_service_pb2 as pb
    from tests.contract.test_read_budget import big
    from tests.search.conftest import start_suite

    monkeypatch.setattr(handlers, "READ_BYTES", BUDGET, raising=False)
    reads: list[list[int]] = []
    read_sequences = sql.SqlEventStore.read_sequences

    def recorded(self: SqlEventStore, log_id: str, seqs: Any, max_bytes: Any = None) -> Any:
        bounded = {} if max_bytes is None else {"max_bytes": max_bytes}
        got = read_sequences(self, log_id, seqs, **bounded)
        if log_id == tenant and max_bytes is not None:
            reads.append([e.sequence for e in got])
        return got

    monkeypatch.setattr(sql.SqlEventStore, "read_sequences", recorded)
    running = start_suite(tmp_path, "sqlite", {})
    try:
        for i in range(0, 8, 2):
            running.append([big(tenant, i), big(tenant, i + 1)])
        running.wait_indexed(tenant, 8)
        chunks = running.search.Export(
            pb.ExportRequest(tenant_id=tenant, format=pb.EXPORT_FORMAT_JSONL)
        )
        lines = b"".join(c.data for c in chunks).decode().splitlines()
    finally:
        running.channel.close()
        running.suite.stop()
    exported = [json.loads(line)["eventId"] for line in lines if '"big-' in line]
    assert exported == [f"big-{i}" for i in range(8)]
    read = [seq for each in reads for seq in each]
    assert len(read) == len(set(read)) and len(reads) >= 4
    assert all(len([s for s in each if s < 8]) <= 2 for each in reads)
