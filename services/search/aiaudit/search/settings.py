"""Settings of the search service (``search:`` in the config file, ``AIAUDIT_SEARCH_*``)."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from aiaudit.common import stream_slots
from aiaudit.common.config import (
    ZERO_ALLOWED,
    ConfigError,
    require_secure_database,
    require_secure_url,
)

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
    """OpenSearch's periodic refresh; the indexer also refreshes after every batch that
    reaches the head of its log, so live events do not wait for it (only a backlog does)."""
    database_url: str = ""
    """Store URL of the indexer and readers (a login of ``aiaudit_consumer``).

    Default: the suite's ``database_url``."""
    retention_days: int = field(default=0, metadata=ZERO_ALLOWED)
    """Days an event stays searchable (by occurrence time; the store keeps it); 0 = forever.

    OpenSearch: an ISM policy when the cluster has the plugin, else the
    indexer deletes monthly indices whose month ended that long ago."""
    retention_sweep_interval: float = 3600.0
    """Seconds between the indexer's retention sweeps (when no ISM policy does it)."""
    batch_size: int = 2000
    poll_interval: float = 0.5
    """Seconds between polls of the log when no in-process wake-up came."""
    wake_linger: float = field(default=0.02, metadata=ZERO_ALLOWED)
    """Seconds an idle indexer woken by a commit in this process waits for more commits.

    Every read commits an access record; without this, each one would cost a
    bulk request of its own (one per query) on the same cores the queries use."""
    max_backoff: float = 10.0
    """Longest wait between retries while the backend is down."""
    max_export_streams: int = 8
    """Exports open at once in this process. Each holds one of the server's 64 RPC threads
    until its client has read the last chunk, so a slow reader holds it for as long as it
    likes; with ingest's 24 and alerting's 16 streams this fills the 48 all capped streams
    may take."""
    max_export_streams_per_caller: int = 2
    """Of those, exports one principal may hold: one caller cannot take them all."""
    export_wait: float = 30.0
    """How long an export waits for the index to catch up with the log before UNAVAILABLE."""
    integrity_address: str = ""
    """HOST:PORT of IntegrityService (proofs for exports, GetEvent's integrity status).

    Default: the suite's own address, so the all-in-one server calls its own
    integrity service; ``none`` turns both features off."""
    integrity_ca_file: Path | None = None
    """TLS root for the integrity channel; default: the suite's ``tls_client_ca_file``, else
    its ``tls_cert_file``, when it serves TLS. Without one the channel is plaintext, which
    start-up refuses for an ``integrity_address`` on another host unless ``allow_insecure``
    is set: each call carries the caller's ``authorization`` header."""
    integrity_timeout: float = 5.0
    """Deadline in seconds of each call to IntegrityService."""
    proof_wait: float = 10.0
    """How long an export with proofs waits for a checkpoint covering its events before
    FAILED_PRECONDITION (keep it above ``integrity.checkpoint_interval``)."""

    def validate(self, allow_insecure: bool = False) -> None:
        """Raises ConfigError naming the bad setting.

        ``allow_insecure``: the suite's setting; without it OpenSearch off loopback needs
        https:// with certificates checked, and a PostgreSQL login ``sslmode=verify-full``.
        """
        if self.backend not in BACKENDS:
            raise ConfigError(
                f"setting 'search.backend': {self.backend!r} is not one of {BACKENDS}"
            )
        if self.backend == "opensearch" and not self.urls:
            raise ConfigError("setting 'search.opensearch_url' is required with backend opensearch")
        for url in self.urls:
            if problem := url_problem(url):
                raise ConfigError(f"setting 'search.opensearch_url': {_shown(url)!r} {problem}")
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,60}", self.index_prefix):
            raise ConfigError(
                "setting 'search.index_prefix': lowercase letters, digits, '_' and '-' only"
            )
        if not re.fullmatch(r"-1|\d+(ms|s|m)", self.refresh_interval):
            raise ConfigError("setting 'search.refresh_interval': e.g. 1s, 500ms, or -1")
        if self.retention_days < 0:
            raise ConfigError("setting 'search.retention_days': 0 (keep) or a number of days")
        if self.retention_sweep_interval <= 0:
            raise ConfigError("setting 'search.retention_sweep_interval': seconds, above 0")
        if not 0 <= self.wake_linger <= 1:
            raise ConfigError("setting 'search.wake_linger': seconds, 0 to 1")
        stream_slots.check_limits(
            "search.max_export_streams",
            self.max_export_streams,
            self.max_export_streams_per_caller,
        )
        if self.batch_size < 1:
            raise ConfigError("setting 'search.batch_size': at least 1")
        if self.integrity_address not in ("", "none"):
            host, sep, port = self.integrity_address.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ConfigError(
                    f"setting 'search.integrity_address': {self.integrity_address!r} is not "
                    "HOST:PORT (or 'none')"
                )
        if self.integrity_ca_file is not None and not self.integrity_ca_file.is_file():
            raise ConfigError(f"setting 'search.integrity_ca_file': {self.integrity_ca_file}")
        if self.opensearch_ca_file is not None and not self.opensearch_ca_file.is_file():
            raise ConfigError(f"setting 'search.opensearch_ca_file': {self.opensearch_ca_file}")
        for url in self.urls:  # every event's content and the basic-auth password go there
            require_secure_url(
                url,
                "search.opensearch_url",
                allow_insecure,
                "search.opensearch_verify_certs",
                self.opensearch_verify_certs,
            )
        require_secure_database(self.database_url, "search.database_url", allow_insecure)

    @property
    def urls(self) -> list[str]:
        """The OpenSearch node URLs."""
        return [u.strip() for u in self.opensearch_url.split(",") if u.strip()]

    def integrity_target(self, own_address: str) -> str | None:
        """Where IntegrityService is called: the setting, or this suite's own address.

        A wildcard listening host (``0.0.0.0``, ``::``) is reached over loopback.
        None when turned off with ``none``.
        """
        if self.integrity_address == "none":
            return None
        if self.integrity_address:
            return self.integrity_address
        host, _, port = own_address.rpartition(":")
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host in ("::", "[::]"):
            host = "[::1]"
        return f"{host}:{port}"


def url_problem(url: str) -> str:
    """What keeps ``url`` from naming an OpenSearch node, "" if nothing.

    An http(s) URL with a host and, if any, a port from 1 to 65535. A port that
    is no number or out of range raised Python's ValueError from the security
    check (or, with ``allow_insecure``, from the client at start-up), and a URL
    with no host a TypeError from the client, or, without ``allow_insecure``,
    "plain HTTP to another host" (review, 2026-12-05).
    """
    if not url.startswith(("http://", "https://")):
        return "is not an http(s) URL"
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed [IPv6] bracket
        return f"is not a URL: {exc}"
    if not parts.hostname:
        return "names no host (http(s)://HOST[:PORT])"
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        _, _, given = parts.netloc.rpartition(":")
        return f"has port {given!r}: a port is a number from 1 to 65535"
    return ""


def _shown(url: str) -> str:
    """``url`` with the password of its user-info, if any, left out."""
    return re.sub(r"(//[^/@]*?:)[^/@]*@", r"\1***@", url, count=1)
