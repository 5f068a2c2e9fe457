"""The production backend: OpenSearch through opensearch-py.

- An index template (``<prefix>``) gives every ``<prefix>-*`` index explicit,
  strict mappings: keywords for ids, models and enums, longs and doubles for
  numbers (times as microseconds, so filters and keyset pagination behave
  exactly as on SQLite), a ``date`` copy of the occurrence time for
  histograms, analysed ``text`` for content, and one ``nested`` field for
  every multi-valued and open-ended value (trust signals, attributes, safety
  flags), so arbitrary attribute keys never grow the mapping.
- Events go to monthly indices by occurrence time (``<prefix>-2026.01``); the
  index name and the document id (``<tenant>:<event_id>``) are both functions
  of the event, so a retried bulk overwrites and never duplicates. Retention
  deletes whole monthly indices: by an ISM policy when the cluster has the
  plugin, by the indexer's sweep otherwise (:mod:`aiaudit.search.retention`).
- Writes never create a month index by themselves: each month is made with a
  write alias of its own (``<prefix>-2026.01-write``, :func:`write_alias`),
  and bulk requests go to the aliases with ``require_alias=true``. A month a
  sweep or ISM deletes takes its alias with it, so a write that was already
  on its way is refused (404 ``index_not_found_exception``) instead of
  creating the index again (OpenSearch creates a missing index on a write):
  its documents are dropped, nothing of that month is kept. A write meeting a
  month without its alias gives it one if the index is there (indices made
  before 2026-12-06 have none), else creates the month, with its alias, for
  the documents the indexer keeps, and only while retention would keep the
  month (:func:`retention.expired_months` at that instant); an erased event's
  text-free document past retention never creates one. Until 2026-12-06 a
  write into a month dropped between the indexer's look and its bulk made it
  again (an erased event's text-free document in it, swept again by name;
  under ISM the month lived another retention period).
- Documents are routed by tenant: a tenant's search touches one shard.
- The indexer's position per log is a store consumer cursor of the index
  prefix's own (:func:`cursor_name`: ``search-indexer`` for the default
  prefix, as before, ``search-indexer:<prefix>`` for another), moved only
  after a bulk succeeded (at-least-once delivery + idempotent writes = each
  event indexed once). A new prefix is thus built from the whole log, and an
  erased event comes back text-free (documents are built from the store).
  Until 2026-12-05 every prefix shared ``search-indexer``: a new prefix got
  only the events after the switch. When it starts indexing, a process warns
  about the events indices of another prefix that hold this store's events
  (:meth:`OpenSearchBackend.other_prefixes`): erasures, expunges and
  retention reach them no more.
- A new prefix over a store holding events is built (:meth:`OpenSearchBackend.building`):
  the leading indexer, finding no position of the prefix, records each log's
  size first (the store cursor :func:`building_cursor_name`), and until a
  log's position reaches it the tenant's searches, aggregates and exports
  answer UNAVAILABLE ``INDEX_BUILDING``, on every replica (standbys read the
  plan from the store), as an embedded index being built does. A prefix with
  positions already (a deployment upgrading) has no plan. Until 2026-12-06 a
  new prefix answered what it had indexed so far, as if whole. A log held
  below its target by an event the indexer cannot index answers
  FAILED_PRECONDITION ``INDEX_HELD`` instead, on every replica too: the
  leader records where it holds the log (the store cursor
  :func:`held_cursor_name`; until 2026-12-06 only the leader knew, and
  standbys answered ``INDEX_BUILDING``), and a hold it finds mended before
  the position moves (:func:`mended_cursor_name`: a cluster down keeps the
  position there, and until 2026-12-06 standbys said it held meanwhile).
- A document OpenSearch refuses for good (400: a mapping it cannot take) is
  not an outage: the write keeps what was indexed before it, moves the
  position up to it and raises DocumentRefusedError, and the indexer holds
  that log only (429 is retried, 409 is a newer revision already there, any
  other status counts as unavailable).
- A bulk request larger than the cluster accepts (413: ``http.max_content_length``,
  100 MB by default, 10 MiB on small managed domains, or a proxy's body limit)
  is sent again in halves, and the smaller size is kept for every later bulk
  of the process (a warning names it). A document that alone is too large is
  refused as a 400 is: its log is held at it, the others go on. Until
  2026-12-06 a 413 counted as an outage, every bulk went on failing and no
  log was indexed again.
- An index template of the cluster whose patterns overlap ``<prefix>-*`` (a
  prefix that extends another, ``p`` and ``p-v2``, either way round) is a
  configuration error (PrefixConflictError, a ConfigError naming both
  templates): at start when the cluster answers (:meth:`OpenSearchBackend.check_prefix`),
  else when the indexer installs the template. Until 2026-12-06 OpenSearch's
  refusal of the template paused the indexer for good as "refused the query".
- Erasure: a replaced document stays in its Lucene segment, text and all,
  marked deleted, until the segment is merged. After a bulk carrying erasures
  a thread of its own (indexing goes on) force-merges away the deleted
  documents of every events index holding some (``only_expunge_deletes``,
  with ``expunge_deletes_allowed`` 0: by default a segment is merged only
  past 10 % deleted), then refreshes, so that searchers let go of the old
  segment files and they are deleted. A shard keeps a document replaced
  within about the last 30 s (until its retention lease is renewed), so while
  deleted documents remain the pass is tried again every ``_EXPUNGE_GAP``
  seconds, a few minutes at most; passes never come closer than that, so a
  burst of erasures costs one merge per gap. A process's first write runs a
  pass too (a previous leader may have stopped before its own).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import opensearchpy
import orjson
import sqlalchemy as sa
from opensearchpy import OpenSearch

from aiaudit.common.config import ConfigError
from aiaudit.common.store import cursors
from aiaudit.common.store.schema import consumer_cursors, log_entries, logs
from aiaudit.search import catalogue, retention, translate_dsl
from aiaudit.search.backends.base import (
    GROUPS,
    MAX_BUCKETS,
    TIME_BUCKETS,
    AggregateSpec,
    Aggregation,
    BackendUnavailableError,
    Bucket,
    DocumentRefusedError,
    ExpensiveQueryRefusedError,
    Hit,
    Page,
    QueryRejectedError,
    SearchSpec,
    Stats,
    TooManyBucketsError,
)
from aiaudit.search.catalogue import Kind
from aiaudit.search.document import Document, iso
from aiaudit.search.settings import SearchSettings

log = logging.getLogger(__name__)
_T = TypeVar("_T")

HIGHLIGHT_CHARS = 1_000_000
"""Characters of a field analysed for highlights: OpenSearch's default index limit."""

CONSUMER = "search-indexer"
"""The cursor of the default index prefix (and, until 2026-12-05, of every prefix)."""
CURSOR_CHARS = int(consumer_cursors.c.consumer.type.length)  # type: ignore[attr-defined]
"""``varchar(n)`` of the cursor's name."""
_MONTHLY = re.compile(r"(?P<prefix>.+)-\d{4}\.\d{2}")
"""The name of an events index: ``<prefix>-YYYY.MM``."""
_SAMPLED = ("tenant_id", "event_id", "sequence")
"""What tells whether another prefix's document is an event of this store."""
_DAY = 86_400_000_000
"""Microseconds in a day."""
_CHUNK_DOCS = 1000
_CHUNK_BYTES = 50 * 1024 * 1024
"""Largest bulk request at first (OpenSearch refuses bodies over ``http.max_content_length``,
100 MB by default): halved on each 413 (:meth:`OpenSearchBackend._send`)."""
_PRIORITY = 100
"""The priority of the index template (OpenSearch refuses two overlapping at the same one)."""
_OVERLAP = "matching patterns from existing templates"
"""OpenSearch's words refusing an index template that overlaps another of its priority."""
_CHECK_TIMEOUT = 5.0
"""Seconds the start-up check of the index templates waits for the cluster (then left to the
indexer)."""
_FIRST_BACKOFF, _MAX_BACKOFF = 0.2, 5.0
_OPEN_ROUNDS = 3
"""Times a write gives a month its alias (or makes it) and sends its documents again before
it counts the cluster as unavailable (the month deleted and made again meanwhile)."""
_MISSING = "index_not_found_exception"
"""The error of a bulk item sent to a month whose write alias is not there."""
_SEARCH_ATTEMPTS = 4
_EXPUNGE_GAP = 10.0
"""Seconds between the end of one pass expunging deleted documents and the next."""
_EXPUNGE_TRIES = 30
"""Passes while deleted documents remain (about five minutes), then a warning."""
_MERGE_TIMEOUT = 3600
"""Seconds a force merge may take: it rewrites every segment holding deleted documents."""
KEYWORD_UNITS = 10_922
"""``ignore_above`` of keyword fields: a longer value is stored but not indexed (not found).

OpenSearch counts it in UTF-16 code units (Java's ``String.length``), and Lucene takes
terms of at most 32,766 UTF-8 bytes: a unit is at most 3 bytes (a character outside the
BMP is 2 units, 4 bytes), so every value of up to 10,922 units fits. Ingest takes texts of
up to 4,096 characters (code points), 8,192 units at most. Until 2026-12-06 it was 8,191
("4 bytes a character", counted in units): an attribute, trust signal, safety flag category
or other keyword of 4,096 characters outside the BMP (emoji) was not indexed, so ``=``,
prefixes and ``group_by`` missed it on OpenSearch while SQLite found it (differential test,
``tests/search/test_differential.py``). Existing indices take the new limit at start
(:meth:`OpenSearchBackend.ensure_template`); a document indexed before keeps the value
unindexed until a new ``index_prefix`` indexes it again."""

