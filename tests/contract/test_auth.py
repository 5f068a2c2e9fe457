"""Authentication and roles at the gRPC boundary (both backends)."""

from __future__ import annotations

import logging

import grpc
import pytest

from aiaudit.common import auth, client
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from tests.conftest import Running
from tests.helpers import clear_on_postgres, interaction


def test_no_key_is_unauthenticated(
    server: Running, tenant: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "_REFUSED_LOGINS", auth.LogThrottle(10))  # not other tests' lines
    with caplog.at_level(logging.WARNING, logger="aiaudit.common.auth"):
        for ch in (client.channel(server.address), client.channel(server.address, "wrong-key")):
            with pytest.raises(grpc.RpcError) as err:
                pb_grpc.IngestServiceStub(ch).Append(pb.AppendRequest(events=[interaction(tenant)]))
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert server.suite.store.log_sizes().get(tenant, 0) == 0  # type: ignore[attr-defined]
    # Each failed login is a warning naming the peer and why (evidence of guessing).
    refused = [r for r in caplog.records if r.getMessage() == "unauthenticated call refused"]
    assert len(refused) == 2
    assert all(str(getattr(r, "peer", "")).startswith("ipv4:127.0.0.1:") for r in refused)
    assert all("missing or unknown API key" in str(getattr(r, "reason", "")) for r in refused)
    assert [getattr(r, "not_logged_before", None) for r in refused] == [0, 0]
    assert "wrong-key" not in caplog.text  # the credential itself is never logged


def test_a_caller_without_a_key_learns_nothing_about_its_request(server: Running) -> None:
    """Malformed bytes without a key were answered INVALID_ARGUMENT, naming the problem."""
    raw = client.channel(server.address).unary_unary(
        "/aiaudit.ingest.v1.IngestService/Append",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    with pytest.raises(grpc.RpcError) as err:
        raw(b"\x0a\xff\xff\xff")  # a truncated events field
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_roles_without_write_are_denied(server: Running, tenant: str) -> None:
    for role in ("analyst", "compliance_officer", "security_analyst"):
        stub = pb_grpc.IngestServiceStub(server.as_role(role))
        with pytest.raises(grpc.RpcError) as err:
            stub.Append(pb.AppendRequest(events=[interaction(tenant)]))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "events.write" in err.value.details()
    ok = pb_grpc.IngestServiceStub(server.as_role("gateway")).Append(
        pb.AppendRequest(events=[interaction(tenant)])
    )
    assert ok.receipts[0].sequence == 0


def test_gateway_is_limited_to_its_tenants(store_url: str, tmp_path, tenant: str) -> None:
    from aiaudit.cli.server import start
    from aiaudit.common import config
    from tests.conftest import write_keys

    keys = write_keys(tmp_path / "keys.yaml", tenants=[tenant])
    suite = start(
        config.load(
            env={},
            overrides={
                "address": "127.0.0.1:0",
                "database_url": store_url,
                "data_dir": tmp_path,
                "api_keys_file": tmp_path / "keys.yaml",
                **clear_on_postgres(store_url),
            },
        )
    )
    try:
        stub = pb_grpc.IngestServiceStub(client.channel(f"127.0.0.1:{suite.port}", keys["gateway"]))
        with pytest.raises(grpc.RpcError) as err:
            stub.Append(pb.AppendRequest(events=[interaction(tenant), interaction("someone-else")]))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert suite.store.log_sizes().get(tenant, 0) == 0  # nothing of the batch was written
        assert stub.Append(pb.AppendRequest(events=[interaction(tenant)])).receipts[0].sequence == 0
    finally:
        suite.stop()


def test_health_only_port_serves_health_and_nothing_else(store_url: str, tmp_path) -> None:
    import socket

    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from aiaudit.cli.server import start
    from aiaudit.common import config
    from tests.conftest import write_keys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        health_port = s.getsockname()[1]
    write_keys(tmp_path / "keys.yaml")
    suite = start(
        config.load(
            env={},
            overrides={
                "address": "127.0.0.1:0",
                "database_url": store_url,
                "data_dir": tmp_path,
                "api_keys_file": tmp_path / "keys.yaml",
                **clear_on_postgres(store_url),
                "health_address": f"127.0.0.1:{health_port}",
            },
        )
    )
    try:
        ch = client.channel(f"127.0.0.1:{health_port}")
        reply = health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service="aiaudit.ingest.v1.IngestService")
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as err:
            pb_grpc.IngestServiceStub(ch).Append(pb.AppendRequest(events=[interaction("t")]))
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        suite.stop()


