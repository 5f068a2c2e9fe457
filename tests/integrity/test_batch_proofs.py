"""BatchGetInclusionProofs over the whole suite (SQLite and PostgreSQL): what exports use."""

from __future__ import annotations

import grpc
import pytest

from aiaudit.common.store import open_store
from aiaudit.common.v1 import event_pb2
from aiaudit.integrity import merkle, note
from aiaudit.integrity.v1 import integrity_service_pb2 as pb
from tests.conftest import Running
from tests.helpers import field_violations, wait_until
from tests.integrity.conftest import ORIGIN_PREFIX
from tests.integrity.test_service import (
    _as_admin,
    append,
    checkpoint_covers,
    integrity,
)


def test_batch_proofs_verify_and_are_one_access_record(suite: Running, tenant: str) -> None:
    receipts = append(suite, tenant, 7)
    wait_until(lambda: checkpoint_covers(suite, tenant, 7))
    stub = integrity(suite)
    keys = [
        note.parse_verifier_key(k)
        for k in stub.GetVerifierKey(pb.GetVerifierKeyRequest()).verifier_keys
    ]
    wanted = [5, 0, 3, 6]
    reply = stub.BatchGetInclusionProofs(
        pb.BatchGetInclusionProofsRequest(log_id=tenant, sequences=wanted)
    )
    cp = note.open_checkpoint(reply.checkpoint.signed_note, keys, f"{ORIGIN_PREFIX}/{tenant}")
    assert [p.leaf_index for p in reply.proofs] == wanted
    for p in reply.proofs:
        assert p.tree_size == cp.size == reply.checkpoint.tree_size
        leaf = receipts[p.leaf_index].leaf_hash  # type: ignore[attr-defined]
        merkle.verify_inclusion(p.leaf_index, cp.size, leaf, p.hashes, cp.root_hash)
    # The same proofs one by one, against the same checkpoint.
    single = stub.GetInclusionProof(
        pb.GetInclusionProofRequest(log_id=tenant, sequence=3, tree_size=cp.size)
    )
    assert list(single.proof.hashes) == list(reply.proofs[2].hashes)

    store = open_store(suite.suite.store.engine.url.render_as_string(hide_password=False))  # type: ignore[attr-defined]
    try:
        actions = [
            e.to_event().attributes["access.action"].string_value
            for e in store.read_log(tenant, 0, 1000)
            if e.to_event().event_type == event_pb2.EVENT_TYPE_AUDIT_ACCESS
        ]
    finally:
        store.close()
    assert actions.count("integrity.batch_get_inclusion_proofs") == 1


def test_batch_proofs_refusals(suite: Running, tenant: str) -> None:
    append(suite, tenant, 3)
    wait_until(lambda: checkpoint_covers(suite, tenant, 3))
    stub = integrity(suite)
    bad = [
        (pb.BatchGetInclusionProofsRequest(log_id=tenant), "sequences"),
        (pb.BatchGetInclusionProofsRequest(log_id=tenant, sequences=[0] * 1001), "sequences"),
        (pb.BatchGetInclusionProofsRequest(log_id=tenant, sequences=[1, -1]), "sequences[1]"),
        (pb.BatchGetInclusionProofsRequest(sequences=[0]), "log_id"),
    ]
    for request, field in bad:
        with pytest.raises(grpc.RpcError) as caught:
            stub.BatchGetInclusionProofs(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert field in field_violations(caught.value)
    # The three events were committed together: no checkpoint was ever signed at size 1.
    with pytest.raises(grpc.RpcError) as caught:
        stub.BatchGetInclusionProofs(
            pb.BatchGetInclusionProofsRequest(log_id=tenant, sequences=[0], tree_size=1)
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        stub.BatchGetInclusionProofs(
            pb.BatchGetInclusionProofsRequest(log_id=tenant, sequences=[10_000])
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as caught:
        integrity(suite, "analyst").BatchGetInclusionProofs(
            pb.BatchGetInclusionProofsRequest(log_id=tenant, sequences=[0])
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_batch_across_subtree_boundaries_is_each_leafs_own_proof_and_checked(
    suite: Running, tenant: str, admin_url: str
) -> None:
    """A batch's paths are built from nodes read together and subtrees hashed once
    (2026-12-07): each must still be the path GetInclusionProof serves alone, here for a
    run across the subtree boundaries at 4, 8, 16 and 32 of a tree of no power-of-two size,
    and each is still checked against the signed root: a node changed under one leaf's path
    names that leaf, a node missing under the signed tree is DATA_LOSS."""
    receipts = append(suite, tenant, 37)
    wait_until(lambda: checkpoint_covers(suite, tenant, 37))
    stub = integrity(suite)
    # Every read adds an access record: pin the checkpoint the proofs are asked against.
    cp = stub.GetCheckpoint(pb.GetCheckpointRequest(log_id=tenant)).checkpoint
    assert cp.tree_size & (cp.tree_size - 1)  # no power of two
    wanted = [*range(3, 37), 0, 20]
    batch = pb.BatchGetInclusionProofsRequest(
        log_id=tenant, sequences=wanted, tree_size=cp.tree_size
    )
    reply = stub.BatchGetInclusionProofs(batch)
    assert [p.leaf_index for p in reply.proofs] == wanted
    for p in reply.proofs:
        alone = stub.GetInclusionProof(
            pb.GetInclusionProofRequest(
                log_id=tenant, sequence=p.leaf_index, tree_size=cp.tree_size
            )
        )
        assert list(p.hashes) == list(alone.proof.hashes)
        leaf = receipts[p.leaf_index].leaf_hash  # type: ignore[attr-defined]
        merkle.verify_inclusion(p.leaf_index, cp.tree_size, leaf, p.hashes, cp.root_hash)

    leaf_20 = "WHERE log_id = :t AND level = 0 AND idx = 20"  # on leaf 21's path alone
    _as_admin(
        admin_url, f"UPDATE integrity_nodes SET hash = :bad {leaf_20}", t=tenant, bad=b"\0" * 32
    )
    with pytest.raises(grpc.RpcError) as caught:
        stub.BatchGetInclusionProofs(batch)
    assert caught.value.code() == grpc.StatusCode.DATA_LOSS
    assert f"at size {cp.tree_size} (leaf 21)" in (caught.value.details() or "")

    receipt_20 = receipts[20].leaf_hash  # type: ignore[attr-defined]
    _as_admin(
        admin_url, f"UPDATE integrity_nodes SET hash = :good {leaf_20}", t=tenant, good=receipt_20
    )
    assert stub.BatchGetInclusionProofs(batch).proofs[18].hashes == reply.proofs[18].hashes
    _as_admin(
        admin_url,
        "DELETE FROM integrity_nodes WHERE log_id = :t AND level = 1 AND idx = 5",
        t=tenant,
    )
    with pytest.raises(grpc.RpcError) as caught:  # leaves 10 and 11, under the signed tree
        stub.BatchGetInclusionProofs(batch)
    assert caught.value.code() == grpc.StatusCode.DATA_LOSS
    assert "missing a node" in (caught.value.details() or "")
