"""Key encryption keys: what wraps and unwraps the data keys.

The embedded mode's KEK is 32 random bytes in a file (mode 0600) made on first
use; production wraps through Vault / OpenBao Transit (:mod:`.transit`), so the
KEK never leaves Vault. Both are :class:`Kek`.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
_NONCE = 12
_WRAP_AAD = b"aiaudit content data key v1"


def beside_database(sqlite_url: str) -> Path:
    """The embedded mode's KEK file: ``content.kek`` in the SQLite database's directory.

    Beside the database, so that every command given the store's URL (the
    suite, ``verify``, ``export-bundle``, ``erase``) opens its content with
    the key the suite made.
    """
    database = urllib.parse.unquote(sqlite_url.split(":///", 1)[1])
    return Path(database).parent / "content.kek"


_TRANSIT_VERSION = re.compile(rb"vault:v([1-9][0-9]{0,9}):")


def transit_version(wrapped: bytes) -> int | None:
    """The Transit key version a wrapped key names (``vault:vN:...``); None if none.

    Here, not in :mod:`.transit`, so that the keyring reads it without hvac.
    """
    found = _TRANSIT_VERSION.match(wrapped)
    return int(found[1]) if found else None


class KekError(RuntimeError):
    """The KEK could not wrap or unwrap (missing, wrong key, Vault unreachable)."""


class Kek(Protocol):
    """Wraps data keys; ``name`` is stored with each wrapped key, to say which KEK can open it."""

    name: str

    def wrap(self, keys: Sequence[bytes]) -> list[bytes]:
        """Each data key, wrapped (one call for all: a Vault round trip is one request)."""
        ...

    def unwrap(self, wrapped: Sequence[bytes]) -> list[bytes | None]:
        """Each wrapped key opened; None for one that does not open under this KEK.

        None: altered, or wrapped by a version since retired. :class:`KekError`
        when the KEK cannot be used at all.
        """
        ...


class FileKek:
    """A 256-bit AES-GCM KEK kept in a local file (the embedded mode's)."""

    def __init__(self, path: Path) -> None:
        """Reads the key file, creating it (0600) if missing."""
        key = _load_or_create(path)
        self._aead = AESGCM(key)
        self.name = f"file:{hashlib.sha256(b'aiaudit kek id' + key).hexdigest()[:16]}"

    def wrap(self, keys: Sequence[bytes]) -> list[bytes]:
        """AES-256-GCM under the file's key, a random nonce each."""
        out = []
        for key in keys:
            nonce = secrets.token_bytes(_NONCE)
            out.append(nonce + self._aead.encrypt(nonce, key, _WRAP_AAD))
        return out

    def unwrap(self, wrapped: Sequence[bytes]) -> list[bytes | None]:
        """Opens keys :meth:`wrap` made with this file's key (None: altered)."""
        out: list[bytes | None] = []
        for blob in wrapped:
            try:
                out.append(self._aead.decrypt(blob[:_NONCE], blob[_NONCE:], _WRAP_AAD))
            except (InvalidTag, ValueError):  # altered, or too short to hold a nonce
                out.append(None)
        return out


def _load_or_create(path: Path) -> bytes:
    """The key in ``path``; made whole (written, synced, then linked in) if missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(KEY_BYTES))
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(temp, path)  # fails if another process linked its key first: use that one
        except FileExistsError:
            pass
        finally:
            temp.unlink()
        directory = os.open(path.parent, os.O_RDONLY)
        try:  # the link itself durable: content sealed under the key must not outlive it
            os.fsync(directory)
        finally:
            os.close(directory)
    data = path.read_bytes()
    if len(data) != KEY_BYTES:
        raise KekError(f"content key file {path} holds {len(data)} bytes, not {KEY_BYTES}")
    return data
