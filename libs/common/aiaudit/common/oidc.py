"""Callers authenticated by OIDC: a JWT from the organisation's identity provider.

A bearer token with three dot-separated parts is checked as a JWT: signed by
a key of the provider's JWKS (``oidc_jwks_url``, or a file, ``oidc_jwks_file``,
for providers whose keys are mounted), asymmetric algorithms only (RS256,
ES256, EdDSA: no ``none``, no HMAC with a public key), issued by
``oidc_issuer`` for ``oidc_audience``, with ``exp`` and ``sub`` present and
30 s of clock leeway. The caller is ``sub``, which every record of its calls names
(``auth.unrecordable``: more than ``erasure.USER_ID_CHARS`` characters, U+0000 or a lone
surrogate is refused UNAUTHENTICATED, nothing written); its roles and tenants come from
two claims (``roles`` and ``tenants`` unless configured otherwise), lists of
the same names API keys use (roles this suite does not know are ignored, so
an IdP's other roles do no harm).

Keys rotate: a token naming a key id the JWKS lacks makes it be read again
(at most every ``REFRESH_GAP`` seconds, whether the read succeeded or not,
so forged ids cannot hammer the provider), in a thread of its own: the token
is refused at once, and one naming that key verifies once the read is done;
the keys are also read every ``REREAD_EVERY`` seconds, so a key the provider
published before signing with it is known when its first token arrives.
Tokens are checked on the server's dispatching thread (``credential_gate``),
which a read of the provider must never hold. A verified token is
remembered until it expires (by its SHA-256), so a client's stream of calls
pays for one signature check, but only while the JWKS as last read holds the
key that signed it: the same key material (RFC 7638 thumbprint) and algorithms
under the same id. A key the provider withdrew (compromised, retired) or
replaced under its id refuses every token it signed from the first read that
lacks it, remembered or not (a remembered token used to be accepted until it
expired), and :attr:`Claims.withdrawn` says so, so a stream opened with such a
token ends at its next request, as one opened with a removed API key does.

A file (``oidc_jwks_file``) is also read again as soon as it changes: each token checked,
and each request of a stream opened with one, first compares the file's stamp (one
``stat``: device, inode, size, mtime, ctime) with the one last read, and reads it on that
thread when it differs, so a key withdrawn from the file is refused from the next call
on (it used to wait for the next scheduled read, up to 5 minutes, or one prompted by an
unknown key id). The stamp is recorded once the keys it was read with are in force, so a
call made while another reads the file waits for those keys. A file that becomes
unreadable or does not parse keeps the keys last read, with a WARNING naming the setting
(again every ``REPEAT_PROBLEM_SECONDS`` while it stays missing or cannot be opened): one
that does not parse (or is no regular file, or too large) is read again when it changes,
one that could not be opened or read (no descriptor left, say) at the next call.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import stat
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import jwt

from aiaudit.common.config import ConfigError

log = logging.getLogger(__name__)

ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "EdDSA"]
LEEWAY = 30
REREAD_EVERY = 300.0
"""Seconds between scheduled reads of the JWKS (:meth:`Jwks.keep_fresh`)."""
REFRESH_GAP = 30.0
"""Seconds between two reads of the JWKS prompted by unknown key ids."""
MAX_REMEMBERED = 10_000
MAX_JWKS_FILE_BYTES = 4 * 1024 * 1024
"""A larger ``oidc_jwks_file`` is not read (a JWKS of a thousand RSA keys is about 0.5 MB)."""
REPEAT_PROBLEM_SECONDS = 60.0
"""A JWKS file that stays unreadable is named in a WARNING again this often."""

Stamp = tuple[int, ...]


class _UnreadError(ConfigError):
    """The JWKS file could not be opened or read (its content is not the problem)."""


class TokenError(Exception):
    """A token that does not authenticate; the message says why (sent to the caller)."""


@dataclass(frozen=True)
class Claims:
    """Who a verified token names, and what it grants."""

    subject: str
    roles: frozenset[str]
    tenants: frozenset[str]
    key_id: str
    expires: float
    withdrawn: Callable[[], bool] = field(default=lambda: False, compare=False, repr=False)
    """Whether the JWKS as last read no longer holds the key that signed the token (gone,
    or its id now names other key material): the token is refused from then on."""


@dataclass(frozen=True)
class SigningKey:
    """One key of the JWKS and the algorithms tokens signed with it may name.

    Equal when the key material (its thumbprint) and the algorithms are: a read of the
    JWKS that keeps a key keeps the tokens it signed remembered.
    """

    key: object = field(compare=False)
    algorithms: list[str]
    thumbprint: str


_BY_KEY_TYPE = {"RSA": ["RS256", "RS384", "RS512"], "OKP": ["EdDSA"]}
_BY_CURVE = {"P-256": ["ES256"], "P-384": ["ES384"]}


_THUMBPRINT_MEMBERS = {
    "RSA": ("e", "kty", "n"),
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
}


def _thumbprint(entry: dict[str, Any]) -> str:
    """The JWK's RFC 7638 thumbprint (SHA-256, hex): its key material, whatever its id.

    A key type without the RFC's members listed here (one no accepted algorithm uses)
    is hashed whole.
    """
    names = _THUMBPRINT_MEMBERS.get(str(entry.get("kty")), tuple(entry))
    members = {name: entry.get(name) for name in names}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _algorithms(entry: dict[str, Any]) -> list[str]:
    """The key's ``alg``; without one, every accepted algorithm of its key type.

    An RSA key with no ``alg`` used to verify RS256 tokens only, refusing RS384/RS512 ones.
    Empty for a key no accepted algorithm uses, which the JWKS's read ignores (RFC 7517,
    section 5): an encryption key published without ``use`` (``RSA-OAEP``), or a key type
    this server does not know (``AKP``, ML-DSA), made the whole JWKS unreadable until
    2026-12-07, so ``serve`` refused to start, or a rotation was never read (review).
    """
    if "alg" in entry:
        return [str(entry["alg"])] if entry["alg"] in ALGORITHMS else []
    if entry.get("kty") == "EC":
        return _BY_CURVE.get(str(entry.get("crv")), [])
    return _BY_KEY_TYPE.get(str(entry.get("kty")), [])


class Jwks:
    """The provider's signing keys by key id, read from a URL or a file, again on demand."""

    def __init__(
        self, fetch: Callable[[], bytes] | None, where: str, path: Path | None = None
    ) -> None:
        """``fetch`` returns the JWKS document, or ``path`` holds it; ``where`` names it in errors.

        A ``path`` is read again whenever it changes (see the module's docstring).
        """
        assert (fetch is None) != (path is None), "one source: fetch or path"
        self._fetch = fetch
        self._where = where
        self._path = path
        self._keys: dict[str, SigningKey] = {}
        self._read_at = float("-inf")
        self._reading = False
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._swap = threading.Lock()
        """Held while the keys are read and replaced: a read that began before the file
        changed cannot put back the keys the change withdrew after it."""
        self._tried: Stamp | None = None
        """The file's stamp when last read, or tried: it is not read again until it differs."""
        self._problem = ""
        self._warned = -math.inf

    @classmethod
    def from_url(cls, url: str, timeout: float = 5.0) -> Jwks:
        """Keys served by the provider (its ``jwks_uri``).

        No redirect is followed and, for plain http (loopback only), no proxy is
        used: either took the keys from another host over clear text, whose
        keys then signed any caller in (review, 2026-12-05).
        """
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if url.lower().startswith("http:"):
            handlers.append(urllib.request.ProxyHandler({}))
        opener = urllib.request.build_opener(*handlers)

        def fetch() -> bytes:
            with opener.open(url, timeout=timeout) as reply:
                body: bytes = reply.read()
                return body

        return cls(fetch, url)

    @classmethod
    def from_file(cls, path: Path) -> Jwks:
        """Keys in a JSON file (e.g. a mounted ConfigMap the operator keeps current)."""
        return cls(None, f"setting 'oidc_jwks_file': {path}", path)

    def load(self) -> None:
        """Reads the keys now; raises ``ConfigError`` naming the source if it cannot."""
        with self._swap:
            self._load()

    def _load(self) -> None:
        stamp = self._tried
        try:
            if self._path is not None:
                stamp, body = _read_file(self._path)
            else:
                assert self._fetch is not None
                body = self._fetch()
            doc = json.loads(body)
            keys = {}
            for entry in doc["keys"]:
                if not isinstance(entry, dict):
                    raise ValueError(f"a key that is not an object: {entry!r:.60}")
                if entry.get("use", "sig") != "sig" or "kid" not in entry:
                    continue
                algorithms = _algorithms(entry)
                if not algorithms:  # no token this server accepts is signed by it: ignored
                    continue
                keys[str(entry["kid"])] = SigningKey(
                    jwt.PyJWK(entry).key, algorithms, _thumbprint(entry)
                )
        except OSError as exc:  # not opened or not read: no answer about what the file holds
            raise _UnreadError(f"OIDC JWKS {self._where}: {exc!r}") from None
        except Exception as exc:  # whatever the reply was (a truncated read, a list of strings)
            raise ConfigError(f"OIDC JWKS {self._where}: {exc!r}") from None
        # The keys first: a call that finds the file's stamp current must find its keys. The
        # stamp used to be taken before the parse, and a call that came meanwhile answered
        # from the keys the file had withdrawn (review, 2026-12-06).
        self._keys = keys
        self._tried = stamp
        self._read_at = time.monotonic()

    @property
    def reading(self) -> bool:
        """Whether a read of the keys is under way."""
        return self._reading

    def key(self, kid: str) -> SigningKey:
        """The key with this id; a new id starts a read of the JWKS (if allowed) and is refused."""
        self._follow()
        found = self._keys.get(kid)
        if found is not None:
            return found
        with self._lock:
            if not self._reading and time.monotonic() - self._read_at >= REFRESH_GAP:
                self._reading = True
                threading.Thread(target=self._refresh, name="oidc-jwks", daemon=True).start()
            if self._reading:
                raise TokenError(f"no signing key {kid!r} yet: the issuer's keys are being read")
        raise TokenError(f"no signing key {kid!r} at the issuer")

    def lacks(self, kid: str, key: SigningKey) -> bool:
        """Whether the keys as last read no longer hold ``key`` under ``kid``.

        A file is read again first if it changed; no other read is started.
        """
        self._follow()
        return self._keys.get(kid) != key

    def _follow(self) -> None:
        """Reads the file again, on this thread, if its stamp is not the one last read."""
        if self._path is None:
            return
        try:
            now = _stamp(os.stat(self._path))  # follows the symlinks a mounted volume swaps
        except OSError as exc:
            self._keep(f"{exc.strerror or exc}")
            return
        if now == self._tried:
            return
        with self._swap:
            if now == self._tried:  # another call read it meanwhile
                return
            before = self._keys
            try:
                self._load()
            except ConfigError as exc:
                # What the file holds is not read again until it changes once more; a file
                # not opened (out of descriptors for a moment) is tried again at the next
                # call: it was taken as tried, and the keys it withdrew stayed in force until
                # it changed again or the scheduled read (review, 2026-12-06).
                if not isinstance(exc, _UnreadError):
                    self._tried = now
                self._keep(str(exc).removeprefix(f"OIDC JWKS {self._where}: "))
                return
            self._problem = ""
        log.info(
            "OIDC signing keys read again from setting 'oidc_jwks_file' (%s): %d keys",
            self._path,
            len(self._keys),
            extra={
                "file": str(self._path),
                "added": sorted(set(self._keys) - set(before)),
                "removed": sorted(set(before) - set(self._keys)),
            },
        )

    def _keep(self, problem: str) -> None:
        """Says (at most every REPEAT_PROBLEM_SECONDS for one problem) that the keys stay."""
        now = time.monotonic()
        if problem != self._problem or now - self._warned >= REPEAT_PROBLEM_SECONDS:
            log.warning(
                "setting 'oidc_jwks_file': %s changed but cannot be read, the OIDC signing "
                "keys last read stay in force: %s",
                self._path,
                problem,
                extra={"file": str(self._path), "problem": problem},
            )
            self._warned = now
        self._problem = problem

    def keep_fresh(self, every: float = REREAD_EVERY) -> None:
        """Reads the keys again every ``every`` seconds, in a thread of its own.

        Providers publish a new key before they sign with it: read on a schedule,
        it is known when the first token naming it arrives, which a read started
        by that token would refuse (see the module's docstring).
        """

        def loop() -> None:
            while not self._stopped.wait(every):
                with self._lock:
                    if self._reading:
                        continue
                    self._reading = True
                self._refresh()

        threading.Thread(target=loop, name="oidc-jwks-schedule", daemon=True).start()

    def stop(self) -> None:
        """Ends the scheduled reads."""
        self._stopped.set()

    def _refresh(self) -> None:
        try:
            self.load()
        except ConfigError as exc:  # the caller hears no details of where or why
            log.warning("OIDC signing keys not refreshed: %s", exc)
        finally:
            with self._lock:  # a failed read counts too: forged ids must not hammer the issuer
                self._read_at = time.monotonic()
                self._reading = False


