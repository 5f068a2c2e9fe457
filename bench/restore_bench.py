"""Restore benchmark: stored events back to protobuf, against the exact parser.

Every reader of the store (search pages, GetEvent, exports, the alerting
engine, integrity checks) rebuilds events with ``aiaudit.common.restore``.
Baseline, in the same process: ``canonical.restore`` (``json_format``), which
gives the same messages. Events: the search benchmark's (small interactions),
with their content and erased; CPU time of this thread, best of 7 passes.

Usage: ``.venv/bin/python -m bench.restore_bench [--events N]`` (no backend needed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from collections.abc import Callable

from aiaudit.common import canonical, restore
from aiaudit.common.store.prepare import prepare
from bench.search_bench import make_event

Rows = list[tuple[bytes, dict[str, str] | None]]


def per_event_us(fn: Callable[[bytes, dict[str, str] | None], object], rows: Rows) -> float:
    best = float("inf")
    for _ in range(7):
        start = time.thread_time()
        for body, content in rows:
            fn(body, content)
        best = min(best, time.thread_time() - start)
    return best / len(rows) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    now = dt.datetime.now(dt.UTC)
    committed = [prepare(make_event(i), now).committed for i in range(args.events)]
    for label, rows in (
        ("with content", [(c.canonical, c.content) for c in committed]),
        ("erased", [(c.canonical, None) for c in committed]),
    ):
        assert all(restore.restore(b, c) == canonical.restore(b, c) for b, c in rows[:100])
        fast = per_event_us(restore.restore, rows)
        exact = per_event_us(canonical.restore, rows)
        print(
            f"{label:13s} restore {fast:6.1f} us/event | canonical.restore {exact:6.1f} us/event"
            f" | {exact / fast:4.1f}x"
        )


if __name__ == "__main__":
    main()
