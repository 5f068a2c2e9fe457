"""OIDC tokens over real gRPC: roles and tenants from the token decide, API keys still work."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml

from aiaudit.alerting.v1 import alerting_service_pb2 as alerting_pb
from aiaudit.alerting.v1 import alerting_service_pb2_grpc as alerting_grpc
from aiaudit.cli.server import Suite, start
from aiaudit.common import client, config, oidc
from aiaudit.common.config import ConfigError
from aiaudit.common.oidc import LEEWAY
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from aiaudit.search.v1 import search_service_pb2 as search_pb
from aiaudit.search.v1 import search_service_pb2_grpc as search_grpc
from tests.conftest import write_keys
from tests.helpers import interaction, wait_until
from tests.unit.test_oidc import AUDIENCE, ISSUER, jwk, rsa_key, token, write_jwks

SIGNER = rsa_key()

SHORT = 8
"""Seconds a short-lived token is accepted for once made (7 to 8: ``exp`` is whole
seconds): long past what opening a stream and its first request take on a loaded
machine. At 3 (2 to 3) that was about a second of margin; at 5, three, which a shared
machine that stalls the process for seconds can still eat."""


def short_lived() -> int:
    """The ``exp`` of a token accepted for :data:`SHORT` seconds more (``LEEWAY`` aside)."""
    return int(time.time()) - LEEWAY + SHORT


@pytest.fixture
def suite(tmp_path: Path) -> Iterator[tuple[Suite, dict[str, str]]]:
    keys = write_keys(tmp_path / "keys.yaml")
    jwks = write_jwks(tmp_path / "jwks.json", [jwk(SIGNER, "k1")])
    cfg = tmp_path / "aiaudit.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "address": "127.0.0.1:0",
                "data_dir": str(tmp_path),
                "services": ["ingest", "search", "alerting"],
                "api_keys_file": str(tmp_path / "keys.yaml"),
                "oidc_issuer": ISSUER,
                "oidc_audience": AUDIENCE,
                "oidc_jwks_file": str(jwks),
                # One stream a caller: a stream that ends must give its slot back.
                "ingest": {"max_append_streams_per_caller": 1},
            }
        )
    )
    running = start(config.load(cfg, env={}))
    yield running, keys
    running.stop()


def append(suite: Suite, bearer: str, tenant: str = "acme") -> grpc.StatusCode:
    channel = client.channel(f"127.0.0.1:{suite.port}", bearer)
    try:
        pb_grpc.IngestServiceStub(channel).Append(
            pb.AppendRequest(events=[interaction(tenant)]), timeout=30
        )
        return grpc.StatusCode.OK
    except grpc.RpcError as err:
        return err.code()
    finally:
        channel.close()


def stream_opens(suite: Suite, bearer: str) -> bool:
    """Whether an AppendStream opened with ``bearer`` appends (False: refused, no slot free)."""
    channel = client.channel(f"127.0.0.1:{suite.port}", bearer)
    request = pb.AppendStreamRequest(request_id=1, events=[interaction("acme")])
    try:
        stub = pb_grpc.IngestServiceStub(channel)
        return [a.status.code for a in stub.AppendStream(iter([request]), timeout=30)] == [0]
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
        return False
    finally:
        channel.close()


def test_the_token_decides_who_may_do_what(suite: tuple[Suite, dict[str, str]]) -> None:
    running, keys = suite
    gateway = token(SIGNER, "k1", sub="gw-1", roles=["gateway"])
    assert append(running, gateway) == grpc.StatusCode.OK
    assert append(running, gateway, tenant="other") == grpc.StatusCode.PERMISSION_DENIED
    auditor = token(SIGNER, "k1", roles=["auditor"])
    assert append(running, auditor) == grpc.StatusCode.PERMISSION_DENIED
    expired = token(SIGNER, "k1", roles=["gateway"], exp=int(time.time()) - 120)
    assert append(running, expired) == grpc.StatusCode.UNAUTHENTICATED
    forged = token(rsa_key(), "k1", roles=["gateway"])
    assert append(running, forged) == grpc.StatusCode.UNAUTHENTICATED
    assert append(running, keys["gateway"]) == grpc.StatusCode.OK  # API keys still work
    assert append(running, "no-such-key") == grpc.StatusCode.UNAUTHENTICATED


def test_oidc_settings_are_checked_at_start_up(tmp_path: Path) -> None:
    jwks = write_jwks(tmp_path / "jwks.json", [jwk(SIGNER, "k1")])
    with pytest.raises(ConfigError, match="'oidc_issuer' and 'oidc_audience'"):
        config.load(None, env={}, overrides={"oidc_issuer": ISSUER, "oidc_jwks_file": jwks})
    with pytest.raises(ConfigError, match="exactly one of 'oidc_jwks_url' and 'oidc_jwks_file'"):
        config.load(None, env={}, overrides={"oidc_issuer": ISSUER, "oidc_audience": AUDIENCE})
    # OIDC alone is authentication enough outside the embedded loopback mode.
    settings = config.load(
        None,
        env={"AIAUDIT_OIDC_ISSUER": ISSUER, "AIAUDIT_OIDC_AUDIENCE": AUDIENCE},
        overrides={"oidc_jwks_file": jwks, "database_url": "postgresql+psycopg://127.0.0.1/db"},
    )
    config.require_authentication(settings)
    without = config.load(
        None, env={}, overrides={"database_url": "postgresql+psycopg://127.0.0.1/db"}
    )
    with pytest.raises(ConfigError, match="api_keys_file and/or oidc_issuer"):
        config.require_authentication(without)


def test_an_append_stream_ends_when_its_token_expires(
    suite: tuple[Suite, dict[str, str]],
) -> None:
    """A stream is authenticated once, when it opens: a gateway's stream kept appending
    (and a WatchAlerts stream kept reading) long after the token expired. Requests read
    after that get no answer; the stream ends UNAUTHENTICATED, and the client opens a new
    one with a fresh token (the requests are idempotent), in the slot the ended one gave back."""
    running, _ = suite
    ends = short_lived()
    bearer = token(SIGNER, "k1", sub="gw-1", roles=["gateway"], exp=ends)
    fresh = token(SIGNER, "k1", sub="gw-1", roles=["gateway"])
    channel = client.channel(f"127.0.0.1:{running.port}", bearer)
    requests: queue.SimpleQueue[pb.AppendStreamRequest | None] = queue.SimpleQueue()
    stream = pb_grpc.IngestServiceStub(channel).AppendStream(iter(requests.get, None), timeout=60)
    try:
        requests.put(pb.AppendStreamRequest(request_id=1, events=[interaction("acme")]))
        first = next(stream)
        assert first.request_id == 1 and first.status.code == 0 and len(first.receipts) == 1
        assert not stream_opens(running, fresh)  # the caller's one stream is open
        wait_until(lambda: time.time() > ends + LEEWAY + 0.1)  # the token is past its end
        requests.put(pb.AppendStreamRequest(request_id=2, events=[interaction("acme")]))
        with pytest.raises(grpc.RpcError) as ended:
            next(stream)
        assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "expired while the stream was open" in (ended.value.details() or "")
    finally:
        requests.put(None)
        channel.close()
    wait_until(lambda: stream_opens(running, fresh))


def test_an_append_stream_ends_when_its_tokens_key_is_withdrawn(
    suite: tuple[Suite, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key leaves the JWKS because it is compromised or retired: a stream opened with a
    token it signed must not go on appending until the token expires. Once the server has
    read the JWKS without it, the stream's next request is not answered and it ends
    UNAUTHENTICATED, as one opened with a removed API key does."""
    running, _ = suite
    successor = rsa_key()
    bearer = token(SIGNER, "k1", sub="gw-1", roles=["gateway"])
    fresh = token(successor, "k2", sub="gw-1", roles=["gateway"])
    channel = client.channel(f"127.0.0.1:{running.port}", bearer)
    requests: queue.SimpleQueue[pb.AppendStreamRequest | None] = queue.SimpleQueue()
    stream = pb_grpc.IngestServiceStub(channel).AppendStream(iter(requests.get, None), timeout=60)
    try:
        requests.put(pb.AppendStreamRequest(request_id=1, events=[interaction("acme")]))
        first = next(stream)
        assert first.request_id == 1 and first.status.code == 0 and len(first.receipts) == 1
        write_jwks(tmp_path / "jwks.json", [jwk(successor, "k2")])  # k1 withdrawn
        monkeypatch.setattr(oidc, "REFRESH_GAP", 0.0)  # the next key's token prompts a read
        wait_until(lambda: append(running, fresh) == grpc.StatusCode.OK)  # the server read it
        assert append(running, bearer) == grpc.StatusCode.UNAUTHENTICATED
        requests.put(pb.AppendStreamRequest(request_id=2, events=[interaction("acme")]))
        with pytest.raises(grpc.RpcError) as ended:
            next(stream)
        assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "expired while the stream was open" in (ended.value.details() or "")
    finally:
        requests.put(None)
        channel.close()
    wait_until(lambda: stream_opens(running, fresh))  # its slot given back