def test_one_key_listed_twice_is_refused_at_start(tmp_path) -> None:
    """The same digest twice (here in another hex case) used to load, the last entry winning:
    a gateway key for acme listed again as an admin key on every tenant became an admin key,
    and nothing said so (review, 2026-12-05)."""
    import hashlib

    import yaml

    from aiaudit.cli.server import start
    from aiaudit.common import config

    digest = hashlib.sha256(b"the gateway's key").hexdigest()
    keys = tmp_path / "keys.yaml"
    entries = [
        {"id": "auditor-1", "sha256": "ab" * 32, "tenants": ["*"], "roles": ["auditor"]},
        {"id": "gw-acme", "sha256": digest, "tenants": ["acme"], "roles": ["gateway"]},
        {"id": "root", "sha256": digest.upper(), "tenants": ["*"], "roles": ["admin"]},
    ]
    keys.write_text(yaml.safe_dump({"keys": entries}))
    settings = config.load(
        env={},
        overrides={"address": "127.0.0.1:0", "data_dir": tmp_path, "api_keys_file": keys},
    )
    with pytest.raises(config.ConfigError) as err:
        start(settings).stop()
    message = str(err.value)
    assert "'api_keys_file'" in message
    assert "keys[2] (id 'root')" in message and "keys[1] (id 'gw-acme')" in message
    assert "same sha256" in message
    # With one entry for the key, the suite starts and the key is the gateway's, on acme only.
    keys.write_text(yaml.safe_dump({"keys": entries[:2]}))
    suite = start(settings)
    try:
        stub = pb_grpc.IngestServiceStub(
            client.channel(f"127.0.0.1:{suite.port}", "the gateway's key")
        )
        assert stub.Append(pb.AppendRequest(events=[interaction("acme")])).receipts
        with pytest.raises(grpc.RpcError) as denied:
            stub.Append(pb.AppendRequest(events=[interaction("globex")]))
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        suite.stop()


def test_plaintext_allowed_alone_lets_no_anonymous_caller_in(tmp_path, tenant: str) -> None:
    """The review's repro (2026-12-05): ``allow_insecure`` on a non-loopback address, no keys,
    and anonymous callers were admin on every tenant. The server now refuses to start,
    naming both settings; ``allow_unauthenticated`` is the opt-in that says so."""
    from aiaudit.cli.server import start
    from aiaudit.common import config

    plain = {
        "address": "0.0.0.0:0",
        "data_dir": tmp_path / "data",
        "allow_insecure": True,
        "services": ("ingest",),
    }
    try:
        suite = start(config.load(env={}, overrides=plain))
    except config.ConfigError as exc:
        message = str(exc)
    else:
        suite.stop(0)
        pytest.fail("allow_insecure alone served every caller as admin")
    assert "allow_unauthenticated=true" in message and "allow_insecure=true" in message
    suite = start(config.load(env={}, overrides={**plain, "allow_unauthenticated": True}))
    try:
        anonymous = pb_grpc.IngestServiceStub(client.channel(f"127.0.0.1:{suite.port}"))
        reply = anonymous.Append(pb.AppendRequest(events=[interaction(tenant)]))
        assert reply.receipts[0].sequence == 0
    finally:
        suite.stop()
