"""The ingest benchmark's batched phase: a figure only for batches the server stored."""

from __future__ import annotations

import argparse
import uuid
from pathlib import Path

import pytest

from aiaudit.common import config
from aiaudit.ingest import settings as ingest_settings
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from bench.ingest_bench import baseline_copy, copy_tables, policy, send_batches
from tests.conftest import Postgres, Running
from tests.helpers import sized_interaction


def _batch(tenant: str, n: int) -> pb.AppendRequest:
    return pb.AppendRequest(events=[sized_interaction(tenant, 256) for _ in range(n)])


def test_stored_batches_give_a_rate(server: Running) -> None:
    tenant = f"bench-{uuid.uuid4().hex[:8]}"
    requests = [[_batch(tenant, 5), _batch(tenant, 5)], [_batch(tenant, 5)]]
    assert send_batches(server.address, server.keys["gateway"], requests) > 0


def test_a_refused_batch_fails_the_run_instead_of_counting(server: Running) -> None:
    tenant = f"bench-{uuid.uuid4().hex[:8]}"
    bad = _batch(tenant, 5)
    bad.events[2].ClearField("occurred_time")  # the whole batch is refused
    with pytest.raises(RuntimeError, match=r"1 batched appends failed.*INVALID_ARGUMENT"):
        send_batches(server.address, server.keys["gateway"], [[_batch(tenant, 5)], [bad]])


def test_the_masking_policy_reaches_the_servers_config(tmp_path: Path) -> None:
    assert policy(tmp_path, argparse.Namespace(redact_content="")) is None
    cfg = policy(tmp_path, argparse.Namespace(redact_content="pii, secrets"))
    assert cfg is not None
    settings = ingest_settings.load(config.load(cfg, env={}))
    assert settings.redact_content == ("pii", "secrets")


def test_the_copy_baseline_writes_every_column_the_store_does(own_postgres: Postgres) -> None:
    """Its tables are the store's shape: a column the store gained (0013's classification)
    failed the baseline's COPY, and with it every benchmark run."""
    with copy_tables(own_postgres.admin_dsn):
        assert baseline_copy(own_postgres.admin_dsn, "copy-test", 20) > 0
