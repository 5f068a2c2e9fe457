"""An export with proofs reads its next batch and asks its proofs while it sends the one before.

``aiaudit.search.ahead``: the ``BatchGetInclusionProofs`` call (40 ms of a page's 85)
runs while the page before is written and sent. What the export writes and what it
asks must stay what reading in turn gave: every line proven once, in order, with its
own proof (both verifiers say the bundle is complete), one batch ahead at most, and
nothing more asked once its client has left. The whole suite on each store.
"""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from aiaudit.integrity.v1 import integrity_service_pb2 as ipb
from aiaudit.search import handlers
from aiaudit.search.v1 import search_service_pb2 as pb
from tests.helpers import interaction, wait_until
from tests.integrity.test_cli import event_lines
from tests.search.conftest import NOT_ACCESS, SearchSuite
from tests.search.test_access_details import attribute, records
from tests.search.test_proofs import (
    bundle_of,
    covered_size,
    database,
    integrity_stub,
    start_proof_suite,
    stop,
    verify_cli,
)

PAGES = 3
EVENTS = 500 * (PAGES - 1) + 100
"""Two whole export pages and part of a third."""


def proven(running: SearchSuite, tenant: str) -> list[int]:
    """Every sequence the tenant's ``BatchGetInclusionProofs`` records name, as often as named."""
    out: list[int] = []
    for record in records(running, tenant, "integrity.batch_get_inclusion_proofs"):
        for run in str(attribute(record, "sequences")).split(","):
            first, _, last = run.partition("-")
            out += range(int(first), int(last or first) + 1)
    return out


def signed(running: SearchSuite, tenant: str, text: str = "") -> None:
    """EVENTS events of the tenant, indexed and covered by a signed checkpoint."""
    for at in range(0, EVENTS, 100):
        running.append([interaction(tenant, f"m-{i:04d}", text=text) for i in range(at, at + 100)])
    running.wait_indexed(tenant, EVENTS)
    wait_until(lambda: covered_size(running, tenant) >= EVENTS)


@pytest.mark.parametrize("budget", [None, 64 * 1024], ids=["page-a-batch", "pages-cut"])
def test_a_multi_page_export_with_proofs_proves_each_line_once_and_verifies_complete(
    tmp_path: Path,
    store_url: str,
    request: pytest.FixtureRequest,
    tenant: str,
    budget: int | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each batch's lines with its own proofs, each event proven once and only those
    written: a proof paired with the batch before or after, a batch written twice or left
    out, fails the offline verification or the records. ``pages-cut``: each page read in
    batches of 64 KB stored (``READ_BYTES``), which share their page's proofs call."""
    if budget is not None:
        monkeypatch.setattr(handlers, "READ_BYTES", budget)
    running = start_proof_suite(tmp_path, *database(store_url, request))
    try:
        signed(running, tenant, "hello")
        data = bundle_of(running, tenant, NOT_ACCESS)
        key = integrity_stub(running).GetVerifierKey(ipb.GetVerifierKeyRequest()).verifier_keys[0]
        asked = proven(running, tenant)
    finally:
        stop(running)
    assert [line["sequence"] for line in event_lines(data)] == list(range(EVENTS))
    seal = json.loads(data.splitlines()[-1])["seal"]
    assert asked == [*range(EVENTS), seal["sequence"]]  # in order, once each, then the seal's
    bundle = tmp_path / "export.jsonl"
    bundle.write_bytes(data)
    ok = verify_cli(bundle, key)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert any(
        line.startswith(
            "scope: complete: the lines are every event the export wrote, in its order "
            f"({EVENTS} event(s)"
        )
        for line in ok.stderr.splitlines()
    ), ok.stderr


def test_an_export_with_proofs_asks_one_batch_ahead_and_nothing_once_its_client_left(
    tmp_path: Path, store_url: str, request: pytest.FixtureRequest, tenant: str
) -> None:
    """Pages of 20 KB events (10 MB, far past what the stream buffers): while the client
    holds the first, the second batch's proofs are asked, never the third's; the client
    gone, the export ends (its stream slot comes back) having asked nothing more. Read in
    turn, the second batch's proofs waited for the first page to be sent."""
    url, pg = database(store_url, request)
    running = start_proof_suite(tmp_path, url, pg, search={"max_export_streams_per_caller": 1})
    try:
        signed(running, tenant, "x" * 20_000)
        stub = running.as_role("compliance_officer")
        stream = stub.Export(
            pb.ExportRequest(
                tenant_id=tenant,
                filter=NOT_ACCESS,
                format=pb.EXPORT_FORMAT_JSONL,
                include_proofs=True,
            )
        )
        assert next(stream).data  # the first page written, the stream held by its buffer
        wait_until(lambda: proven(running, tenant) == list(range(1000)))
        stream.cancel()

        def reopened() -> bool:  # one export a caller: the next is refused until it ended
            nothing = pb.ExportRequest(
                tenant_id=tenant, filter='event_id = "none"', format=pb.EXPORT_FORMAT_JSONL
            )
            try:
                list(stub.Export(nothing))
            except grpc.RpcError as err:
                assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.details()
                return False
            return True

        wait_until(reopened)
        assert proven(running, tenant) == list(range(1000))
    finally:
        stop(running)
