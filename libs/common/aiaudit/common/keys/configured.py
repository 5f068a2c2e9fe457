"""The keyring the settings ask for (``content_keys``), built once per process.

Also the Vault / OpenBao clients of the notary and of content sealing. A token
given as a file (``integrity.vault_token_file``, ``content_vault_token_file``)
follows the file: in production a vault-agent sidecar writes a fresh,
short-lived token there before the old one expires, and a token read once at
start-up failed every signature, seal and unseal from its expiry (or
revocation) until the process restarted (chart review). Before each request the
client compares the file's stamp (one ``stat``: device, inode, size, mtime,
ctime) with the one last read and takes its token when it changed; a request
Vault refuses with 403 (permission denied: the token expired or was revoked)
reads the file once more and, when it holds another token, is sent again with
it. A file that cannot be read, is empty or holds no token keeps the token
last read, with a WARNING naming the setting (once per problem): one that is
empty or holds no token is read again when it changes, one that could not be
read at the next request. A token from an environment variable cannot change
and is used as it is.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from functools import partial
from pathlib import Path
from typing import Any

import hvac
import hvac.adapters
import hvac.exceptions

from aiaudit.common.config import ConfigError, Settings
from aiaudit.common.keys.kek import KekError, beside_database
from aiaudit.common.keys.keyring import Keyring
from aiaudit.common.store import file_kek

log = logging.getLogger(__name__)


MAX_TOKEN_FILE_BYTES = 64 * 1024
"""A token file larger than this is not read (a Vault token is a few hundred bytes)."""

Stamp = tuple[int, ...]


class TokenFileError(ValueError):
    """The token file holds no token (empty, too large, not text, not a regular file)."""

    def __init__(self, message: str, stamp: Stamp) -> None:
        """``stamp``: the file's, as it was read (it is not read again until it changes)."""
        super().__init__(message)
        self.stamp = stamp


def _stamp(st: os.stat_result) -> Stamp:
    """What changes when a file's content may have: a volume's swap changes the inode."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _read_token(path: Path) -> tuple[Stamp, str]:
    """The file's stamp and token; OSError: not read, TokenFileError: no token in it.

    Opened without blocking: a FIFO put at the path must not hold a Vault call.
    The descriptor is closed whatever it is: ``os.fdopen`` refused a directory
    without closing it, and each request leaked one until the process had none.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        st = os.fstat(fd)
        now = _stamp(st)
        if not stat.S_ISREG(st.st_mode):
            raise TokenFileError(f"{path} is not a regular file", now)
        data = b""
        while len(data) <= MAX_TOKEN_FILE_BYTES:
            chunk = os.read(fd, MAX_TOKEN_FILE_BYTES + 1 - len(data))
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    if len(data) > MAX_TOKEN_FILE_BYTES:
        raise TokenFileError(f"{path} is over {MAX_TOKEN_FILE_BYTES} bytes", now)
    token = data.decode("ascii", errors="replace").strip()
    if not token:
        raise TokenFileError(f"{path} is empty", now)
    if not token.isprintable() or "\ufffd" in token or any(c.isspace() for c in token):
        raise TokenFileError(
            f"{path} holds no token (not ASCII, or spaces or control characters in it)", now
        )
    return now, token


class TokenFile:
    """A Vault token kept in a file that is rewritten when the token is renewed."""

    def __init__(self, path: Path, setting: str) -> None:
        """Reads the token; raises ConfigError naming ``setting`` if there is none."""
        self.path = path
        self.setting = setting
        self._lock = threading.Lock()
        try:
            self._stamp, self.token = _read_token(path)
        except (OSError, TokenFileError) as exc:
            raise ConfigError(f"setting {setting!r}: {exc}") from None
        self._problem = ""
        self.reloads = 0
        """Times a new token was taken from the file (for tests and logs)."""

    def current(self) -> str:
        """The token, read from the file first if its stamp changed since it was last read."""
        try:
            now = _stamp(os.stat(self.path))  # follows the symlinks a Secret volume swaps
        except OSError as exc:
            with self._lock:
                self._keep(f"{exc.strerror or exc}")
            return self.token
        if now != self._stamp:
            with self._lock:
                if now != self._stamp:  # else another request read it meanwhile
                    self._take()
        return self.token

    def reread(self) -> str:
        """The token, read from the file whatever its stamp (Vault refused the last one)."""
        with self._lock:
            self._take()
        return self.token

    def _take(self) -> None:
        """Reads the file (under the lock); keeps the token in force if it holds none."""
        try:
            now, token = _read_token(self.path)
        except OSError as exc:  # not read: tried again at the next request
            self._keep(f"{exc.strerror or exc}")
            return
        except TokenFileError as exc:  # read again once it changes
            self._stamp = exc.stamp
            self._keep(str(exc))
            return
        self._stamp = now
        self._problem = ""
        if token != self.token:
            self.token = token
            self.reloads += 1
            log.info(
                "Vault token read again from setting %r (%s)",
                self.setting,
                self.path,
                extra={"setting": self.setting, "file": str(self.path)},
            )

    def _keep(self, problem: str) -> None:
        """Says once per problem that the token last read stays in use."""
        if problem != self._problem:
            log.warning(
                "setting %r: no token taken from %s (%s); the Vault token last read stays in use",
                self.setting,
                self.path,
                problem,
                extra={"setting": self.setting, "file": str(self.path), "problem": problem},
            )
        self._problem = problem


class _FollowingAdapter(hvac.adapters.JSONAdapter):  # type: ignore[misc]  # untyped
    """hvac's adapter, with the token of a :class:`TokenFile` as it is at each request.

    The client is shared by threads (the notary's, the handlers', content sealing's):
    each request sends the token its own thread read. It was set on the adapter, where
    hvac reads it while building the headers: a request that had read the old token
    just before a renewal could set it over the new one another thread had just set,
    and that thread sent the old, revoked token, was refused 403, read the file again,
    found the token it meant to send, and failed.
    """

    def __init__(self, token_file: TokenFile, **kwargs: Any) -> None:
        self.token_file = token_file
        self._sending = threading.local()
        super().__init__(**kwargs)

    @property
    def token(self) -> str:
        """The token of this thread's request in flight; else the file's as last read."""
        sending: str | None = getattr(self._sending, "token", None)
        return self.token_file.token if sending is None else sending

    @token.setter
    def token(self, value: str | None) -> None:
        """Ignored: the file holds the token (hvac sets the one first read from it)."""

    def request(self, *args: Any, **kwargs: Any) -> Any:
        """Sends with the file's current token; after a 403, once more if the file changed."""
        sent = self._sending.token = self.token_file.current()
        try:
            try:
                return super().request(*args, **kwargs)
            except hvac.exceptions.Forbidden:
                fresh = self.token_file.reread()
                if fresh == sent:
                    raise
                self._sending.token = fresh
                return super().request(*args, **kwargs)
        finally:
            self._sending.token = None


def vault_client(
    addr: str,
    token_file: Path | None,
    env: dict[str, str],
    timeout: float,
    setting: str,
    token_vars: tuple[str, ...] = ("VAULT_TOKEN",),
) -> hvac.Client:
    """An hvac client with the token in ``token_file``, else the first of ``token_vars`` set.

    A token file is followed: each request uses the token it holds then (see the
    module's docstring). ``setting`` names the token file's setting in errors
    and warnings.
    """
    if token_file is not None:
        follower = TokenFile(token_file, setting)
        return hvac.Client(
            url=addr,
            token=follower.token,
            timeout=timeout,
            adapter=partial(_FollowingAdapter, follower),
        )
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
