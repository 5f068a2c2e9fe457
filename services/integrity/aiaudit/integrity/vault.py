"""Bootstrap of the Vault / OpenBao Transit key: the code an operator runs once.

``aiaudit integrity bootstrap-vault`` (with an administrator's token) enables
the Transit engine at a mount if it is missing, creates the non-exportable
``ed25519`` key if it is missing, and writes the least-privilege policy the
notary's own token should carry. Running it again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import hvac
import hvac.exceptions

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
    done: list[str] = []
    mounts = client.sys.list_mounted_secrets_engines()
    mounted = mounts.get("data", mounts)
    if f"{settings.mount}/" not in mounted:
        client.sys.enable_secrets_engine("transit", path=settings.mount)
        done.append(f"enabled transit at {settings.mount}/")
    else:
        kind = mounted[f"{settings.mount}/"].get("type")
        if kind != "transit":
            raise ValueError(f"{settings.mount}/ is a {kind!r} engine, not transit")
        done.append(f"transit already enabled at {settings.mount}/")
    try:
        key = client.secrets.transit.read_key(name=settings.key, mount_point=settings.mount)
    except hvac.exceptions.InvalidPath:
        client.secrets.transit.create_key(
            name=settings.key,
            key_type="ed25519",
            exportable=False,
            allow_plaintext_backup=False,
            mount_point=settings.mount,
        )
        done.append(f"created ed25519 key {settings.mount}/keys/{settings.key}")
    else:
        kind = key["data"]["type"]
        if kind != "ed25519":
            raise ValueError(f"key {settings.key!r} exists with type {kind!r}, not ed25519")
        done.append(
            f"key {settings.mount}/keys/{settings.key} exists "
            f"(latest version {key['data']['latest_version']})"
        )
    client.sys.create_or_update_policy(
        name=settings.policy_name, policy=policy(settings.mount, settings.key)
    )
    done.append(f"wrote policy {settings.policy_name!r}")
    return done
