"""``aiaudit --version`` names the version pyproject.toml gives the installed package."""

from __future__ import annotations

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
