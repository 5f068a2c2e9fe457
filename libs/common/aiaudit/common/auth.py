"""Who is calling, and what they may do: API keys or OIDC tokens mapped to tenants and roles.

Callers send ``authorization: Bearer <key>``, or ``Bearer <JWT>`` from the
organisation's identity provider (:mod:`aiaudit.common.oidc`). Only the
SHA-256 of each key is configured (``api_keys_file``), so the file holds no
secret. Roles follow the PRD's users; a role grants permissions, a key or a
token grants roles on tenants. Without keys or OIDC (embedded dev mode on
loopback) every caller is the ``dev`` principal with every permission on
every tenant.

The keys file is read again when it changes (:class:`KeysFile`): a key
removed from it is refused, and one added accepted, within
:data:`KEYS_CHECK_SECONDS` of the change reaching the path, without a restart.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import NoReturn

import grpc
import yaml
from google.rpc import code_pb2, status_pb2

from aiaudit.common import status
from aiaudit.common import tenants as tenant_ids
from aiaudit.common.config import ConfigError, Settings
from aiaudit.common.erasure import USER_ID_CHARS, unstorable
from aiaudit.common.oidc import LEEWAY, Jwks, TokenError, Verifier

log = logging.getLogger(__name__)

ALL_TENANTS = "*"

KEYS_CHECK_SECONDS = 2.0
"""How often, at most, the keys file is looked at (one ``stat``): a key removed from it is
refused, and one added accepted, by every call (and every open stream's next request) that
starts more than this after the change reached the path. Kubernetes adds its own delay
before a Secret's new content reaches the pod (kubelet's sync, about a minute)."""

REPEAT_PROBLEM_SECONDS = 60.0
"""A keys file that stays unreadable or invalid is named in an ERROR again this often."""

MAX_KEYS_FILE_BYTES = 16 * 1024 * 1024
"""A larger ``api_keys_file`` is a problem, not read (about 80,000 keys fit): it is read
and parsed on a call's way in, holding every other call that needs the keys."""


def unrecordable(principal: str) -> str:
    """Why records cannot name ``principal`` (a token's ``sub``, a key's principal or id); ''.

    Every record of a caller's reads and changes names it as ``actor.user_id``, a column of
    :data:`USER_ID_CHARS` (``varchar(256)`` on PostgreSQL, as alerts' ``acknowledged_by`` and
    ``resolved_by``); PostgreSQL text holds no U+0000, and UTF-8 no lone surrogate (a JSON
    ``sub`` or a YAML string may spell one as an escape). Until 2026-12-07 such a caller was
    let in: on PostgreSQL every read of it failed at its record, UNAVAILABLE "retry" for
    ever, while SQLite served a long one (review).
    """
    if len(principal) > USER_ID_CHARS:
        return f"is {len(principal)} characters; records hold at most {USER_ID_CHARS}"
    return unstorable(principal)


ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    # AI gateways: write events, nothing else.
    "gateway": frozenset({"events.write"}),
    # Compliance officers: everything about events, content and PII included, and exports;
    # they also carry out erasure requests.
    "compliance_officer": frozenset(
        {
            "events.read",
            "content.read",
            "pii.read",
            "export",
            "proofs.read",
            "alerts.read",
            "content.erase",
        }
    ),
    # External auditors: events, exports and proofs; no PII.
    "auditor": frozenset({"events.read", "content.read", "export", "proofs.read"}),
    # Security analysts: events with content, rules and alerts.
    "security_analyst": frozenset(
        {"events.read", "content.read", "rules.read", "rules.write", "alerts.read", "alerts.write"}
    ),
    # Product managers and developers: metadata, aggregates and trust signals, no content.
    "analyst": frozenset({"events.read"}),
    "developer": frozenset({"events.read", "alerts.read", "rules.read"}),
    "admin": frozenset(
        {
            "content.erase",
            "events.write",
            "events.read",
            "content.read",
            "pii.read",
            "export",
            "proofs.read",
            "rules.read",
            "rules.write",
            "alerts.read",
            "alerts.write",
        }
    ),
}


