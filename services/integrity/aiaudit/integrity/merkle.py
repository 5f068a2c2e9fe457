"""RFC 6962 / RFC 9162 Merkle tree: hashing, proofs, and proof verification.

The log must answer proofs at any tree size in O(log n) without rehashing the
whole log, so the tree is never held in memory. Its state is a set of
*perfect subtree hashes*: the hash of leaves ``[i * 2**level, (i + 1) *
2**level)`` is the node ``NodeID(level, i)``. Every such node is fixed forever
once its last leaf is appended, so a store can write each one once and never
update it (a node cache or C2SP ``tlog-tiles`` layout).

* ``CompactRange`` keeps only the right edge of the tree (one node per set bit
  of the size). Appending a leaf returns the nodes that just became complete,
  which the sequencer persists; the root is folded from the edge in O(log n).
* ``inclusion_proof`` / ``consistency_proof`` / ``root_at`` plan which stored
  nodes a proof needs (O(log n) of them), fetch them in one ``NodeReader``
  call, and hash the few non-perfect subtrees on the right edge on the fly.
* ``verify_inclusion`` / ``verify_consistency`` follow the RFC 9162 sections
  2.1.3.2 and 2.1.4.2 verification algorithms bit by bit and share no code
  with generation, so a bug in one cannot hide a bug in the other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import NamedTuple, Protocol

import aiaudit_native

HASH_SIZE = 32
"""Bytes in a SHA-256 hash: every leaf, node and root hash."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}) of RFC 6962: the root of the empty tree."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


class ProofError(ValueError):
    """A proof, root or leaf hash does not verify; the message says why."""


class RootMismatchError(ProofError):
    """An inclusion proof that leads to another root than the one it is checked against."""

    def __init__(self, calculated: bytes, expected: bytes) -> None:
        super().__init__("proof does not lead to the root hash")
        self.calculated = calculated
        self.expected = expected


class MissingNodeError(LookupError):
    """A node store lacks a perfect subtree hash that a tree size implies exists."""


class NodeID(NamedTuple):
    """A perfect subtree: leaves ``[index * 2**level, (index + 1) * 2**level)``.

    A named tuple, not a dataclass: a proof hashes, sorts and compares a few
    dozen of these, and tuples do that in C (a third of a proof's Python time before).
    """

    level: int
    index: int  # type: ignore[assignment]  # shadows tuple.index, unused here

    @property
    def begin(self) -> int:
        """First leaf covered."""
        return self.index << self.level

    @property
    def end(self) -> int:
        """One past the last leaf covered."""
        return (self.index + 1) << self.level


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash ``SHA-256(0x00 || data)``; the prefix keeps leaves and nodes apart."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


class NodeReader(Protocol):
    """Source of stored perfect subtree hashes (a database table, tiles, memory).

    One call per proof, with every node the proof needs, so a database-backed
    reader answers a proof with a single query.
    """

    def read_nodes(self, ids: Sequence[NodeID]) -> Sequence[bytes]:
        """Hashes of ``ids`` in the same order; raises ``MissingNodeError`` for any unknown."""
        ...


class MemoryNodeStore:
    """In-memory ``NodeReader`` that also accepts the nodes ``CompactRange`` completes."""

    def __init__(self) -> None:
        self._nodes: dict[NodeID, bytes] = {}

    def write_nodes(self, nodes: Iterable[tuple[NodeID, bytes]]) -> None:
        """Stores completed nodes; rewriting a node with a different hash is refused."""
        for node, digest in nodes:
            known = self._nodes.setdefault(node, digest)
            if known != digest:
                raise ValueError(f"node {node} already stored with a different hash")

    def read_nodes(self, ids: Sequence[NodeID]) -> list[bytes]:
        """Hashes of ``ids`` in order."""
        try:
            return [self._nodes[node] for node in ids]
        except KeyError as exc:
            raise MissingNodeError(f"no stored hash for node {exc.args[0]}") from None

    def __len__(self) -> int:
        return len(self._nodes)


def _check_hash(what: str, digest: bytes) -> None:
    if len(digest) != HASH_SIZE:
        raise ValueError(f"{what} must be {HASH_SIZE} bytes, got {len(digest)}")


