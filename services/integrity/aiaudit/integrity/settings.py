"""Settings of the integrity service (``integrity:`` in the config file).

Defaults are the embedded mode: a local key file in the data directory,
checkpoints exported under the data directory, the suite's own database.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aiaudit.common.config import (
    ConfigError,
    Settings,
    require_secure_database,
    require_secure_url,
    section,
)
from aiaudit.integrity import origins
from aiaudit.integrity.checks import REQUIRED_SINCE
from aiaudit.integrity.note import NoteError, VerifierKey, parse_verifier_key


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
    former_verifier_keys: tuple[str, ...] = ()
    """Verifier keys (``name+keyid+key``) of signing keys this one replaced: what they
    signed (checkpoints, loss statements, receipts) is still trusted and published."""
    client_names: tuple[str, ...] = ()
    """Under mTLS, the names (DNS or URI SANs) one of which a client certificate must carry
    to call IntegrityService; empty: any certificate ``tls_client_ca_file`` signed."""
    classification_required_since: str = ""
    """An RFC 3339 time with its UTC offset since which every replica writes
    ``event_content.data_classification`` (the rolling upgrade to revision 0013 is over):
    NULL on a classified event received at or after it, or later in its log than one that
    was, is damage in ``verify`` and ``VerifyEvent``. Empty: NULL stays a warning."""

    @property
    def classification_required_time(self) -> dt.datetime | None:
        """``classification_required_since`` as a UTC time; None when unset (checked by load)."""
        return required_since(self.classification_required_since)

    @property
    def note_key_name(self) -> str:
        """The key name that signs notes."""
        return self.key_name or self.origin_prefix

    def origin(self, log_id: str, epoch: int = 0) -> str:
        """Checkpoint origin line of a log in ``epoch`` (:mod:`origins`)."""
        return origins.origin(self.origin_prefix, log_id, epoch)


_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:[0-5]\d)", re.ASCII
)
"""RFC 3339's date-time (``t`` and ``z`` as well, as it allows; an offset's minutes below
60: ``fromisoformat`` read ``+05:60`` as ``+06:00``, and refused ``t``/``z``)."""


def required_since(text: str, name: str = REQUIRED_SINCE) -> dt.datetime | None:
    """An RFC 3339 time with an explicit offset, in UTC; "" is None.

    ``ConfigError`` names ``name``, the setting or (``--...``) the flag.

    A time without its offset is refused rather than read as UTC or local: the
    boundary decides what is damage, and an hour off either way misjudges a
    rolling upgrade's last events. A YAML timestamp in the file arrives as its
    ``str()`` (``2026-12-07 10:00:00+00:00``), which reads the same.
    """
    text = text.strip()
    if not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text.upper()) if _RFC3339.fullmatch(text) else None
    except ValueError:  # the shape, but no date (month 13)
        when = None
    if when is None:
        where = f"argument {name}" if name.startswith("--") else f"setting '{name}'"
        raise ConfigError(
            f"{where}: {text!r} is not an RFC 3339 time with its UTC offset "
            "(e.g. 2026-12-07T10:00:00Z): since when every replica writes "
            "event_content.data_classification"
        )
    return when.astimezone(dt.UTC)


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
    former_verifier_keys(s)
    required_since(s.classification_required_since)
    return s


def former_verifier_keys(
    s: IntegritySettings, current: Sequence[VerifierKey] = ()
) -> list[VerifierKey]:
    """``integrity.former_verifier_keys`` read; ``ConfigError`` names the one that is not a key.

    Or one that shares its name and key ID with ``current`` (the signing key's verifier
    keys) or an earlier former key but not its key bytes: a note names its key by name
    and ID only, so every note was refused ("two verifier keys share name and ID"),
    VerifyEvent answered TAMPERED for all and the notary passed over its own exports
    (review, 2026-12-07).
    """
    keys: list[VerifierKey] = []
    named = [(k, "the current signing key") for k in current]
    for i, text in enumerate(s.former_verifier_keys):
        setting = f"integrity.former_verifier_keys[{i}]"
        try:
            key = parse_verifier_key(text.strip())
        except NoteError as exc:
            raise ConfigError(f"setting '{setting}': {exc}") from None
        for other, what in named:
            if (other.name, other.key_id) == (key.name, key.key_id) and other != key:
                raise ConfigError(
                    f"setting '{setting}': shares its name and key ID "
                    f"{key.name}+{key.key_id.hex()} with {what} ({other.encode()}) but not "
                    "its key: every note would be refused as signed by an ambiguous key"
                )
        named.append((key, f"'{setting}'"))
        keys.append(key)
    return keys


def checkpoint_dir(settings: Settings, s: IntegritySettings) -> Path:
    """Where checkpoints are exported."""
    return s.checkpoint_dir or settings.data_dir / "checkpoints"


def key_file(settings: Settings, s: IntegritySettings) -> Path:
    """Where the embedded signing key lives."""
    return s.key_file or settings.data_dir / "notary-ed25519.pem"
