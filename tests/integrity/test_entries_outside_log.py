"""An entry stored at a sequence outside its log's 0..head-1 (raw SQL) is no leaf of the log.

A review copied an event, its log entry and its content to sequence -1 under
a new event id: ``VerifyEvent`` and ``GetInclusionProof`` answered UNKNOWN
("leaf index -1 is outside a tree of size 22", an unhandled error). One
placed past the head was ``PENDING`` for ever, its proof "not yet
checkpointed; retry". Both stores; the forged rows are removed at the end
(the PostgreSQL database is the session's).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import pytest
import sqlalchemy as sa
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from aiaudit.common import canonical
from aiaudit.common.store.schema import event_content, events, log_entries
from aiaudit.integrity.v1 import integrity_service_pb2 as pb
from tests.conftest import Running
from tests.helpers import wait_until
from tests.integrity.test_service import append, checkpoint_covers, integrity

PAST_HEAD = 1_000_000
"""A sequence past any head these tests reach (every read appends an access record)."""


def forge(
    url: str, tenant: str, source: int, seq: int, event_id: str, content: bool = True
) -> None:
    """Copies the entry at ``source`` (log entry, event row, and its content row if
    ``content``) to ``seq`` under ``event_id``, with its canonical form and leaf hash made
    to match: what someone with the database's owner login can do."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            at = {"log_id": tenant, "seq": source}
            entry = conn.execute(sa.select(log_entries).filter_by(**at)).one()._asdict()
            event = conn.execute(sa.select(events).filter_by(**at)).one()._asdict()
            committed = bytes(event["canonical"]).replace(
                entry["event_id"].encode(), event_id.encode()
            )
            moved = {"seq": seq, "event_id": event_id}
            conn.execute(sa.insert(events).values({**event, **moved, "canonical": committed}))
            leaf = canonical.leaf_hash(committed)
            conn.execute(sa.insert(log_entries).values({**entry, **moved, "leaf_hash": leaf}))
            rows = conn.execute(sa.select(event_content).filter_by(**at)).all() if content else []
            for row in rows:
                conn.execute(sa.insert(event_content).values({**row._asdict(), "seq": seq}))
    finally:
        engine.dispose()


@contextmanager
def forged(
    url: str, tenant: str, source: int, seq: int, event_id: str, content: bool = True
) -> Iterator[None]:
    """:func:`forge` for the block; the forged rows deleted after it."""
    forge(url, tenant, source, seq, event_id, content)
    try:
        yield
    finally:
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:
                for table in (event_content, events, log_entries):
                    conn.execute(sa.delete(table).filter_by(log_id=tenant, seq=seq))
        finally:
            engine.dispose()


def error_info(err: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    raise AssertionError(f"no ErrorInfo in {status}")


@pytest.mark.parametrize("seq", [-1, PAST_HEAD], ids=["below-0", "past-head"])
def test_an_entry_outside_the_log_is_tampered_and_has_no_proof(
    suite: Running, tenant: str, admin_url: str, seq: int
) -> None:
    append(suite, tenant, 12)
    wait_until(lambda: checkpoint_covers(suite, tenant, 12))
    stub = integrity(suite)
    ghost = f"ghost-{tenant}"
    with forged(admin_url, tenant, 8, seq, ghost):
        verdict = stub.VerifyEvent(pb.VerifyEventRequest(log_id=tenant, event_id=ghost))
        assert verdict.status == pb.VERIFY_STATUS_TAMPERED
        named = [p for p in verdict.problems if p.startswith(f"sequence {seq} is not a leaf")]
        assert named, verdict.problems
        assert "forged or moved" in named[0]
        assert not verdict.proof.hashes  # nothing claims it is in the tree

        asks = [pb.GetInclusionProofRequest(log_id=tenant, event_id=ghost)]
        if seq >= 0:  # a negative sequence is refused as a bad argument before any read
            asks.append(pb.GetInclusionProofRequest(log_id=tenant, sequence=seq))
        for ask in asks:
            with pytest.raises(grpc.RpcError) as err:
                stub.GetInclusionProof(ask)
            assert err.value.code() == grpc.StatusCode.DATA_LOSS, err.value.details()
            details = err.value.details() or ""
            assert f"holds event {ghost!r} at sequence {seq}" in details
            assert "not a leaf of the log" in details
            info = error_info(err.value)
            assert info.reason == "NOT_A_LEAF"
            assert (info.metadata["event_id"], info.metadata["sequence"]) == (ghost, str(seq))

        # The genuine event it was copied from still verifies.
        source = stub.GetInclusionProof(pb.GetInclusionProofRequest(log_id=tenant, sequence=8))
        assert source.proof.leaf_index == 8
