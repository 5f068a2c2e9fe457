"""What ingest keeps of ``actor.ip_address``: applied to each event before it is hashed.

The address is metadata: it enters the canonical form, hence the leaf, in clear.
Whoever holds an inclusion proof (``proofs.read``: an auditor, without
``pii.read``) holds the leaf hash, and for an event without content every other
byte of the canonical form is what ``GetEvent`` shows them: trying the
addresses of a /16 found the one hashed in 0.6 s (review, 2026-12-04). The leaf
cannot forget what it was built from, so the only cure is not to commit the
address: ``truncate`` keeps its network (IPv4 /24, IPv6 /48, as web analytics
anonymise), ``pseudonymise`` replaces it by a keyed HMAC shown as an address
of ``fd00::/8`` (the same address of a tenant always maps to the same one, so
rules grouping by it still work; the key never leaves the service), ``drop``
removes it. ``keep`` (the default) commits it as sent.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from pathlib import Path

from aiaudit.common.config import ConfigError
from aiaudit.common.v1 import event_pb2

POLICIES = ("keep", "truncate", "pseudonymise", "drop")
KEY_BYTES = 32
_PREFIX = {4: 24, 6: 48}
"""Network bits ``truncate`` keeps."""


class IpPolicy:
    """One policy; :meth:`apply` rewrites the addresses of a batch in place."""

    def __init__(self, policy: str = "keep", key: bytes | None = None) -> None:
        """``key`` (pseudonymise only): :data:`KEY_BYTES` bytes or more."""
        if policy not in POLICIES:
            raise ConfigError(f"setting 'ingest.ip_address': {policy!r} is not one of {POLICIES}")
        if policy == "pseudonymise" and (key is None or len(key) < KEY_BYTES):
            raise ConfigError(
                "setting 'ingest.ip_address': pseudonymise needs a key of at least "
                f"{KEY_BYTES} bytes ('ingest.ip_pseudonym_key_file')"
            )
        self.policy, self._key = policy, key or b""

    def apply(self, events: list[event_pb2.Event], wires: list[bytes]) -> None:
        """Rewrites each validated event's address, and its serialised form beside it."""
        if self.policy == "keep":
            return
        for i, event in enumerate(events):
            sent = event.actor.ip_address
            if not sent:
                continue
            kept = self.address(event.tenant_id, sent)
            if kept:
                event.actor.ip_address = kept
            else:
                event.actor.ClearField("ip_address")
            wires[i] = event.SerializeToString()

    def address(self, tenant: str, sent: str) -> str:
        """What is kept of ``sent`` (a valid address: validation ran first); "" for none."""
        addr = _unwrapped(ipaddress.ip_address(sent))
        if self.policy == "drop":
            return ""
        if self.policy == "truncate":
            network = ipaddress.ip_network(f"{addr}/{_PREFIX[addr.version]}", strict=False)
            return str(network.network_address)
        mac = hmac.new(self._key, tenant.encode() + b"\x00" + addr.packed, hashlib.sha256)
        return str(ipaddress.IPv6Address(b"\xfd" + mac.digest()[:15]))


def _unwrapped(
    addr: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The IPv4 address an IPv6 one carries whole (``::ffff:a.b.c.d``, 6to4 ``2002:ab:cd::``).

    A 6to4 address's /48 is its IPv4 address: truncated as IPv6 it kept all of it
    (review, 2026-12-04); a mapped one would have lost all, and pseudonymised
    apart from the same client's IPv4 address.
    """
    if isinstance(addr, ipaddress.IPv6Address):
        return addr.ipv4_mapped or addr.sixtofour or addr
    return addr


def key_from_file(path: Path, create: bool) -> bytes:
    """The pseudonym key in ``path``; made (0600) when missing and ``create`` (embedded mode).

    Losing it changes every pseudonym from then on (the old ones stay as they
    were committed): back it up with the database.
    """
    try:
        return path.read_bytes()
    except FileNotFoundError:
        if not create:
            raise ConfigError(
                f"setting 'ingest.ip_pseudonym_key_file': {path} does not exist"
            ) from None
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(os.urandom(KEY_BYTES))
        out.flush()
        os.fsync(out.fileno())
    return path.read_bytes()
