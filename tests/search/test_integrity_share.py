"""Search's calls to integrity refused for the integrity server's load: passed on, to retry.

Search calls IntegrityService with its caller's key, so those calls count for the caller
there (``caller_thread_share``). Until 2026-12-06 an ``Export`` with ``include_proofs``
refused that way answered FAILED_PRECONDITION "include_proofs needs IntegrityService at
...: RESOURCE_EXHAUSTED", as if the service were missing; a load refusal (the caller's
share, or grpcio's concurrent-call limit) is now ``RESOURCE_EXHAUSTED`` with the integrity
service's own ErrorInfo, and "retry".

Integrity runs in a server of its own (as its Deployment does in Kubernetes); ingest and
search in another, pointed at it, with the same keys.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from aiaudit.common import caller_share, client, config
from aiaudit.integrity.v1 import integrity_service_pb2 as ipb
from aiaudit.integrity.v1 import integrity_service_pb2_grpc as ipb_grpc
from aiaudit.search.v1 import search_service_pb2 as pb
from tests.conftest import serve_suite
from tests.contract.test_caller_share import Silent
from tests.contract.test_concurrent_rpcs import Held
from tests.helpers import interaction, wait_until
from tests.integrity.conftest import ORIGIN_PREFIX, login
from tests.search.conftest import SearchSuite, suite_of
from tests.search.test_proofs import database, export

CHECKPOINT = "/aiaudit.integrity.v1.IntegrityService/GetCheckpoint"
ANSWERED = 10.0
OFFICER = "test-compliance_officer"


@dataclass
class Split:
    """The integrity server (its address and suite) and the search server pointed at it."""

    integrity_address: str
    integrity: Any
    search: SearchSuite


@contextlib.contextmanager
def split(
    tmp_path: Path, store_url: str, request: pytest.FixtureRequest, **settings: object
) -> Iterator[Split]:
    """Integrity alone with ``settings`` (64 RPC threads), then ingest and search using it."""
    url, pg = database(store_url, request)
    integrity_dir, search_dir = tmp_path / "integrity", tmp_path / "search"
    integrity_dir.mkdir()
    search_dir.mkdir()
    integrity_section: dict[str, Any] = {
        "origin_prefix": ORIGIN_PREFIX,
        "checkpoint_interval": 0.05,
        "poll_interval": 0.02,
    }
    if pg is not None:
        integrity_section["database_url"] = login(pg, "aiaudit_notary")
    cfg = integrity_dir / "config.yaml"
    cfg.write_text(yaml.safe_dump({"integrity": integrity_section}))
    integrity, keys = serve_suite(
        integrity_dir, cfg, database_url=url, services=("integrity",), rpc_threads=64, **settings
    )
    address = f"127.0.0.1:{integrity.port}"
    search_section: dict[str, Any] = {
        "backend": "sqlite",
        "poll_interval": 0.1,
        "integrity_address": address,
    }
    if pg is not None:
        search_section["database_url"] = pg.consumer_url
    cfg = search_dir / "config.yaml"
    cfg.write_text(yaml.safe_dump({"search": search_section}))
    search, _ = serve_suite(
        search_dir,
        cfg,
        database_url=url,
        services=("ingest", "search"),
        api_keys_file=integrity_dir / "keys.yaml",  # the same keys on both servers
    )
    running = suite_of("sqlite", search, keys)
    try:
        yield Split(address, integrity, running)
    finally:
        running.channel.close()
        search.stop()
        integrity.stop()


def covered(split: Split, tenant: str) -> int:
    """The tree size of the tenant's latest checkpoint (0 while none), asked as the auditor."""
    with client.channel(split.integrity_address, split.search.keys["auditor"]) as channel:
        stub = ipb_grpc.IntegrityServiceStub(channel)  # type: ignore[no-untyped-call]
        try:
            request = ipb.GetCheckpointRequest(log_id=tenant)
            return int(stub.GetCheckpoint(request).checkpoint.tree_size)
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
            return 0


def answers(split: Split) -> bool:
    """Whether the integrity server takes one more call (health, as the auditor)."""
    with client.channel(split.integrity_address, split.search.keys["auditor"]) as channel:
        stub = health_pb2_grpc.HealthStub(channel)  # type: ignore[no-untyped-call]
        try:
            stub.Check(health_pb2.HealthCheckRequest(), timeout=ANSWERED)
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
            return False
        return True


