"""The node cache proofs are built through: which nodes it keeps, and that it is bounded."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from aiaudit.common.store import open_store
from aiaudit.integrity import storage
from aiaudit.integrity.merkle import NodeID


def test_nodes_near_the_root_are_read_once_the_lower_ones_every_time(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'a.db'}", run_migrations=True)
    low, high = NodeID(3, 1), NodeID(storage.NodeCache.MIN_LEVEL, 1)
    cache = storage.NodeCache()
    with store.engine.begin() as conn:
        storage.write_nodes(conn, "t", [(low, b"\x01" * 32), (high, b"\x02" * 32)])
        assert storage.NodeTable(conn, "t", cache).read_nodes([low, high]) == [
            b"\x01" * 32,
            b"\x02" * 32,
        ]
        conn.execute(sa.text("UPDATE integrity_nodes SET hash = :h"), {"h": b"\x03" * 32})
        # The high node comes from the cache (the table changed under it), the low one not.
        assert storage.NodeTable(conn, "t", cache).read_nodes([low, high]) == [
            b"\x03" * 32,
            b"\x02" * 32,
        ]
        assert storage.NodeTable(conn, "t").read_nodes([high]) == [b"\x03" * 32]
        cache.clear()
        assert storage.NodeTable(conn, "t", cache).read_nodes([high]) == [b"\x03" * 32]
        assert cache.get("other-log", high) is None  # logs do not share nodes
    store.close()


def test_a_full_cache_starts_over() -> None:
    cache = storage.NodeCache()
    level = storage.NodeCache.MIN_LEVEL
    for i in range(storage.NodeCache.MAX_ENTRIES):
        cache.put("t", NodeID(level, i), b"x")
    assert cache.get("t", NodeID(level, 0)) == b"x"
    cache.put("t", NodeID(level, storage.NodeCache.MAX_ENTRIES), b"y")
    assert cache.get("t", NodeID(level, 0)) is None
    assert cache.get("t", NodeID(level, storage.NodeCache.MAX_ENTRIES)) == b"y"