_TYPES: dict[Kind, dict[str, Any]] = {
    Kind.KEYWORD: {"type": "keyword", "ignore_above": KEYWORD_UNITS},
    Kind.ENUM: {"type": "keyword"},
    Kind.INT: {"type": "long"},
    Kind.TIMESTAMP: {"type": "long"},
    Kind.FLOAT: {"type": "double"},
    Kind.DURATION: {"type": "double"},
}


OMITTED = "omitted_entries"
"""Set on the document of an event with more multi-valued values than it holds
(``document.MAX_ENTRIES``): how many it leaves out."""

TYPED_BOOLS = translate_dsl.TYPED_BOOLS
"""Set on every document holding booleans in ``entries.bool``: one indexed before holds
them as the text "true"/"false" in ``entries.str``, and is found as it was."""


def cursor_name(prefix: str) -> str:
    """The store cursor holding the indexer's positions into the indices of ``prefix``.

    ``search-indexer`` for the default prefix (deployments upgrading keep
    their positions), ``search-indexer:<prefix>`` for any other; past the
    column's 64 characters the prefix is shortened and a digest of it added.
    Every name starts ``search-indexer``: the store's row policies leave such
    cursors to the indexer's role alone.
    """
    if prefix == SearchSettings.index_prefix:
        return CONSUMER
    name = f"{CONSUMER}:{prefix}"
    if len(name) <= CURSOR_CHARS:
        return name
    digest = hashlib.sha256(prefix.encode()).hexdigest()[:16]
    return f"{name[: CURSOR_CHARS - len(digest) - 1]}~{digest}"


ERASURES = "#erasures"
"""What :func:`erasures_cursor_name` adds to the prefix's cursor name."""


def erasures_cursor_name(prefix: str) -> str:
    """The store cursor telling standbys how far erasures past held logs are applied.

    Per log held at an event it cannot index (a damaged one, a refused
    document), the leading indexer applies the erasure and retention records
    past the hold all the same (:meth:`~aiaudit.search.indexer.Indexer._apply_erasures`):
    the row's position says that every such record below it is applied. It
    only grows, as a position does. ``search-indexer#erasures`` for the
    default prefix, ``search-indexer:<prefix>#erasures`` for another, shortened
    as :func:`cursor_name` does: no prefix holds ``#``, so no prefix's own
    cursor has this name (``search-indexer:erasures`` is prefix ``erasures``'s).
    It starts ``search-indexer``, so the same row policies keep it to the
    indexer's role.
    """
    return _suffixed(prefix, ERASURES)


BUILDING = "#building"
"""What :func:`building_cursor_name` adds to the prefix's cursor name."""


def building_cursor_name(prefix: str) -> str:
    """The store cursor holding a new prefix's build plan (:meth:`OpenSearchBackend.building`).

    Per log the store held events in when the leading indexer began a prefix
    that had no position yet, the row's position is the log's size then: the
    log's reads are whole once its position (:func:`cursor_name`) reaches it.
    Named as :func:`erasures_cursor_name` is (``search-indexer#building``,
    ``search-indexer:<prefix>#building``, shortened alike): no prefix's own
    cursor, and kept to the indexer's role by the same row policies.
    """
    return _suffixed(prefix, BUILDING)


HELD = "#held"
"""What :func:`held_cursor_name` adds to the prefix's cursor name."""


def held_cursor_name(prefix: str) -> str:
    """The store cursor telling standbys where an event the indexer cannot index holds a log.

    Per log held below its build target (:func:`building_cursor_name`) at an
    event the leading indexer cannot index (a damaged one, a document the
    cluster refuses for good), the row's position is the hold's sequence + 1,
    written once when the leader meets a new hold with the log's position
    there (:meth:`OpenSearchBackend.record_held`). A standby answers the log
    held while its position is the row's - 1 (:meth:`~aiaudit.search.indexer.Indexer.building`);
    a hold repaired leaves the row behind the position, and a later hold
    moves it forward, as a position only grows (no row is ever deleted: the
    indexer's role may not). Named as :func:`building_cursor_name` is
    (``search-indexer#held``, ``search-indexer:<prefix>#held``, shortened
    alike): no prefix's own cursor, and kept to the indexer's role by the
    same row policies. Until 2026-12-06 standbys did not know of holds.
    """
    return _suffixed(prefix, HELD)


MENDED = "#mended"
"""What :func:`mended_cursor_name` adds to the prefix's cursor name."""


def mended_cursor_name(prefix: str) -> str:
    """The store cursor telling standbys that a hold recorded in :func:`held_cursor_name` ended.

    Per log, the sequence + 1 of the last hold the leading indexer recorded and
    then found mended (the event at it reads back) before the log's position
    moved past it (:meth:`OpenSearchBackend.record_mended`): while the cluster
    is down, the position stays there, and a standby that went by the held row
    alone said the log held (FAILED_PRECONDITION, retrying will not help) by an
    event already repaired, for as long as the outage lasted (until
    2026-12-06). A hold is said while its row is past this one. Named as
    :func:`held_cursor_name` is, with ``#mended``.
    """
    return _suffixed(prefix, MENDED)


def _suffixed(prefix: str, suffix: str) -> str:
    """The prefix's cursor name and ``suffix``, within the column (a digest past it)."""
    name = cursor_name(prefix) + suffix
    if len(name) <= CURSOR_CHARS:
        return name
    digest = hashlib.sha256(prefix.encode()).hexdigest()[:16]
    head = f"{CONSUMER}:{prefix}"[: CURSOR_CHARS - len(digest) - 1 - len(suffix)]
    return f"{head}~{digest}{suffix}"


def mappings() -> dict[str, Any]:
    """The explicit mappings of every events index."""
    properties: dict[str, Any] = {
        "tenant_id": {"type": "keyword"},
        "occurred_at": {"type": "date", "format": "epoch_millis"},
        "entries": {
            "type": "nested",
            "properties": {
                "field": {"type": "keyword"},
                "str": {"type": "keyword", "ignore_above": KEYWORD_UNITS},
                "num": {"type": "double"},
                "int": {"type": "long"},  # beside num: exact past 2**53
                "bool": {"type": "boolean"},  # not str: "true" the text is no boolean
            },
        },
        TYPED_BOOLS: {"type": "boolean"},
        OMITTED: {"type": "integer"},
    }
    properties.update({f.column: dict(_TYPES[f.kind]) for f in catalogue.SCALARS})
    properties.update({f.column: {"type": "text", "analyzer": "standard"} for f in catalogue.TEXTS})
    return {"dynamic": "strict", "_routing": {"required": True}, "properties": properties}


_COLUMNS = {f.name: f.column for f in catalogue.SCALARS}
_TEXT_COLUMNS = {f.name: f.column for f in catalogue.TEXTS}


