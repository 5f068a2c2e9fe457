"""aiaudit ingest."""
