"""A stopped suite leaves none of its RPC threads behind.

grpcio leaves a server's thread pool to its owner: ``Suite.stop`` stopped the server but
not the pool, so every suite a process started and stopped (a test run starts hundreds)
kept its threads, idle, for the rest of the process (found by listing the threads each
test left, 2026-12-07).
"""

from __future__ import annotations

import threading
from pathlib import Path

from aiaudit.common import client
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from tests.conftest import serve_suite
from tests.helpers import interaction, wait_until


def test_a_stopped_suite_leaves_no_rpc_thread(tmp_path: Path, tenant: str) -> None:
    before = set(threading.enumerate())

    def its_rpc_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t not in before and t.name.startswith("rpc")]

    suite, keys = serve_suite(tmp_path, services=("ingest",))
    try:
        with client.channel(f"127.0.0.1:{suite.port}", keys["gateway"]) as channel:
            pb_grpc.IngestServiceStub(channel).Append(
                pb.AppendRequest(events=[interaction(tenant)]), timeout=30
            )
        assert its_rpc_threads()  # the call took one
    finally:
        suite.stop()
    wait_until(lambda: not its_rpc_threads())
