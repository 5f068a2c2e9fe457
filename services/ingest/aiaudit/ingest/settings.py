"""The ``ingest:`` section of the config file (env ``AIAUDIT_INGEST_<KEY>``)."""

from __future__ import annotations

from dataclasses import dataclass

from aiaudit.common.config import ConfigError, Settings, section


@dataclass(frozen=True)
class IngestSettings:
    """Every ``ingest.*`` key."""

    privacy_database_url: str = ""
    """A login in ``aiaudit_privacy`` for EraseEvents; the embedded store needs none."""


def load(settings: Settings) -> IngestSettings:
    """Reads and validates the section; a bad value raises ``ConfigError`` naming it."""
    s = section(settings, "ingest", IngestSettings)
    if s.privacy_database_url and not s.privacy_database_url.startswith(("sqlite", "postgresql")):
        raise ConfigError(
            "setting 'ingest.privacy_database_url': must be a sqlite:/// or "
            "postgresql+psycopg:// URL"
        )
    return s