@dataclass(frozen=True)
class Caller:
    """An authenticated caller."""

    principal: str
    tenants: frozenset[str]
    roles: frozenset[str]
    key_id: str = ""
    expires: float = math.inf
    """When the credential stops being accepted (epoch seconds; an API key never does).
    A stream checks it as it goes: it was authenticated once, when it opened."""
    revoked: Callable[[], bool] = field(default=lambda: False, compare=False, repr=False)
    """Whether the key is no longer in the keys file with these grants, or the token's
    signing key no longer in the issuer's JWKS: an open stream must not outlive the
    credential it was opened with (see :class:`KeysFile`, :class:`~aiaudit.common.oidc.Claims`)."""

    def expired(self) -> bool:
        """Whether the credential is past its end or revoked (a long stream must then stop)."""
        return time.time() > self.expires or self.revoked()

    def holds(self, permission: str) -> bool:
        """Whether a role of this caller grants the permission on some tenant."""
        return bool(self.tenants) and any(
            permission in ROLE_PERMISSIONS.get(r, frozenset()) for r in self.roles
        )

    def member_of(self, tenant: str) -> bool:
        """Whether the caller holds roles on the tenant, whatever they grant.

        A token whose roles the suite knows none of holds no role anywhere.
        """
        return bool(self.roles) and (ALL_TENANTS in self.tenants or tenant in self.tenants)

    def allows(self, permission: str, tenant: str) -> bool:
        """Whether a role of this caller grants the permission on the tenant."""
        if not self.member_of(tenant):
            return False
        return any(permission in ROLE_PERMISSIONS.get(r, frozenset()) for r in self.roles)


DEV_CALLER = Caller("dev", frozenset({ALL_TENANTS}), frozenset({"admin"}), "dev")


class KeysFile:
    """The ``api_keys_file``, read again when it changes, so keys are revoked without a restart.

    Before 2026-12-05 the file was read once at start-up: a revoked key kept working
    until the server restarted, and in Kubernetes rotating the Secret restarts no pod.
    Now, at most every :data:`KEYS_CHECK_SECONDS`, the call that finds the last look
    that old stats the path (following symlinks: kubelet swaps a Secret's files by
    replacing a ``..data`` symlink) and reads the file again only when its device,
    inode, size, mtime or ctime changed. The look happens on a call's way in, before
    that call is judged, so there is no thread to stop, and a server nobody calls has
    nothing to check.

    A file that becomes unreadable or invalid keeps the last good keys in force: an
    ERROR names the file and the problem (again every :data:`REPEAT_PROBLEM_SECONDS`
    while it lasts) and every look tries again. Dropping to no keys would lock out
    every gateway and lose their events over a typo or a half-written file, and
    letting everyone in would be worse; keeping the last keys a writer meant to
    replace is the smaller harm, and the ERROR says so. For the same reason an
    empty file (what a writer that truncates before it writes leaves for a moment)
    is a problem on reload; ``keys: []`` revokes every key on purpose (a WARNING).
    """

    def __init__(self, path: Path) -> None:
        """Reads the file now; ConfigError if it cannot (start-up refuses to serve)."""
        self._path = path
        self._lock = threading.Lock()
        self._seen, self._keys = self._read(reload=False)
        self._checked = time.monotonic()
        self._problem = ""
        self._logged = -math.inf

    @property
    def path(self) -> Path:
        """The file."""
        return self._path

    def current(self) -> dict[str, Caller]:
        """The keys (SHA-256 hex to caller) as of a look no older than KEYS_CHECK_SECONDS."""
        if time.monotonic() - self._checked >= KEYS_CHECK_SECONDS:
            with self._lock:  # one thread looks; the others wait for what it finds
                if time.monotonic() - self._checked >= KEYS_CHECK_SECONDS:
                    self._check()
                    self._checked = time.monotonic()
        return self._keys

    def _check(self) -> None:
        try:
            seen = _identity(os.stat(self._path))
        except OSError as exc:
            self._failed(f"setting 'api_keys_file': {self._path}: {exc}")
            return
        if seen == self._seen and not self._problem:
            return
        try:
            seen, keys = self._read(reload=True)
        except ConfigError as exc:
            self._failed(str(exc))
            return
        before, self._keys, self._seen = self._keys, keys, seen
        recovered, self._problem = self._problem, ""
        ids = {c.key_id for c in keys.values()}
        had = {c.key_id for c in before.values()}
        changed = sorted(c.key_id for d, c in keys.items() if d in before and before[d] != c)
        log.log(
            logging.INFO if keys else logging.WARNING,
            "api_keys_file %s read again: %d keys%s",
            self._path,
            len(keys),
            "" if keys else " (every API key is refused)",
            extra={
                "file": str(self._path),
                "added": sorted(ids - had),
                "removed": sorted(had - ids),
                "changed": changed,
                "recovered_from": recovered or None,
            },
        )

    def _failed(self, problem: str) -> None:
        now = time.monotonic()
        if problem != self._problem or now - self._logged >= REPEAT_PROBLEM_SECONDS:
            log.error(
                "api_keys_file %s not read again, the last good keys stay in force: %s",
                self._path,
                problem,
                extra={"file": str(self._path), "problem": problem},
            )
            self._logged = now
        self._problem = problem

    def _read(self, reload: bool) -> tuple[tuple[int, ...], dict[str, Caller]]:
        path = self._path
        where = f"setting 'api_keys_file': {path}"
        try:
            # Not blocking: a FIFO put there held this thread, and every call behind the
            # lock, for ever (review, 2026-12-05). The identity is the file read's own.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as f:
                st = os.fstat(f.fileno())
                if not stat.S_ISREG(st.st_mode):
                    raise ConfigError(f"{where}: not a regular file")
                if st.st_size > MAX_KEYS_FILE_BYTES:
                    raise ConfigError(f"{where}: {st.st_size} bytes, over {MAX_KEYS_FILE_BYTES}")
                data = f.read(MAX_KEYS_FILE_BYTES + 1)
        except OSError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        seen = _identity(st)
        if len(data) > MAX_KEYS_FILE_BYTES:
            raise ConfigError(f"{where}: over {MAX_KEYS_FILE_BYTES} bytes")
        try:
            text = data.decode()
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{where}: not UTF-8 ({exc})") from None
        if reload and not text.strip():
            raise ConfigError(
                f"{where}: empty (a write in progress?); write 'keys: []' to refuse every key"
            )
        try:
            keys = _parse_keys(path, text)
        except ConfigError:
            raise
        except Exception as exc:  # YAML's constructors raise ValueError (a bad date), ...
            # It escaped the reload and failed every call, the last good keys unused.
            raise ConfigError(f"{where}: {type(exc).__name__}: {exc}") from None
        return seen, {d: replace(c, revoked=partial(self._revoked, d, c)) for d, c in keys.items()}

    def _revoked(self, digest: str, caller: Caller) -> bool:
        return self.current().get(digest) != caller  # gone, or its roles or tenants changed


