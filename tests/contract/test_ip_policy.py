"""``ingest.ip_address``: what the leaf commits of an address, since proofs reveal the leaf.

Found by a review (2026-12-04): an auditor (proofs.read, no pii.read) took the
leaf hash of a content-free event from GetInclusionProof and found its address
by trying a /16 in 0.6 s. With a policy the address is rewritten before the
canonical form is made: the leaf never held the original.
"""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiaudit.common import client, config
from aiaudit.common.config import ConfigError
from aiaudit.common.store import open_store
from aiaudit.ingest import settings as ingest_settings
from aiaudit.ingest.ip_policy import IpPolicy
from aiaudit.ingest.v1 import ingest_service_pb2 as ipb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as ipb_grpc
from aiaudit.search.v1 import search_service_pb2 as spb
from aiaudit.search.v1 import search_service_pb2_grpc as spb_grpc
from tests.conftest import serve_suite
from tests.helpers import interaction

KEY = bytes(range(32))


def test_truncate_keeps_the_network() -> None:
    policy = IpPolicy("truncate")
    assert policy.address("t", "203.0.113.77") == "203.0.113.0"
    assert policy.address("t", "2001:db8:abcd:12:3456::1") == "2001:db8:abcd::"
    assert IpPolicy("drop").address("t", "203.0.113.77") == ""
    # An IPv4 address carried whole in IPv6 is its IPv4 address: a 6to4 /48 is all of it.
    assert policy.address("t", "2002:cb00:714d::1") == "203.0.113.0"
    assert policy.address("t", "::ffff:203.0.113.77") == "203.0.113.0"


def test_pseudonyms_are_stable_per_tenant_and_unlinkable_across_tenants() -> None:
    policy = IpPolicy("pseudonymise", KEY)
    mine = policy.address("acme", "203.0.113.77")
    assert mine == policy.address("acme", "203.0.113.77")
    assert ipaddress.ip_address(mine) in ipaddress.ip_network("fd00::/8")
    assert mine != policy.address("acme", "203.0.113.78")
    assert mine != policy.address("other", "203.0.113.77")
    assert mine != IpPolicy("pseudonymise", bytes(32)).address("acme", "203.0.113.77")
    assert policy.address("acme", "::ffff:203.0.113.77") == mine  # one client, one pseudonym


def test_policies_that_cannot_work_are_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'ingest\.ip_address': 'hash' is not one of"):
        IpPolicy("hash")
    with pytest.raises(ConfigError, match="pseudonymise needs a key of at least 32 bytes"):
        IpPolicy("pseudonymise", b"short")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"ingest": {"ip_address": "pseudonymise"}}))
    settings = config.load(
        cfg, env={}, overrides={"database_url": "postgresql+psycopg://u@127.0.0.1/db"}
    )
    with pytest.raises(ConfigError, match=r"'ingest\.ip_pseudonym_key_file' is required"):
        ingest_settings.load(settings)


def serve(tmp_path: Path, policy: str) -> tuple[Any, dict[str, str]]:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"ingest": {"ip_address": policy}}))
    return serve_suite(tmp_path, cfg)


def append_from(suite: Any, key: str, tenant: str, event_id: str, ip: str) -> None:
    event = interaction(tenant, event_id)
    event.actor.ip_address = ip
    with client.channel(f"127.0.0.1:{suite.port}", key) as channel:
        request = ipb.AppendRequest(events=[event])
        first = ipb_grpc.IngestServiceStub(channel).Append(request).receipts[0]
        again = ipb_grpc.IngestServiceStub(channel).Append(request).receipts[0]
    assert again.duplicate and again.sequence == first.sequence  # a retry is still a retry


def shown_ip(suite: Any, key: str, tenant: str, event_id: str) -> str:
    with client.channel(f"127.0.0.1:{suite.port}", key) as channel:
        request = spb.GetEventRequest(tenant_id=tenant, event_id=event_id)
        return str(spb_grpc.SearchServiceStub(channel).GetEvent(request).event.actor.ip_address)


def committed(tmp_path: Path, tenant: str) -> bytes:
    store = open_store(f"sqlite:///{tmp_path / 'aiaudit.db'}")
    try:
        return b"".join(s.canonical for s in store.read_log(tenant, 0, 100))
    finally:
        store.close()


def test_truncate_commits_only_the_network(tmp_path: Path, tenant: str) -> None:
    suite, keys = serve(tmp_path, "truncate")
    try:
        append_from(suite, keys["gateway"], tenant, "e-1", "203.0.113.77")
        assert shown_ip(suite, keys["admin"], tenant, "e-1") == "203.0.113.0"
    finally:
        suite.stop()
    assert b"203.0.113.0" in committed(tmp_path, tenant)
    assert b"203.0.113.77" not in committed(tmp_path, tenant)


def test_pseudonyms_survive_a_restart_with_their_key_file(tmp_path: Path, tenant: str) -> None:
    suite, keys = serve(tmp_path, "pseudonymise")
    try:
        append_from(suite, keys["gateway"], tenant, "e-1", "203.0.113.77")
        first = shown_ip(suite, keys["admin"], tenant, "e-1")
    finally:
        suite.stop()
    key_file = tmp_path / "ip-pseudonym.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(key_file.read_bytes()) == 32
    suite, keys = serve(tmp_path, "pseudonymise")
    try:
        append_from(suite, keys["gateway"], tenant, "e-2", "203.0.113.77")
        assert shown_ip(suite, keys["admin"], tenant, "e-2") == first
    finally:
        suite.stop()
    assert ipaddress.ip_address(first) in ipaddress.ip_network("fd00::/8")
    assert b"203.0.113.77" not in committed(tmp_path, tenant)
