"""The embedded index of another schema is dropped and rebuilt: said, and all of it or none."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from aiaudit.search.backends import sqlite_fts


def test_an_index_of_another_schema_is_dropped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A version whose index schema changed drops the embedded index at start and indexes
    every log again: the drop takes time in the index's size before the service serves, and
    searches then find only what is indexed again. Nothing said so (review); a new file is
    no rebuild and says nothing."""
    path = tmp_path / "search.db"
    with caplog.at_level(logging.WARNING, logger=sqlite_fts.__name__):
        sqlite_fts.SqliteFtsBackend(path).close()
    assert not caplog.records  # a new file
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("INSERT INTO positions VALUES ('t', 7)")
    conn.execute(f"PRAGMA user_version = {sqlite_fts.SCHEMA_VERSION - 1}")
    conn.close()
    with caplog.at_level(logging.WARNING, logger=sqlite_fts.__name__):
        backend = sqlite_fts.SqliteFtsBackend(path)
    try:
        assert backend.positions() == {}
    finally:
        backend.close()
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2, said
    assert f"has schema {sqlite_fts.SCHEMA_VERSION - 1}" in said[0]
    assert f"needs {sqlite_fts.SCHEMA_VERSION}" in said[0]
    assert "indexing every log again" in said[0]
    assert "dropped in" in said[1]
