"""``aiaudit --version`` names the version pyproject.toml gives the installed package."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.conftest import subprocess_env

ROOT = Path(__file__).resolve().parents[2]


def test_version_is_the_packages() -> None:
    """The script as installed, without a subcommand (every other use needs one)."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    script = Path(sys.executable).parent / "aiaudit"
    done = subprocess.run(
        [str(script), "--version"],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, f"aiaudit {version}\n", "")


def _version_to(stdout: int) -> tuple[int, str]:
    """``aiaudit --version`` writing to ``stdout``: its exit code and stderr."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "aiaudit"), "--version"],
        env=subprocess_env(),
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stderr


def test_a_version_not_written_is_not_a_success() -> None:
    """A full disk is one line and exit 1, a reader gone exit 1 quietly, as for every
    other command's output. Until 2026-12-07 argparse's own action dropped the write's
    error: nothing written, exit 0 (review)."""
    with open("/dev/full", "wb") as full:
        assert _version_to(full.fileno()) == (1, "aiaudit: [Errno 28] No space left on device\n")
    read, write = os.pipe()
    os.close(read)
    try:
        assert _version_to(write) == (1, "")
    finally:
        os.close(write)
