"""The ``ingest:`` section of the config file (env ``AIAUDIT_INGEST_<KEY>``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aiaudit.common import retention, stream_slots
from aiaudit.common.config import (
    PARSE,
    ZERO_ALLOWED,
    ConfigError,
    Settings,
    guarded_file,
    require_secure_database,
    section,
)
from aiaudit.ingest import ip_policy, redaction, retention_by_tenant


@dataclass(frozen=True)
class IngestSettings:
    """Every ``ingest.*`` key."""

    privacy_database_url: str = ""
    """A login in ``aiaudit_privacy`` for EraseEvents; the embedded store needs none."""
    max_append_streams: int = 24
    """AppendStreams open at once in this process. Each holds one of the server's 64 RPC
    threads while open: with alerting's 16 WatchAlerts streams and search's 8 exports, 16
    threads stay for the unary calls (``Append``, search, integrity, health) however many
    gateways stream."""
    max_append_streams_per_caller: int = 8
    """Of those, streams one principal may hold: one gateway (or a leaked key of any role)
    cannot take them all."""
    ip_address: str = "keep"
    """What is kept of ``actor.ip_address`` before the event is hashed: ``keep``,
    ``truncate`` (IPv4 /24, IPv6 /48), ``pseudonymise`` (keyed HMAC) or ``drop``; see
    :mod:`aiaudit.ingest.ip_policy` for why the leaf must not hold what auditors may not see."""
    ip_pseudonym_key_file: Path | None = None
    """Key of ``pseudonymise`` (32 random bytes or more). Default in the embedded mode:
    ``<data_dir>/ip-pseudonym.key``, made on first use; required otherwise."""
    redact_content: tuple[str, ...] = ()
    """Detector families whose findings in content are masked before the event is hashed:
    ``pii``, ``secrets`` (env: comma-separated). None by default; see
    :mod:`aiaudit.ingest.redaction`."""
    content_retention_days: int = field(default=0, metadata=ZERO_ALLOWED)
    """Days content is kept after it was received; 0 keeps it forever. Older content is
    erased, and each deletion recorded (``EVENT_TYPE_RETENTION_APPLIED``): see
    :mod:`aiaudit.common.retention`. On PostgreSQL it needs ``privacy_database_url``."""
    content_retention_days_by_classification: dict[str, int] = field(default_factory=dict)
    """Days content is kept per ``DataClassification`` (``public``, ``internal``,
    ``confidential``, ``restricted``: env ``restricted=30,confidential=365``), in place of
    ``content_retention_days`` for those named; 0 keeps it forever. UNSPECIFIED is kept as
    ``internal``, as ``event.proto`` says. On PostgreSQL it needs ``privacy_database_url``."""
    content_retention_by_tenant: dict[str, retention.Policy] = field(
        default_factory=dict, metadata={PARSE: retention_by_tenant.parse}
    )
    """Tenants' own retention, in place of the two settings above for each tenant named:
    ``{acme: {days: 7, by_classification: {restricted: 1}}}`` (env
    ``acme:days=7,restricted=1;globex:days=0``); 0 keeps content forever. The others keep the
    global policy. See :mod:`aiaudit.ingest.retention_by_tenant`."""
    classify_content: bool = True
    """Whether an event in whose content ``redact_content`` found PII or secrets is raised to
    ``DATA_CLASSIFICATION_RESTRICTED`` before it is hashed. It reads masking's findings, so it
    costs nothing more, and without ``redact_content`` nothing is detected or raised."""
    retention_sweep_interval: float = 3600.0
    """Seconds between retention sweeps (one replica sweeps; the first at start)."""


def load(settings: Settings) -> IngestSettings:
    """Reads and validates the section; a bad value raises ``ConfigError`` naming it."""
    retention_by_tenant.one_source(settings)
    s = section(settings, "ingest", IngestSettings)
    if s.privacy_database_url and not s.privacy_database_url.startswith(("sqlite", "postgresql")):
        raise ConfigError(
            "setting 'ingest.privacy_database_url': must be a sqlite:/// or "
            "postgresql+psycopg:// URL"
        )
    require_secure_database(
        s.privacy_database_url, "ingest.privacy_database_url", settings.allow_insecure
    )
    stream_slots.check_limits(
        "ingest.max_append_streams", s.max_append_streams, s.max_append_streams_per_caller
    )
    if s.ip_address not in ip_policy.POLICIES:
        raise ConfigError(
            f"setting 'ingest.ip_address': {s.ip_address!r} is not one of {ip_policy.POLICIES}"
        )
    if s.ip_address == "pseudonymise" and not (s.ip_pseudonym_key_file or settings.embedded):
        raise ConfigError(
            "setting 'ingest.ip_pseudonym_key_file' is required with ip_address pseudonymise "
            "(32 random bytes; the same file in every ingest replica)"
        )
    if s.ip_pseudonym_key_file is not None and s.ip_pseudonym_key_file.exists():
        guarded_file(s.ip_pseudonym_key_file, "ingest.ip_pseudonym_key_file", private=True)
    redaction.ContentRedaction(s.redact_content)  # raises ConfigError naming the setting
    if not 0 <= s.content_retention_days <= retention.MAX_DAYS:
        raise ConfigError(
            f"setting 'ingest.content_retention_days': {s.content_retention_days} is invalid: "
            f"0 (keep forever) to {retention.MAX_DAYS}"
        )
    for name, days in s.content_retention_days_by_classification.items():
        where = f"setting 'ingest.content_retention_days_by_classification': {name!r}"
        if name not in retention.CLASSES:
            unspecified = " (unspecified is kept as internal)" if name == "unspecified" else ""
            raise ConfigError(f"{where} is not one of {tuple(retention.CLASSES)}{unspecified}")
        if days > retention.MAX_DAYS:
            raise ConfigError(
                f"{where}: {days} is invalid: 0 (keep forever) to {retention.MAX_DAYS}"
            )
    if not 1 <= s.retention_sweep_interval <= retention.MAX_INTERVAL:
        raise ConfigError(
            f"setting 'ingest.retention_sweep_interval': {s.retention_sweep_interval:g} is "
            f"invalid: 1 to {retention.MAX_INTERVAL} seconds"
        )
    for name, on in [
        ("content_retention_days", s.content_retention_days),
        ("content_retention_days_by_classification", any(by_class(s).values())),
        ("content_retention_by_tenant", erases_by_tenant(s)),
    ]:
        if on and not (s.privacy_database_url or settings.embedded):
            raise ConfigError(
                f"setting 'ingest.{name}' needs 'ingest.privacy_database_url' "
                "(a login in aiaudit_privacy: the writer role may not delete content)"
            )
    return s


def by_class(s: IngestSettings) -> dict[int, int]:
    """``content_retention_days_by_classification`` by ``DataClassification`` number."""
    return {
        retention.CLASSES[name]: days
        for name, days in s.content_retention_days_by_classification.items()
    }


def erases_by_tenant(s: IngestSettings) -> bool:
    """Whether some tenant's own policy expires content (a sweeper must run for it)."""
    return any(p.erases() for p in s.content_retention_by_tenant.values())
