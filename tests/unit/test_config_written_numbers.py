"""A text setting given a number in the file is the text written, as its variable would be.

The file's number was taken as its Python form: ``oidc_audience: 0123`` was the audience
``123`` and ``1.10`` was ``1.1``, ``.inf`` ``inf``, which no token names, while
``AIAUDIT_OIDC_AUDIENCE=0123`` was ``0123`` (review, 2026-12-07). A number setting still
reads the same digits as before (``0100`` is 100).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aiaudit.common import config


@pytest.mark.parametrize("written", ["0123", "12345", "1.10", "1.0", ".inf", "-07", "1e3"])
def test_a_text_setting_is_the_number_as_written(tmp_path: Path, written: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"oidc_audience: {written}\ningest:\n  content_retention_days: 0100\n")
    settings = config.load(path, env={}, serving=False)
    assert settings.oidc_audience == written
    assert (
        config.load(None, env={"AIAUDIT_OIDC_AUDIENCE": written}, serving=False).oidc_audience
        == written
    )
    assert settings.sections["ingest"]["content_retention_days"] == 100


def test_a_number_setting_holds_a_plain_number(tmp_path: Path) -> None:
    """The written text stays with the file's value, not in the settings served."""
    path = tmp_path / "config.yaml"
    path.write_text("max_batch_events: 0100\nshutdown_grace_seconds: 2.50\n")
    settings = config.load(path, env={}, serving=False)
    assert type(settings.max_batch_events) is int and settings.max_batch_events == 100
    assert type(settings.shutdown_grace_seconds) is float
