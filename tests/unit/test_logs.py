"""Structured logs: one JSON object per line on whatever stderr is at the time."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from aiaudit.common import logs


def test_records_go_to_the_current_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    """A command run in-process swaps and closes stderr; the next record must not fail on the
    closed stream (it printed "--- Logging error ---" into whatever came next)."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    first, second = io.StringIO(), io.StringIO()
    try:
        monkeypatch.setattr(sys, "stderr", first)
        logs.configure("INFO")
        logging.getLogger("aiaudit.test").info("one", extra={"n": 1})
        first.close()
        monkeypatch.setattr(sys, "stderr", second)
        logging.getLogger("aiaudit.test").warning("two")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    # This test's logger only: a thread an earlier test left running logs to stderr too.
    records = [json.loads(line) for line in second.getvalue().splitlines()]
    (record,) = [r for r in records if r["logger"] == "aiaudit.test"]
    assert (record["level"], record["message"]) == ("WARNING", "two")
