"""The keyring the settings ask for (``content_keys``), built once per process."""

from __future__ import annotations

import logging
from pathlib import Path

import hvac

from aiaudit.common.config import ConfigError, Settings
from aiaudit.common.keys.kek import KekError, beside_database
from aiaudit.common.keys.keyring import Keyring
from aiaudit.common.store import file_kek

log = logging.getLogger(__name__)


def vault_client(
    addr: str,
    token_file: Path | None,
    env: dict[str, str],
    timeout: float,
    setting: str,
    token_vars: tuple[str, ...] = ("VAULT_TOKEN",),
) -> hvac.Client:
    """An hvac client with the token in ``token_file``, else the first of ``token_vars`` set.

    ``setting`` names the token file's setting in the error when there is none.
    """
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"setting {setting!r}: {exc}") from None
    else:
        token = next((env[v] for v in token_vars if env.get(v)), "")
    if not token:
        raise ConfigError(
            f"setting {setting!r}: required to reach Vault (or set {' or '.join(token_vars)})"
        )
    return hvac.Client(url=addr, token=token, timeout=timeout)


def keyring(settings: Settings, url: str | None = None) -> Keyring | None:
    """The content keyring for the store at ``url`` (default: the suite's); None: in clear.

    ``content_keys`` unset means ``file`` for a SQLite store, with the KEK
    beside the database unless ``content_key_file`` says otherwise, and
    ``none`` for PostgreSQL: only for commands that read a store (``serve``
    refuses it unset there, ``config.require_sealed_content``).
    """
    url = url or settings.store_url
    embedded = url.startswith("sqlite")
    sealing = settings.content_keys or ("file" if embedded else "none")
    if sealing == "none":
        if not embedded:
            log.warning(
                "content is stored unencrypted: set content_keys to 'vault' (or 'file') "
                "to seal it under per-subject data keys"
            )
        return None
    if sealing == "vault":
        from aiaudit.common.keys.transit import TransitKek

        client = vault_client(
            settings.content_vault_addr,
            settings.content_vault_token_file,
            settings.env,
            settings.content_vault_timeout,
            "content_vault_token_file",
            ("AIAUDIT_CONTENT_VAULT_TOKEN", "VAULT_TOKEN"),  # the first: beside a notary's token
        )
        return Keyring(TransitKek(client, settings.content_vault_mount, settings.content_vault_key))
    path = settings.content_key_file or (
        beside_database(url) if embedded else settings.data_dir / "content.kek"
    )
    try:
        return Keyring(file_kek(path, url))
    except (KekError, OSError) as exc:
        raise ConfigError(f"setting 'content_key_file': {exc}") from None
