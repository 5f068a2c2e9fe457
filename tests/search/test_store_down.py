"""Reads while PostgreSQL is stopped: UNAVAILABLE STORE_UNAVAILABLE, never the driver's text.

SearchEvents and Export answered UNKNOWN with psycopg's OperationalError, its SQL
and parameters (tenant, sequences) quoted to the caller (fault review); every
other read said UNAVAILABLE. The server here is a PostgreSQL of the test's own,
stopped and started by the repo's script: the session's is shared.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from aiaudit.search.v1 import search_service_pb2 as pb
from tests.conftest import REPO, Postgres, _database
from tests.helpers import free_port, interaction
from tests.search.conftest import NOT_ACCESS, start_suite


class OwnServer:
    """A PostgreSQL server of the test's own (its port and directory)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def run(self, command: str) -> None:
        subprocess.run(
            ["bash", str(REPO / "scripts/backends/postgres.sh"), command],
            check=True,
            capture_output=True,
            timeout=600,
            env=self.env,
        )


@pytest.fixture
def own_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[OwnServer, Postgres]]:
    where = Path(tempfile.mkdtemp(prefix="aiaudit-pg-down-"))
    where.chmod(0o755)  # the server runs as the postgres user
    monkeypatch.setenv("AIAUDIT_PG_PORT", str(free_port()))
    monkeypatch.setenv("AIAUDIT_BACKENDS_DIR", str(where))
    server = OwnServer(dict(os.environ))
    try:
        with _database() as pg:  # started by the script, with the env above
            try:
                yield server, pg
            finally:
                server.run("start")  # so that the database can be dropped
    finally:
        server.run("stop")
        shutil.rmtree(where, ignore_errors=True)


def _reason(err: grpc.RpcError) -> str:
    st = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert st is not None
    for detail in st.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    return ""


def test_search_and_export_answer_store_unavailable_while_postgres_is_stopped(
    tmp_path: Path, tenant: str, own_server: tuple[OwnServer, Postgres]
) -> None:
    server, pg = own_server
    running = start_suite(
        tmp_path, "sqlite", {"database_url": pg.consumer_url}, store_url=pg.app_url
    )
    try:
        running.append([interaction(tenant, f"e-{i}") for i in range(3)])
        running.wait_indexed(tenant, 3)
        calls = {
            "SearchEvents": lambda: running.search.SearchEvents(
                pb.SearchEventsRequest(tenant_id=tenant, filter=NOT_ACCESS)
            ),
            "Export": lambda: list(
                running.search.Export(
                    pb.ExportRequest(
                        tenant_id=tenant, filter=NOT_ACCESS, format=pb.EXPORT_FORMAT_JSONL
                    )
                )
            ),
        }
        for call in calls.values():
            call()  # both answer while the store is up
        server.run("stop")
        for name, call in calls.items():
            with pytest.raises(grpc.RpcError) as caught:
                call()
            err = caught.value
            details = err.details() or ""
            assert err.code() == grpc.StatusCode.UNAVAILABLE, (name, details)
            assert _reason(err) == "STORE_UNAVAILABLE", (name, details)
            assert "[SQL:" not in details and tenant not in details, (name, details)
        server.run("start")
        assert len(running.find(tenant).results) == 3  # and answers again once it is back
    finally:
        running.channel.close()
        running.suite.stop()