def body(doc: Document) -> dict[str, Any]:
    """The indexed source of a document."""
    source: dict[str, Any] = {"tenant_id": doc.tenant_id, TYPED_BOOLS: True}
    for name, value in doc.scalars.items():
        column = _COLUMNS.get(name)
        if column is not None:
            source[column] = value
    source["occurred_at"] = int(doc.scalars["occurred_time"]) // 1000
    if doc.entries:
        entries = []
        for e in doc.entries:
            entry: dict[str, Any] = {"field": e.field}
            if e.str_value is not None:
                entry["str"] = e.str_value
            if e.num_value is not None:
                entry["num"] = e.num_value
                if isinstance(e.num_value, int):
                    entry["int"] = e.num_value
            if e.bool_value is not None:
                entry["bool"] = e.bool_value
            entries.append(entry)
        source["entries"] = entries
    if doc.omitted_entries:
        source[OMITTED] = doc.omitted_entries
    for name, text in doc.texts.items():
        source[_TEXT_COLUMNS[name]] = text
    return source


VERSION_BASE = 1 << 40
"""Added to a revision to make its external version: documents indexed before
revisions existed hold internal versions (1 a write, a handful at most), and a
revision of a young log is as small; above this base every write with a
revision outranks them (an erasure's text-free document included)."""


def _action(index: str, doc: Document) -> dict[str, object]:
    """Where a document goes, its revision as the external version.

    OpenSearch refuses (409) a write older than what the document holds: a
    deposed indexer's late bulk, or one retried after it landed, cannot
    replace the text-free document an erasure record wrote.
    """
    return {
        "_index": index,
        "_id": doc.doc_id,
        "routing": doc.tenant_id,
        "version": VERSION_BASE + doc.revision,
        "version_type": "external",
    }


def bulk_lines(index: str, doc: Document) -> bytes:
    """One document's two lines of a bulk request (action and source), as sent.

    ``index``: the month's write alias (:func:`write_alias`); the request is
    sent with ``require_alias=true``.
    """
    action = {"index": _action(index, doc)}
    return b"%b\n%b\n" % (orjson.dumps(action), orjson.dumps(body(doc)))


WRITE_ALIAS = "-write"
"""What a month's name takes to name its write alias."""
WRITE_PARAMS = {"require_alias": "true", "filter_path": "errors,items.*.status,items.*.error"}
"""The parameters of every bulk request (the search benchmark's baseline sends the same): a
write to a month without its write alias is refused, never creates the index; the answer is
trimmed to what is checked, a few bytes per document instead of ~200."""


def write_alias(index: str) -> str:
    """The alias every write to a month goes through (``<prefix>-2026.01-write``).

    Made with the month (:meth:`OpenSearchBackend.open_month`), deleted with
    it. Inside ``<prefix>-*``, so a login allowed only the prefix's indices may
    use it; no month is named so (:data:`_MONTHLY`), and searches of
    ``<prefix>-*`` read each index once.
    """
    return index + WRITE_ALIAS


class TooManyClausesError(QueryRejectedError):
    """A query holding more clauses than the cluster's ``indices.query.bool.max_clause_count``."""


class _BucketLimitError(QueryRejectedError):
    """The node's ``search.max_buckets`` refused an aggregation (which: its sender says)."""


class _TimedOutError(BackendUnavailableError):
    """No answer within ``opensearch_timeout``: the node may still be running the request."""


_TOO_MANY = {
    GROUPS: f"more than {MAX_BUCKETS} groups",
    TIME_BUCKETS: f"more than {MAX_BUCKETS} histogram buckets",
}
"""What the caller is told of a part past MAX_BUCKETS buckets, whether the service counted
them or the node's ``search.max_buckets`` (65,535 by default) refused them."""


class PrefixConflictError(ConfigError):
    """Another index template's patterns overlap this prefix's indices (``<prefix>-*``).

    A configuration error, not an outage: it lasts until the prefix or the
    other template changes.
    """


class _TooLargeError(Exception):
    """The cluster refused a bulk request for its size (413)."""


def patterns_overlap(a: str, b: str) -> bool:
    """Whether two index patterns (``*`` the only wildcard) match a common name."""
    seen: set[tuple[int, int]] = set()
    todo = [(0, 0)]
    while todo:
        i, j = todo.pop()
        if (i, j) in seen:
            continue
        seen.add((i, j))
        if i == len(a) and j == len(b):
            return True
        if i < len(a) and a[i] == "*":  # matches nothing more, or b's next character
            todo += [(i + 1, j)] + ([(i, j + 1)] if j < len(b) else [])
        if j < len(b) and b[j] == "*":
            todo += [(i, j + 1)] + ([(i + 1, j)] if i < len(a) else [])
        if i < len(a) and j < len(b) and a[i] == b[j] != "*":
            todo.append((i + 1, j + 1))
    return False


