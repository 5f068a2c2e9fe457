"""The administrator's Vault connection of the ``bootstrap-vault`` commands.

``aiaudit integrity bootstrap-vault`` and ``aiaudit content-keys bootstrap-vault``
find the address, the token and the check of the transport alike, and report a
Vault that refuses or cannot be reached alike: ``Vault at ADDR: ...`` (the
content keys' one said a connection error without the address until 2026-12-07).
"""

from __future__ import annotations

import os

import hvac

from aiaudit.common import config
from aiaudit.common.keys.transit import VAULT_ERRORS

FAILURES = (*VAULT_ERRORS, ValueError)
"""What a bootstrap's calls raise: Vault's refusals, a Vault out of reach, an answer unread."""

TIMEOUT = 10
"""Seconds each request of a bootstrap may take."""


def admin_client(
    command: str, flag: str | None, configured: str, setting: str, allow_insecure: bool
) -> tuple[str, hvac.Client]:
    """The address and a client with ``VAULT_TOKEN``.

    The address is ``--vault-addr``, else the ``configured`` value of ``setting``, else
    ``VAULT_ADDR``. Refused (a configuration error) without both, or over an insecure
    transport, before the admin token is sent anywhere.
    """
    addr = flag or configured or os.environ.get("VAULT_ADDR", "")
    token = os.environ.get("VAULT_TOKEN", "")
    if not addr or not token:
        raise config.ConfigError(f"{command} needs --vault-addr (or VAULT_ADDR) and VAULT_TOKEN")
    given = "--vault-addr" if flag else setting if configured else "VAULT_ADDR"
    config.require_secure_url(addr, given, allow_insecure)
    return addr, hvac.Client(url=addr, token=token, timeout=TIMEOUT)


def unavailable(addr: str, exc: BaseException) -> str:
    """The one line a failed bootstrap reports."""
    return " ".join(f"Vault at {addr}: {exc}".split())
