"""``aiaudit aggregate``'s table: one page of an Aggregate answer for a terminal.

A row per group (its keys, its count, then each metric's statistics and
percentiles), aligned under a header naming the ``group_by`` fields, then the
histogram's buckets. Keys are event data, so each is made visible like the
values ``aiaudit search`` prints; an empty key (no value) shows as ``-``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aiaudit.search.v1 import search_service_pb2 as pb

_STATS = ("count", "min", "max", "avg", "sum")


def number(value: float) -> str:
    """``3`` for an integral value, else the shortest text that reads back the same."""
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def group_lines(
    page: pb.AggregateResponse,
    group_by: Sequence[str],
    metrics: Sequence[str],
    percentiles: Sequence[float],
    visible: Callable[[str], str],
    header: bool,
) -> list[str]:
    """The page's groups as aligned rows, under a header line when ``header``.

    A column is at least as wide as its header, printed or not, so the rows of
    the pages after the first (which come without one) stay under the first's.

    The percentile columns are the ones asked for, not a group's: a group none of
    whose events hold a metric has no statistics of it (both backends), and shows
    its count as 0 and the rest as ``-``.
    """
    keys = sorted({percentile_key(p) for p in percentiles}, key=float)
    names = [*group_by, "count"]
    for metric in metrics:
        names += [f"{metric}.{s}" for s in _STATS] + [f"{metric}.p{p}" for p in keys]
    rows = [names]
    for bucket in page.buckets:
        row = [visible(k) or "-" for k in bucket.keys] + [str(bucket.count)]
        for metric in metrics:
            stats = bucket.stats.get(metric)
            if stats is None:
                row += ["0"] + ["-"] * (len(_STATS) - 1 + len(keys))
                continue
            row += [str(stats.count)] + [number(getattr(stats, s)) for s in _STATS[1:]]
            row += [number(stats.percentiles[p]) if p in stats.percentiles else "-" for p in keys]
        rows.append(row)
    lines = _aligned(rows, texts=len(group_by))
    return lines if header else lines[1:]


def percentile_key(p: float) -> str:
    """A percentile's key in :class:`pb.Stats`: its text form, ``"99"``, ``"99.9"``."""
    return str(int(p)) if p.is_integer() else repr(p)


def histogram_lines(buckets: Sequence[pb.TimeBucket]) -> list[str]:
    """The histogram's time buckets (a first page's), under their header."""
    rows = [["occurred_time", "count"]]
    for bucket in buckets:
        start = bucket.start_time.ToDatetime().isoformat(timespec="seconds") + "Z"
        rows.append([start, str(bucket.count)])
    return _aligned(rows, texts=1)


def _aligned(rows: list[list[str]], texts: int) -> list[str]:
    """Columns two spaces apart: the first ``texts`` to the left, numbers to the right."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(w) if i < texts else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
