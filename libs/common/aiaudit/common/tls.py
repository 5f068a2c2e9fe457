"""Server TLS credentials that follow their files, so a renewed certificate needs no restart.

cert-manager renews a certificate well before it expires and rewrites the
Secret; Kubernetes then swaps the mounted files in place. Credentials read
once at start-up kept serving the old certificate until it expired, and from
then on every handshake failed. gRPC calls the fetcher before each handshake:
it compares the files' stamps (one ``stat`` each) and reads them again only
when one changed. A certificate and key that do not belong together (files
replaced one at a time, seen between the two writes), or a client CA file
that holds no certificate (empty while it is written, or not a certificate at
all), are not taken: the previous files keep serving and are read again at
the next handshake. At start-up the same checks refuse to serve, naming the
file: gRPC itself only failed to create the port, which read as a port in use.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, cast

import grpc
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from google.rpc import code_pb2

from aiaudit.common import status, wrapping
from aiaudit.common.auth import LogThrottle

log = logging.getLogger(__name__)

Stamp = tuple[tuple[int, int, int], ...]


class TlsFilesError(ValueError):
    """The certificate files cannot be served (unreadable, unparsable or not a pair)."""


def stamp(paths: list[Path]) -> Stamp:
    """What tells a changed file: raises OSError when one is missing."""
    out = []
    for path in paths:
        st = os.stat(path)  # follows the symlinks a Secret volume swaps
        out.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(out)


def matching_pair(cert_pem: bytes, key_pem: bytes, where: Path) -> None:
    """Raises TlsFilesError unless the key is the private half of the first certificate."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:  # TypeError: an encrypted key
        raise TlsFilesError(f"{where}: {exc}") from None
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise TlsFilesError(f"{where}: the certificate and the key are not a pair")


def ca_certificates(ca_pem: bytes, where: Path, setting: str = "tls_client_ca_file") -> None:
    """Raises TlsFilesError unless ``ca_pem`` holds a PEM certificate and each one parses.

    gRPC takes any bytes as the CA bundle: at start-up an unusable one made the
    port fail to open (reported as an address in use), and a renewed one that
    was empty or garbage was served, so that every client certificate failed the
    handshake (review, 2026-12-05).
    """
    if not ca_pem.strip():
        raise TlsFilesError(f"setting {setting!r}: {where} is empty (expected PEM certificates)")
    try:
        x509.load_pem_x509_certificates(ca_pem)
    except ValueError as exc:
        reason = str(exc).split(". See https://", 1)[0]  # not the FAQ link cryptography adds
        raise TlsFilesError(
            f"setting {setting!r}: {where} is not a PEM certificate bundle ({reason})"
        ) from None