def _identity(st: os.stat_result) -> tuple[int, ...]:
    """What changes when the file's content may have: kubelet's swap changes the inode."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


KEY_FIELDS = frozenset({"id", "sha256", "principal", "tenants", "roles"})
"""The fields of an entry of the keys file; any other is refused."""


class _TextLoader(yaml.SafeLoader):
    """YAML where a plain scalar is the text written, or null (``~``, ``null``, empty).

    YAML 1.1 read ``tenants: [0042]`` as the octal 34, another tenant, ``no`` as False,
    ``id: 0123`` as 83 and a digest all of decimal digits as a number without its leading
    zeros (until 2026-12-07, review).
    """


_TextLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag.endswith((":null", ":merge"))]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _parse_keys(path: Path, text: str) -> dict[str, Caller]:
    """The keys of an ``api_keys_file``'s text; ConfigError naming the file and the entry."""
    try:
        doc = yaml.load(text, Loader=_TextLoader) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"setting 'api_keys_file': {path}: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys", []), list):
        raise ConfigError(
            f"setting 'api_keys_file': {path}: expected a mapping with a list under 'keys'"
        )
    if unknown := sorted(str(k) for k in doc if k != "keys"):
        raise ConfigError(f"setting 'api_keys_file': {path}: unknown {unknown}; only 'keys'")
    keys: dict[str, Caller] = {}
    seen: set[str] = set()
    listed_at: dict[str, tuple[int, str]] = {}  # digest -> the entry that listed it first
    for i, entry in enumerate(doc.get("keys", [])):
        where = f"setting 'api_keys_file': {path}: keys[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a mapping (sha256, principal, roles, tenants)")
        if unknown := sorted(str(k) for k in entry if k not in KEY_FIELDS):
            # ``disabled: true`` or ``expires:`` would leave the key working without a word
            raise ConfigError(
                f"{where}: unknown {unknown}; a key has only {sorted(KEY_FIELDS)} "
                "(remove an entry to revoke its key)"
            )
        digest = str(entry.get("sha256", "")).lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ConfigError(f"{where}.sha256 must be 64 hex digits (SHA-256 of the key)")
        if not isinstance(entry.get("roles", []), list):
            raise ConfigError(f"{where}.roles must be a list, e.g. [gateway]")
        roles = frozenset(entry.get("roles", []))
        unknown = sorted(roles - set(ROLE_PERMISSIONS))
        if unknown or not roles:
            raise ConfigError(
                f"{where}.roles: unknown or empty {unknown}; known {sorted(ROLE_PERMISSIONS)}"
            )
        listed = entry.get("tenants", [])
        if not isinstance(listed, list):  # a string would grant its letters as tenants
            raise ConfigError(f"{where}.tenants must be a list, e.g. [acme] or ['*']")
        tenants = frozenset(str(t) for t in listed)
        if not tenants:
            raise ConfigError(f"{where}.tenants must list tenants (or '*')")
        if wrong := sorted(t for t in tenants if t != ALL_TENANTS and not tenant_ids.valid(t)):
            raise ConfigError(f"{where}.tenants: {wrong} are no tenant ids ({tenant_ids.RULE})")
        key_id = str(entry.get("id") or "")
        if not key_id.strip():  # the access records name it: every read must say whose
            raise ConfigError(f"{where}.id is required: the key's id, named in records")
        if key_id in seen:
            raise ConfigError(f"{where}.id {key_id!r} is already another key's")
        seen.add(key_id)
        if digest in listed_at:  # the later entry would silently replace the earlier one
            first, first_id = listed_at[digest]
            raise ConfigError(
                f"{where} (id {key_id!r}) lists the same sha256 as keys[{first}] "
                f"(id {first_id!r}): one key, two entries; keep one"
            )
        listed_at[digest] = (i, key_id)
        principal = str(entry.get("principal") or key_id)
        for named, value in (("id", key_id), ("principal", principal)):
            if why := unrecordable(value):  # named in every record of the key's calls
                raise ConfigError(f"{where}.{named} {why}")
        keys[digest] = Caller(principal, tenants, roles, key_id)
    return keys


