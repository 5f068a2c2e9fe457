"""Search backends: SQLite FTS5 (embedded) and OpenSearch, behind one protocol."""
