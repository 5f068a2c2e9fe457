"""Builds and runs ``interop/go-verifier``: our evidence checked with other people's code.

The Go program verifies signed notes with golang.org/x/mod/sumdb/note and
proofs with github.com/transparency-dev/{formats,merkle}; see its own comment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "interop" / "go-verifier"
BINARY = REPO / ".tools" / "bin" / "aiaudit-go-verifier"


def build() -> Path:
    """Builds the verifier (Go modules from the module proxy, pinned by its go.sum)."""
    go = shutil.which("go") or "/usr/local/go/bin/go"  # where the machine's Go lives
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly"}
    subprocess.run([go, "build", "-o", str(BINARY), "."], cwd=SOURCE, env=env, check=True)
    return BINARY


def run(binary: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """One run of the verifier: its exit code and what it printed."""
    return subprocess.run(
        [str(binary), *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )
