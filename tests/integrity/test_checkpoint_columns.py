"""A stored checkpoint's columns are answered only when they are what its signed note says.

The RPCs answer a checkpoint's ``tree_size`` and ``root_hash`` from its row, beside the note.
A row forged by raw SQL (the log's real row copied under size 1000) was answered as it was:
GetCheckpoint said size 1000 with a note of size 3, and GetInclusionProof of sequence 500
said the entry was deleted "below its signed size 1000" (review, 2026-12-07). Each answers
DATA_LOSS naming the row and column now (VerifyEvent: TAMPERED naming them, not DATA_LOSS
"the stored tree is missing a node"); the genuine rows are served as before.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
import sqlalchemy as sa

from aiaudit.integrity.tables import checkpoints
from aiaudit.integrity.v1 import integrity_service_pb2 as pb
from tests.conftest import Running
from tests.helpers import error_info, wait_until
from tests.integrity.test_service import append, checkpoint_covers, integrity


def _refused(call: Callable[[], object]) -> tuple[str, str, dict[str, str]]:
    """A call refused DATA_LOSS: its message, reason and metadata."""
    with pytest.raises(grpc.RpcError) as err:
        call()
    assert err.value.code() == grpc.StatusCode.DATA_LOSS, err.value.details()
    return err.value.details() or "", *error_info(err.value)


def test_a_checkpoint_row_unlike_its_note_is_data_loss_naming_the_column(
    suite: Running, tenant: str, admin_url: str
) -> None:
    first = append(suite, tenant, 3)[0].event_id  # type: ignore[attr-defined]
    wait_until(lambda: checkpoint_covers(suite, tenant, 3))
    stub = integrity(suite)
    real = stub.GetCheckpoint(pb.GetCheckpointRequest(log_id=tenant)).checkpoint
    size = real.tree_size  # 3, or more: each read is recorded in the log
    admin = sa.create_engine(admin_url)
    mine = checkpoints.c.log_id == tenant
    try:
        with admin.begin() as conn:  # the real row copied under size 1000
            row = conn.execute(sa.select(checkpoints).where(mine, checkpoints.c.tree_size == size))
            conn.execute(
                sa.insert(checkpoints).values(**{**row.one()._asdict(), "tree_size": 1000})
            )
        named = (
            f"log {tenant!r} stored checkpoint at size 1000: column "
            f"integrity_checkpoints.tree_size is not the size its note states ({size}) (rewritten "
            "by raw SQL?)"
        )
        column = ("NOTE_MISMATCH", {"column": "integrity_checkpoints.tree_size"})
        for call in (
            lambda: stub.GetCheckpoint(pb.GetCheckpointRequest(log_id=tenant)),
            lambda: stub.GetCheckpoint(pb.GetCheckpointRequest(log_id=tenant, tree_size=1000)),
            lambda: stub.GetInclusionProof(pb.GetInclusionProofRequest(log_id=tenant, sequence=0)),
            lambda: stub.GetInclusionProof(
                pb.GetInclusionProofRequest(log_id=tenant, sequence=500)
            ),
            lambda: stub.BatchGetInclusionProofs(
                pb.BatchGetInclusionProofsRequest(log_id=tenant, sequences=[0, 1])
            ),
            lambda: stub.GetConsistencyProof(
                pb.GetConsistencyProofRequest(log_id=tenant, from_size=1)
            ),
        ):
            assert _refused(call) == (f"{named}; run `aiaudit verify` on the store", *column)
        verdict = stub.VerifyEvent(pb.VerifyEventRequest(log_id=tenant, event_id=first))
        assert (verdict.status, list(verdict.problems)) == (pb.VERIFY_STATUS_TAMPERED, [named])
        served = stub.GetCheckpoint(pb.GetCheckpointRequest(log_id=tenant, tree_size=size))
        assert served.checkpoint == real  # the genuine row, as before
        flipped = bytes(b ^ 0xFF for b in real.root_hash)
        with admin.begin() as conn:
            conn.execute(sa.delete(checkpoints).where(mine, checkpoints.c.tree_size == 1000))
            conn.execute(
                sa.update(checkpoints)
                .where(mine, checkpoints.c.tree_size == size)
                .values(root_hash=flipped)
            )
        named = (
            f"log {tenant!r} stored checkpoint at size {size}: column "
            "integrity_checkpoints.root_hash is not the root hash its note states (rewritten by "
            "raw SQL?); run `aiaudit verify` on the store"
        )
        root = ("NOTE_MISMATCH", {"column": "integrity_checkpoints.root_hash"})
        at_size = pb.GetCheckpointRequest(log_id=tenant, tree_size=size)
        assert _refused(lambda: stub.GetCheckpoint(at_size)) == (named, *root)
    finally:  # repaired: the session's notaries read every log of the database
        with admin.begin() as conn:
            conn.execute(sa.delete(checkpoints).where(mine, checkpoints.c.tree_size == 1000))
            conn.execute(
                sa.update(checkpoints)
                .where(mine, checkpoints.c.tree_size == size)
                .values(root_hash=real.root_hash)
            )
        admin.dispose()
    assert (
        stub.GetCheckpoint(pb.GetCheckpointRequest(log_id=tenant, tree_size=size)).checkpoint
        == real
    )