def _stamp(st: os.stat_result) -> Stamp:
    """What changes when a file's content may have: a volume's swap changes the inode."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _read_file(path: Path) -> tuple[Stamp, bytes]:
    """A JWKS file's stamp and content, read without blocking on what is no regular file.

    It is read on a call's thread: a FIFO or a device put at the path must not hold it.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file")
        data = f.read(MAX_JWKS_FILE_BYTES + 1)
    if len(data) > MAX_JWKS_FILE_BYTES:
        raise ValueError(f"over {MAX_JWKS_FILE_BYTES} bytes")
    return _stamp(st), data


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuses every redirect: the 3xx goes on to the error handler."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        """None: not followed."""
        return None


class Verifier:
    """Checks bearer JWTs against one issuer, one audience and its keys."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        keys: Jwks,
        roles_claim: str = "roles",
        tenants_claim: str = "tenants",
    ) -> None:
        """Keys are read at the first token, or by :meth:`Jwks.load` at start-up."""
        self._issuer = issuer
        self._audience = audience
        self._keys = keys
        self._roles_claim = roles_claim
        self._tenants_claim = tenants_claim
        self._remembered: dict[bytes, Claims] = {}

    def verify(self, token: str) -> Claims:
        """The claims of a valid token; ``TokenError`` saying what is wrong otherwise.

        A remembered token is checked again once its key is no longer the JWKS's: its
        claims are not answered after the key's withdrawal (the check refuses it).
        """
        digest = hashlib.sha256(token.encode()).digest()
        known = self._remembered.get(digest)
        if known is not None and known.expires > time.time() - LEEWAY and not known.withdrawn():
            return known
        claims = self._check(token)
        if len(self._remembered) >= MAX_REMEMBERED:
            self._remembered = {}
        self._remembered[digest] = claims
        return claims

    def _check(self, token: str) -> Claims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenError(f"not a JWT: {exc}") from None
        if header.get("alg") not in ALGORITHMS:
            raise TokenError(f"algorithm {header.get('alg')!r} is not accepted ({ALGORITHMS})")
        kid = str(header.get("kid", ""))
        key = self._keys.key(kid)
        try:
            body: dict[str, Any] = jwt.decode(
                token,
                key.key,  # type: ignore[arg-type]
                algorithms=key.algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenError(str(exc)) from None
        if not isinstance(body["sub"], str) or not body["sub"].strip():
            raise TokenError("the token names no subject ('sub' is empty)")
        return Claims(
            subject=str(body["sub"]),
            roles=_names(body.get(self._roles_claim)),
            tenants=_names(body.get(self._tenants_claim)),
            key_id=f"oidc:{header.get('kid', '')}",
            expires=float(body["exp"]),
            withdrawn=partial(self._keys.lacks, kid, key),
        )


def _names(claim: object) -> frozenset[str]:
    """A claim holding a list of names (or one name) as a set."""
    if isinstance(claim, str):
        return frozenset({claim})
    if isinstance(claim, list):
        return frozenset(str(x) for x in claim)
    return frozenset()
