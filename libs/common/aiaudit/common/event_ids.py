"""What an event id may be, checked wherever one arrives.

Ingest refuses events with any other id (the service's own records use
``access-``, ``erasure-``, ``retention-`` and ``rule-change-`` UUIDs), so a
lookup by another finds nothing: it is refused up front instead, with the rule.
On PostgreSQL an id holding U+0000 failed the lookup's statement, answered as
UNKNOWN (search) or UNAVAILABLE, "retry" (integrity), which no retry mends.
"""

from __future__ import annotations

import re

EVENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
RULE = "1-128 characters of [A-Za-z0-9._:-]"


def valid(event_id: str) -> bool:
    """Whether ``event_id`` is an event id."""
    return EVENT_ID.fullmatch(event_id) is not None
