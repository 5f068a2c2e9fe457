"""Settings of the search service (``search:`` in the config file, ``AIAUDIT_SEARCH_*``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from aiaudit.common.config import ConfigError

BACKENDS = ("sqlite", "opensearch")


@dataclass(frozen=True)
class SearchSettings:
    """Defaults are the embedded mode: an SQLite FTS5 index in the data directory."""

    backend: str = "sqlite"
    """``sqlite`` (embedded FTS5 file) or ``opensearch``."""
    sqlite_path: Path | None = None
    """Index file of the sqlite backend (default ``<data_dir>/search.db``)."""
    opensearch_url: str = ""
    """Comma-separated node URLs, ``https://...`` for TLS."""
    opensearch_username: str = ""
    opensearch_password: str = ""
    """Basic auth; prefer the environment (AIAUDIT_SEARCH_OPENSEARCH_PASSWORD)."""
    opensearch_ca_file: Path | None = None
    opensearch_verify_certs: bool = True
    opensearch_timeout: float = 10.0
    index_prefix: str = "aiaudit-events"
    refresh_interval: str = "1s"
    database_url: str = ""
    """Store URL of the indexer and readers (a login of ``aiaudit_consumer``).

    Default: the suite's ``database_url``."""
    batch_size: int = 500
    poll_interval: float = 0.5
    """Seconds between polls of the log when no in-process wake-up came."""
    max_backoff: float = 10.0
    """Longest wait between retries while the backend is down."""
    export_wait: float = 30.0
    """How long an export waits for the index to catch up with the log before UNAVAILABLE."""

    def validate(self) -> None:
        """Raises ConfigError naming the bad setting."""
        if self.backend not in BACKENDS:
            raise ConfigError(
                f"setting 'search.backend': {self.backend!r} is not one of {BACKENDS}"
            )
        if self.backend == "opensearch" and not self.urls:
            raise ConfigError("setting 'search.opensearch_url' is required with backend opensearch")
        for url in self.urls:
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"setting 'search.opensearch_url': {url!r} is not an http(s) URL")
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,60}", self.index_prefix):
            raise ConfigError(
                "setting 'search.index_prefix': lowercase letters, digits, '_' and '-' only"
            )
        if not re.fullmatch(r"-1|\d+(ms|s|m)", self.refresh_interval):
            raise ConfigError("setting 'search.refresh_interval': e.g. 1s, 500ms, or -1")
        if self.opensearch_ca_file is not None and not self.opensearch_ca_file.is_file():
            raise ConfigError(f"setting 'search.opensearch_ca_file': {self.opensearch_ca_file}")

    @property
    def urls(self) -> list[str]:
        """The OpenSearch node URLs."""
        return [u.strip() for u in self.opensearch_url.split(",") if u.strip()]
