"""Search reads of an event stored outside its log's 0..head-1 (forged by raw SQL).

``GetEvent`` shows the integrity service's verdict on it (``TAMPERED``; it was
``UNSPECIFIED``, the verdict having failed with UNKNOWN). An export with
proofs meets it once an erasure names it (the indexer indexes the events a
record names, wherever they are stored): it stops with ``DATA_LOSS`` naming
the event rather than a line claiming a proof (it was FAILED_PRECONDITION
"include_proofs needs IntegrityService", as the integrity service refused
the negative sequence as a bad argument). A damaged tree under a signed
checkpoint stops an export with proofs with the integrity service's own
``DATA_LOSS`` (it was FAILED_PRECONDITION "include_proofs needs
IntegrityService", as if the service were missing). The whole suite on each
store, the database the test's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa

from aiaudit.common.erasure import erase
from aiaudit.common.store import open_store
from aiaudit.integrity.v1 import integrity_service_pb2 as ipb
from aiaudit.search.v1 import search_service_pb2 as pb
from tests.helpers import interaction, wait_until
from tests.integrity.test_entries_outside_log import PAST_HEAD, error_info, forged
from tests.search.conftest import NOT_ACCESS, SearchSuite
from tests.search.test_proofs import covered_size, database, export, start_proof_suite, stop


@pytest.fixture
def suite_and_owner(
    tmp_path: Path, store_url: str, request: pytest.FixtureRequest
) -> Iterator[tuple[SearchSuite, str]]:
    """The suite, and its store as the owner login (what forges rows)."""
    url, pg = database(store_url, request)
    running = start_proof_suite(tmp_path, url, pg)
    yield running, pg.admin_url if pg is not None else url
    stop(running)


def ten_signed(running: SearchSuite, tenant: str) -> None:
    running.append([interaction(tenant, f"s-{i}") for i in range(10)])
    running.wait_indexed(tenant, 10)
    wait_until(lambda: covered_size(running, tenant) >= 10)


def bundle(running: SearchSuite, tenant: str) -> bytes:
    """A compliance officer's export with proofs of the tenant's events (records aside)."""
    return export(
        running,
        "compliance_officer",
        tenant,
        filter=NOT_ACCESS,
        format=pb.EXPORT_FORMAT_JSONL,
        include_proofs=True,
    )


@pytest.mark.parametrize("seq", [-1, PAST_HEAD], ids=["below-0", "past-head"])
def test_get_event_shows_an_entry_outside_the_log_as_tampered(
    suite_and_owner: tuple[SearchSuite, str], tenant: str, seq: int
) -> None:
    running, owner = suite_and_owner
    ten_signed(running, tenant)
    ghost = f"ghost-{tenant}"
    # Content stored in clear (PostgreSQL here) is copied as is; sealed content (SQLite)
    # is bound to its event id and would not open under the new one, so it is left behind.
    with forged(owner, tenant, 8, seq, ghost, content=owner.startswith("postgresql")):
        got = running.as_role("compliance_officer").GetEvent(
            pb.GetEventRequest(tenant_id=tenant, event_id=ghost)
        )
    assert (got.event.event_id, got.sequence) == (ghost, seq)
    assert got.integrity_status == ipb.VERIFY_STATUS_TAMPERED


def test_an_export_with_proofs_stops_at_an_entry_below_the_log(
    suite_and_owner: tuple[SearchSuite, str], tenant: str
) -> None:
    running, owner = suite_and_owner
    ten_signed(running, tenant)
    ghost = f"ghost-{tenant}"
    with forged(owner, tenant, 8, -1, ghost, content=False):
        store = open_store(owner)
        try:  # a subject's erasure names every event of the subject, the forged one too
            assert ghost in erase(store, tenant, "request #1", "dpo", subject_id="alice").named
        finally:
            store.close()
        wait_until(lambda: ghost in running.all_ids(tenant))  # indexed again, at -1
        plain = export(running, "compliance_officer", tenant, format=pb.EXPORT_FORMAT_JSONL)
        assert f'"eventId":"{ghost}"'.encode() in plain  # without proofs it is listed
        with pytest.raises(grpc.RpcError) as caught:
            bundle(running, tenant)
    assert caught.value.code() == grpc.StatusCode.DATA_LOSS, caught.value.details()
    details = caught.value.details() or ""
    assert f"event {ghost!r} of tenant {tenant!r} is stored at sequence -1" in details
    assert "not a leaf of the log" in details
    info = error_info(caught.value)
    assert info.reason == "NOT_A_LEAF"
    assert (info.metadata["event_id"], info.metadata["sequence"]) == (ghost, "-1")


def test_an_export_with_proofs_names_a_damaged_tree_as_the_integrity_service_does(
    suite_and_owner: tuple[SearchSuite, str], tenant: str
) -> None:
    running, owner = suite_and_owner
    ten_signed(running, tenant)
    engine = sa.create_engine(owner)
    try:
        with engine.begin() as conn:  # the node of leaves 2..3, on leaf 0's proof path
            changed = conn.execute(
                sa.text(
                    "UPDATE integrity_nodes SET hash = :bad "
                    "WHERE log_id = :t AND level = 1 AND idx = 1"
                ),
                {"bad": b"\x00" * 32, "t": tenant},
            )
            assert changed.rowcount == 1
    finally:
        engine.dispose()
    with pytest.raises(grpc.RpcError) as caught:
        bundle(running, tenant)
    assert caught.value.code() == grpc.StatusCode.DATA_LOSS, caught.value.details()
    assert (caught.value.details() or "").startswith("integrity service at ")
    assert error_info(caught.value).reason == "TREE_MISMATCH"
