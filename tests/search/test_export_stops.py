"""An export stopped after its checks is recorded before it is answered.

The export's own access record is written once its snapshot (and, with proofs, its
checkpoint) is known; what stopped it before then (the index behind the log, events no
checkpoint covers yet, a log the index is still building) was answered with no record,
though those answers tell of the log: NOT_YET_CHECKPOINTED how many of its events wait
and from which sequence, INDEX_BUILDING and INDEX_HELD its size (review, 2026-12-06).
"""

from __future__ import annotations

import re
from pathlib import Path

import grpc
import pytest

from aiaudit.search.v1 import search_service_pb2 as pb
from tests.helpers import interaction, wait_until
from tests.search.conftest import NOT_ACCESS, SearchSuite, refusal, start_suite
from tests.search.test_access_details import attribute, records, said
from tests.search.test_proofs import (
    checkpoint_count,
    database,
    export,
    start_proof_suite,
    stop,
)


def _stopped_export(running: SearchSuite, tenant: str) -> dict[str, object]:
    """The one ``search.export`` record of the tenant: what it says, its texts as content."""
    (record,) = records(running, tenant, "search.export")
    return {
        "outcome": attribute(record, "outcome"),
        "format": attribute(record, "format"),
        "include_proofs": attribute(record, "include_proofs"),
        "principal": record.actor.user_id,
        **said(record),
    }


def test_an_export_stopped_by_the_index_behind_the_log_is_recorded(
    tmp_path: Path, store_url: str, request: pytest.FixtureRequest, tenant: str
) -> None:
    store_url, _ = database(store_url, request)
    running = start_suite(tmp_path, "sqlite", {"export_wait": 0.2}, store_url=store_url)
    try:
        running.append([interaction(tenant, "e-1")])
        running.wait_indexed(tenant, 1)
        running.suite.components["search"].indexer.stop()
        running.append([interaction(tenant, "e-2")])
        with pytest.raises(grpc.RpcError) as caught:
            export(running, "auditor", tenant, filter=NOT_ACCESS, format=pb.EXPORT_FORMAT_CSV)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert refusal(caught.value)["reason"] == "SEARCH_UNAVAILABLE"
        assert _stopped_export(running, tenant) == {
            "outcome": "search_unavailable",
            "format": "csv",
            "include_proofs": False,
            "principal": "test-auditor",
            "filter": NOT_ACCESS,
        }
    finally:
        stop(running)


def test_an_export_stopped_by_events_no_checkpoint_covers_is_recorded(
    tmp_path: Path, store_url: str, request: pytest.FixtureRequest, tenant: str
) -> None:
    """NOT_YET_CHECKPOINTED names how many events wait, and from which sequence: the log's
    size, told with no record of the export (the integrity service's own records of the
    checkpoints asked for said only that checkpoints were read)."""
    store_url, pg = database(store_url, request)
    owner_url = pg.admin_url if pg is not None else store_url
    signed_before = checkpoint_count(owner_url)
    # The notary signs its first checkpoint at once, the next only after an hour.
    running = start_proof_suite(
        tmp_path, store_url, pg, {"checkpoint_interval": 3600}, {"proof_wait": 0.3}
    )
    try:
        running.append([interaction(f"{tenant}-other")])
        wait_until(lambda: checkpoint_count(owner_url) > signed_before)
        running.append([interaction(tenant, f"c-{i}") for i in range(3)])
        running.wait_indexed(tenant, 3)
        with pytest.raises(grpc.RpcError) as caught:
            export(
                running,
                "compliance_officer",
                tenant,
                query="hello",
                format=pb.EXPORT_FORMAT_JSONL,
                include_proofs=True,
            )
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert re.search(r"\d+ event\(s\) of tenant", str(caught.value.details()))
        assert _stopped_export(running, tenant) == {
            "outcome": "not_yet_checkpointed",
            "format": "jsonl",
            "include_proofs": True,
            "principal": "test-compliance_officer",
            "query": "hello",
        }
    finally:
        stop(running)