def _largest_power_of_two_below(n: int) -> int:
    """The RFC's k: the largest power of two strictly smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _perfect_nodes(begin: int, end: int) -> list[NodeID]:
    """Splits ``[begin, end)`` into maximal aligned perfect subtrees, left to right."""
    nodes = []
    while begin < end:
        size = begin & -begin if begin else 1 << (end - 1).bit_length()
        while size > end - begin:
            size >>= 1
        level = size.bit_length() - 1
        nodes.append(NodeID(level, begin >> level))
        begin += size
    return nodes


def _fold(hashes: Sequence[bytes]) -> bytes:
    """MTH of a subtree from its perfect parts (largest first): hashed right to left.

    RFC 6962 splits a subtree of n leaves at the largest power of two below n,
    so its left part is perfect and the rest recurses: the root is
    ``H(P1, H(P2, ... H(Pk-1, Pk)))`` for the perfect parts ``P1..Pk``.
    """
    digest = hashes[-1]
    for part in reversed(hashes[:-1]):
        digest = node_hash(part, digest)
    return digest


def _read(reader: NodeReader, ids: Sequence[NodeID]) -> dict[NodeID, bytes]:
    unique = sorted(set(ids))
    hashes = reader.read_nodes(unique)
    if len(hashes) != len(unique):
        raise MissingNodeError(f"asked for {len(unique)} nodes, got {len(hashes)}")
    for node, digest in zip(unique, hashes, strict=True):
        if len(digest) != HASH_SIZE:  # the message is built only when needed
            _check_hash(f"stored node {node}", digest)
    return dict(zip(unique, hashes, strict=True))


def _materialise(ranges: Sequence[tuple[int, int]], reader: NodeReader) -> list[bytes]:
    """MTH of each leaf range, from stored perfect nodes fetched in one read."""
    parts = [_perfect_nodes(begin, end) for begin, end in ranges]
    hashes = _read(reader, [node for group in parts for node in group])
    return [_fold([hashes[node] for node in group]) for group in parts]


def _push(
    edge: list[tuple[NodeID, bytes]],
    node: NodeID,
    digest: bytes,
    merged: list[tuple[NodeID, bytes]] | None = None,
) -> None:
    """Adds the next perfect subtree to a right edge, merging equal-level siblings.

    The parents that the merges complete are appended to ``merged``, if given.
    """
    edge.append((node, digest))
    while len(edge) > 1 and edge[-2][0].level == edge[-1][0].level:
        (left_id, left), (_, right) = edge[-2], edge[-1]
        parent = (NodeID(left_id.level + 1, left_id.index >> 1), node_hash(left, right))
        edge[-2:] = [parent]
        if merged is not None:
            merged.append(parent)


class CompactRange:
    """The right edge of the tree ``[0, size)``: enough state to append and to get the root.

    It holds one perfect subtree hash per set bit of ``size``, largest first,
    so the sequencer's state is O(log n) and can be reloaded from the node
    store at startup with ``CompactRange.load``.
    """

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        """Resumes at ``size`` from the edge hashes (as ``hashes()`` returned them)."""
        if size < 0:
            raise ValueError("size must not be negative")
        ids = _perfect_nodes(0, size)
        if len(hashes) != len(ids):
            raise ValueError(f"size {size} needs {len(ids)} edge hashes, got {len(hashes)}")
        for node, digest in zip(ids, hashes, strict=True):
            if len(digest) != HASH_SIZE:
                _check_hash(f"edge hash {node}", digest)
        self._size = size
        self._edge: list[tuple[NodeID, bytes]] = list(zip(ids, hashes, strict=True))

    @classmethod
    def load(cls, size: int, reader: NodeReader) -> CompactRange:
        """Rebuilds the edge at ``size`` from stored nodes with one read."""
        ids = _perfect_nodes(0, size)
        hashes = _read(reader, ids)
        return cls(size, [hashes[node] for node in ids])

    @property
    def size(self) -> int:
        """Leaves appended so far."""
        return self._size

    def nodes(self) -> list[tuple[NodeID, bytes]]:
        """The edge: perfect subtrees covering ``[0, size)``, largest first."""
        return list(self._edge)

    def hashes(self) -> list[bytes]:
        """Edge hashes only, the form ``CompactRange(size, hashes)`` resumes from."""
        return [digest for _, digest in self._edge]

    def append(self, leaf: bytes) -> list[tuple[NodeID, bytes]]:
        """Adds one leaf hash; returns the nodes it completed (the leaf first) for storage."""
        _check_hash("leaf hash", leaf)
        created = [(NodeID(0, self._size), leaf)]
        self._edge.append(created[0])
        # Each trailing 1 bit of the old size is a sibling that the new leaf completes.
        while len(self._edge) > 1 and self._edge[-2][0].level == self._edge[-1][0].level:
            (left_id, left), (_, right) = self._edge[-2], self._edge[-1]
            parent = (NodeID(left_id.level + 1, left_id.index >> 1), node_hash(left, right))
            self._edge[-2:] = [parent]
            created.append(parent)
        self._size += 1
        return created

    def append_block(
        self,
        leaves: bytes,
        roots_at: Iterable[int] = (),
        completed: dict[int, list[bytes]] | None = None,
    ) -> dict[int, bytes]:
        """Appends many leaf hashes at once; returns the root at each size in ``roots_at``.

        For bulk rebuilds (``verify``): ``leaves`` is the hashes concatenated,
        as a page of them comes from the database, so no per-leaf object is
        made. When the current size is a multiple of the block's largest power
        of two, the block is hashed level by level natively and its perfect
        subtrees join the edge; otherwise it falls back to ``append`` leaf by
        leaf. Only sizes inside the block (after its first leaf, up to its
        end) are answered. ``completed``, if given, receives the nodes the
        block completes (each by its last leaf: at level ``l`` the indexes
        ``start >> l .. (end >> l) - 1``), by level, as pieces of that level's
        hashes in index order: ``verify`` compares them with the stored nodes
        without a Python object per node.
        """
        if len(leaves) % HASH_SIZE:
            raise ValueError(
                f"leaf hashes {self._size}..: {len(leaves)} bytes is not whole "
                f"{HASH_SIZE}-byte hashes"
            )
        count = len(leaves) // HASH_SIZE
        start, end = self._size, self._size + count
        wanted = sorted({size for size in roots_at if start < size <= end})
        if not count:
            return {}
        if start % (1 << (count.bit_length() - 1)):
            out = {}
            for at in range(0, len(leaves), HASH_SIZE):
                for node, digest in self.append(leaves[at : at + HASH_SIZE]):
                    if completed is not None:
                        completed.setdefault(node.level, []).append(digest)
                if self._size in wanted:
                    out[self._size] = self.root()
            return out
        levels = aiaudit_native.merkle_levels(leaves)  # verify's hot spot, native

        def stored(node: NodeID) -> bytes:
            at = HASH_SIZE * (node.index - (start >> node.level))
            return levels[node.level][at : at + HASH_SIZE]

        out = {}
        for size in wanted:
            edge = list(self._edge)
            for node in _perfect_nodes(start, size):
                _push(edge, node, stored(node))
            out[size] = _fold([digest for _, digest in edge])
        merged: list[tuple[NodeID, bytes]] = []
        for node in _perfect_nodes(start, end):
            _push(self._edge, node, stored(node), merged)
        if completed is not None:
            # The levels hold the nodes inside the block; the merges, the ones above it.
            for level, row in enumerate(levels):
                completed.setdefault(level, []).append(row)
            for node, digest in merged:
                completed.setdefault(node.level, []).append(digest)
        self._size = end
        return out

    def extend(self, leaves: Iterable[bytes]) -> list[tuple[NodeID, bytes]]:
        """Appends leaf hashes in order; returns every node they completed.

        The new leaves split into maximal aligned perfect subtrees (at most two
        per level); each is hashed whole by the native core, its nodes are all
        new, and its root joins the edge, completing the parents it merges
        with. The notary's round of a few hundred leaves costs a few native
        calls instead of a Python ``append`` per leaf (14 us each).
        """
        leaves = list(leaves)
        for leaf in leaves:
            _check_hash("leaf hash", leaf)
        created: list[tuple[NodeID, bytes]] = []
        at = 0
        for block in _perfect_nodes(self._size, self._size + len(leaves)):
            width = 1 << block.level
            levels = aiaudit_native.merkle_levels(b"".join(leaves[at : at + width]))
            at += width
            for level, row in enumerate(levels):
                first = block.index << (block.level - level)
                created.extend(
                    (NodeID(level, first + k), row[k * HASH_SIZE : (k + 1) * HASH_SIZE])
                    for k in range(len(row) // HASH_SIZE)
                )
            _push(self._edge, block, levels[-1], created)
        self._size += len(leaves)
        return created

    def root(self) -> bytes:
        """MTH of ``[0, size)`` in O(log n) hashes."""
        if not self._edge:
            return EMPTY_ROOT
        return _fold(self.hashes())


def root(leaf_hashes: Iterable[bytes]) -> bytes:
    """MTH of a whole list of leaf hashes (RFC 9162 section 2.1.1)."""
    edge = CompactRange()
    edge.extend(leaf_hashes)
    return edge.root()


def root_at(size: int, reader: NodeReader) -> bytes:
    """Root hash of the tree at an earlier (or the current) ``size`` from stored nodes."""
    if size < 0:
        raise ValueError("size must not be negative")
    if size == 0:
        return EMPTY_ROOT
    return _materialise([(0, size)], reader)[0]


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose MTHs form PATH(index, D[0:size]) (RFC 9162 section 2.1.3.1).

    Walks from the root down, taking the sibling of the side holding the leaf;
    the proof lists them from the leaf up.
    """
    ranges = []
    begin, end = 0, size
    while end - begin > 1:
        split = begin + _largest_power_of_two_below(end - begin)
        if index < split:
            ranges.append((split, end))
            end = split
        else:
            ranges.append((begin, split))
            begin = split
    ranges.reverse()
    return ranges


