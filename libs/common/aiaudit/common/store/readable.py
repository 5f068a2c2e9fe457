"""The part of a batch read that reads back, for consumers that hold a log at a damaged row.

The search indexer and the alerting engine read a log in batches. A damaged
row in a batch holds the log at that row, not at the start of its batch, so
the events before it are still indexed and evaluated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import sqlalchemy as sa

from aiaudit.common.restore import DamagedStoredEventError

T = TypeVar("T")

DAMAGED_ROW: tuple[type[Exception], ...] = (ValueError, TypeError)
"""What the store's reads (``read_log``, ``read_event_ids``) raise for a damaged row.

Measured on SQLite and PostgreSQL, content sealed or not: sealed content that
does not open, SealError (DamagedKeyError for its data key); content JSON that
does not parse or is not a JSON object of strings, DamagedContentError (naming
the event; until 2026-12-06 orjson.JSONDecodeError, and content that was no
object read as erased or failed a batch's restore); on SQLite, a binary column (content,
salt, canonical form, leaf hash) rewritten as text, StoredAsTextEventError
(naming the event and the columns), and a receive time that is no timestamp,
ValueError. A canonical form that does not parse reaches its reader as bytes
(each consumer parses it). An outage of the store is SQLAlchemy's
(``OperationalError``, any ``DBAPIError``: a lost connection, a refused login
or permission) or KekError (no KEK to reach, or none configured; also content
rewritten to look sealed in a store read without a KEK, which cannot be told
from a store sealed under a KEK this process lacks), neither of these: it
pauses the consumer. Until 2026-12-06 only SealError was damage to the search
indexer (content JSON that did not parse paused every tenant's indexing), and
a column stored as text was a TypeError or, no UTF-8, an OperationalError.
"""


def readable_prefix(
    read: Callable[[int], Sequence[T]], log_id: str, start: int, limit: int, failed: Exception
) -> tuple[list[T], Exception | None]:
    """The longest prefix of a batch that reads, and the error of the row after it.

    ``read(n)`` reads the log's ``n`` entries from ``start``; ``failed`` is what
    ``read(limit)`` raised. The damaged row is found from the sequence the
    error names (a column stored as text), else by halves after trying the
    first entry alone (a held log: its first entry is the damaged one). A read
    cut by its byte budget before the damaged row comes back as it is, with no
    error: the next batch starts at the cut. Store errors propagate.
    """
    low, high, guess = 0, limit, 1
    if isinstance(failed, DamagedStoredEventError) and failed.log_id == log_id:
        high = max(1, min(high, failed.sequence - start + 1))
        guess = high - 1
    good: list[T] = []
    while high - low > 1:
        middle = guess if low < guess < high else (low + high) // 2
        try:
            got = read(middle)
        except sa.exc.SQLAlchemyError:
            raise
        except DAMAGED_ROW as exc:
            high, failed = middle, exc
            continue
        if len(got) < middle:
            return list(got), None
        low, good = middle, list(got)
    return good, failed
