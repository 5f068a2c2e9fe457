"""Every ``AIAUDIT_*`` variable the repository sets or documents is one the settings take.

Unknown ``AIAUDIT_*`` variables stop ``serve`` and every command (exit 2): one
that the chart, a script, the Dockerfile, the README or the tests use and the
settings do not know would stop them all, in CI or in a cluster.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aiaudit.alerting.settings import AlertingSettings
from aiaudit.common import config
from aiaudit.ingest.settings import IngestSettings
from aiaudit.integrity.settings import IntegritySettings
from aiaudit.search.settings import SearchSettings

REPO = Path(__file__).resolve().parents[2]
SECTIONS: dict[str, type] = {
    "ingest": IngestSettings,
    "integrity": IntegritySettings,
    "search": SearchSettings,
    "alerting": AlertingSettings,
}
MISSPELT_HERE = {REPO / "tests/unit/test_config.py", REPO / "tests/e2e/test_cli_errors.py"}
"""Files that spell names wrong on purpose (the tests of the refusal)."""


def _used() -> set[str]:
    """``AIAUDIT_*`` names in the repository's sources, scripts, chart and documents."""
    name = re.compile(r"\bAIAUDIT_[A-Z0-9_]*[A-Z0-9]\b")
    roots = ["charts", "scripts", "bench", "cli", "libs", "services", "tests", "interop"]
    files = [REPO / "Dockerfile", REPO / "Tiltfile", REPO / "README.md"]
    for root in roots:
        files += [p for p in (REPO / root).rglob("*") if p.is_file() and p not in MISSPELT_HERE]
    found: set[str] = set()
    for f in files:
        try:
            found |= set(name.findall(f.read_text()))
        except UnicodeDecodeError:
            continue
    # The chart's "AIAUDIT_%s_DATABASE_URL", of each component with a `database:` value.
    return found | {
        f"AIAUDIT_{s.upper()}_DATABASE_URL" for s in ("search", "integrity", "alerting")
    }


def _refusal(variable: str) -> str:
    """The message refusing ``variable`` as no setting, or "" if it is taken."""
    env = {variable: "x"}
    try:
        settings = config.load(env=env)
        for section, cls in SECTIONS.items():
            if variable.startswith(f"AIAUDIT_{section.upper()}_"):
                config.section(settings, section, cls)
    except config.ConfigError as exc:
        return str(exc) if "no such setting" in str(exc) else ""  # a bad value "x" is fine
    return ""


def test_names_are_found() -> None:
    used = _used()
    assert {"AIAUDIT_DATABASE_URL", "AIAUDIT_TEST_PG_URL", "AIAUDIT_PG_PORT"} <= used


@pytest.mark.parametrize("variable", sorted(_used()))
def test_every_name_the_repository_uses_is_taken(variable: str) -> None:
    assert _refusal(variable) == ""
