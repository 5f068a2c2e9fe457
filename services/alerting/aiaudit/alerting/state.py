"""What the engine keeps between two batches of a log, and when it may trust it.

The database stays the only truth: window state and alerts are written in the
batch's transaction as before. Keeping them in memory only spares reading
them back, and each is trusted only while nobody else can have changed it:

- window series, while the log's cursor is still where this engine's own last
  commit put it (no other replica has processed a batch since: only the
  batch that advances a cursor writes that log's windows) and the tenant's
  rule rows are unchanged (``DeleteRule`` deletes a rule's windows);
- open alerts per rule and dedup key (``None``: none open), while the tenant's change
  head is still the number this engine last committed or read under its lock
  (every writer of alerts, any replica's engine and acknowledge/resolve,
  takes that lock and moves the head).

Evaluation changes kept series and alerts in place, so a batch takes the
state out before it starts and puts it back only after its commit: a batch
that fails leaves nothing behind, and the next one reads the database.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field

import aiaudit_native

from aiaudit.alerting.model import Alert

MAX_OPEN_KEYS = 10_000
"""Dedup keys remembered per log; beyond it the map starts over (one lookup each again)."""


@dataclass
class LogState:
    """State of one log as of this engine's last commit on it."""

    position: int
    """The cursor after that commit."""
    rules: Hashable
    """Version of the tenant's rule rows the windows were evaluated with."""
    windows: aiaudit_native.WindowState
    windows_saved: int
    """The position the window samples in the database are as of (the windows cursor)."""
    head: int | None = None
    """The tenant's change head as last seen under its lock (None: unknown)."""
    open_alerts: dict[tuple[str, str], Alert | None] = field(default_factory=dict)
    """By (rule id, dedup key)."""


class StateCache:
    """Per log state of the most recently processed logs (least recently used go first)."""

    def __init__(self, max_logs: int) -> None:
        """Keeps at most ``max_logs`` logs (window series can be large)."""
        self.max_logs = max_logs
        self._logs: OrderedDict[str, LogState] = OrderedDict()

    def take(self, log_id: str) -> LogState | None:
        """Removes and returns the state of a log (the caller puts it back after commit)."""
        return self._logs.pop(log_id, None)

    def put(self, log_id: str, state: LogState) -> None:
        """Keeps the state committed for a log."""
        if len(state.open_alerts) > MAX_OPEN_KEYS:
            state.open_alerts = {}
        self._logs[log_id] = state
        while len(self._logs) > self.max_logs:
            self._logs.popitem(last=False)


def snapshot(a: Alert) -> Alert:
    """A copy of an alert that later in-place folding of the kept one does not change."""
    return dataclasses.replace(
        a,
        event_ids=list(a.event_ids),
        evidence=list(a.evidence),
        labels=dict(a.labels),
        extra=dict(a.extra),
    )
