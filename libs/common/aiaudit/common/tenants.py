"""What a tenant id (a log id) may be, checked wherever one arrives.

Ingest refuses events of any other; the read RPCs of search, integrity and
alerting must too, because each read appends an access record to the named
tenant's log: an id holding a tab once made a log whose checkpoint note
could not be written (signing stopped for every tenant), and ``../x`` a
checkpoint export outside its directory.
"""

from __future__ import annotations

import re

TENANT_ID = re.compile(r"[a-z0-9_-]{1,64}")
RULE = "1-64 characters of [a-z0-9_-]"


def valid(tenant: str) -> bool:
    """Whether ``tenant`` is a tenant id."""
    return TENANT_ID.fullmatch(tenant) is not None
