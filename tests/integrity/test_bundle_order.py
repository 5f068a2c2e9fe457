"""A bundle's lines out of order: verified in n log n time, duplicates still named.

``verify --bundle`` keeps each log's sequences as ranges (16 bytes a range, not an int a
line). A sequence starting a range between two others was inserted into the arrays,
moving every range after it: lines out of order took quadratic time (a review of
2026-12-07: 200,000 lines at every other sequence, in descending order, 40 s in that
class alone; 400,000, 155 s; the Go verifier keeps a map). Such sequences now wait and are
merged in batches.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from aiaudit.integrity.bundle import _Ranges
from tests.integrity.test_cli import make_bundle, write
from tests.integrity.test_go_verifier import both


def _adding(order: list[int]) -> float:
    """Seconds to add ``order`` to an empty set of ranges, each found new."""
    ranges = _Ranges()
    start = time.perf_counter()
    for seq in order:
        assert not ranges.add(seq)
    took = time.perf_counter() - start
    assert len(ranges) == len(order)
    return took


def test_lines_out_of_order_cost_about_what_lines_in_order_cost() -> None:
    """200,000 sequences at every other number, descending (each a new range before all
    the others), against the same ascending: 40 s against 0.5 s before, about 2 s now."""
    ascending = [2 * i for i in range(200_000)]
    slowest = _adding(ascending[::-1])
    assert slowest < 12 * _adding(ascending) + 1.0, slowest


def test_a_line_repeated_out_of_order_is_a_duplicate_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path
) -> None:
    """Sequences that wait to be merged are still found again: 6, 4, 2, 0 each start a
    range before the others, and the second 4 is named."""
    lines = make_bundle(tmp_path, 8)
    path = write(tmp_path / "b.jsonl", [lines[6], lines[4], lines[2], lines[0]])
    assert both(go_verifier, capsys, path)[0] == 0
    path = write(tmp_path / "b.jsonl", [lines[6], lines[4], lines[2], lines[0], lines[4]])
    assert both(go_verifier, capsys, path) == (
        1,
        ["line 5 event e-4: duplicate: line 2 has the same log and sequence"],
    )