def _consistency_ranges(old_size: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose MTHs form PROOF(m, D[0:n]) = SUBPROOF(m, D[0:n], true).

    RFC 9162 section 2.1.4.1, unrolled from the root down; the proof lists
    the deepest subtree first.
    """
    ranges = []
    begin, end, m, complete = 0, size, old_size, True
    while m != end - begin:
        split = begin + _largest_power_of_two_below(end - begin)
        if m <= split - begin:
            ranges.append((split, end))
            end = split
        else:
            ranges.append((begin, split))
            m -= split - begin
            begin = split
            complete = False
    if not complete:
        ranges.append((begin, end))
    ranges.reverse()
    return ranges


def inclusion_proof(index: int, size: int, reader: NodeReader) -> list[bytes]:
    """Audit path for leaf ``index`` in the tree of ``size`` leaves, from stored nodes."""
    return inclusion_proofs([index], size, reader)[0]


def inclusion_proofs(indexes: Sequence[int], size: int, reader: NodeReader) -> list[list[bytes]]:
    """Audit paths of ``indexes`` in the tree of ``size`` leaves, in order: one node read.

    Leaves near each other share most of their paths (500 consecutive leaves of
    50,000: 8,000 path hashes, 1,014 distinct), so the batch reads each node once
    and hashes each subtree once, where a read per path was a query per proof
    (most of ``aiaudit export --include-proofs``'s time until 2026-12-07).
    """
    for index in indexes:
        if not 0 <= index < size:
            raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    paths = [_inclusion_ranges(index, size) for index in indexes]
    ranges = list(dict.fromkeys(r for path in paths for r in path))
    hashes = dict(zip(ranges, _materialise(ranges, reader), strict=True))
    return [[hashes[r] for r in path] for path in paths]


def consistency_proof(old_size: int, size: int, reader: NodeReader) -> list[bytes]:
    """Proof that the tree of ``old_size`` leaves is a prefix of the tree of ``size`` leaves.

    ``old_size`` must be at least 1: every tree extends the empty tree, so a
    proof from size 0 proves nothing and verifiers reject it.
    """
    if not 0 < old_size <= size:
        raise ValueError(f"no consistency proof from size {old_size} to size {size}")
    if old_size == size:
        return []
    return _materialise(_consistency_ranges(old_size, size), reader)


def _check_proof_hashes(what: str, hashes: Sequence[bytes]) -> None:
    for i, digest in enumerate(hashes):
        if len(digest) != HASH_SIZE:
            raise ProofError(f"{what}[{i}] is {len(digest)} bytes, not {HASH_SIZE}")


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root_hash: bytes
) -> None:
    """Checks an inclusion proof (RFC 9162 section 2.1.3.2); raises ``ProofError`` if it fails."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    if len(leaf) != HASH_SIZE or len(root_hash) != HASH_SIZE:
        raise ProofError(f"leaf and root hashes must be {HASH_SIZE} bytes")
    _check_proof_hashes("proof", proof)
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            raise ProofError("proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("proof is shorter than the path to the root")
    if r != root_hash:
        raise RootMismatchError(r, root_hash)


def verify_consistency(
    old_size: int, size: int, old_root: bytes, root_hash: bytes, proof: Sequence[bytes]
) -> None:
    """Checks a consistency proof (RFC 9162 section 2.1.4.2); raises ``ProofError`` if it fails.

    A proof from size 0 is rejected (as transparency-dev/merkle's test data
    requires): it cannot bind anything. Equal sizes are consistent exactly when
    the proof is empty and the two roots are the same bytes.
    """
    if old_size <= 0:
        raise ProofError("a consistency proof from the empty tree proves nothing")
    if old_size > size:
        raise ProofError(f"old size {old_size} is larger than size {size}")
    if old_size == size:
        if proof:
            raise ProofError("equal sizes need an empty proof")
        if old_root != root_hash:
            raise ProofError("equal sizes but different roots")
        return
    if not proof:
        raise ProofError("empty consistency proof for different sizes")
    if len(old_root) != HASH_SIZE or len(root_hash) != HASH_SIZE:
        raise ProofError(f"root hashes must be {HASH_SIZE} bytes")
    _check_proof_hashes("proof", proof)
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("proof is longer than needed")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("proof is shorter than needed")
    if fr != old_root:
        raise ProofError("proof does not lead to the old root hash")
    if sr != root_hash:
        raise ProofError("proof does not lead to the new root hash")
