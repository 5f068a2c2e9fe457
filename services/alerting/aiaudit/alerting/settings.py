"""Settings of the alerting service (``alerting:`` in the config file, ``AIAUDIT_ALERTING_*``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from aiaudit.alerting.sinks import syslog_target
from aiaudit.alerting.syslog_tls import SETTINGS as SYSLOG_TLS_SETTINGS
from aiaudit.alerting.syslog_tls import SyslogTls, SyslogTlsError
from aiaudit.common import stream_slots
from aiaudit.common.config import ConfigError, require_secure_database

_POSITIVE = {
    "poll_interval": "seconds between polls of the log",
    "batch_size": "log entries evaluated per transaction; at 0 the engine evaluates nothing",
    "window_save_events": "events between two saves of the window samples",
    "handover_seconds": "seconds a replica leaves a log another one took",
    "webhook_timeout": "seconds a delivery attempt may take",
    "max_attempts": "delivery attempts before the dead-letter record",
    "retry_base": "seconds before the first retry of a delivery",
}
"""Settings that only work above 0. The config file and the environment already refuse
less; a settings object built otherwise (a test, an embedding program) used to pass with
``batch_size: 0``, and the engine then evaluated nothing while health said SERVING."""
_WHOLE = frozenset({"batch_size", "window_save_events", "max_attempts"})


@dataclass(frozen=True)
class AlertingSettings:
    """Defaults are the embedded mode: the suite's store, the default pack, no sinks."""

    database_url: str = ""
    """Database to run as (a login role in aiaudit_alerting); default: the suite's store."""
    default_rules: bool = True
    """Whether the default rule pack applies to every tenant."""
    rules_files: tuple[str, ...] = ()
    """Rule files (YAML) loaded at start-up and applied to every tenant."""
    poll_interval: float = 0.05
    """Seconds between polls of the log when idle (ingest in-process also wakes the engine)."""
    batch_size: int = 2000
    """Log entries evaluated per transaction (each transaction has a fixed cost: claiming the
    cursor, reading the rules, the alerts' head; at 500 it was a third of the engine's time)."""
    window_save_events: int = 20_000
    """Window samples are saved (with the cursor) once this many events passed since the last
    save; a restart replays at most that many to rebuild them."""
    handover_seconds: float = 5.0
    """A replica that finds another one processing a log leaves it to that one this long."""
    watch_interval: float = 0.25
    """Seconds between WatchAlerts looks for changes made by other replicas (own: at once)."""
    max_watch_streams: int = 16
    """WatchAlerts streams open at once in this process. Each holds one of the server's 64
    RPC threads while it is open, so more would starve every other RPC (appends included)."""
    max_watch_streams_per_caller: int = 4
    """Of those, streams one principal may hold: one caller cannot take them all."""
    webhook_url: str = ""
    """Webhook sink: alerts are POSTed here as JSON."""
    webhook_secret: str = ""
    """HMAC-SHA256 key of the webhook signature (set it from the environment)."""
    webhook_timeout: float = 5.0
    """Seconds a delivery attempt may take in all, webhook or syslog (name lookup, connect,
    TLS handshake, send, the whole answer)."""
    syslog_address: str = ""
    """SIEM sink: ``udp://``, ``tcp://`` or ``tls://host:port`` (RFC 5424 with a CEF message;
    ``tls://`` is RFC 5425, the one to use across a network)."""
    syslog_ca_file: Path | None = None
    """PEM CA bundle a ``tls://`` receiver's certificate must chain to; unset: the system's
    CAs (``SSL_CERT_FILE``), as for the webhook."""
    syslog_client_cert_file: Path | None = None
    """Client certificate (PEM) for a ``tls://`` receiver asking for one (mutual TLS)."""
    syslog_client_key_file: Path | None = None
    """Its unencrypted PEM key: set with ``syslog_client_cert_file`` or not at all."""
    max_attempts: int = 24
    """Delivery attempts before the dead-letter record (with the default ``retry_base``,
    about 80 minutes of retries: an outage of a sink shorter than that loses nothing)."""
    retry_base: float = 1.0
    """First retry delay in seconds; doubles each attempt (capped at 5 minutes)."""

    def validate(self, allow_insecure: bool = False) -> None:
        """Clear errors for settings that cannot work.

        ``allow_insecure``: the suite's setting; without it a PostgreSQL login off loopback
        needs ``sslmode=verify-full``.
        """
        for name, why in _POSITIVE.items():
            value = getattr(self, name)
            whole = isinstance(value, int) and not isinstance(value, bool)
            number = whole or isinstance(value, float)
            if (
                not number
                or not math.isfinite(value)
                or value <= 0
                or (name in _WHOLE and not whole)
            ):
                kind = "a positive whole number" if name in _WHOLE else "a positive number"
                raise ConfigError(
                    f"setting alerting.{name}: {value!r} is invalid: must be {kind} ({why})"
                )
        if self.webhook_url and not self.webhook_url.startswith(("http://", "https://")):
            raise ConfigError("setting alerting.webhook_url: must be an http:// or https:// URL")
        if self.webhook_url and not self.webhook_secret:
            raise ConfigError(
                "setting alerting.webhook_secret: required with webhook_url "
                "(set AIAUDIT_ALERTING_WEBHOOK_SECRET)"
            )
        if self.syslog_address:
            try:
                syslog_target(self.syslog_address)
            except ValueError as exc:
                raise ConfigError(
                    f"setting alerting.syslog_address: {self.syslog_address!r} is invalid: {exc}"
                ) from None
        self._validate_syslog_tls()
        if self.watch_interval <= 0:
            raise ConfigError(
                "setting alerting.watch_interval: must be a positive number of seconds"
            )
        stream_slots.check_limits(
            "alerting.max_watch_streams",
            self.max_watch_streams,
            self.max_watch_streams_per_caller,
        )
        for f in self.rules_files:
            if not Path(f).is_file():
                raise ConfigError(f"setting alerting.rules_files: {f} is not a readable file")
        if self.database_url and not self.database_url.startswith(("sqlite", "postgresql")):
            raise ConfigError(
                "setting alerting.database_url: must be sqlite:/// or postgresql+psycopg://"
            )
        require_secure_database(self.database_url, "alerting.database_url", allow_insecure)

    @property
    def syslog_tls(self) -> SyslogTls:
        """The files of a ``tls://`` syslog address."""
        return SyslogTls(
            self.syslog_ca_file, self.syslog_client_cert_file, self.syslog_client_key_file
        )

    def _validate_syslog_tls(self) -> None:
        """The TLS files work (readable, PEM, the key the certificate's) and have a use.

        Set beside a ``udp://`` or ``tcp://`` address they would protect nothing, without
        a word: refused, as a file that cannot be read is. The scheme is the sink's, read
        as a URL's (``TLS://`` is ``tls://``): a prefix test refused the files beside the
        ``TLS://`` address the sink sends over TLS.
        """
        tls = self.syslog_tls
        given = [name for name in SYSLOG_TLS_SETTINGS if getattr(tls, name) is not None]
        over_tls = bool(self.syslog_address) and syslog_target(self.syslog_address)[0] == "tls"
        try:
            tls.check_pair()
            if given and not over_tls:
                raise SyslogTlsError(given[0], "applies to a tls:// syslog_address only")
            if given:
                tls.context()
        except SyslogTlsError as exc:
            raise ConfigError(str(exc)) from None

    @property
    def sinks(self) -> tuple[str, ...]:
        """Configured sinks."""
        return tuple(
            name
            for name, on in (("webhook", self.webhook_url), ("syslog", self.syslog_address))
            if on
        )
