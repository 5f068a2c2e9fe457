"""Bootstrap of the Vault / OpenBao Transit key: the code an operator runs once.

``aiaudit integrity bootstrap-vault`` (with an administrator's token) enables
the Transit engine at a mount if it is missing, creates the non-exportable
``ed25519`` key if it is missing, and writes the least-privilege policy the
notary's own token should carry. Running it again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import hvac

from aiaudit.common.keys import transit

POLICY = """\
# aiaudit notary: sign checkpoints with one Transit key and read its public keys.
# No create, rotate, export, delete or config rights: those stay with operators.
path "{mount}/sign/{key}" {{
  capabilities = ["update"]
}}
path "{mount}/keys/{key}" {{
  capabilities = ["read"]
}}
"""


def policy(mount: str, key: str) -> str:
    """The notary's least-privilege policy for the key at ``mount``."""
    return POLICY.format(mount=mount, key=key)


@dataclass(frozen=True)
class VaultSettings:
    """Where the Transit key is."""

    mount: str = "transit"
    key: str = "aiaudit-notary"
    policy_name: str = "aiaudit-notary"


def bootstrap(client: hvac.Client, settings: VaultSettings) -> list[str]:
    """Makes the mount, key and policy exist; returns what it did, one line per step."""
    return transit.bootstrap_key(
        client,
        settings.mount,
        settings.key,
        "ed25519",
        settings.policy_name,
        policy(settings.mount, settings.key),
    )