def test_an_export_ends_when_its_token_expires(suite: tuple[Suite, dict[str, str]]) -> None:
    """An export opened with a token went on streaming pages read after its end (a review
    read 18 MB past it); it ends UNAUTHENTICATED as the other streams do."""
    running, keys = suite
    gateway = pb_grpc.IngestServiceStub(
        client.channel(f"127.0.0.1:{running.port}", keys["gateway"])
    )
    for _ in range(4):  # 8 MB: far more than the stream's buffers hold
        gateway.Append(
            pb.AppendRequest(events=[interaction("acme", text="x" * 20_000) for _ in range(100)])
        )
    # Indexed before the token is made: the export waits for the index first, and that
    # wait must not eat the token's life (it would end before the first page).
    reader = client.channel(f"127.0.0.1:{running.port}", keys["auditor"])
    interactions = search_pb.SearchEventsRequest(
        tenant_id="acme", filter="event_type = INTERACTION", page_size=1
    )
    auditor = search_grpc.SearchServiceStub(reader)
    wait_until(lambda: auditor.SearchEvents(interactions).total_size == 400)
    reader.close()
    ends = short_lived()
    bearer = token(SIGNER, "k1", sub="auditor-1", roles=["auditor"], tenants=["acme"], exp=ends)
    channel = client.channel(f"127.0.0.1:{running.port}", bearer)
    try:
        stream = search_grpc.SearchServiceStub(channel).Export(
            search_pb.ExportRequest(tenant_id="acme", format=search_pb.EXPORT_FORMAT_JSONL),
            timeout=60,
        )
        next(stream)
        wait_until(lambda: time.time() > ends + LEEWAY + 0.1)
        with pytest.raises(grpc.RpcError) as ended:
            for _ in stream:
                pass
        assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "expired while the stream was open" in (ended.value.details() or "")
    finally:
        channel.close()


