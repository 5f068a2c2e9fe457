"""Client channels for the CLI, tests and SDKs: API key and TLS applied once."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc

from aiaudit.common import config, tls

log = logging.getLogger(__name__)


class _ClientCallDetails(
    collections.namedtuple(
        "_ClientCallDetails",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,
):
    pass


class _BearerToken(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[type-arg]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.StreamStreamClientInterceptor,  # type: ignore[type-arg]
):
    """Adds ``authorization: Bearer <key>`` to every call."""

    def __init__(self, key: str) -> None:
        self._header = ("authorization", f"Bearer {key}")

    def _details(self, d: Any) -> _ClientCallDetails:
        metadata = [*(d.metadata or []), self._header]
        return _ClientCallDetails(
            d.method, d.timeout, metadata, d.credentials, d.wait_for_ready, d.compression
        )

    def intercept_unary_unary(self, continuation: Callable[..., Any], d: Any, request: Any) -> Any:
        return continuation(self._details(d), request)

    def intercept_unary_stream(self, continuation: Callable[..., Any], d: Any, request: Any) -> Any:
        return continuation(self._details(d), request)

    def intercept_stream_unary(
        self, continuation: Callable[..., Any], d: Any, requests: Iterator[Any]
    ) -> Any:
        return continuation(self._details(d), requests)

    def intercept_stream_stream(
        self, continuation: Callable[..., Any], d: Any, requests: Iterator[Any]
    ) -> Any:
        return continuation(self._details(d), requests)


def channel(
    address: str,
    api_key: str | None = None,
    ca_file: Path | None = None,
    options: list[tuple[str, Any]] | None = None,
    identity: tuple[Path, Path] | None = None,
) -> grpc.Channel:
    """A channel to an aiaudit server; TLS when a CA file is given, bearer key when set.

    ``identity``: the client's certificate and key files, for a server that
    asks for them (mTLS, ``tls_client_ca_file``).
    """
    if identity is not None and ca_file is None:
        raise ValueError("a client certificate needs TLS: give the server's CA file too")
    if config.local_target(address):  # an http_proxy saw a loopback call's key in clear
        options = [*(options or []), ("grpc.enable_http_proxy", 0)]
    if ca_file is not None:
        cert, key = (p.read_bytes() for p in identity) if identity is not None else (None, None)
        creds = grpc.ssl_channel_credentials(
            root_certificates=ca_file.read_bytes(), private_key=key, certificate_chain=cert
        )
        ch = grpc.secure_channel(address, creds, options=options)
    else:
        ch = grpc.insecure_channel(address, options=options)
    if api_key:
        return grpc.intercept_channel(ch, _BearerToken(api_key))
    return ch


def for_command(
    address: str,
    api_key: str | None,
    ca_file: Path | None,
    client_cert: Path | None,
    client_key: Path | None,
) -> grpc.Channel:
    """The channel of a client command (``--ca-file``, ``--client-cert``, ``--client-key``).

    The files are checked first, each refusal a ``ConfigError`` naming the option
    (``aiaudit: configuration error: ...``, exit 2): until 2026-12-07 a certificate
    without its key, or without ``--ca-file``, ended every client command in a
    traceback, and a CA file or key pair gRPC cannot use in gRPC's own log lines
    and a misleading ``UNAVAILABLE`` (``Failed to create security handshaker``).
    """
    identity = _identity(ca_file, client_cert, client_key)
    # A page or answer holding one event of the largest size ingest takes, whole.
    options = [("grpc.max_receive_message_length", COMMAND_RECEIVE_BYTES)]
    return channel(address, api_key, ca_file, options, identity)


COMMAND_RECEIVE_BYTES = 64 * 1024 * 1024


def _identity(
    ca_file: Path | None, client_cert: Path | None, client_key: Path | None
) -> tuple[Path, Path] | None:
    """The client certificate and key, once the command's TLS files are usable together."""
    if (client_cert is None) != (client_key is None):
        given = "--client-cert" if client_cert is not None else "--client-key"
        raise config.ConfigError(
            f"{given} without its pair: --client-cert and --client-key go together "
            "(the client certificate and its private key)"
        )
    if ca_file is not None:
        try:
            tls.ca_certificates(ca_file.read_bytes(), ca_file, setting="--ca-file")
        except tls.TlsFilesError as exc:
            raise config.ConfigError(str(exc)) from None
    if client_cert is None or client_key is None:
        return None
    if ca_file is None:
        raise config.ConfigError(
            "--client-cert needs --ca-file (the server's CA): a client certificate "
            "is presented over TLS only"
        )
    try:
        tls.matching_pair(client_cert.read_bytes(), client_key.read_bytes(), client_cert)
    except tls.TlsFilesError as exc:
        raise config.ConfigError(f"--client-cert/--client-key: {exc}") from None
    return client_cert, client_key


RETIRED_FOR = 600.0
"""Seconds a channel replaced by renewed TLS files stays open for the calls on it."""


class RenewingChannel:
    """A channel to another service that follows its TLS files, as servers do (:mod:`.tls`).

    The certificate a service presents as a client and the CA it checks the
    other side against are renewed in place like its server certificate; a
    channel built once kept presenting the old one, and after it expired no
    new connection succeeded. Each call asks :meth:`current` (one ``stat`` per
    file): new files make a new channel, once the certificate and key are a
    pair. A replaced channel is closed at a later renewal once it has been
    retired for :data:`RETIRED_FOR` seconds, longer than any call on it may
    last (files written one at a time make several channels a few
    milliseconds apart: closing the previous one at once cancelled its calls).
    """

    def __init__(
        self,
        address: str,
        api_key: str | None,
        ca_file: Path | None,
        identity: tuple[Path, Path] | None = None,
    ) -> None:
        """Builds the first channel (gRPC connects on the first call)."""
        self._address, self._api_key = address, api_key
        self._ca_file, self._identity = ca_file, identity
        self._files = [p for p in (ca_file, *(identity or ())) if p is not None]
        self._stamp = tls.stamp(self._files)
        self._channel = channel(address, api_key, ca_file, identity=identity)
        self._retired: list[tuple[float, grpc.Channel]] = []
        self._lock = threading.Lock()

    def current(self) -> grpc.Channel:
        """The channel to call on: a new one when the TLS files changed and can be used."""
        if not self._files:
            return self._channel
        try:
            now = tls.stamp(self._files)
        except OSError:  # mid-swap: keep the channel that works
            return self._channel
        if now == self._stamp:
            return self._channel
        with self._lock:
            if now != self._stamp:
                try:
                    if self._identity is not None:
                        cert, key = (p.read_bytes() for p in self._identity)
                        tls.matching_pair(cert, key, self._identity[0])
                    fresh = channel(
                        self._address, self._api_key, self._ca_file, identity=self._identity
                    )
                except (OSError, tls.TlsFilesError) as exc:
                    log.warning("client TLS files changed but cannot be used yet: %s", exc)
                    return self._channel
                due = time.monotonic() - RETIRED_FOR
                for _, old in [r for r in self._retired if r[0] < due]:
                    old.close()
                self._retired = [r for r in self._retired if r[0] >= due]
                self._retired.append((time.monotonic(), self._channel))
                self._channel, self._stamp = fresh, now
                log.info("client TLS files reloaded for %s", self._address)
        return self._channel

    def close(self) -> None:
        """Closes the channel (and the ones it replaced)."""
        for _, old in self._retired:
            old.close()
        self._channel.close()
