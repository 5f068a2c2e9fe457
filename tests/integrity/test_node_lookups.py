"""The embedded store reads a proof's nodes by primary key, not by scanning the log's nodes.

A ``(level, idx) IN (...)`` row-value list used only ``log_id`` of the key:
SQLite read every node of the log for each proof (9 ms at 20,000 leaves and
linear), and 500 proofs of a 32,000-event log outlasted search's 5 s
``integrity_timeout``. Checked on the statements actually issued, with
SQLite's own ``EXPLAIN QUERY PLAN``, not with a clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from aiaudit.common.store import SqlEventStore, open_store
from aiaudit.integrity import merkle, storage
from aiaudit.integrity.merkle import NodeID

FULL_KEY = "(log_id=? AND level=? AND idx=?)"
SIZE = 1000


def leaf(i: int) -> bytes:
    return hashlib.sha256(b"leaf %d" % i).digest()


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[tuple[SqlEventStore, merkle.MemoryNodeStore]]:
    """A log of SIZE leaves in an embedded store (another log beside it), and its nodes."""
    store = open_store(f"sqlite:///{tmp_path / 'aiaudit.db'}", run_migrations=True)
    memory = merkle.MemoryNodeStore()
    with store.engine.begin() as conn:
        for log_id in ("other", "t"):
            created = merkle.CompactRange().extend(leaf(i) for i in range(SIZE))
            storage.write_nodes(conn, log_id, created)
            memory.write_nodes(created)
    yield store, memory
    store.close()


def node_statements(engine: sa.Engine) -> tuple[list[tuple[str, Any]], Any]:
    """The statements reading ``integrity_nodes`` issued on ``engine`` from now on."""
    issued: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, params: Any, *rest: Any) -> None:
        if "integrity_nodes" in statement and statement.lstrip().upper().startswith("SELECT"):
            issued.append((statement, params))

    sa.event.listen(engine, "before_cursor_execute", seen)
    return issued, seen


def probes_by_primary_key(engine: sa.Engine, issued: list[tuple[str, Any]]) -> None:
    """Asserts that SQLite plans each statement's reads of ``integrity_nodes`` as key probes."""
    with engine.connect() as conn:
        for statement, params in issued:
            plan = [
                str(row[3])
                for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
            ]
            nodes = [step for step in plan if "integrity_nodes" in step]
            assert nodes, plan
            assert all(step.startswith("SEARCH") and FULL_KEY in step for step in nodes), plan


def test_every_node_lookup_uses_the_primary_key(
    tree: tuple[SqlEventStore, merkle.MemoryNodeStore],
) -> None:
    store, memory = tree
    issued, listener = node_statements(store.engine)
    try:
        with store.engine.connect() as conn:
            table = storage.NodeTable(conn, "t")
            for index in (0, 1, 500, 998, 999):
                assert merkle.inclusion_proof(index, SIZE, table) == merkle.inclusion_proof(
                    index, SIZE, memory
                )
            assert merkle.consistency_proof(300, SIZE, table) == merkle.consistency_proof(
                300, SIZE, memory
            )
            assert merkle.root_at(SIZE, table) == merkle.root_at(SIZE, memory)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", listener)
    assert len(issued) >= 7
    probes_by_primary_key(store.engine, issued)


def test_a_read_of_more_nodes_than_one_statement_binds(
    tree: tuple[SqlEventStore, merkle.MemoryNodeStore],
) -> None:
    """Long reads are split (SQLite binds at most 32,766 values); each node comes back."""
    store, memory = tree
    ids = [NodeID(0, i) for i in range(SIZE)] + [NodeID(1, i) for i in range(SIZE // 2)]
    with store.engine.connect() as conn:
        assert storage.NodeTable(conn, "t").read_nodes(ids) == list(memory.read_nodes(ids))
        with pytest.raises(merkle.MissingNodeError, match=r"node NodeID\(level=0, index=1000\)"):
            storage.NodeTable(conn, "t").read_nodes([*ids, NodeID(0, SIZE)])


def test_a_batch_of_proofs_reads_its_nodes_together_by_primary_key(
    tree: tuple[SqlEventStore, merkle.MemoryNodeStore],
) -> None:
    """A batch (an export's page) read each proof's nodes in a statement of its own: a round
    trip per proof, most of ``aiaudit export --include-proofs``'s time. Its 300 leaves across
    subtree boundaries now read their distinct nodes in as few statements as bind them, each
    still a primary-key probe per node, and each path is the one proved alone."""
    store, memory = tree
    indexes = list(range(350, 650))
    issued, listener = node_statements(store.engine)
    try:
        with store.engine.connect() as conn:
            paths = merkle.inclusion_proofs(indexes, SIZE, storage.NodeTable(conn, "t"))
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", listener)
    assert paths == [merkle.inclusion_proof(i, SIZE, memory) for i in indexes]
    assert len(issued) == 2  # 613 distinct nodes, 500 a statement
    probes_by_primary_key(store.engine, issued)
