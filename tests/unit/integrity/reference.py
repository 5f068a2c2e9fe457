"""RFC 9162 section 2.1 definitions, literally, over a list of leaf hashes.

Slow (they rehash from the leaves) and independent of merkle.py's generation
code, which works from stored subtree hashes: the tests compare the two.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from aiaudit.integrity.merkle import NodeID, NodeReader


def h_node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def h_leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def split_point(n: int) -> int:
    """k: the largest power of two smaller than n."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over leaf hashes (RFC 9162 2.1.1)."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = split_point(n)
    return h_node(mth(leaves[:k]), mth(leaves[k:]))


def path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) (RFC 9162 2.1.3.1)."""
    n = len(leaves)
    if n == 1:
        return []
    k = split_point(n)
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def subproof(m: int, leaves: Sequence[bytes], whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) (RFC 9162 2.1.4.1)."""
    n = len(leaves)
    if m == n:
        return [] if whole else [mth(leaves)]
    k = split_point(n)
    if m <= k:
        return [*subproof(m, leaves[:k], whole), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


def proof(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) (RFC 9162 2.1.4.1)."""
    return subproof(m, leaves, True)


class CountingReader:
    """Wraps a node reader and records what proofs ask of it."""

    def __init__(self, inner: NodeReader) -> None:
        self.inner = inner
        self.calls = 0
        self.nodes: list[NodeID] = []

    def read_nodes(self, ids: Sequence[NodeID]) -> Sequence[bytes]:
        self.calls += 1
        self.nodes.extend(ids)
        return self.inner.read_nodes(ids)
