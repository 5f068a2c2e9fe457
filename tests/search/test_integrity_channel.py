"""Search's channel to IntegrityService carries each caller's credentials: never in clear off-host.

Search holds no proof credential of its own: every call to the integrity
service forwards the caller's ``authorization`` header. It used to open a
plaintext channel whenever the search server itself served without TLS,
whatever host ``search.integrity_address`` named, so a compliance officer's
key crossed the network in clear on each ``GetEvent`` (review, 2026-12-05).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
import yaml

from aiaudit.common import client
from aiaudit.common.config import ConfigError
from aiaudit.ingest.v1 import ingest_service_pb2 as ingest_pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from aiaudit.integrity.v1 import integrity_service_pb2 as ipb
from aiaudit.search.v1 import search_service_pb2 as pb
from aiaudit.search.v1 import search_service_pb2_grpc as pb_grpc
from tests.conftest import serve_suite
from tests.helpers import interaction, this_hosts_other_address, wait_until


class _Listener(grpc.GenericRpcHandler):
    """Records the metadata of every call that reaches it in clear (and implements nothing)."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []

    def service(self, details: grpc.HandlerCallDetails) -> None:
        self.seen.append({k: str(v) for k, v in details.invocation_metadata or ()})


@pytest.fixture
def listener() -> Iterator[tuple[str, _Listener]]:
    """A plaintext gRPC server on another address of this host: (its HOST:PORT, what it saw)."""
    host = this_hosts_other_address()
    handler = _Listener()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(f"{host}:0")
    server.start()
    yield f"{host}:{port}", handler
    server.stop(None)


def _config(tmp_path: Path, search: dict[str, object]) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"search": search}))
    return cfg


def _get_event(address: str, keys: dict[str, str], tenant: str, until: int | None = None) -> int:
    """Appends an event and reads it back as a compliance officer: its integrity status
    (read again until it is ``until``, if given)."""
    with client.channel(address, keys["admin"]) as ch:
        ingest_grpc.IngestServiceStub(ch).Append(
            ingest_pb.AppendRequest(events=[interaction(tenant, "ev-1")])
        )
    with client.channel(address, keys["compliance_officer"]) as ch:
        search = pb_grpc.SearchServiceStub(ch)
        request = pb.GetEventRequest(tenant_id=tenant, event_id="ev-1")
        if until is not None:
            wait_until(lambda: search.GetEvent(request).integrity_status == until)
        return int(search.GetEvent(request).integrity_status)


def test_plaintext_to_an_integrity_service_on_another_host_is_refused_at_start(
    tmp_path: Path, listener: tuple[str, _Listener]
) -> None:
    target, seen = listener
    cfg = _config(tmp_path, {"integrity_address": target})
    with pytest.raises(ConfigError) as err:
        suite, _ = serve_suite(tmp_path, cfg, services=("ingest", "search"))
        suite.stop()
    message = str(err.value)
    assert "'search.integrity_address'" in message and target in message
    assert "integrity_ca_file" in message and "allow_insecure" in message
    assert seen.seen == []


def test_with_a_ca_file_the_channel_is_tls_and_no_credential_goes_in_clear(
    tmp_path: Path, listener: tuple[str, _Listener], tenant: str
) -> None:
    """``search.integrity_ca_file`` makes the channel TLS: the plaintext listener sees no call
    (the handshake fails) and the read is still answered, without an integrity status."""
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from tests.contract.test_tls import _issue

    target, seen = listener
    ca = _issue(tmp_path, "ca", [], None)
    _issue(tmp_path, "integrity", [ExtendedKeyUsageOID.SERVER_AUTH], ca)
    cfg = _config(
        tmp_path,
        {"integrity_address": target, "integrity_ca_file": str(tmp_path / "ca.pem")},
    )
    suite, keys = serve_suite(tmp_path, cfg, services=("ingest", "search"))
    try:
        status = _get_event(f"127.0.0.1:{suite.port}", keys, tenant)
    finally:
        suite.stop()
    assert status == ipb.VERIFY_STATUS_UNSPECIFIED
    assert seen.seen == []


def test_allow_insecure_lets_search_call_integrity_in_clear_on_another_address(
    tmp_path: Path, tenant: str
) -> None:
    """The explicit opt-in (a trusted network): the suite serves plaintext on a non-loopback
    address and search reaches its own integrity service there, so events come back
    VERIFIED. (On loopback, the embedded default, no opt-in is needed: the other search
    tests.)"""
    host = this_hosts_other_address()
    suite, keys = serve_suite(
        tmp_path, address=f"{host}:0", allow_insecure=True, data_dir=tmp_path / "data"
    )
    try:
        verified = ipb.VERIFY_STATUS_VERIFIED
        assert _get_event(f"{host}:{suite.port}", keys, tenant, until=verified) == verified
    finally:
        suite.stop()
