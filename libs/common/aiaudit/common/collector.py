"""Python's cyclic garbage collector, set for a long-running server process."""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
"""Allocations (less deallocations) of tracked objects between two young collections (700)."""


def settle() -> None:
    """Collects, freezes what start-up built, and collects the young generation less often.

    What start-up built (descriptors, table metadata, handlers, rules) lives as
    long as the process: left out of every full collection, the pauses that
    otherwise land in the middle of requests are shorter (search p99). And
    consumers of the log build tens of thousands of rows a second: collected
    every 700 allocations, the collector took about a sixth of the alerting
    engine's CPU (``bench/HISTORY.md``). Objects are still freed by their
    reference counts at once; only garbage cycles wait longer.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])
