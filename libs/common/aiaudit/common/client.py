"""Client channels for the CLI, tests and SDKs: API key and TLS applied once."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc


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
    """The channel of a client command (``--ca-file``, ``--client-cert``, ``--client-key``)."""
    if (client_cert is None) != (client_key is None):
        raise ValueError("--client-cert and --client-key go together")
    identity = (client_cert, client_key) if client_cert and client_key else None
    return channel(address, api_key, ca_file, identity=identity)
