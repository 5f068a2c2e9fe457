"""The one RFC 3339 reading of search filters, alerting filters and the alerting CLI."""

from __future__ import annotations

import datetime as dt

import pytest

from aiaudit.common import rfc3339

UTC = dt.UTC


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2026-03-01T13:00:00Z", dt.datetime(2026, 3, 1, 13, tzinfo=UTC)),
        ("2026-03-01t13:00:00z", dt.datetime(2026, 3, 1, 13, tzinfo=UTC)),  # RFC 3339 5.6
        ("2026-03-01T14:00:00+01:00", dt.datetime(2026, 3, 1, 13, tzinfo=UTC)),
        ("2026-03-01T13:00:00.123456Z", dt.datetime(2026, 3, 1, 13, 0, 0, 123456, tzinfo=UTC)),
        ("2026-03-01T13:00:00.1234560Z", dt.datetime(2026, 3, 1, 13, 0, 0, 123456, tzinfo=UTC)),
        ("2026-03-01", dt.datetime(2026, 3, 1, tzinfo=UTC)),  # a date alone: midnight UTC
        ("9999-12-31T23:59:59.999999Z", dt.datetime.max.replace(tzinfo=UTC)),  # the ends
        ("0001-01-01T00:00:00-00:01", dt.datetime(1, 1, 1, 0, 1, tzinfo=UTC)),
    ],
)
def test_instants_come_back_in_utc(text: str, instant: dt.datetime) -> None:
    got = rfc3339.parse(text)
    assert got == instant and got.utcoffset() == dt.timedelta(0), text


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("2026-03-01T13:00:00", "needs a time zone"),
        ("2026-03-01T13:00:00.5", "needs a time zone"),  # a fraction does not hide the cause
        ("2026-03-01T13:00:00.0000001Z", "finer than a microsecond"),
        ("2026-w09-1", "not an RFC 3339 timestamp"),  # week dates: fromisoformat takes them
        ("20260301T130000Z", "not an RFC 3339 timestamp"),  # the compact form too
        ("2026-03-01 13:00:00Z", "not an RFC 3339 timestamp"),
        ("2026-03-01T13Z", "not an RFC 3339 timestamp"),
        ("2026-02-30T13:00:00Z", "not an RFC 3339 timestamp"),
        ("yesterday", "not an RFC 3339 timestamp"),
        # Within years 1 to 9999 as written, outside them in UTC: was an OverflowError.
        ("9999-12-31T23:59:59-23:59", "out of range"),
        ("9999-12-31T23:00:00.000001-01:00", "out of range"),
        ("0001-01-01T00:00:00+00:01", "out of range"),
    ],
)
def test_other_forms_are_refused_saying_why(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        rfc3339.parse(text)
