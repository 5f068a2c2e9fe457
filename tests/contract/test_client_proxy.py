"""A channel to this host never goes through an HTTP proxy (review, 2026-12-05).

gRPC honours ``http_proxy``/``grpc_proxy``: a client on a host with one set
(or a service, for its calls to its own suite) sent a loopback call, bearer
key and all, to the proxy.
"""

from __future__ import annotations

import socket
import threading

import pytest

from aiaudit.common import client
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from tests.conftest import Running
from tests.helpers import close_listener, interaction


def test_a_loopback_call_never_goes_through_an_http_proxy(
    server: Running, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxied: list[bytes] = []
    proxy = socket.create_server(("127.0.0.1", 0))

    def listen() -> None:
        while True:
            try:
                conn, _ = proxy.accept()
            except OSError:  # closed: the test is over
                return
            with conn:
                proxied.append(conn.recv(4096))

    threading.Thread(target=listen, daemon=True).start()
    for name in ("http_proxy", "https_proxy", "grpc_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.getsockname()[1]}")
    for name in ("no_proxy", "NO_PROXY", "no_grpc_proxy"):
        monkeypatch.delenv(name, raising=False)
    try:
        with client.channel(server.address, server.keys["gateway"]) as channel:
            done = pb_grpc.IngestServiceStub(channel).Append(
                pb.AppendRequest(events=[interaction(tenant)]), timeout=10
            )
        assert len(done.receipts) == 1
        assert proxied == []
    finally:
        close_listener(proxy)
