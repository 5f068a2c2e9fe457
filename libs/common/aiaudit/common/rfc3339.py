"""RFC 3339 timestamps as filters and flags take them, parsed one way in every service.

A date alone is midnight UTC; otherwise a time zone is required (``Z`` or
``+hh:mm``: without one, local time and UTC are both plausible readings);
``T`` and ``Z`` may be lower case (RFC 3339 section 5.6); at most six
fraction digits, the precision events are kept at. Python's
``fromisoformat`` alone takes more (week dates, compact forms, any
separator), and refused a lowercase ``z``. An instant that only its offset
keeps within years 1 to 9999 (``9999-12-31T23:59:59-01:00``) is a ValueError
too: Python's OverflowError there was answered ``UNKNOWN`` by every service.
"""

from __future__ import annotations

import datetime as dt
import re

_FORM = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[Tt]\d{2}:\d{2}:\d{2}(?:\.(?P<fraction>\d+))?(?:[Zz]|[+-]\d{2}:\d{2}))?"
)
EXAMPLE = "2026-03-01T12:00:00Z"


def parse(text: str) -> dt.datetime:
    """The instant, in UTC; ValueError saying what is wrong."""
    form = _FORM.fullmatch(text)
    if form is None and _FORM.fullmatch(text[:19] + "Z") is not None:
        raise ValueError(f"timestamp {text!r} needs a time zone (Z or +hh:mm)")
    if form is None:
        raise ValueError(f"{text!r} is not an RFC 3339 timestamp ({EXAMPLE})")
    if (form["fraction"] or "").rstrip("0")[6:]:
        raise ValueError(f"timestamp {text!r} is finer than a microsecond")
    try:
        when = dt.datetime.fromisoformat(text.upper())
    except ValueError:
        raise ValueError(f"{text!r} is not an RFC 3339 timestamp ({EXAMPLE})") from None
    if when.tzinfo is None:  # a date alone: the pattern allows no other zone-less form
        when = when.replace(tzinfo=dt.UTC)
    try:
        return when.astimezone(dt.UTC)
    except OverflowError:  # 9999-12-31T23:59:59-01:00 is in year 10000 in UTC
        raise ValueError(
            f"timestamp {text!r} is out of range: in UTC it falls outside years 0001 to 9999"
        ) from None