class OpenSearchBackend:
    """Events in OpenSearch, the indexer's cursor in the store."""

    name = "opensearch"
    visible_on_write = False

    def __init__(
        self,
        client: OpenSearch,
        store_engine: sa.Engine,
        prefix: str,
        refresh_interval: str,
        bulk_retries: int = 5,
        retention_days: int = 0,
    ) -> None:
        """``client`` is configured by the component (URL, auth, TLS).

        ``retention_days``: the indexer's (0: keep); a write does not create a
        month retention has dropped (:meth:`open_month`).
        """
        self._client = client
        self._retention_days = retention_days
        self._engine = store_engine
        self._prefix = prefix
        self._cursor = cursor_name(prefix)
        self._erasures_cursor = erasures_cursor_name(prefix)
        self._building_cursor = building_cursor_name(prefix)
        self._held_cursor = held_cursor_name(prefix)
        self._mended_cursor = mended_cursor_name(prefix)
        self._refresh_interval = refresh_interval
        self._bulk_retries = bulk_retries
        self._template_ready = False
        self._chunk_bytes = _CHUNK_BYTES
        """The largest bulk request sent: halved on each 413, for the rest of the process."""
        self._too_large: set[str] = set()
        """Documents warned about as larger than the cluster accepts in a request of their own."""
        self._ism: bool | None = None
        """Whether the cluster has the ISM plugin (asked once)."""
        self._policy_installed = False
        self._months: dict[int, str] = {}
        """Index name by day since the epoch (names are asked for every document)."""
        self._expunger: threading.Thread | None = None
        self._expunge_wanted = threading.Event()
        self._closing = threading.Event()
        self._merges_deletes: set[str] = set()
        """Indices set to merge any segment holding a deleted document."""

    def close(self) -> None:
        """Stops the expunging thread (a merge in flight goes on in the cluster), closes HTTP."""
        self._closing.set()
        self._expunge_wanted.set()
        if self._expunger is not None:
            self._expunger.join(timeout=5)
        self._client.close()

    def ensure_template(self) -> None:
        """Installs (once per process) the index template of the events indices.

        Indices made from an earlier template get its new fields too (strict
        mappings would refuse documents holding them, such as ``entries.int``
        or ``entries.bool``).
        """
        if self._template_ready:
            return
        self.check_prefix()
        template = {
            "index_patterns": [f"{self._prefix}-*"],
            "priority": _PRIORITY,
            "template": {
                "settings": {
                    "number_of_shards": 1,
                    "auto_expand_replicas": "0-1",
                    "refresh_interval": self._refresh_interval,
                },
                "mappings": mappings(),
            },
        }
        try:
            self._call(
                lambda: self._client.indices.put_index_template(name=self._prefix, body=template)
            )
        except QueryRejectedError as exc:  # overlapping templates not listed to this login
            if _OVERLAP not in str(exc):
                raise
            info = getattr(exc.__cause__, "info", None)
            error = info.get("error") if isinstance(info, dict) else None
            reason = error.get("reason") if isinstance(error, dict) else None
            raise PrefixConflictError(
                f"setting 'search.index_prefix': {self._prefix!r}: OpenSearch refuses this "
                f"prefix's index template: {reason or exc}. {self._advice()}"
            ) from None
        self._call(
            lambda: self._client.indices.put_mapping(
                index=f"{self._prefix}-*",
                body={"properties": mappings()["properties"]},
                params={"allow_no_indices": "true"},
            )
        )
        self._template_ready = True
        self._warn_other_prefixes()

    def check_prefix(self, timeout: float | None = None) -> None:
        """Raises PrefixConflictError if another index template overlaps ``<prefix>-*``.

        Either way round: its patterns match this prefix's indices (``p-*``
        for the prefix ``p-v2``), at this template's priority (OpenSearch
        refuses the second) or above (it would give them its own mappings);
        or this prefix's pattern matches its indices (``p-v2-*`` for the
        prefix ``p``: this template would map them, and this prefix's
        searches, retention and expunges would reach them). A template below
        this priority whose patterns are wider (``*``) is left alone: this one
        wins on its indices. Raises BackendUnavailableError when the cluster
        does not answer; a login not allowed to list the templates skips the
        check (OpenSearch still refuses a template of the same priority,
        which ensure_template reports as this error).
        """
        params: dict[str, Any] = {}
        if timeout is not None:
            params["request_timeout"] = timeout
        try:
            found = self._call(lambda: self._client.indices.get_index_template(params=params))
        except BackendUnavailableError as exc:
            if isinstance(exc.__cause__, opensearchpy.NotFoundError):
                return  # no index template at all
            if isinstance(exc.__cause__, opensearchpy.AuthorizationException):
                log.info("search: index templates not checked for overlaps: %s", exc)
                return
            raise
        mine = f"{self._prefix}-*"
        clashes = []
        for entry in found.get("index_templates", []):
            name = entry.get("name", "")
            spec = entry.get("index_template", {})
            patterns = [str(p) for p in spec.get("index_patterns", [])]
            priority = int(spec.get("priority") or 0)
            if name == self._prefix:
                continue
            for pattern in patterns:
                takes_mine = priority >= _PRIORITY and patterns_overlap(pattern, mine)
                mine_takes = pattern.startswith(f"{self._prefix}-")
                if takes_mine or mine_takes:
                    clashes.append(f"{name!r} (index patterns {patterns}, priority {priority})")
                    break
        if clashes:
            raise PrefixConflictError(
                f"setting 'search.index_prefix': {self._prefix!r} overlaps the index "
                f"template(s) {', '.join(clashes)} of this cluster: their patterns and this "
                f"prefix's {mine!r} match the same index names, so OpenSearch refuses this "
                f"prefix's template (same priority), or one template would map the other's "
                f"indices and each prefix's searches read the other's events. {self._advice()}"
            )

    def check_at_start(self) -> None:
        """:meth:`check_prefix` at start-up, if the cluster answers within _CHECK_TIMEOUT.

        A conflict stops the start (a ConfigError, as a bad setting does);
        a cluster that does not answer is an outage: the indexer checks when
        it installs the template.
        """
        try:
            self.check_prefix(_CHECK_TIMEOUT)
        except BackendUnavailableError as exc:
            log.info("search: index templates checked once OpenSearch answers: %s", exc)
        except PrefixConflictError:
            self.close()
            raise

    def _advice(self) -> str:
        """What to do about an overlapping index template."""
        return (
            "Choose an index_prefix that neither starts with another prefix followed by '-' "
            "nor is the start of another one followed by '-' (e.g. 'aiaudit-events2', not "
            "'aiaudit-events-v2'); if the other template is an earlier prefix of this "
            "deployment no longer used, delete it and its indices instead (README, search: "
            "changing index_prefix)"
        )

    def _warn_other_prefixes(self) -> None:
        """Warns (once per process) about other prefixes' indices holding this store's events."""
        try:
            found = self.other_prefixes()
        except Exception as exc:  # e.g. a login allowed only its own prefix: only a warning lost
            log.info("search: other index prefixes not looked for: %s", exc)
            return
        for prefix, names in sorted(found.items()):
            log.warning(
                "search: the indices %s of index prefix %r (not this prefix, %r) hold events "
                "of this store; erasure, expunges and retention no longer reach them. Once "
                "this prefix has caught up, delete them and their index template %r "
                "(README, search: changing index_prefix)",
                names,
                prefix,
                self._prefix,
                prefix,
            )

    def other_prefixes(self) -> dict[str, list[str]]:
        """The events indices of other prefixes that hold events of this store, by prefix.

        An index counts when it is named ``<prefix>-YYYY.MM`` and a document
        of that prefix (one per prefix is asked for) is an event of this
        store, by tenant and event id: another deployment's indices in the
        same cluster are left alone.
        """
        names = self._client.indices.get_alias(
            index="*-*", params={"allow_no_indices": "true", "expand_wildcards": "open"}
        )
        by_prefix: dict[str, list[str]] = {}
        for name in sorted(names):
            match = _MONTHLY.fullmatch(name)
            if match and match["prefix"] != self._prefix and not name.startswith("."):
                by_prefix.setdefault(match["prefix"], []).append(name)
        found: dict[str, list[str]] = {}
        for prefix, indices in by_prefix.items():
            hits = self._client.search(
                index=",".join(indices),
                body={
                    "size": 1,
                    "_source": list(_SAMPLED),
                    "query": {"bool": {"filter": [{"exists": {"field": f}} for f in _SAMPLED]}},
                },
                params={"ignore_unavailable": "true", "allow_no_indices": "true"},
            )["hits"]["hits"]
            source = hits[0].get("_source", {}) if hits else {}
            tenant, event_id, seq = (source.get(f) for f in _SAMPLED)
            if isinstance(tenant, str) and isinstance(event_id, str) and isinstance(seq, int):
                e = log_entries.c
                with self._engine.connect() as conn:
                    held = conn.execute(
                        sa.select(e.seq).where(
                            e.log_id == tenant, e.seq == seq, e.event_id == event_id
                        )
                    ).first()
                if held is not None:
                    found[prefix] = indices
        return found

    def open_month(self, index: str, create: bool = True) -> bool:
        """Whether the month ``index`` takes writes: it has its write alias now.

        Gives an index there its alias (made before 2026-12-06, or by another
        process); else, if ``create`` and retention keeps the month now,
        creates it with its alias (the template gives it settings and
        mappings). False: the month is not there, and is not created.
        """
        alias = write_alias(index)
        for _ in range(_OPEN_ROUNDS):
            # The refusals expected are asked for as answers: the client logs others as warnings.
            found = self._call(
                lambda: self._client.indices.put_alias(
                    index=index, name=alias, params={"ignore": 404}
                )
            )
            if found.get("status") != 404:
                return True
            if _error_type(found) != _MISSING:
                raise BackendUnavailableError(f"OpenSearch error 404: {str(found)[:500]}")
            if not create or self._expired(index):
                return False
            made = self._call(
                lambda: self._client.indices.create(
                    index=index, body={"aliases": {alias: {}}}, params={"ignore": 400}
                )
            )
            if made.get("status") != 400:
                return True
            if _error_type(made) != "resource_already_exists_exception":
                raise QueryRejectedError(f"OpenSearch refused the query: {str(made)[:500]}")
            # made by another writer meanwhile: give it the alias
        raise BackendUnavailableError(f"month index {index} deleted and made again meanwhile")

    def _expired(self, index: str) -> bool:
        """Whether retention drops the month ``index`` now (a sweep deletes it)."""
        if not self._retention_days:
            return False
        now = dt.datetime.now(dt.UTC)
        return bool(retention.expired_months([index], self._prefix, self._retention_days, now))

    def _call(self, fn: Any) -> Any:
        """Runs a client call, mapping transport failures to BackendUnavailableError.

        A query with more clauses than the cluster's ``maxClauseCount`` is
        TooManyClausesError (a 500 when the count is past the rewrite, nested
        queries included; it was taken for an outage and retried). An aggregation
        past the node's ``search.max_buckets`` is _BucketLimitError whatever the
        status: the node answers 503 when it counts them while merging the
        shards' answers, which was taken for an outage (UNAVAILABLE until 2026-12-07).
        """
        try:
            return fn()
        except opensearchpy.ConnectionTimeout as exc:  # a ConnectionError: before it
            raise _TimedOutError(f"OpenSearch did not answer in time: {exc}") from exc
        except opensearchpy.ConnectionError as exc:
            raise BackendUnavailableError(f"OpenSearch unreachable: {exc}") from exc
        except opensearchpy.TransportError as exc:
            status = exc.status_code if isinstance(exc.status_code, int) else 0
            reason = str(exc.info)[:500]
            if status in (400, 500) and _too_many_clauses(exc.info):
                log.info("search: OpenSearch counted too many clauses: %s", reason)
                raise TooManyClausesError(
                    "more clauses than the search backend allows (OpenSearch's "
                    "indices.query.bool.max_clause_count, counted once it rewrote the query)"
                ) from exc
            if status == 400 and "allow_expensive_queries" in reason:
                raise ExpensiveQueryRefusedError(
                    "the search cluster refuses expensive queries "
                    "(search.allow_expensive_queries: false), and this one needs a prefix "
                    "query or a script"
                ) from exc
            if "too_many_buckets" in str(exc.info):
                raise _BucketLimitError(f"too many buckets: {reason}") from exc
            if status == 400 or status == 413:
                raise QueryRejectedError(f"OpenSearch refused the query: {reason}") from exc
            raise BackendUnavailableError(f"OpenSearch error {exc.status_code}: {exc}") from exc

    def positions(self) -> dict[str, int]:
        """The indexer's cursors into this prefix's indices (:func:`cursor_name`)."""
        return self._cursor_rows(self._cursor)

    def _cursor_rows(self, consumer: str) -> dict[str, int]:
        """Each log's position of one consumer cursor."""
        with self._engine.connect() as conn:
            return self._rows(conn, consumer)

    @staticmethod
    def _rows(conn: sa.Connection, consumer: str) -> dict[str, int]:
        c = consumer_cursors
        rows = conn.execute(
            sa.select(c.c.log_id, c.c.position).where(c.c.consumer == consumer)
        ).all()
        return {r.log_id: int(r.position) for r in rows}

    def building(self) -> dict[str, int] | None:
        """Per log still being built, the position it must reach; None: not planned yet.

        The plan is the store cursor :func:`building_cursor_name` (written by
        :meth:`begin_building`); a log is built once its position reaches its
        row, so the write that moves the position there ends its build (rows
        stay: the indexer's role may not delete cursor rows, and a position
        never moves back). A prefix with positions and no plan (a deployment
        that indexed before plans were kept) is built. Neither, over a store
        holding events: not planned yet (the leader plans it when it starts);
        over a store without any, nothing is to be built.
        """
        with self._engine.connect() as conn:
            plan = self._rows(conn, self._building_cursor)
            positions = self._rows(conn, self._cursor)
            if not plan and not positions:
                holding = sa.select(logs.c.log_id).where(logs.c.size > 0).limit(1)
                return None if conn.execute(holding).first() is not None else {}
        return {k: target for k, target in plan.items() if positions.get(k, 0) < target}

    def begin_building(self, sizes: dict[str, int]) -> dict[str, int]:
        """Plans a new prefix's build: each log of ``sizes`` holding entries must reach its size.

        Only while the prefix has no position and no plan (one transaction);
        otherwise, and afterwards, answers :meth:`building`.
        """
        with self._engine.begin() as conn:
            if not self._rows(conn, self._cursor) and not self._rows(conn, self._building_cursor):
                for log_id, size in sorted(sizes.items()):
                    if size > 0:
                        cursors.advance(conn, self._building_cursor, log_id, size)
        planned = self.building()
        return {} if planned is None else planned  # events since ``sizes``: the ordinary lag

    def erasures_applied(self) -> dict[str, int]:
        """Per held log, the sequence below which every erasure record is applied.

        Written by the leading indexer (:meth:`record_erasures_applied`), read
        by the standbys (:func:`erasures_cursor_name`).
        """
        return self._cursor_rows(self._erasures_cursor)

    def record_erasures_applied(self, log_id: str, applied: int) -> None:
        """Says that every erasure and retention record of the log below ``applied`` is applied.

        Never moves back (a deposed leader's late word changes nothing).
        """
        with self._engine.begin() as conn:
            cursors.advance(conn, self._erasures_cursor, log_id, applied)

    def holds(self) -> dict[str, int]:
        """Per log the leading indexer found held below its build target, the hold's sequence.

        The last hold it met in each log (:meth:`record_held`, :func:`held_cursor_name`):
        it holds the log still while the log's position is there, unless the
        leader found it mended since (:meth:`record_mended`).
        """
        with self._engine.connect() as conn:
            held = self._rows(conn, self._held_cursor)
            mended = self._rows(conn, self._mended_cursor)
        return {k: row - 1 for k, row in held.items() if mended.get(k, 0) < row}

    def record_held(self, log_id: str, sequence: int) -> None:
        """Says that the log, its position at ``sequence``, is held there below its target.

        Never moves back (an earlier hold is behind the position already).
        """
        with self._engine.begin() as conn:
            cursors.advance(conn, self._held_cursor, log_id, sequence + 1)

    def record_mended(self, log_id: str, sequence: int) -> None:
        """Says that the hold recorded at ``sequence`` ended, the log's position still there.

        Never moves back (:func:`mended_cursor_name`).
        """
        with self._engine.begin() as conn:
            cursors.advance(conn, self._mended_cursor, log_id, sequence + 1)

    def index_name(self, doc: Document) -> str:
        """The monthly index of a document (a function of the event: retries hit the same one)."""
        day = int(doc.scalars["occurred_time"]) // _DAY
        name = self._months.get(day)
        if name is None:
            if len(self._months) > 10_000:
                self._months.clear()
            name = f"{self._prefix}-{iso(day * _DAY)[:7].replace('-', '.')}"
            self._months[day] = name
        return name

    def write(
        self,
        log_id: str,
        docs: Sequence[Document],
        new_position: int,
        gone: Sequence[Document] = (),
        erasing: bool = False,
        visible: bool = False,
    ) -> None:
        """Bulk-indexes ``docs`` (429s retried with backoff), then advances the cursor.

        Every document goes through its month's write alias (:func:`write_alias`):
        a month without one is opened (:meth:`open_month`) and its documents
        sent again; a month that is not there and is not made (dropped by
        retention) keeps none of them. ``gone`` (erased events past retention):
        each replaces the event's document with its text in a month index still
        there, at its revision, so a deposed indexer's late bulk cannot bring
        the text back (a delete's tombstone lasts a minute); the month's drop
        removes it with the rest. A month already dropped, or dropped before
        the bulk lands, is not created again for it (nor for ``docs``, once
        past retention). ``erasing`` (and a process's first write) wakes the
        expunging thread.

        A document refused for good (400, or 413 in a request of its own)
        raises DocumentRefusedError once the rest are sent, the position moved
        up to the earliest refused revision: every document below it is indexed.
        ``visible``: a refresh comes between the bulk and the cursor, so a standby
        that reads the cursor finds the documents. A failed refresh raises
        BackendUnavailableError, the cursor unmoved, and the batch is sent again
        (by document id: nothing twice); moving it would end a build whose last
        documents no replica finds until the periodic refresh (review). Until
        2026-12-06 the refresh came after the cursor, and a standby could end a
        log's build and answer a page without the build's last documents.
        """
        self.ensure_template()
        sent = [*docs, *gone]
        lines = [(i, bulk_lines(write_alias(self.index_name(d)), d)) for i, d in enumerate(sent)]
        refused = self._send(log_id, sent, lines, len(docs))
        first = min(refused, key=lambda i: sent[i].revision, default=None)
        if first is not None:
            new_position = min(new_position, sent[first].revision)
        if visible:
            self.make_visible()
        with self._engine.begin() as conn:
            cursors.advance(conn, self._cursor, log_id, new_position)
        if erasing or self._expunger is None:
            self._wake_expunger()
        if first is not None:
            raise DocumentRefusedError(
                new_position, sent[first].event_id, refused[first], len(refused)
            )

    def _wake_expunger(self) -> None:
        """Asks for a pass expunging deleted documents (the thread starts on first use)."""
        self._expunge_wanted.set()
        if self._expunger is None:
            self._expunger = threading.Thread(
                target=self._expunge_loop, name="search-expunge", daemon=True
            )
            self._expunger.start()

    def _expunge_loop(self) -> None:
        """A pass when woken, again while deleted documents remain; one per _EXPUNGE_GAP."""
        tries = 0
        while True:
            if not tries:
                self._expunge_wanted.wait()
            if self._closing.is_set():
                return
            if self._expunge_wanted.is_set():
                self._expunge_wanted.clear()
                tries = _EXPUNGE_TRIES
            tries -= 1
            try:
                left = ", ".join(self._expunge_deletes())
            except Exception as exc:  # the cluster is down or busy: the next pass tries again
                left = f"not reached: {exc}"
            if not left:
                tries = 0
            elif not tries:
                log.warning(
                    "deleted documents not expunged after %d passes (%s); the next erasure "
                    "tries again",
                    _EXPUNGE_TRIES,
                    left,
                )
            self._closing.wait(_EXPUNGE_GAP)

    def _expunge_deletes(self) -> list[str]:
        """Merges away the deleted documents of the events indices holding some.

        Returns the indices that still hold some: replaced too recently for
        their shard to let go (or again meanwhile).
        """
        holding = self._holding_deletes()
        if not holding:
            return []
        fresh = [i for i in holding if i not in self._merges_deletes]
        if fresh:
            self._client.indices.put_settings(
                index=",".join(fresh), body={"index.merge.policy.expunge_deletes_allowed": 0}
            )
            self._merges_deletes.update(fresh)
        names = ",".join(holding)
        params = {"only_expunge_deletes": "true", "request_timeout": _MERGE_TIMEOUT}
        self._client.indices.forcemerge(index=names, params=params)  # and flush: files go
        left = self._holding_deletes()
        log.info("expunged deleted documents of %s (%d still hold some)", names, len(left))
        return left

    def _holding_deletes(self) -> list[str]:
        """The events indices holding deleted documents, after a refresh.

        The refresh makes the last bulk's replacements count, and after a merge
        lets searchers go of the merged segments, so that their files are deleted.
        """
        every = {"index": f"{self._prefix}-*", "params": {"allow_no_indices": "true"}}
        self._client.indices.refresh(**every)
        found = self._client.indices.stats(
            metric="docs", filter_path="indices.*.total.docs.deleted", **every
        )
        return sorted(
            n for n, s in found.get("indices", {}).items() if s["total"]["docs"]["deleted"]
        )

    def _send(
        self, log_id: str, sent: list[Document], lines: list[tuple[int, bytes]], creates: int
    ) -> dict[int, str]:
        """Sends ``lines`` in bulk requests; the documents refused for good, number -> reason.

        Documents refused because their month has no write alias are sent
        again once it has one (:meth:`open_month`; the documents numbered
        below ``creates`` may create it), else dropped: their month is gone.
        """
        refused: dict[int, str] = {}
        for _ in range(_OPEN_ROUNDS):
            missing = self._send_chunks(log_id, sent, lines, refused)
            if not missing:
                return refused
            months: dict[str, bool] = {}
            for number, _lines in missing:
                month = self.index_name(sent[number])
                months[month] = months.get(month, False) or number < creates
            opened = {m for m, create in sorted(months.items()) if self.open_month(m, create)}
            dropped = sorted(months.keys() - opened)
            if dropped:
                log.info(
                    "search: month index(es) %s not there and past retention (or the documents "
                    "erased events' past it): their documents dropped, the months not made again",
                    dropped,
                )
            lines = [(n, b) for n, b in missing if self.index_name(sent[n]) in opened]
            if not lines:
                return refused
        raise BackendUnavailableError("month indices deleted again each time they were opened")

    def _send_chunks(
        self,
        log_id: str,
        sent: list[Document],
        lines: list[tuple[int, bytes]],
        refused: dict[int, str],
    ) -> list[tuple[int, bytes]]:
        """Sends ``lines`` in bulk requests; the documents whose month has no write alias.

        Adds the documents refused for good to ``refused``. A request the
        cluster refuses for its size (413) is sent again in halves: the
        largest request is halved (at most the refused one's half) for the
        rest of the process, so later writes do not find the limit again. A
        document refused so in a request of its own is refused for good, as
        a 400 is (its log is held at it).
        """
        missing: list[tuple[int, bytes]] = []
        start = 0
        while start < len(lines):
            end = _chunk_end(lines, start, self._chunk_bytes)
            chunk = lines[start:end]
            size = sum(len(doc) for _, doc in chunk)
            try:
                bad, absent = self._bulk(chunk)
                refused.update(bad)
                missing += absent
            except _TooLargeError as exc:
                if len(chunk) > 1:
                    self._chunk_bytes = max(1, min(self._chunk_bytes, size) // 2)
                    log.warning(
                        "search: the cluster refused a bulk request of %d bytes (%d documents) "
                        "for its size (%s: OpenSearch's http.max_content_length, or a proxy's "
                        "body limit); bulk requests are now at most %d bytes",
                        size,
                        len(chunk),
                        exc,
                        self._chunk_bytes,
                    )
                    continue  # the same documents, in smaller requests
                doc = sent[chunk[0][0]]
                reason = (
                    f"its bulk request alone, {size} bytes, is larger than the cluster accepts "
                    f"({exc}: OpenSearch's http.max_content_length, or a proxy's body limit)"
                )
                refused[chunk[0][0]] = reason
                if doc.doc_id not in self._too_large:
                    self._too_large.add(doc.doc_id)
                    log.warning(
                        "search: event %r (log %s, sequence %d) is not indexed: %s; its log is "
                        "held at it (the other logs go on) until the limit is raised",
                        doc.event_id,
                        log_id,
                        doc.revision,
                        reason,
                    )
            start = end
        return missing

    def _bulk(
        self, chunk: list[tuple[int, bytes]]
    ) -> tuple[dict[int, str], list[tuple[int, bytes]]]:
        """One bulk request; documents refused with 429 (or a 429 answer) are sent again later.

        ``chunk``: each document's number in the write and its lines. Returns
        the documents refused for good (400: the mapping cannot take them,
        e.g. ``mapper_parsing_exception``), number -> reason, and those whose
        month has no write alias (404 ``index_not_found_exception``). Any
        other refusal (5xx, 401/403 such as a flood-stage read-only block,
        another 404, a 429 past the retries) is the cluster's, not the
        document's: raises BackendUnavailableError. A request refused for its
        size (413) raises _TooLargeError (:meth:`_send` sends it again in halves).
        """
        bad: dict[int, str] = {}
        missing: list[tuple[int, bytes]] = []
        for attempt in range(self._bulk_retries + 1):
            if attempt:
                time.sleep(min(_MAX_BACKOFF, _FIRST_BACKOFF * 2 ** (attempt - 1)))
            last = attempt == self._bulk_retries
            body = b"".join(lines for _, lines in chunk)
            try:
                result = self._client.bulk(body=body, params=WRITE_PARAMS)
            except opensearchpy.TransportError as exc:
                if exc.status_code == 429 and not last:
                    continue
                if exc.status_code == 413:
                    detail = f" {str(exc.info)[:200]}" if exc.info else ""
                    raise _TooLargeError(f"HTTP 413{detail}") from exc
                raise BackendUnavailableError(f"bulk failed: {exc}") from exc
            except opensearchpy.OpenSearchException as exc:
                raise BackendUnavailableError(f"bulk failed: {exc}") from exc
            if not result.get("errors"):
                return bad, missing
            retry, refused = [], []
            for (number, lines), item in zip(chunk, result["items"], strict=True):
                (outcome,) = item.values()
                status = outcome.get("status", 500)
                if status == 429 and not last:
                    retry.append((number, lines))
                elif status == 409:
                    continue  # the document holds this revision or a later one already
                elif status == 400:
                    bad[number] = str(outcome.get("error"))[:500]
                elif status == 404 and _error_type(outcome) == _MISSING:
                    missing.append((number, lines))
                elif not 200 <= status < 300:
                    refused.append(outcome)
            if refused:
                raise BackendUnavailableError(
                    f"bulk refused {len(refused)} document(s): {str(refused[:2])[:500]}"
                )
            if not retry:
                return bad, missing
            chunk = retry
        return bad, missing

    def ism_available(self) -> bool:
        """Whether the cluster serves the ISM API (asked once per process)."""
        if self._ism is None:
            try:
                self._client.transport.perform_request(
                    "GET", f"/_plugins/_ism/policies/{retention.policy_id(self._prefix)}"
                )
                self._ism = True
            except opensearchpy.NotFoundError:
                self._ism = True  # the API answered: no such policy yet
            except opensearchpy.RequestError as exc:
                if "no handler found" not in str(exc.info):
                    raise BackendUnavailableError(f"ISM probe failed: {exc}") from exc
                self._ism = False
            except opensearchpy.OpenSearchException as exc:
                raise BackendUnavailableError(f"ISM probe failed: {exc}") from exc
        return self._ism

    def install_ism_policy(self, retention_days: int) -> None:
        """Creates or updates the retention policy (optimistic concurrency on updates)."""
        path = f"/_plugins/_ism/policies/{retention.policy_id(self._prefix)}"
        wanted = retention.ism_policy(self._prefix, retention_days)
        params: dict[str, Any] = {}
        try:
            current = self._client.transport.perform_request("GET", path)
            mine = {k: current["policy"].get(k) for k in ("states", "ism_template")}
            if all(_same(mine[k], wanted["policy"][k]) for k in ("states", "ism_template")):
                return
            params = {"if_seq_no": current["_seq_no"], "if_primary_term": current["_primary_term"]}
        except opensearchpy.NotFoundError:
            pass
        self._call(
            lambda: self._client.transport.perform_request("PUT", path, params=params, body=wanted)
        )

    def retain(self, retention_days: int, now: dt.datetime) -> list[str]:
        """Applies retention: installs the ISM policy if the cluster has ISM, else sweeps.

        Returns the indices deleted by the sweep.
        """
        self.ensure_template()
        if self.ism_available():
            if not self._policy_installed:
                self.install_ism_policy(retention_days)
                self._policy_installed = True
                log.info("ISM policy %s installed", retention.policy_id(self._prefix))
            return []
        found = self._call(
            lambda: self._client.indices.get_alias(
                index=f"{self._prefix}-*",
                params={"allow_no_indices": "true", "ignore_unavailable": "true"},
            )
        )
        expired = retention.expired_months(sorted(found), self._prefix, retention_days, now)
        for name in expired:
            self._call(
                lambda name=name: self._client.indices.delete(
                    index=name, params={"ignore_unavailable": "true"}
                )
            )
            log.info("search retention: deleted index %s", name)
        return expired

    def make_visible(self) -> None:
        """Refreshes the events indices (indexed documents become searchable now)."""
        self._call(
            lambda: self._client.indices.refresh(
                index=f"{self._prefix}-*",
                params={"allow_no_indices": "true", "ignore_unavailable": "true"},
            )
        )

    def _search(self, tenant: str, request: dict[str, Any]) -> dict[str, Any]:
        """One search; retried briefly while a just-created monthly index starts its shard.

        Every month's shard answers or the search fails: OpenSearch otherwise
        answers 200 with the shards that failed left out (``_shards.failed``).
        A shard counts a query's clauses once rewritten against its own
        documents, so a month just made (empty, not yet refreshed) answered a
        filter the month holding the events refused as too large: an
        aggregate without those events, a page without them (test run, 2026-12-06).
        """
        for attempt in range(_SEARCH_ATTEMPTS):
            try:
                result: dict[str, Any] = self._call(
                    lambda: self._client.search(
                        index=f"{self._prefix}-*",
                        body=request,
                        routing=tenant,
                        params={
                            "allow_no_indices": "true",
                            "ignore_unavailable": "true",
                            "allow_partial_search_results": "false",
                        },
                    )
                )
                return result
            except _TimedOutError:
                # Not again: the node goes on with a search its client gave up on (a
                # disconnect cancels it only where it checks, which a phrase match or a
                # highlighter may not reach for minutes), so each try added a copy (four
                # until 2026-12-07, the caller waiting 40 s for UNAVAILABLE).
                raise
            except BackendUnavailableError:
                if attempt + 1 == _SEARCH_ATTEMPTS:
                    raise
                time.sleep(0.1 * (attempt + 1))
        raise AssertionError("unreachable")

    def _planned(self, tenant: str, where: Any, run: Callable[[translate_dsl.Plan], _T]) -> _T:
        """``run`` with the default plan, else (too many clauses) the leanest the tenant allows.

        The default (:class:`translate_dsl.Plan`) sends what searches always
        sent; the second leaves out the branch for documents indexed before
        ``entries.bool`` when the tenant has none (one request asks), and
        compares numbers past 2**53 by script. A cluster refusing expensive
        queries is sent its words with apostrophes as phrases only
        (:attr:`translate_dsl.Plan.continued_words`): the query it answered
        before 2026-12-06, rather than none.
        """
        try:
            return self._lean_if_needed(tenant, where, run, translate_dsl.DEFAULT)
        except ExpensiveQueryRefusedError:
            if not translate_dsl.continues_words(where):
                raise
            log.info("search: the cluster refuses prefix queries; words matched as phrases only")
            plain = dataclasses.replace(translate_dsl.DEFAULT, continued_words=False)
            return self._lean_if_needed(tenant, where, run, plain)

    def _lean_if_needed(
        self,
        tenant: str,
        where: Any,
        run: Callable[[translate_dsl.Plan], _T],
        first: translate_dsl.Plan,
    ) -> _T:
        """``run(first)``, else (too many clauses) with ``first`` made as lean as it can be.

        Leaner first by what keeps the answer (:meth:`_planned`); then, if the
        tree has words with apostrophes, with those as phrases alone: a word's
        prefix queries double its clauses (two per text field), so 171 such
        words of a ``query`` were past the node's 1,024 where 256 were
        answered before 2026-12-06 (INVALID_ARGUMENT "too large" on OpenSearch
        only; review). Such a query is answered as it was then.
        """
        try:
            return run(first)
        except TooManyClausesError:
            if where is None:
                raise
            typing = translate_dsl.needs_typing(where)
            lean = dataclasses.replace(
                first,
                legacy_bools=typing and self._has_untyped(tenant),
                scripted_numbers=translate_dsl.has_big_numbers(where),
            )
            phrases = first.continued_words and translate_dsl.continues_words(where)
            if (lean.legacy_bools or not typing) and not lean.scripted_numbers:
                if not phrases:
                    raise  # nothing leaner to send
            else:
                try:
                    return run(lean)
                except TooManyClausesError:
                    if not phrases:
                        raise
            log.info("search: a query too large with prefix queries; words matched as phrases only")
            return run(dataclasses.replace(lean, continued_words=False))

    def _has_untyped(self, tenant: str) -> bool:
        """Whether the tenant has a document indexed before booleans had ``entries.bool``."""
        result = self._search(
            tenant,
            {
                "size": 0,
                "terminate_after": 1,
                "track_total_hits": True,
                "query": {
                    "bool": {
                        "filter": [{"term": {"tenant_id": tenant}}],
                        "must_not": [{"exists": {"field": TYPED_BOOLS}}],
                    }
                },
            },
        )
        return bool(result["hits"]["total"]["value"])

    def search(self, spec: SearchSpec) -> Page:
        """``search_after`` on the sort values (stable under concurrent inserts)."""
        result = self._planned(
            spec.tenant, spec.where, lambda plan: self._search(spec.tenant, search_body(spec, plan))
        )
        hits = []
        for h in result["hits"]["hits"]:
            sort = tuple(int(v) for v in h["sort"])
            marks = {
                name.replace("__", "."): list(fragments)
                for name, fragments in h.get("highlight", {}).items()
            }
            hits.append(Hit(sort[-1], sort, marks))
        total = result["hits"].get("total", {}).get("value", len(hits)) if spec.count else len(hits)
        return Page(hits, int(total))

    def aggregate(self, spec: AggregateSpec) -> Aggregation:
        """Composite aggregation over the groups (paged to the end), stats and percentiles."""
        return self._planned(
            spec.tenant,
            spec.where,
            lambda plan: self._aggregate(
                spec, _tenant_query(spec.tenant, spec.where, spec.below_sequence, plan)
            ),
        )

    def _aggregate(self, spec: AggregateSpec, query: dict[str, Any]) -> Aggregation:
        metrics: dict[str, Any] = {}
        for i, m in enumerate(spec.metrics):
            metrics[f"s{i}"] = {"stats": {"field": m.column}}
            if spec.percentiles:
                metrics[f"p{i}"] = {
                    "percentiles": {
                        "field": m.column,
                        "percents": list(spec.percentiles),
                        "keyed": False,
                    }
                }
        buckets: list[Bucket] = []
        names = [f"g{i}" for i in range(len(spec.group_by))]
        if spec.group_by:
            after: dict[str, Any] | None = None
            if spec.page_size and spec.after is not None:
                after = dict(zip(names, spec.after, strict=True))
            while True:
                # A page: one group more than it holds, if there is one (see AggregateSpec).
                wanted = spec.page_size + 1 - len(buckets) if spec.page_size else 1000
                composite: dict[str, Any] = {
                    "size": min(1000, wanted),
                    "sources": [
                        {f"g{i}": {"terms": {"field": f.column, "missing_bucket": True}}}
                        for i, f in enumerate(spec.group_by)
                    ],
                }
                if after is not None:
                    composite["after"] = after
                aggs = {"groups": {"composite": composite, "aggs": metrics}}
                result = self._buckets(
                    spec.tenant, {"query": query, "size": 0, "aggs": aggs}, GROUPS
                )
                # No aggregations at all when no shard could match (every one skipped).
                groups = result.get("aggregations", {}).get("groups", {"buckets": []})
                for b in groups["buckets"]:
                    order = tuple(None if b["key"][g] is None else str(b["key"][g]) for g in names)
                    keys = tuple("" if v is None else v for v in order)
                    buckets.append(Bucket(keys, int(b["doc_count"]), self._stats(spec, b), order))
                if len(buckets) > MAX_BUCKETS and not spec.page_size:  # a page: one more
                    raise TooManyBucketsError(_TOO_MANY[GROUPS], GROUPS)
                after = groups.get("after_key")
                if not groups["buckets"] or after is None or len(buckets) > spec.page_size > 0:
                    break
            if not spec.page_size:  # one answer: the largest groups first, as always
                buckets.sort(key=lambda b: (-b.count, b.keys))
        else:
            result = self._search(
                spec.tenant,
                {"query": query, "size": 0, "track_total_hits": True, "aggs": metrics},
            )
            count = int(result["hits"]["total"]["value"])
            if count:
                buckets.append(Bucket((), count, self._stats(spec, result.get("aggregations", {}))))
        time_buckets: list[tuple[int, int]] = []
        if spec.interval_seconds:
            histogram = {
                "date_histogram": {
                    "field": "occurred_at",
                    "fixed_interval": f"{spec.interval_seconds}s",
                    "min_doc_count": 1,
                }
            }
            result = self._buckets(
                spec.tenant, {"query": query, "size": 0, "aggs": {"h": histogram}}, TIME_BUCKETS
            )
            found = result.get("aggregations", {}).get("h", {"buckets": []})["buckets"]
            if len(found) > MAX_BUCKETS:
                raise TooManyBucketsError(_TOO_MANY[TIME_BUCKETS], TIME_BUCKETS)
            time_buckets = [(int(b["key"]) * 1000, int(b["doc_count"])) for b in found]
        return Aggregation(buckets, time_buckets)

    def _buckets(self, tenant: str, body: dict[str, Any], part: str) -> dict[str, Any]:
        """An aggregation's search; the node's bucket limit is ``part``'s (GROUPS, TIME_BUCKETS)."""
        try:
            return self._search(tenant, body)
        except _BucketLimitError as exc:
            log.info("search: OpenSearch refused an aggregation's buckets: %s", exc)
            raise TooManyBucketsError(_TOO_MANY[part], part) from exc

    def _stats(self, spec: AggregateSpec, aggs: dict[str, Any]) -> dict[str, Stats]:
        out = {}
        for i, m in enumerate(spec.metrics):
            s = aggs[f"s{i}"]
            if not s["count"]:
                continue
            percentiles = {}
            if spec.percentiles:
                for entry in aggs[f"p{i}"]["values"]:
                    percentiles[float(entry["key"])] = float(entry["value"])
            out[m.name] = Stats(
                int(s["count"]),
                float(s["min"]),
                float(s["max"]),
                float(s["avg"]),
                float(s["sum"]),
                {p: percentiles[float(p)] for p in spec.percentiles},
            )
        return out


def _same(found: Any, wanted: Any) -> bool:
    """Whether a stored ISM value carries everything we asked for (ISM adds defaults)."""
    if isinstance(wanted, dict):
        return isinstance(found, dict) and all(_same(found.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return (
            isinstance(found, list)
            and len(found) == len(wanted)
            and all(_same(f, w) for f, w in zip(found, wanted, strict=True))
        )
    return bool(found == wanted)


def _error_type(outcome: dict[str, Any]) -> str:
    """The ``type`` of a bulk item's error ("" when it has none)."""
    error = outcome.get("error")
    return str(error.get("type", "")) if isinstance(error, dict) else ""


def _chunk_end(lines: list[tuple[int, bytes]], start: int, most: int) -> int:
    """The end of the bulk request starting at ``start``.

    _CHUNK_DOCS documents and ``most`` bytes at most (a larger document alone).
    """
    end, size = start, 0
    while end < len(lines) and end - start < _CHUNK_DOCS:
        size += len(lines[end][1])
        if end > start and size > most:
            break
        end += 1
    return end


def search_body(
    spec: SearchSpec, plan: translate_dsl.Plan = translate_dsl.DEFAULT
) -> dict[str, Any]:
    """The DSL of one page (the search benchmark sends the same to OpenSearch directly)."""
    request: dict[str, Any] = {
        "query": _tenant_query(spec.tenant, spec.where, spec.below_sequence, plan),
        "sort": [
            {k.field.column: {"order": "desc" if k.descending else "asc"}} for k in spec.order
        ],
        "size": spec.limit,
        "_source": False,
        "track_total_hits": spec.count,
    }
    if spec.after is not None:
        request["search_after"] = list(spec.after)
    highlight = translate_dsl.highlight_query(spec.where, plan) if spec.highlight else None
    if highlight is not None:
        request["highlight"] = {
            "highlight_query": highlight,
            # Beyond this many characters a field is not highlighted (past the
            # index's own limit, the same, OpenSearch fails the whole search).
            "max_analyzer_offset": HIGHLIGHT_CHARS,
            "encoder": "html",  # the text is escaped, only the tags are markup
            "pre_tags": ["<em>"],
            "post_tags": ["</em>"],
            "fields": {f.column: {"number_of_fragments": 3} for f in catalogue.TEXTS},
        }
    return request


def _tenant_query(
    spec_tenant: str,
    where: Any,
    below: int | None = None,
    plan: translate_dsl.Plan = translate_dsl.DEFAULT,
) -> dict[str, Any]:
    clauses: dict[str, list[dict[str, Any]]] = {"filter": [{"term": {"tenant_id": spec_tenant}}]}
    if where is not None:
        occur, query = translate_dsl.clause(where, plan)  # a NOT at the top costs no match_all
        clauses.setdefault(occur, []).append(query)
    if below is not None:
        clauses["filter"].append({"range": {"sequence": {"lt": below}}})
    return {"bool": clauses}


_CLAUSE_MARKS = (
    "too_many_clauses",
    "too_many_nested_clauses",
    "maxclausecount",
    "too many nested clauses",
)


def _too_many_clauses(info: Any) -> bool:
    """Whether an error answer says the query holds more clauses than the cluster allows."""
    text = str(info).lower()
    return any(mark in text for mark in _CLAUSE_MARKS)


POOL_SIZE = 16
"""Connections kept open per node. urllib3 keeps one by default: with the indexer
and concurrent queries sharing the client, every other request opened (and then
dropped) a connection of its own, with a warning in the log each time."""


def connect(
    urls: list[str],
    username: str,
    password: str,
    ca_file: str | None,
    verify_certs: bool,
    timeout: float,
) -> OpenSearch:
    """A client for a cluster (any URL list; HTTP basic auth and TLS when given)."""
    options: dict[str, Any] = {
        "hosts": urls,
        "timeout": timeout,
        "max_retries": 0,
        "retry_on_timeout": False,
        "verify_certs": verify_certs,
        "pool_maxsize": POOL_SIZE,
    }
    if username:
        options["http_auth"] = (username, password)
    if ca_file:
        options["ca_certs"] = ca_file
    if not verify_certs:
        options["ssl_show_warn"] = False
    return OpenSearch(**options)
