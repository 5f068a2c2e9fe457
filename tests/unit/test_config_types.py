"""A list, a mapping or YAML's true/false where a text or a path belongs is refused, named.

Each was taken as its Python form until 2026-12-07: ``oidc_audience: [aiaudit, portal]``
became the audience ``['aiaudit', 'portal']``, which no token names (every caller
refused, the start-up silent), and ``log_level: off`` was refused as ``'False'``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from aiaudit.common import config

INTERNAL = {"sections", "env", "only", "origin"}
WRONG = {"list": ["a", "b"], "mapping": {"a": "b"}, "true": True, "false": False}
SAID = {
    "list": "must be one text, not a list",
    "mapping": "must be one text, not a mapping",
    "true": "must be a text, not YAML's true: quote it",
    "false": "must be a text, not YAML's false: quote it",
}


def _texts() -> list[tuple[str, str]]:
    """(section or "", name) of every setting that is a text or a path."""
    found = []
    for section, cls in [("", config.Settings)] + [
        (n, config.section_settings(n)) for n in config.SECTIONS
    ]:
        for f in dataclasses.fields(cls):
            kind = f.type if isinstance(f.type, str) else f.type.__name__
            if f.name not in INTERNAL and (kind == "str" or "Path" in kind):
                found.append((section, f.name))
    return found


TEXTS = _texts()


def test_every_kind_of_setting_is_covered() -> None:
    """The settings' kinds this module knows: a new kind must say how it is checked."""
    assert {"address", "oidc_audience", "api_keys_file"} <= {n for s, n in TEXTS if not s}
    assert any(s == "integrity" for s, _ in TEXTS)


@pytest.mark.parametrize("wrong", list(WRONG))
@pytest.mark.parametrize(("section", "name"), TEXTS, ids=[f"{s}.{n}" for s, n in TEXTS])
def test_a_text_setting_given_another_type_is_refused_naming_it(
    tmp_path: Path, section: str, name: str, wrong: str
) -> None:
    value = WRONG[wrong]
    body = {section: {name: value}} if section else {name: value}
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(body))
    with pytest.raises(config.ConfigError) as err:
        settings = config.load(config_file, env={})
        config.section(settings, section, config.section_settings(section))
    where = f"{section}.{name}" if section else name
    assert str(err.value) == f"setting {where!r}: {value!r} is invalid: {SAID[wrong]}"


def test_a_number_stays_a_text_setting(tmp_path: Path) -> None:
    """A key named by digits (``content_vault_key: 2024``) is meant as its text."""
    config_file = tmp_path / "config.yaml"
    config_file.write_text("content_vault_key: 2024\n")
    assert config.load(config_file, env={}).content_vault_key == "2024"


def test_the_environment_is_text_and_taken_as_before() -> None:
    """A variable is always text: ``[a]`` or ``true`` there is that text."""
    settings = config.load(env={"AIAUDIT_CONTENT_VAULT_KEY": "true"})
    assert settings.content_vault_key == "true"