class Authenticator:
    """Turns request metadata into a Caller, or refuses the call."""

    def __init__(
        self, keys: dict[str, Caller] | KeysFile | None, oidc: Verifier | None = None
    ) -> None:
        """``keys``: SHA-256 hex of each key to its caller, or a file of them; ``oidc``: JWTs.

        Neither (``keys`` None, no ``oidc``) is dev mode.
        """
        self._keys = keys
        self._oidc = oidc

    @classmethod
    def from_settings(cls, s: Settings) -> Authenticator:
        """API keys from ``api_keys_file`` and/or OIDC tokens; the JWKS is read now."""
        keys = cls.from_file(s.api_keys_file)._keys
        if not s.oidc_issuer:
            return cls(keys)
        if s.oidc_jwks_file is not None:
            jwks = Jwks.from_file(s.oidc_jwks_file)
        else:  # the settings hold exactly one of the two
            jwks = Jwks.from_url(s.oidc_jwks_url)
        jwks.load()  # a provider out of reach at start-up is a configuration error
        jwks.keep_fresh()
        verifier = Verifier(
            s.oidc_issuer, s.oidc_audience, jwks, s.oidc_roles_claim, s.oidc_tenants_claim
        )
        return cls(keys if keys is not None else {}, verifier)

    @classmethod
    def from_file(cls, path: Path | None) -> Authenticator:
        """The keys file, read again when it changes (:class:`KeysFile`).

        None means dev mode (the caller decides if that is allowed).
        """
        return cls(None if path is None else KeysFile(path))

    @property
    def dev_mode(self) -> bool:
        """Whether every caller is let in as the dev principal."""
        return self._keys is None and self._oidc is None

    def authenticate(self, context: grpc.ServicerContext) -> Caller:
        """The caller of this request; aborts UNAUTHENTICATED without a known key or token."""
        try:
            return self.identify(context.invocation_metadata())
        except UnknownCallerError as exc:
            refuse_unauthenticated(context, str(exc))

    def identify(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> Caller:
        """The caller the request metadata names; UnknownCallerError if none is known."""
        if self.dev_mode:
            return DEV_CALLER
        token = ""
        for key, value in metadata or ():
            if key == "authorization" and str(value).lower().startswith("bearer "):
                token = str(value)[7:].strip()
        if self._oidc is not None and token.count(".") == 2:  # a JWT; API keys have no dots
            try:
                claims = self._oidc.verify(token)
            except TokenError as exc:
                raise UnknownCallerError(f"OIDC token refused: {exc}") from None
            if why := unrecordable(claims.subject):  # its reads' records could not be written
                raise UnknownCallerError(f"OIDC token refused: 'sub' {why}")
            return Caller(
                claims.subject,
                claims.tenants,
                claims.roles & ROLE_PERMISSIONS.keys(),
                claims.key_id,
                claims.expires + LEEWAY,
                claims.withdrawn,  # a stream ends once the token's key is withdrawn
            )
        # Looked up by the token's SHA-256, which a guess cannot steer: the lookup's timing
        # tells nothing of any key. Every key was compared in turn (hmac.compare_digest),
        # on the server's one dispatching thread (credential_gate) and again in the
        # handler: 7 ms of CPU for an unknown key among 80,000, so ~140 calls a second
        # without a key took the dispatching thread whole (review, 2026-12-07).
        keys = self._keys.current() if isinstance(self._keys, KeysFile) else self._keys
        caller = (keys or {}).get(hashlib.sha256(token.encode()).hexdigest()) if token else None
        if caller is not None:
            return caller
        raise UnknownCallerError(
            "missing or unknown API key or token (send 'authorization: Bearer <key or JWT>')"
        )


class UnknownCallerError(Exception):
    """A request without a key or token this server knows; the message says what to send."""


class LogThrottle:
    """At most ``per_second`` lines a second (a burst of as many), counting those held back.

    Anyone can send calls without a key: a line for each must not let them
    flood the service's log.
    """

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        """A full bucket of ``per_second`` lines."""
        self._rate = per_second
        self._clock = clock
        self._tokens = per_second
        self._at = clock()
        self._held = 0
        self._lock = threading.Lock()

    def allow(self) -> int | None:
        """None: hold this line back; else how many were held back since the last one."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._rate, self._tokens + (now - self._at) * self._rate)
            self._at = now
            if self._tokens < 1:
                self._held += 1
                return None
            self._tokens -= 1
            held, self._held = self._held, 0
            return held


_REFUSED_LOGINS = LogThrottle(10)


def refuse_unauthenticated(context: grpc.ServicerContext, message: str) -> NoReturn:
    """Aborts UNAUTHENTICATED, the refusal logged (rate-limited) with the peer."""
    # Failed logins are evidence (repeated ones, of guessing): a WARNING naming the peer and
    # why, at most ten a second; it names no tenant, so it goes to no tenant's log.
    held = _REFUSED_LOGINS.allow()
    if held is not None:
        log.warning(
            "unauthenticated call refused",
            extra={"peer": context.peer(), "reason": message, "not_logged_before": held},
        )
    status.abort(context, status.error(code_pb2.UNAUTHENTICATED, message, "UNAUTHENTICATED"))
    raise AssertionError("unreachable")


def end_expired(context: grpc.ServicerContext) -> NoReturn:
    """Ends a stream whose credential ended while it was open (UNAUTHENTICATED).

    A token past its end or its signing key withdrawn, or an API key revoked.
    """
    refuse_unauthenticated(
        context,
        "the credential expired while the stream was open (a token past its end or its "
        "signing key withdrawn, or an API key revoked); reconnect with a current one",
    )


def denied(caller: Caller, permission: str, tenant: str, why: str = "") -> status_pb2.Status:
    """The PERMISSION_DENIED every service answers: who lacks what where, and why if said."""
    because = f": {why}" if why else ""
    return status.error(
        code_pb2.PERMISSION_DENIED,
        f"{caller.principal!r} lacks {permission!r} on tenant {tenant!r}{because}",
        "PERMISSION_DENIED",
        permission=permission,
        tenant=tenant,
    )
