"""``aiaudit serve`` settles the garbage collector before serving (``aiaudit.common.collector``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from aiaudit.common import collector

# Runs `aiaudit serve` in the embedded mode; when it announces its address, reports the
# collector's state on stderr and stops the server as an operator would (SIGTERM).
_SERVE = """
import gc, os, signal, sys
from aiaudit.cli import main

class Announced:
    def write(self, text):
        if "serving on" in text:
            print("collector", gc.get_threshold()[0], gc.get_freeze_count() > 0, file=sys.stderr)
            os.kill(os.getpid(), signal.SIGTERM)
        return len(text)

    def flush(self):
        pass

sys.stdout = Announced()
sys.exit(main.main(["serve", "--data-dir", sys.argv[1], "--address", "127.0.0.1:0"]))
"""


def test_serve_freezes_start_up_and_collects_the_young_generation_less_often(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIAUDIT_")}
    done = subprocess.run(
        [sys.executable, "-c", _SERVE, str(tmp_path / "data")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    reported = [line for line in done.stderr.splitlines() if line.startswith("collector ")]
    assert reported == [f"collector {collector.YOUNG_THRESHOLD} True"], done.stderr[-2000:]
    assert done.returncode == 0, done.stderr[-2000:]