def test_a_watch_stream_ends_when_its_token_expires(suite: tuple[Suite, dict[str, str]]) -> None:
    """A WatchAlerts stream opened with a token stops at the token's end, with no new alert
    needed to notice it (it went on sending alerts, and recording their reads, after it)."""
    running, keys = suite
    gateway = pb_grpc.IngestServiceStub(
        client.channel(f"127.0.0.1:{running.port}", keys["gateway"])
    )
    # Its first event opens the tenant's log: a watch of a tenant with no log is NOT_FOUND.
    gateway.Append(pb.AppendRequest(events=[interaction("acme")]))
    ends = short_lived()
    bearer = token(SIGNER, "k1", sub="dev-1", roles=["developer"], exp=ends)
    channel = client.channel(f"127.0.0.1:{running.port}", bearer)
    try:
        stub = alerting_grpc.AlertingServiceStub(channel)  # type: ignore[no-untyped-call]
        stream = stub.WatchAlerts(alerting_pb.WatchAlertsRequest(parent="tenants/acme"), timeout=20)
        with pytest.raises(grpc.RpcError) as ended:
            next(stream)  # nothing to send: it ends once the token does
        assert time.time() > ends + LEEWAY
        assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "expired while the stream was open" in (ended.value.details() or "")
    finally:
        channel.close()
