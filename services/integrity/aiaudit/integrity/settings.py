"""Settings of the integrity service (``integrity:`` in the config file).

Defaults are the embedded mode: a local key file in the data directory,
checkpoints exported under the data directory, the suite's own database.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aiaudit.common.config import (
    ConfigError,
    Settings,
    require_secure_database,
    require_secure_url,
    section,
)


@dataclass(frozen=True)
class IntegritySettings:
    """Every ``integrity.*`` key (env ``AIAUDIT_INTEGRITY_<KEY>``)."""

    origin_prefix: str = "aiaudit.local/log"
    """Each log's checkpoint origin is ``<origin_prefix>/<log_id>``."""
    key_name: str = ""
    """Note key name in signature lines; defaults to ``origin_prefix``."""
    checkpoint_interval: float = 1.0
    """Seconds between checkpoints of a log that grew."""
    poll_interval: float = 1.0
    """Seconds between looks at the log for new entries."""
    batch_size: int = 5000
    """Log entries integrated per transaction."""
    database_url: str = ""
    """The notary's own login (a member of ``aiaudit_notary``); default: the suite's database."""
    checkpoint_dir: Path | None = None
    """Append-only (WORM) export directory; default ``<data_dir>/checkpoints``."""
    signer: str = "file"
    """``file`` (Ed25519 key in ``key_file``) or ``vault`` (Vault / OpenBao Transit)."""
    key_file: Path | None = None
    """Default ``<data_dir>/notary-ed25519.pem`` (mode 0600)."""
    vault_addr: str = ""
    vault_token_file: Path | None = None
    """File holding the notary's Vault token; default: the ``VAULT_TOKEN`` environment variable."""
    vault_mount: str = "transit"
    vault_key: str = "aiaudit-notary"
    vault_timeout: float = 5.0
    client_names: tuple[str, ...] = ()
    """Under mTLS, the names (DNS or URI SANs) one of which a client certificate must carry
    to call IntegrityService; empty: any certificate ``tls_client_ca_file`` signed."""

    @property
    def note_key_name(self) -> str:
        """The key name that signs notes."""
        return self.key_name or self.origin_prefix

    def origin(self, log_id: str) -> str:
        """Checkpoint origin line of a log."""
        return f"{self.origin_prefix}/{log_id}"


def load(settings: Settings) -> IntegritySettings:
    """Reads and validates the section; a bad value raises ``ConfigError`` naming it."""
    s = section(settings, "integrity", IntegritySettings)
    if not s.origin_prefix or any(c.isspace() for c in s.origin_prefix) or "+" in s.origin_prefix:
        raise ConfigError(
            "setting 'integrity.origin_prefix': must be non-empty, without spaces or '+'"
        )
    if s.key_name and (any(c.isspace() for c in s.key_name) or "+" in s.key_name):
        raise ConfigError("setting 'integrity.key_name': must not contain spaces or '+'")
    if s.signer not in ("file", "vault"):
        raise ConfigError(f"setting 'integrity.signer': {s.signer!r} is not 'file' or 'vault'")
    if s.signer == "vault" and not s.vault_addr:
        raise ConfigError("setting 'integrity.vault_addr': required when signer is 'vault'")
    if s.database_url and not s.database_url.startswith(("sqlite", "postgresql")):
        raise ConfigError(
            "setting 'integrity.database_url': must be a sqlite:/// or postgresql+psycopg:// URL"
        )
    if s.client_names and settings.tls_client_ca_file is None:
        raise ConfigError(
            "setting 'integrity.client_names': names client certificates, but no "
            "tls_client_ca_file asks callers for one (mTLS); set it, or leave the names out"
        )
    if any(any(c.isspace() for c in n) for n in s.client_names):
        raise ConfigError("setting 'integrity.client_names': a name must not contain spaces")
    if s.vault_addr:  # the notary's signing token goes there
        require_secure_url(s.vault_addr, "integrity.vault_addr", settings.allow_insecure)
    require_secure_database(s.database_url, "integrity.database_url", settings.allow_insecure)
    return s


def checkpoint_dir(settings: Settings, s: IntegritySettings) -> Path:
    """Where checkpoints are exported."""
    return s.checkpoint_dir or settings.data_dir / "checkpoints"


def key_file(settings: Settings, s: IntegritySettings) -> Path:
    """Where the embedded signing key lives."""
    return s.key_file or settings.data_dir / "notary-ed25519.pem"
