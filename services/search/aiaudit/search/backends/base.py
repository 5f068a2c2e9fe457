"""What the indexer and the query API need from a search backend.

A backend stores :class:`~aiaudit.search.document.Document` s and keeps the
indexer's position per log, and answers searches and aggregations over the
trees of :mod:`aiaudit.search.language`. Both adapters pass one contract suite
(tests/search).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from aiaudit.search.catalogue import Field
from aiaudit.search.document import Document
from aiaudit.search.language import Node, SortKey


class BackendUnavailableError(RuntimeError):
    """The backend cannot be reached or refused the request; retry later."""


class DocumentRefusedError(Exception):
    """The backend refused a document for good (not an outage: retrying it now would not help).

    What a write indexed before it stays, and the log's position was moved up
    to it: ``position`` is the log sequence the refused document reflects (an
    event's own, or that of the erasure record that rewrote it). The indexer
    holds that log there and goes on with the others.
    """

    def __init__(self, position: int, event_id: str, reason: str, count: int) -> None:
        """``count``: documents of the write refused (``event_id``'s was the earliest)."""
        more = f" and {count - 1} later one(s)" if count > 1 else ""
        super().__init__(f"the backend refused event {event_id!r}{more}: {reason}")
        self.position = position
        self.event_id = event_id


class QueryRejectedError(ValueError):
    """The backend refused a well-formed query as too large (clauses, buckets)."""


class ExpensiveQueryRefusedError(QueryRejectedError):
    """The cluster refuses expensive queries (a prefix or a script) and the query needs one.

    Not a size: the filter's prefix (``"gpt-4o*"``) or a number past 2**53 compared by
    script, on a cluster with ``search.allow_expensive_queries: false``.
    """


class TooManyBucketsError(QueryRejectedError):
    """An aggregation would produce more buckets than allowed.

    ``part`` is the request field that made them: ``group_by`` (the groups) or
    ``histogram.interval`` (the time buckets). An aggregate asking for both
    named ``histogram.interval`` whichever overflowed (until 2026-12-06).
    """

    def __init__(self, message: str, part: str) -> None:
        """``part``: GROUPS or TIME_BUCKETS."""
        super().__init__(message)
        self.part = part


GROUPS = "group_by"
TIME_BUCKETS = "histogram.interval"


MAX_BUCKETS = 10_000


@dataclass(frozen=True)
class SearchSpec:
    """One page of a search."""

    tenant: str
    where: Node | None
    order: tuple[SortKey, ...]
    limit: int
    after: tuple[int, ...] | None = None
    """Sort values of the last hit of the previous page (keyset pagination)."""
    highlight: bool = False
    below_sequence: int | None = None
    """Only events with a smaller sequence (an export's snapshot)."""
    count: bool = True


@dataclass(frozen=True)
class Hit:
    """One matching event."""

    sequence: int
    sort: tuple[int, ...]
    highlights: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Page:
    """Hits of one page and the total number of matches."""

    hits: list[Hit]
    total: int


GroupKey = tuple[str | None, ...]
"""A group's keys in ``group_by`` order, None for a missing value, which orders first."""


@dataclass(frozen=True)
class AggregateSpec:
    """Counts per group, statistics of numeric fields, an optional time histogram."""

    tenant: str
    where: Node | None
    group_by: tuple[Field, ...]
    metrics: tuple[Field, ...]
    percentiles: tuple[float, ...]
    interval_seconds: int | None
    page_size: int = 0
    """Groups of one page, in the order of their keys (:data:`GroupKey`); 0: every group
    (at most :data:`MAX_BUCKETS`), the largest first. A page answers one group more when
    there is one, which says a next page starts after its last group."""
    after: GroupKey | None = None
    """With ``page_size``: only the groups after this one (the previous page's last)."""
    below_sequence: int | None = None
    """Only events with a smaller sequence (the snapshot the pages of an aggregate share)."""


@dataclass(frozen=True)
class Stats:
    """Statistics of one numeric field in one group."""

    count: int
    min: float
    max: float
    avg: float
    sum: float
    percentiles: dict[float, float]


@dataclass(frozen=True)
class Bucket:
    """One group: its keys (``""`` for a missing value), count and statistics."""

    keys: tuple[str, ...]
    count: int
    stats: dict[str, Stats]
    order: GroupKey = ()
    """Its keys as the backend orders groups (None for a missing value, first): where
    the next page starts."""


@dataclass(frozen=True)
class Aggregation:
    """The answer to an AggregateSpec."""

    buckets: list[Bucket]
    time_buckets: list[tuple[int, int]]
    """(bucket start in microseconds, count), in time order."""


class SearchBackend(Protocol):
    """A place documents are indexed in and searched."""

    name: str
    visible_on_write: bool
    """Whether written documents are searchable at once (else :meth:`make_visible`)."""

    def positions(self) -> dict[str, int]:
        """The indexer's position (entries indexed) per log."""
        ...

    def building(self) -> dict[str, int] | None:
        """Per log the index is still building, the position it must reach; None: not planned.

        A new (or rebuilt) index is built from sequence 0 of every log: a log's
        reads miss events the store holds until its position reaches its size
        when the build began (:meth:`begin_building`). None while a new index has
        not planned that yet. An index that is built answers ``{}``; so does one
        that keeps no such plan.
        """
        ...

    def begin_building(self, sizes: dict[str, int]) -> dict[str, int]:
        """Plans a new (or rebuilt) index's build from the store's log ``sizes``.

        Every log holding entries past its position must reach its size. Done
        once; later calls (and an index that needs none) answer :meth:`building`.
        """
        ...

    def erasures_applied(self) -> dict[str, int]:
        """Per log held at an event, the sequence below which every erasure record is applied.

        What the leading indexer recorded (:meth:`record_erasures_applied`),
        for a standby replica's reads over content; an index of its own
        process's (SQLite) has no standby and records nothing.
        """
        ...

    def record_erasures_applied(self, log_id: str, applied: int) -> None:
        """Records that a held log's erasure and retention records below ``applied`` are applied.

        Every one of them: those past the position the log is held at too
        (the index holds no text they erase). Never moves back.
        """
        ...

    def holds(self) -> dict[str, int]:
        """Per log the leading indexer found held below its build target, the hold's sequence.

        What it recorded (:meth:`record_held`), for a standby replica's reads
        of a log being built: the log is held while its position is there. An
        index of its own process's (SQLite) has no standby and records nothing.
        """
        ...

    def record_held(self, log_id: str, sequence: int) -> None:
        """Records that an event the indexer cannot index holds the log at ``sequence``.

        The log's position is there, below its build target. Never moves back.
        """
        ...

    def record_mended(self, log_id: str, sequence: int) -> None:
        """Records that the hold recorded at ``sequence`` ended (the event reads back).

        The log's position may still be there (its write did not land yet):
        :meth:`holds` no longer says it. Never moves back.
        """
        ...

    def write(
        self,
        log_id: str,
        docs: Sequence[Document],
        new_position: int,
        gone: Sequence[Document] = (),
        erasing: bool = False,
        visible: bool = False,
    ) -> None:
        """Indexes documents (idempotently, by doc id), handles ``gone``, records the position.

        No document is replaced by one of a lower or equal revision. ``gone``:
        the text-free documents of erased events past retention, which must
        not make those events searchable again but must take their text out of
        the index: removed, or (OpenSearch, whose retention drops whole months)
        written only into a month index still there. ``erasing``: the documents
        include erasures' text-free ones, so the text they replace must also
        leave the backend's files (deleted entries, free pages, logs), not only
        its searches. Raises BackendUnavailableError; the position moves only
        after the documents are durably indexed. Raises DocumentRefusedError
        when the backend refuses a document for good, the position moved up
        to that document. ``visible`` (a backend not ``visible_on_write``): the
        documents are made searchable before the position moves, since other
        replicas take a position for what their reads find (the end of a build).
        """
        ...

    def retain(self, retention_days: int, now: dt.datetime) -> list[str]:
        """Makes events older than ``retention_days`` unsearchable (the store keeps them).

        Returns what was deleted now (index names, or a count), for the log.
        """
        ...

    def make_visible(self) -> None:
        """Makes everything written so far visible to searches (before an export)."""
        ...

    def search(self, spec: SearchSpec) -> Page:
        """One page of matches, ordered by ``spec.order``."""
        ...

    def aggregate(self, spec: AggregateSpec) -> Aggregation:
        """Groups, statistics and histogram under a filter."""
        ...

    def close(self) -> None:
        """Releases connections."""
        ...
