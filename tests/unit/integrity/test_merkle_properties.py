"""Properties: every generated proof verifies, and no single change survives.

One 300-leaf store serves every tree size: stored perfect subtrees never
change as the log grows, so the tree at size n is a prefix of it. Roots come
from the RFC definition over the leaves, not from the code under test.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiaudit.integrity import merkle, verify
from aiaudit.integrity.merkle import CompactRange, MemoryNodeStore, ProofError
from tests.unit.integrity import reference

MAX = 300


@cache
def tree() -> tuple[MemoryNodeStore, tuple[bytes, ...], tuple[bytes, ...]]:
    """The store, the leaf hashes, and the root at every size 0..MAX."""
    leaves = tuple(reference.h_leaf(b"event %d" % i) for i in range(MAX))
    store = MemoryNodeStore()
    store.write_nodes(CompactRange().extend(leaves))
    roots = tuple(reference.mth(leaves[:n]) for n in range(MAX + 1))
    return store, leaves, roots


def flip(data: bytes, position: int, bit: int) -> bytes:
    """``data`` with one bit changed at ``position`` (taken modulo the length)."""
    i = position % len(data)
    return data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1 :]


positions = st.integers(min_value=0, max_value=31)
bits = st.integers(min_value=0, max_value=7)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), position=positions, bit=bits)
def test_inclusion_proofs_verify_and_any_change_fails(
    data: st.DataObject, position: int, bit: int
) -> None:
    store, leaves, roots = tree()
    size = data.draw(st.integers(min_value=1, max_value=MAX), label="size")
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    proof = merkle.inclusion_proof(index, size, store)
    leaf, root = leaves[index], roots[size]

    merkle.verify_inclusion(index, size, leaf, proof, root)

    for k in range(len(proof)):
        changed = [*proof[:k], flip(proof[k], position, bit), *proof[k + 1 :]]
        with pytest.raises(ProofError):
            merkle.verify_inclusion(index, size, leaf, changed, root)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(index, size, flip(leaf, position, bit), proof, root)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(index, size, leaf, proof, flip(root, position, bit))
    for shifted in (index - 1, index + 1):
        with pytest.raises(ProofError):
            merkle.verify_inclusion(shifted, size, leaf, proof, root)
    if proof:
        with pytest.raises(ProofError):
            merkle.verify_inclusion(index, size, leaf, proof[:-1], root)
        with pytest.raises(ProofError):
            merkle.verify_inclusion(index, size, leaf, [*proof, proof[-1]], root)


class CountingReader:
    """A node reader that counts its reads (a batch of proofs reads its nodes once)."""

    def __init__(self, store: MemoryNodeStore) -> None:
        self.store = store
        self.reads = 0

    def read_nodes(self, ids: Sequence[merkle.NodeID]) -> list[bytes]:
        self.reads += 1
        return self.store.read_nodes(ids)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_batch_of_proofs_is_each_leafs_rfc_path_from_one_read(data: st.DataObject) -> None:
    """Paths built together (nodes and subtrees shared) are each exactly the RFC's PATH:
    runs across subtree boundaries and the right edge, scattered leaves, repeats, any order,
    at sizes that are no power of two."""
    store, leaves, roots = tree()
    size = data.draw(st.integers(min_value=1, max_value=MAX), label="size")
    start = data.draw(st.integers(min_value=0, max_value=size - 1), label="start")
    run = list(range(start, min(size, start + data.draw(st.integers(1, 70), label="run"))))
    scattered = data.draw(st.lists(st.integers(0, size - 1), max_size=8), label="scattered")
    indexes = data.draw(st.permutations([*run, *scattered, *run[:2]]), label="indexes")
    reader = CountingReader(store)

    paths = merkle.inclusion_proofs(indexes, size, reader)

    assert reader.reads <= 1  # none for a tree of one leaf
    assert paths == [reference.path(i, leaves[:size]) for i in indexes]
    for i, path in zip(indexes, paths, strict=True):
        merkle.verify_inclusion(i, size, leaves[i], path, roots[size])


def test_a_batch_of_proofs_refuses_a_leaf_outside_the_tree() -> None:
    store, _, _ = tree()
    with pytest.raises(ValueError, match="leaf index 10 is outside a tree of size 10"):
        merkle.inclusion_proofs([0, 9, 10], 10, store)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), position=positions, bit=bits)
def test_consistency_proofs_verify_and_any_change_fails(
    data: st.DataObject, position: int, bit: int
) -> None:
    store, _, roots = tree()
    size = data.draw(st.integers(min_value=1, max_value=MAX), label="size")
    old = data.draw(st.integers(min_value=1, max_value=size), label="old size")
    proof = merkle.consistency_proof(old, size, store)
    old_root, root = roots[old], roots[size]

    merkle.verify_consistency(old, size, old_root, root, proof)

    for k in range(len(proof)):
        changed = [*proof[:k], flip(proof[k], position, bit), *proof[k + 1 :]]
        with pytest.raises(ProofError):
            merkle.verify_consistency(old, size, old_root, root, changed)
    with pytest.raises(ProofError):
        merkle.verify_consistency(old, size, flip(old_root, position, bit), root, proof)
    with pytest.raises(ProofError):
        merkle.verify_consistency(old, size, old_root, flip(root, position, bit), proof)
    for shifted in (old - 1, old + 1):
        with pytest.raises(ProofError):
            merkle.verify_consistency(shifted, size, old_root, root, proof)
    if proof:
        with pytest.raises(ProofError):
            merkle.verify_consistency(old, size, old_root, root, proof[:-1])
        with pytest.raises(ProofError):
            merkle.verify_consistency(old, size, old_root, root, [*proof, proof[-1]])


@settings(max_examples=200, deadline=None)
@given(size=st.integers(min_value=0, max_value=MAX))
def test_roots_from_stored_nodes_and_compact_ranges_agree_with_the_rfc(size: int) -> None:
    store, leaves, roots = tree()
    assert merkle.root_at(size, store) == roots[size]
    assert CompactRange.load(size, store).root() == roots[size]
    assert merkle.root(leaves[:size]) == roots[size]


@given(
    cuts=st.lists(st.integers(min_value=1, max_value=MAX), max_size=12),
    asked=st.lists(st.integers(min_value=1, max_value=MAX), max_size=20),
)
def test_block_appends_agree_with_the_rfc_at_every_size_asked(
    cuts: list[int], asked: list[int]
) -> None:
    """``append_block`` (level by level when aligned, else leaf by leaf) builds the same tree."""
    _, leaves, roots = tree()
    edge, got = CompactRange(), {}
    bounds = sorted({0, MAX, *cuts})
    for begin, end in itertools.pairwise(bounds):
        got.update(edge.append_block(b"".join(leaves[begin:end]), asked))
        assert edge.size == end
        assert edge.root() == roots[end]
    assert got == {size: roots[size] for size in set(asked)}
    with pytest.raises(ValueError, match="not whole 32-byte hashes"):
        CompactRange().append_block(b"short")


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=MAX), max_size=8))
def test_extend_in_any_chunks_completes_what_appending_leaf_by_leaf_does(
    cuts: list[int],
) -> None:
    """Every node ``extend`` returns is the one ``append`` completes, none missing or extra,
    however the leaves are split (the notary's rounds start anywhere)."""
    _, leaves, roots = tree()
    one_by_one = CompactRange()
    expected = [node for leaf in leaves for node in one_by_one.append(leaf)]
    chunked, created = CompactRange(), []
    bounds = sorted({0, MAX, *cuts})
    for start, end in itertools.pairwise(bounds):
        created.extend(chunked.extend(leaves[start:end]))
        assert chunked.size == end
        assert chunked.root() == roots[end]
    assert sorted(created) == sorted(expected)
    assert chunked.nodes() == one_by_one.nodes()


def test_the_walk_names_a_leaf_hash_of_the_wrong_length() -> None:
    """Joined into one buffer, a 31- and a 33-byte hash would read as two good ones."""
    walk = verify._LogWalk("log", 3, {}, verify.Report())
    with pytest.raises(ValueError, match="leaf hash 1 must be 32 bytes, got 31"):
        walk.add_leaves([b"a" * 32, b"b" * 31, b"c" * 33])
    walk.add_leaves([])
    walk.add_leaves([b"a" * 32, b"b" * 32])
    assert walk.tree.size == 2