class ServerCertificates:
    """The certificate, key and (for mTLS) client CA files of a server, read when they change."""

    def __init__(self, cert_file: Path, key_file: Path, client_ca_file: Path | None) -> None:
        """Reads the files once; raises TlsFilesError if they cannot be served."""
        self._cert_file, self._key_file, self._ca_file = cert_file, key_file, client_ca_file
        self._paths = [p for p in (cert_file, key_file, client_ca_file) if p is not None]
        self._lock = threading.Lock()
        try:
            self._stamp = stamp(self._paths)
        except OSError as exc:
            raise TlsFilesError(f"cannot read the TLS files: {exc}") from None
        self._current = self._read()
        self.reloads = 0
        """Times new files were taken (for tests and logs)."""

    def _read(self) -> grpc.ServerCertificateConfiguration:
        try:
            cert, key = self._cert_file.read_bytes(), self._key_file.read_bytes()
            ca = self._ca_file.read_bytes() if self._ca_file is not None else None
        except OSError as exc:
            raise TlsFilesError(f"cannot read the TLS files: {exc}") from None
        matching_pair(cert, key, self._cert_file)
        if ca is not None and self._ca_file is not None:
            ca_certificates(ca, self._ca_file)
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    def credentials(self) -> grpc.ServerCredentials:
        """Credentials that ask :meth:`fetch` before each handshake."""
        return grpc.dynamic_ssl_server_credentials(
            self._current,
            self.fetch,  # type: ignore[arg-type]  # None means "no change" (gRPC's docs; stubs lag)
            require_client_authentication=self._ca_file is not None,
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """New configuration when the files changed and are a valid pair; None: keep serving."""
        with self._lock:
            try:
                now = stamp(self._paths)
            except OSError as exc:  # mid-swap: the old files are still being served
                log.warning("TLS files not readable, serving the previous ones: %s", exc)
                return None
            if now == self._stamp:
                return None
            try:
                fresh = self._read()
            except TlsFilesError as exc:
                log.warning(
                    "TLS files changed but cannot be served yet (%s); keeping the previous ones",
                    exc,
                )
                return None
            self._stamp, self._current = now, fresh
            self.reloads += 1
            log.info("TLS certificate files reloaded from %s", self._cert_file)
            return fresh


_REFUSED_CERTIFICATES = LogThrottle(10)


class ClientNames(wrapping.BehaviourWrapper):
    """Serves one service's methods only to client certificates that carry one of its names.

    Under mTLS the handshake admits any certificate the client CA signed; with one CA for
    the suite that is every component's certificate, whichever calls. Here a call to
    ``service`` goes on only when the certificate names one of ``names`` as a DNS SAN
    (compared without case) or a URI SAN (compared as written); any other is answered
    PERMISSION_DENIED naming the certificate's names: it is authenticated (its CA signed
    it), not allowed. The check wraps the method's behaviour, outermost, so it runs
    before the credential gate's answer and every handler (``intercept_service`` sees no
    peer). Other services' methods (health, reflection, another service of the process)
    are left as they are.
    """

    def __init__(self, service: str, names: Iterable[str], setting: str) -> None:
        """``service``: its full name; ``setting``: the setting named in the refusal."""
        super().__init__()
        self._prefix = f"/{service}/"
        self._names = tuple(names)
        self._dns = {n.lower() for n in self._names if ":" not in n}
        self._uris = {n for n in self._names if ":" in n}
        self._setting = setting

    def applies(self, method: str, handler: wrapping.Handler) -> bool:
        """The service's methods."""
        return method.startswith(self._prefix)

    def wrap(self, handler: wrapping.Handler, method: str) -> wrapping.Handler:
        """The handler checking the peer's certificate first."""
        serve = wrapping.behaviour(handler)

        # A plain function for every kind: it returns a response stream's iterator unread
        # (``more``: a non-blocking behaviour's send_response_callback, passed on).
        def checked(request: Any, context: grpc.ServicerContext, *more: Any) -> Any:
            self._check(context)
            return serve(request, context, *more)

        return wrapping.rewrapped(handler, checked)

    def _check(self, context: grpc.ServicerContext) -> None:
        # Each property is a list of values (the sync stubs say bytes; the aio ones are right).
        peer = cast(Mapping[str, list[bytes]], context.auth_context())

        def values(key: str) -> list[str]:
            return [n.decode(errors="replace") for n in peer.get(key, [])]

        if any(n.lower() in self._dns for n in values("peer_dns")) or any(
            n in self._uris for n in values("peer_uri")
        ):
            return
        shown = values("x509_subject_alternative_name") or [
            f"CN={n}" for n in values("x509_common_name")
        ]
        named = ", ".join(shown) if shown else "no client certificate"
        message = f"client certificate ({named}) carries none of the names {self._setting!r} lists"
        held = _REFUSED_CERTIFICATES.allow()
        if held is not None:
            log.warning(
                "client certificate refused",
                extra={
                    "peer": context.peer(),
                    "names": shown,
                    "admitted": list(self._names),
                    "not_logged_before": held,
                },
            )
        status.abort(
            context,
            status.error(code_pb2.PERMISSION_DENIED, message, "CLIENT_CERTIFICATE_NOT_ADMITTED"),
        )