@contextlib.contextmanager
def key_share_held(split: Split) -> Iterator[None]:
    """The officer's one call on the integrity server: a ``GetCheckpoint`` awaiting its request."""
    share = split.integrity.share
    silent = Silent(split.integrity_address, split.search.keys["compliance_officer"], CHECKPOINT)
    try:
        silent.open(1)
        wait_until(lambda: share.held(OFFICER) == 1)
        yield
    finally:
        silent.close()
    wait_until(lambda: share.held(OFFICER) == 0)


@contextlib.contextmanager
def every_call_held(split: Split) -> Iterator[None]:
    """The integrity server's ``max_concurrent_rpcs`` (64) held by another caller's streams."""
    with client.channel(split.integrity_address, split.search.keys["auditor"]) as channel:
        held = Held(split.integrity.server, channel)
        try:
            for _ in range(config.MIN_CONCURRENT_RPCS):
                held.open()
            yield
        finally:
            held.release()
        wait_until(lambda: answers(split))


def refused(err: grpc.RpcError) -> tuple[grpc.StatusCode, str, dict[str, str], str]:
    """The refusal's code, ErrorInfo reason and metadata, and message."""
    told = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert told is not None, err
    info = error_details_pb2.ErrorInfo()
    assert told.details and told.details[0].Unpack(info)
    return err.code(), info.reason, dict(info.metadata), told.message


@pytest.mark.parametrize("load", ["key_thread_share", "concurrent_call_limit"])
def test_a_load_refusal_of_integrity_is_passed_on_to_retry(
    tmp_path: Path,
    store_url: str,
    request: pytest.FixtureRequest,
    tenant: str,
    caplog: pytest.LogCaptureFixture,
    load: str,
) -> None:
    """At the officer's share of the integrity server's threads (``CALLER_SHARE_EXHAUSTED``,
    its ErrorInfo kept), and at that server's concurrent-call limit (grpcio's "Concurrent
    RPC limit exceeded!", no ErrorInfo: ``INTEGRITY_EXHAUSTED``). GetEvent still answers."""
    if load == "key_thread_share":
        settings: dict[str, object] = {"caller_thread_share": 0.02}  # 1 call of 64 threads
        said = (
            f"caller {OFFICER!r} has 1 calls in progress on this server, its share of the RPC "
            "threads (caller_thread_share 0.02 of rpc_threads 64); wait for one to end"
        )
        info: tuple[str, dict[str, str]] = (caller_share.REASON, {"limit": "1"})
    else:
        settings = {"max_concurrent_rpcs": config.MIN_CONCURRENT_RPCS}
        said = "Concurrent RPC limit exceeded!"
        info = ("INTEGRITY_EXHAUSTED", {})
    with split(tmp_path, store_url, request, **settings) as running:
        search = running.search
        search.append([interaction(tenant, f"s-{i}") for i in range(3)])
        search.wait_indexed(tenant, 3)
        wait_until(lambda: covered(running, tenant) >= 3)
        officer = search.as_role("compliance_officer")
        proofs: dict[str, Any] = {"format": pb.EXPORT_FORMAT_JSONL, "include_proofs": True}
        held = key_share_held if load == "key_thread_share" else every_call_held
        with held(running):
            with pytest.raises(grpc.RpcError) as caught:
                export(search, "compliance_officer", tenant, **proofs)
            assert refused(caught.value) == (
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                *info,
                f"integrity service at {running.integrity_address}: {said}; nothing was "
                "exported, retry",
            )

            # GetEvent never fails for integrity: UNSPECIFIED, the refusal logged as such.
            with caplog.at_level(logging.WARNING, logger="aiaudit.search"):
                got = officer.GetEvent(pb.GetEventRequest(tenant_id=tenant, event_id="s-0"))
            assert got.event.event_id == "s-0"
            assert got.integrity_status == ipb.VERIFY_STATUS_UNSPECIFIED
            logged = [r.getMessage() for r in caplog.records if "VerifyEvent" in r.getMessage()]
            assert logged == [
                f"integrity service at {running.integrity_address} refused VerifyEvent of s-0 "
                f"for {OFFICER} for its load, integrity_status UNSPECIFIED: {said}"
            ]

        # Released: the same export is served, every event with its proof.
        lines = export(search, "compliance_officer", tenant, **proofs).splitlines()
        ids = {json.loads(line).get("event_id") for line in lines[1:]}  # after the scope line
        assert {"s-0", "s-1", "s-2"} <= ids
        got = officer.GetEvent(pb.GetEventRequest(tenant_id=tenant, event_id="s-0"))
        assert got.integrity_status == ipb.VERIFY_STATUS_VERIFIED
