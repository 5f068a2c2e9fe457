"""``integrity.classification_required_since`` reads RFC 3339 as written, and only it.

The boundary decides what ``verify`` and ``VerifyEvent`` call damage. An offset of
60 minutes or more is no RFC 3339 offset, but ``fromisoformat`` read ``+05:60`` as
``+06:00``: the setting was taken, as another instant than any written. RFC 3339
allows ``t`` and ``z`` in lower case, which were refused (exit 2 on a time written as
the standard allows).
"""

from __future__ import annotations

import datetime as dt

import pytest

from aiaudit.common.config import ConfigError
from aiaudit.integrity.settings import required_since

SETTING = "integrity.classification_required_since"


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2026-12-07t10:00:00z", dt.datetime(2026, 12, 7, 10, tzinfo=dt.UTC)),
        ("2026-12-07T10:00:00z", dt.datetime(2026, 12, 7, 10, tzinfo=dt.UTC)),
        ("2026-12-07t10:00:00+02:00", dt.datetime(2026, 12, 7, 8, tzinfo=dt.UTC)),
        ("2026-12-07T10:00:00-05:59", dt.datetime(2026, 12, 7, 15, 59, tzinfo=dt.UTC)),
    ],
)
def test_a_time_as_rfc_3339_writes_it_reads_as_its_instant(text: str, instant: dt.datetime) -> None:
    assert required_since(text) == instant


@pytest.mark.parametrize(
    "text", ["2026-12-07T10:00:00+05:60", "2026-12-07T10:00:00-00:99", "2026-12-07T10:00:00+24:00"]
)
def test_an_offset_that_is_no_rfc_3339_offset_is_refused_naming_the_setting(text: str) -> None:
    with pytest.raises(ConfigError) as refused:
        required_since(text)
    assert f"setting '{SETTING}': {text!r} is not an RFC 3339 time with its UTC offset" in str(
        refused.value
    )
