"""merkle.py against published RFC 6962 vectors and the RFC's own definitions.

Vectors: transparency-dev/merkle testdata and testonly constants (see
vectors/README.md).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from aiaudit.integrity import merkle
from aiaudit.integrity.merkle import CompactRange, MemoryNodeStore, NodeID, ProofError
from tests.unit.integrity import reference

VECTORS = Path(__file__).parent / "vectors"


def _load(name: str) -> list[dict[str, Any]]:
    return json.loads((VECTORS / name).read_text())  # type: ignore[no-any-return]


INCLUSION = _load("inclusion.json")
CONSISTENCY = _load("consistency.json")
REFERENCE = json.loads((VECTORS / "reference_tree.json").read_text())
LEAF_INPUTS = [bytes.fromhex(x) for x in REFERENCE["leaf_inputs_hex"]]
NODE_HASHES = [[bytes.fromhex(x) for x in level] for level in REFERENCE["node_hashes_hex"]]
ROOTS = [bytes.fromhex(x) for x in REFERENCE["root_hashes_hex"]]


def b64(s: str) -> bytes:
    return base64.b64decode(s)


def reference_store() -> MemoryNodeStore:
    store = MemoryNodeStore()
    edge = CompactRange()
    for data in LEAF_INPUTS:
        store.write_nodes(edge.append(merkle.leaf_hash(data)))
    return store


@pytest.mark.parametrize("vector", INCLUSION, ids=[v["source"] for v in INCLUSION])
def test_inclusion_vectors(vector: dict[str, Any]) -> None:
    index = vector["leafIdx"] if "leafIdx" in vector else vector["leafIndex"]
    args = (
        index,
        vector["treeSize"],
        b64(vector["leafHash"]),
        [b64(p) for p in vector["proof"] or []],
        b64(vector["root"]),
    )
    if vector["wantErr"]:
        with pytest.raises(ProofError):
            merkle.verify_inclusion(*args)
    else:
        merkle.verify_inclusion(*args)


@pytest.mark.parametrize("vector", CONSISTENCY, ids=[v["source"] for v in CONSISTENCY])
def test_consistency_vectors(vector: dict[str, Any]) -> None:
    args = (
        vector["size1"],
        vector["size2"],
        b64(vector["root1"]),
        b64(vector["root2"]),
        [b64(p) for p in vector["proof"] or []],
    )
    if vector["wantErr"]:
        with pytest.raises(ProofError):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)


def test_vector_set_covers_the_rules_we_rely_on() -> None:
    """The stored subset keeps valid and invalid cases, including every size-0 rule."""
    assert sum(not v["wantErr"] for v in INCLUSION) >= 6
    assert sum(v["wantErr"] for v in INCLUSION) >= 30
    from_zero = [v for v in CONSISTENCY if v["size1"] == 0]
    assert len(from_zero) >= 6
    assert all(v["wantErr"] for v in from_zero)


TREE_HAPPY_INCLUSION = [
    v for v in INCLUSION if re.fullmatch(r"testdata/inclusion/\d+/happy-path\.json", v["source"])
]
TREE_HAPPY_CONSISTENCY = [
    v
    for v in CONSISTENCY
    if re.fullmatch(r"testdata/consistency/\d+/happy-path\.json", v["source"])
]


@pytest.mark.parametrize("vector", TREE_HAPPY_INCLUSION, ids=lambda v: v["source"])
def test_generated_inclusion_proofs_equal_the_vectors(vector: dict[str, Any]) -> None:
    got = merkle.inclusion_proof(vector["leafIdx"], vector["treeSize"], reference_store())
    assert got == [b64(p) for p in vector["proof"] or []]


@pytest.mark.parametrize("vector", TREE_HAPPY_CONSISTENCY, ids=lambda v: v["source"])
def test_generated_consistency_proofs_equal_the_vectors(vector: dict[str, Any]) -> None:
    store = reference_store()
    got = merkle.consistency_proof(vector["size1"], vector["size2"], store)
    assert got == [b64(p) for p in vector["proof"] or []]
    assert merkle.root_at(vector["size1"], store) == b64(vector["root1"])
    assert merkle.root_at(vector["size2"], store) == b64(vector["root2"])


def test_reference_tree_roots_at_every_size() -> None:
    leaves = [merkle.leaf_hash(d) for d in LEAF_INPUTS]
    store = reference_store()
    for size, want in enumerate(ROOTS):
        assert merkle.root(leaves[:size]) == want
        assert merkle.root_at(size, store) == want
        assert reference.mth(leaves[:size]) == want
    assert ROOTS[0] == merkle.EMPTY_ROOT


def test_reference_tree_every_perfect_subtree_is_stored_with_its_published_hash() -> None:
    store = reference_store()
    want = {
        NodeID(level, index): digest
        for level, row in enumerate(NODE_HASHES)
        for index, digest in enumerate(row)
    }
    assert len(store) == len(want)
    ids = sorted(want)
    assert store.read_nodes(ids) == [want[n] for n in ids]


def test_compact_range_edge_matches_published_compact_trees() -> None:
    """After n leaves the edge is the perfect subtrees for the binary digits of n."""
    edge = CompactRange()
    for size, data in enumerate(LEAF_INPUTS, start=1):
        edge.append(merkle.leaf_hash(data))
        want = [
            NODE_HASHES[level][(size >> level) - 1]
            for level in reversed(range(size.bit_length()))
            if size >> level & 1
        ]
        assert edge.hashes() == want
        assert edge.root() == ROOTS[size]


def test_append_returns_exactly_the_nodes_it_completes() -> None:
    edge = CompactRange()
    created = [edge.append(merkle.leaf_hash(d)) for d in LEAF_INPUTS]
    assert [[n for n, _ in c] for c in created] == [
        [NodeID(0, 0)],
        [NodeID(0, 1), NodeID(1, 0)],
        [NodeID(0, 2)],
        [NodeID(0, 3), NodeID(1, 1), NodeID(2, 0)],
        [NodeID(0, 4)],
        [NodeID(0, 5), NodeID(1, 2)],
        [NodeID(0, 6)],
        [NodeID(0, 7), NodeID(1, 3), NodeID(2, 1), NodeID(3, 0)],
    ]


def big_store(n: int) -> tuple[MemoryNodeStore, list[bytes]]:
    store = MemoryNodeStore()
    edge = CompactRange()
    leaves = [merkle.leaf_hash(i.to_bytes(8, "big")) for i in range(n)]
    store.write_nodes(edge.extend(leaves))
    return store, leaves


def test_proofs_read_few_stored_nodes_in_one_call() -> None:
    """Proofs come from O(log n) stored nodes, one read each, never from the leaves."""
    n = 5000
    store, leaves = big_store(n)
    bound = 2 * n.bit_length()
    for index, size in [(0, n), (n - 1, n), (1234, n), (4095, 4097), (17, 4999)]:
        counting = reference.CountingReader(store)
        got = merkle.inclusion_proof(index, size, counting)
        assert counting.calls == 1
        assert len(counting.nodes) <= bound
        assert got == reference.path(index, leaves[:size])
    for old, size in [(1, n), (4096, n), (2500, 4999), (n - 1, n)]:
        counting = reference.CountingReader(store)
        got = merkle.consistency_proof(old, size, counting)
        assert counting.calls == 1
        assert len(counting.nodes) <= bound
        assert got == reference.proof(old, leaves[:size])
    counting = reference.CountingReader(store)
    assert merkle.root_at(3333, counting) == reference.mth(leaves[:3333])
    assert counting.calls == 1
    assert len(counting.nodes) == bin(3333).count("1")


def test_compact_range_reloads_from_the_store_at_any_size() -> None:
    store, leaves = big_store(600)
    for size in [0, 1, 2, 3, 255, 256, 257, 511, 599, 600]:
        counting = reference.CountingReader(store)
        loaded = CompactRange.load(size, counting)
        assert counting.calls == 1
        assert loaded.size == size
        assert loaded.root() == reference.mth(leaves[:size])
        resumed = CompactRange(size, loaded.hashes())
        resumed.extend(leaves[size:])
        assert resumed.root() == reference.mth(leaves)


def test_every_proof_up_to_64_leaves_equals_the_rfc_definitions() -> None:
    store, leaves = big_store(64)
    for size in range(1, 65):
        for index in range(size):
            assert merkle.inclusion_proof(index, size, store) == reference.path(
                index, leaves[:size]
            )
        for old in range(1, size + 1):
            assert merkle.consistency_proof(old, size, store) == reference.proof(old, leaves[:size])


def test_every_proof_up_to_64_leaves_verifies() -> None:
    """The verifiers on every pair of sizes, not only on the vectors' and hypothesis' few."""
    store, leaves = big_store(64)
    roots = [merkle.EMPTY_ROOT] + [merkle.root_at(size, store) for size in range(1, 65)]
    for size in range(1, 65):
        for index in range(size):
            proof = merkle.inclusion_proof(index, size, store)
            merkle.verify_inclusion(index, size, leaves[index], proof, roots[size])
        for old in range(1, size):
            proof = merkle.consistency_proof(old, size, store)
            merkle.verify_consistency(old, size, roots[old], roots[size], proof)
            with pytest.raises(ProofError):
                merkle.verify_consistency(old, size, roots[old], roots[size - 1], proof)


def test_missing_nodes_are_reported_not_guessed() -> None:
    store, _ = big_store(10)
    with pytest.raises(merkle.MissingNodeError):
        merkle.inclusion_proof(3, 11, store)
    with pytest.raises(merkle.MissingNodeError):
        merkle.root_at(12, store)
    with pytest.raises(merkle.MissingNodeError):
        CompactRange.load(16, store)


def test_store_refuses_to_change_a_written_node() -> None:
    store = MemoryNodeStore()
    store.write_nodes([(NodeID(0, 0), b"\x01" * 32)])
    store.write_nodes([(NodeID(0, 0), b"\x01" * 32)])
    with pytest.raises(ValueError, match="different hash"):
        store.write_nodes([(NodeID(0, 0), b"\x02" * 32)])


def test_generation_rejects_meaningless_requests() -> None:
    store, _ = big_store(8)
    with pytest.raises(ValueError, match="no consistency proof from size 0 to size 8"):
        merkle.consistency_proof(0, 8, store)
    with pytest.raises(ValueError, match="no consistency proof from size 5 to size 4"):
        merkle.consistency_proof(5, 4, store)
    with pytest.raises(ValueError, match="leaf index 8 is outside a tree of size 8"):
        merkle.inclusion_proof(8, 8, store)
    with pytest.raises(ValueError, match="leaf index -1 is outside a tree of size 8"):
        merkle.inclusion_proof(-1, 8, store)
    assert merkle.consistency_proof(8, 8, store) == []


class _ShortNodes:
    """A node store whose hashes came back cut (a damaged row, a wrong column)."""

    def __init__(self, store: MemoryNodeStore) -> None:
        self._store = store

    def read_nodes(self, ids: Sequence[NodeID]) -> list[bytes]:
        return [digest[:31] for digest in self._store.read_nodes(ids)]


def test_a_stored_node_of_the_wrong_size_is_named_not_hashed() -> None:
    store, _ = big_store(8)
    short = _ShortNodes(store)
    for use in (
        lambda: merkle.root_at(8, short),
        lambda: merkle.inclusion_proof(3, 8, short),
        lambda: merkle.consistency_proof(3, 8, short),
        lambda: CompactRange.load(8, short),
    ):
        with pytest.raises(
            ValueError, match=r"stored node NodeID\(level=\d+, index=\d+\) must be 32 bytes, got 31"
        ):
            use()


class _FewerNodes:
    """A node store that answers fewer hashes than it was asked for."""

    def __init__(self, store: MemoryNodeStore) -> None:
        self._store = store

    def read_nodes(self, ids: Sequence[NodeID]) -> list[bytes]:
        return list(self._store.read_nodes(ids))[:-1]


def test_a_store_answering_fewer_nodes_is_a_missing_node() -> None:
    store, _ = big_store(8)
    with pytest.raises(merkle.MissingNodeError, match="asked for 2 nodes, got 1"):
        merkle.root_at(6, _FewerNodes(store))


def test_a_negative_size_has_no_root() -> None:
    store, _ = big_store(8)
    with pytest.raises(ValueError, match="size must not be negative"):
        merkle.root_at(-1, store)


def test_an_inclusion_proof_too_long_or_with_a_cut_hash_is_refused_saying_so() -> None:
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(4)]
    root = merkle.root(leaves)
    proof = [leaves[1], merkle.node_hash(leaves[2], leaves[3])]
    merkle.verify_inclusion(0, 4, leaves[0], proof, root)
    with pytest.raises(ProofError, match="proof is longer than the path to the root"):
        merkle.verify_inclusion(0, 4, leaves[0], [*proof, leaves[0]], root)
    with pytest.raises(ProofError, match=r"proof\[1\] is 31 bytes, not 32"):
        merkle.verify_inclusion(0, 4, leaves[0], [proof[0], proof[1][:31]], root)
    with pytest.raises(merkle.RootMismatchError) as mismatch:
        merkle.verify_inclusion(0, 4, leaves[0], [leaves[2], proof[1]], root)
    assert mismatch.value.expected == root
    assert mismatch.value.calculated == merkle.node_hash(
        merkle.node_hash(leaves[0], leaves[2]), proof[1]
    )


def test_a_leaf_or_root_of_the_wrong_size_is_named() -> None:
    leaf, root = merkle.leaf_hash(b"x"), merkle.root([merkle.leaf_hash(b"x")])
    merkle.verify_inclusion(0, 1, leaf, [], root)
    for args in ((leaf[:31], root), (leaf, root[:31])):
        with pytest.raises(ProofError, match="leaf and root hashes must be 32 bytes"):
            merkle.verify_inclusion(0, 1, args[0], [], args[1])


def test_a_consistency_proof_backwards_or_with_a_cut_root_is_refused_saying_so() -> None:
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(5)]
    four, five = merkle.root(leaves[:4]), merkle.root(leaves)
    merkle.verify_consistency(4, 5, four, five, [leaves[4]])
    with pytest.raises(ProofError, match="old size 5 is larger than size 4"):
        merkle.verify_consistency(5, 4, five, four, [leaves[4]])
    for old_root, new_root in ((four[:31], five), (four, five[:31])):
        with pytest.raises(ProofError, match="root hashes must be 32 bytes"):
            merkle.verify_consistency(4, 5, old_root, new_root, [leaves[4]])


def test_consistency_from_size_zero_is_rejected_in_every_form() -> None:
    empty = merkle.EMPTY_ROOT
    one = merkle.leaf_hash(b"x")
    for args in [
        (0, 0, empty, empty, []),
        (0, 1, empty, one, []),
        (0, 1, empty, one, [one]),
    ]:
        with pytest.raises(ProofError, match="empty tree"):
            merkle.verify_consistency(*args)


def test_compact_range_rejects_bad_state() -> None:
    with pytest.raises(ValueError, match="size 3 needs 2 edge hashes, got 1"):
        CompactRange(3, [b"\x00" * 32])
    with pytest.raises(ValueError, match="size must not be negative"):
        CompactRange(-1)
    with pytest.raises(ValueError):
        CompactRange(1, [b"short"])
    with pytest.raises(ValueError):
        CompactRange().append(b"short")
