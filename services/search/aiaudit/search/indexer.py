"""The indexer: tails every tenant's log into the search backend.

The log is the outbox. For each log with entries past the backend's position,
the indexer reads a batch from the store, builds the documents, and hands them
to the backend, which indexes them (idempotently, by document id) and only
then records the new position. A backend that is down is retried with
exponential backoff (health NOT_SERVING meanwhile); nothing is skipped, so on
recovery it catches up and every event is indexed exactly once. A
configuration error met while indexing (ConfigError: another index template
overlapping the prefix) is retried the same way, but logged once at ERROR as
a configuration problem, not as an outage. A stored event that cannot be read
back (a damaged row: sealed content that does not open, content or a canonical
form that does not parse) holds only its own tenant's log, with an error
naming it, so one tenant's damage never stops the others. So does
an event whose document the backend refuses for good (OpenSearch's 400, a
mapping it cannot take; not back-pressure, not an outage): what came before
it is indexed, its log waits at it, with one error naming the log, the
sequence and the event, and is tried again each pass, one entry at a time,
while every other log goes on and health stays SERVING (until 2026-12-05 the
refusal counted as an outage: every pass ended there, and no log sorting
after it was indexed again).

Throughput: a log that is behind is indexed batch after batch with the
next batch read and built (Python, this thread) while the previous bulk
request is in flight (I/O, a second thread); positions still move strictly
in order, each only after its own bulk succeeded. Documents are built
straight from the stored canonical JSON (:mod:`aiaudit.search.stored_document`).

Freshness: on a backend that refreshes periodically (OpenSearch), a batch
that reaches the head of its log (live traffic, not a backlog), or ends its
build, is made searchable before its position moves (at most one refresh
every 0.1 s; a refresh that fails fails the write, sent again) instead of at
the next periodic refresh; a backlog is left to those, so bulk loading pays
no extra refreshes.

Wake-ups: a commit on the store's engine in this process (an ingest batch,
an access record) wakes the indexer at once (:mod:`aiaudit.common.commits`;
an idle indexer woken this way first lingers ``wake_linger`` seconds so a
burst of commits becomes one bulk, and while a wake-up finds nothing new it
looks again after the growing ``commits.RECHECKS`` pauses, as the commit
event fires just before the COMMIT lands); otherwise it polls every ``poll_interval``
seconds (commits from other processes).

Replicas: into OpenSearch, shared by every replica, one indexer works at a
time, the holder of the prefix's lock (:meth:`Indexer.leader_job`, ``search.indexer``
for the default prefix; :mod:`aiaudit.common.leader`);
the others ask for it once a poll interval and meanwhile read the leader's
positions, so that their exports wait for the right snapshot, and how far it
applied the erasures past each held log's position, so that their reads over
content do not wait for the hold to end, and, while logs are being built,
where it holds them (:meth:`Indexer.building`). An embedded index is its own
process's, and its indexer always works.

Building: a new index (a new embedded file, a new OpenSearch prefix), or one
rebuilt for a new schema, is indexed from sequence 0 of every log. At start
(before the service serves; into OpenSearch, once this replica leads) the
indexer has the backend plan that build: each log's size in the store then
is what the log must reach (:meth:`SearchBackend.begin_building`), kept in
the index (OpenSearch: in the store, where standbys read it) until the
position gets there. Until then the log's reads would miss events the store
holds, so the handlers answer them UNAVAILABLE ``INDEX_BUILDING``
(:meth:`Indexer.building`), or FAILED_PRECONDITION ``INDEX_HELD`` while an
event the indexer cannot index holds the log below its target (waiting does
not end that; the leader records the hold in the store, once per hold, so
that standbys say it too); what was appended after the build began is the
ordinary lag, as before. Until 2026-12-06 a rebuilt or new index answered
what it held so far, as if whole.

Retention (``retention_days``): the backend's :meth:`retain` runs at start
and every ``retention_sweep_interval`` seconds (an ISM policy install, or a
sweep of expired months; see :mod:`aiaudit.search.retention`).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import orjson
import sqlalchemy as sa

from aiaudit.common import commits, erasure, leader, restore
from aiaudit.common.config import ConfigError
from aiaudit.common.keys.seal import SealError
from aiaudit.common.leader import Leadership
from aiaudit.common.store import SqlEventStore
from aiaudit.common.store.readable import DAMAGED_ROW, readable_prefix
from aiaudit.common.store.schema import log_entries
from aiaudit.common.store.sql import READ_BYTES, StoredEvent
from aiaudit.search import stored_document
from aiaudit.search.backends.base import (
    DocumentRefusedError,
    SearchBackend,
)
from aiaudit.search.document import Document

log = logging.getLogger(__name__)

_PASS_BATCHES = 20
"""Batches of one log per pass: a long backlog does not hold the other tenants' logs."""
_SHOW_GAP = 0.1
"""Shortest time between two refreshes of caught-up batches (seconds)."""
_SWEEP_RECORDS = 1000
"""Erasure and retention records past a held log's position read at a time."""
_LANDING_WAIT = 10.0
"""Longest a paged aggregate's snapshot waits for the write in flight into its log (s)."""


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class Indexer:
    """A background thread moving log entries into the search backend."""

    def __init__(
        self,
        store: SqlEventStore,
        backend: SearchBackend,
        batch_size: int,
        poll_interval: float,
        max_backoff: float,
        on_health: Callable[[bool], None],
        retention_days: int = 0,
        retention_sweep_interval: float = 3600.0,
        linger: float = 0.02,
        leadership: Leadership | None = None,
    ) -> None:
        """Not started until :meth:`start`; ``leadership``: the job's lock, for a shared index."""
        self._store = store
        self._leadership = leadership
        self._leading = leadership is None
        self._next_claim = 0.0
        self._backend = backend
        self._batch = batch_size
        self._poll = poll_interval
        self._max_backoff = max_backoff
        self._on_health = on_health
        self._stalled: dict[str, int] = {}
        """Logs held at a damaged event (log id -> its sequence); other logs go on."""
        self._refused: dict[str, int] = {}
        """Logs held at an event the backend refused (log id -> its sequence)."""
        self._swept: dict[str, _Swept] = {}
        """Held logs: the erasures applied past their position (:meth:`_apply_erasures`)."""
        self._recorded: dict[str, int] = {}
        """Held logs: how far their erasures are applied, as last recorded for standbys."""
        self._applied: dict[str, int] = {}
        """Standing by: how far the leader applied erasures past each held log's position."""
        self._told_held: dict[str, int] = {}
        """Leading: where each log being built is held, as last recorded for standbys."""
        self._holds: dict[str, int] = {}
        """Standing by, while logs are being built: where the leader last found each held
        (:meth:`SearchBackend.holds`), read with its positions."""
        self._misconfigured: str | None = None
        """The configuration error last logged (:meth:`_misconfiguration`): said once."""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._progress = threading.Condition()
        self._positions: dict[str, int] = {}
        self._landing: dict[str, int] = {}
        """Logs with a write in flight (log id -> the position it moves the log to): its
        documents may be searchable before the position is published (:meth:`position`)."""
        self._building: dict[str, int] | None = None
        """Logs the index is still building (log id -> the position to reach); None: not
        known yet (:meth:`_load_building`)."""
        self._retention_days = retention_days
        self._linger = linger
        self._sweep_every = retention_sweep_interval
        self._next_sweep = 0.0
        self._thread = threading.Thread(target=self._run, name="search-indexer", daemon=True)
        self._unwatch: list[Callable[[], None]] = []
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="search-bulk")
        """Sends one bulk at a time while the indexer thread builds the next batch."""
        self._shown = 0.0
        """When the last batch made searchable as it landed was (monotonic seconds)."""
        self.woken_early = False
        """Set by a commit wake-up, cleared when a pass found work (a quick recheck otherwise)."""

    @staticmethod
    def leader_job(index_prefix: str) -> str:
        """The lock (:mod:`aiaudit.common.leader`) of the indexers into an OpenSearch prefix.

        One per store cursor (:func:`~aiaudit.search.backends.opensearch.cursor_name`),
        as each prefix has its own: ``search.indexer`` for the default prefix (as
        before), ``search.indexer:<cursor>`` for another. Until 2026-12-05 every
        prefix took ``search.indexer``, so of two deployments on one store with
        prefixes of their own only one ever indexed.
        """
        from aiaudit.search.backends.opensearch import CONSUMER, cursor_name  # opensearch-py

        cursor = cursor_name(index_prefix)
        return leader.INDEXER if cursor == CONSUMER else f"{leader.INDEXER}:{cursor}"

    @property
    def leading(self) -> bool:
        """Whether this replica's indexer is the one indexing (see :meth:`_lead`)."""
        return self._leading

    def watch(self, engine: sa.Engine) -> None:
        """Wakes up on every commit made through this engine in this process."""
        self._unwatch.append(commits.on_commit(engine, self._on_commit))

    def _on_commit(self) -> None:
        if self._leading:  # a standby has nothing to index
            self.woken_early = True
            self._wake.set()

    def start(self) -> None:
        """Learns (or plans) the index's build, then starts tailing.

        The build is known before the service serves: no read meets a new index
        before it is told apart from a whole one. A store out of reach leaves it
        to the thread (which says so); meanwhile every read is answered as building.
        """
        try:
            self._load_building()
        except Exception as exc:  # the store or the backend is down: the thread tries again
            log.info("search index build not known yet (tried again by the indexer): %s", exc)
        self._thread.start()

    def building(self, log_id: str) -> Building | None:
        """How far the index is building this log, whose reads would miss events; None: built.

        A log the build did not plan (empty when it began, or an index that
        was whole) is built: what it lacks is the ordinary lag. ``held``: the
        sequence the log is held at. Leading, where this replica's indexer
        holds it (:meth:`_held_at`: a hold below the position is an old one,
        another replica led since); standing by, where the leader recorded it
        held (:meth:`_tell_held`), while the log's position is still there (a
        hold repaired leaves the record behind the position). A hold at or past
        the target does not hold the build: it is not said. Until 2026-12-06 a
        standby never said a hold (the leader kept them in its memory only).
        """
        with self._progress:
            indexed = self._positions.get(log_id, 0)
            target = None
            if self._building is not None:
                target = self._building.get(log_id)
                if target is None:
                    return None
            if self._leading:
                held = self._held_at(log_id, indexed)
            else:  # the leader's word, read with its positions
                held = self._holds.get(log_id)
                if held != indexed:
                    held = None
        if held is not None and target is not None and held >= target:  # not what waits
            held = None
        return Building(indexed, target, held)

    def position(self, log_id: str) -> int:
        """Entries of the log indexed: the snapshot a paged aggregate's pages share.

        A write into the log in flight is waited for (at most ``_LANDING_WAIT``
        seconds): its documents may be searchable already (committed, refreshed,
        or shown by a periodic refresh) before its position is published, and the
        snapshot must hold every event a search finds. Until 2026-12-07 it was
        the position published, which came just after: right after a search
        found the events, a first page sometimes counted none of them.
        """
        with self._progress:
            landing = self._landing.get(log_id)
            if landing is not None:  # that write, not the ones after it
                self._progress.wait_for(lambda: self._landing.get(log_id) != landing, _LANDING_WAIT)
            return self._positions.get(log_id, 0)

    def _held_at(self, log_id: str, indexed: int) -> int | None:
        """Where this replica's indexer holds the log: its earliest hold at or past ``indexed``.

        A hold below the log's position is an old one (this replica led then,
        and another went past it since).
        """
        holds = (self._stalled.get(log_id), self._refused.get(log_id))
        return min((h for h in holds if h is not None and h >= indexed), default=None)

    def _tell_held(self, log_id: str) -> None:
        """Records in the backend, for the standbys, where a log being built is held.

        Once per hold (and per leadership): when the log's position is at the
        hold (the bulk before it landed) and below its target. A record left
        behind (the hold repaired) needs no removal: the position went past it.
        """
        position = self._positions.get(log_id, 0)
        target = (self._building or {}).get(log_id)
        if target is None or position >= target or self._held_at(log_id, position) != position:
            return
        if self._told_held.get(log_id) != position:
            self._backend.record_held(log_id, position)
            self._told_held[log_id] = position

    def _tell_mended(self, log_id: str, sequence: int) -> None:
        """Records that the hold told at ``sequence`` ended: the event there reads back now.

        Before its write lands: while the backend is down the log's position
        stays at the hold, and standbys went by it alone and said the log
        held by an event already repaired, for as long as the outage lasted
        (until 2026-12-06). A hold met again at that sequence (damaged once
        more before the position moved) is not told again: the rows only
        grow, and standbys answer it INDEX_BUILDING, as before the hold.
        """
        self._backend.record_mended(log_id, sequence)
        del self._told_held[log_id]

    def _load_building(self) -> None:
        """Reads which logs the index is still building; a new index's leader plans it.

        The plan: each log's size in the store now (:meth:`SearchBackend.begin_building`).
        """
        targets = self._backend.building()
        if targets is None and self._leading:
            targets = self._backend.begin_building(self._store.log_sizes())
        if targets is None:  # a standby: the leader plans it
            return
        positions = self._backend.positions()
        with self._progress:
            self._building = dict(targets)
        self._publish(positions)
        if targets:
            log.warning(
                "search index is being built: %d log(s) (%d entries) to index from the "
                "store; until each is, its tenant's searches, aggregates and exports answer "
                "UNAVAILABLE INDEX_BUILDING",
                len(targets),
                sum(targets[k] - positions.get(k, 0) for k in targets),
            )

    def stop(self) -> None:
        """Stops after the batch in flight (again: nothing more)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)
        self._writer.shutdown(wait=True)
        unwatching, self._unwatch = self._unwatch, []
        for unwatch in unwatching:
            unwatch()
        if self._leadership is not None:
            self._leadership.release()

    def wait_indexed(
        self,
        log_id: str,
        size: int,
        timeout: float,
        waiting: Callable[[], bool] = lambda: True,
        *,
        whole: bool = False,
    ) -> bool:
        """Waits until the first ``size`` entries of a log are indexed.

        Or, unless ``whole``, until entry ``size - 1`` is an erasure (or
        retention) record applied, with every record before it, while the log
        is held at an earlier event (:meth:`_apply_erasures`): what a count
        over content waits for (``SqlEventStore.last_record`` + 1), and the index
        then holds no erased text; the events after the hold are not indexed
        yet. ``whole``: every entry (an export's snapshot). A standby replica
        knows what the leader recorded in the store: its positions, and how
        far the records past a held log's position are applied; it does not
        tell a record from another entry, so without ``whole``, entry
        ``size - 1`` must be an erasure or retention record (as every caller's is).

        Gives up (False) at ``timeout`` or, within half a second, once
        ``waiting()`` is false: the export that waits was cancelled, and its
        stream slot goes back now rather than when the timeout would have come.
        """
        deadline = time.monotonic() + timeout
        with self._progress:
            while not self._indexed(log_id, size, whole):
                left = deadline - time.monotonic()
                if left <= 0 or not waiting():
                    return False
                self._wake.set()
                self._progress.wait(min(left, 0.5))
        return True

    def _indexed(self, log_id: str, size: int, whole: bool) -> bool:
        """See :meth:`wait_indexed` (under ``_progress``)."""
        if self._positions.get(log_id, 0) >= size:
            return True
        if whole:
            return False
        swept = self._swept.get(log_id)
        last = size - 1
        if swept is not None and last < swept.applied and last in swept.records:
            return True
        return last < self._applied.get(log_id, 0)  # the leader's word, read standing by

    def _run(self) -> None:
        backoff = 0.0
        healthy = True
        progressed = False
        rechecks: Iterator[float] = iter(())
        while not self._stop.is_set():
            self._wake.clear()
            try:
                leading = self._lead()
                if self._building is None:  # not known at start: the store was out of reach
                    self._load_building()
                if leading:
                    if self.woken_early and not progressed:
                        # Let a burst of commits (access records of concurrent reads) gather
                        # into one bulk instead of one small bulk per commit.
                        self._stop.wait(self._linger)
                    self._sweep()
                    if self.woken_early:
                        rechecks = iter(commits.RECHECKS)
                    self.woken_early = False
                    progressed = self.run_once()
                else:  # the leader's, for wait_indexed and building
                    positions = self._backend.positions()
                    applied = self._backend.erasures_applied()
                    holds = self._backend.holds() if self._building else None
                    self._publish(positions, applied, holds)
            except Exception as exc:  # the backend or the store is down: retry, skip nothing
                backoff = min(max(backoff * 2, 0.2), self._max_backoff)
                self._paused(exc, healthy)
                if healthy:
                    self._on_health(False)
                    healthy = False
                self._stop.wait(backoff)
                continue
            if not healthy:
                log.info("search indexer resumed")
                self._misconfigured = None
                self._on_health(True)
                healthy = True
            backoff = 0.0
            if not leading:  # standing by: look again in a poll interval
                self._wake.wait(self._poll)
                continue
            if progressed:
                continue
            # The commit that woke us may not have landed yet: look again after
            # growing pauses before falling back to the poll.
            self._wake.wait(min(next(rechecks, self._poll), self._poll))

    def _paused(self, exc: Exception, healthy: bool) -> None:
        """Reports why indexing stopped: once per outage, once per distinct configuration error."""
        if isinstance(exc, ConfigError):
            self._misconfiguration(exc)
        elif healthy:
            log.warning("search indexer paused: %s", exc)

    def _misconfiguration(self, exc: ConfigError) -> None:
        """Logs a configuration error at ERROR, once per distinct one.

        A configuration error (another index template overlapping the prefix,
        PrefixConflictError from the template install of a write or of
        retention) is not an outage: retrying does not fix it until the
        configuration or the cluster changes. It is retried all the same, with
        the same backoff, so that a change of the cluster (the other template
        deleted) needs no restart; it is said again only once indexing (or
        retention) went on, or it changed. Until 2026-12-06 it was reported as
        an outage (``WARNING search indexer paused``).
        """
        if str(exc) == self._misconfigured:
            return
        log.error(
            "search indexer stopped by a configuration problem, not an outage: %s "
            "(retrying will not fix it until the configuration or the cluster changes; "
            "it is tried again with backoff meanwhile, so indexing goes on without a "
            "restart once it is fixed)",
            exc,
        )
        self._misconfigured = str(exc)

    def _lead(self) -> bool:
        """Whether this replica indexes: it holds the job's lock (asked once a poll interval).

        Into a shared index (OpenSearch) one replica indexes and the others
        stand by, or each would send every document again; an embedded index
        is its process's own, and its indexer always leads.
        """
        if self._leadership is None or time.monotonic() < self._next_claim:
            return self._leading
        self._next_claim = time.monotonic() + self._poll
        leading = self._leadership.acquire() is not None
        if leading != self._leading:
            log.info("search indexer %s", "leads" if leading else "stands by: another one leads")
            self._told_held.clear()  # another may have led meanwhile: tell the holds again
        self._leading = leading
        return leading

    def _sweep(self) -> None:
        """Applies retention when due; a failure is logged and retried at the next sweep."""
        if not self._retention_days or time.monotonic() < self._next_sweep:
            return
        self._next_sweep = time.monotonic() + self._sweep_every
        try:
            removed = self._backend.retain(self._retention_days, dt.datetime.now(dt.UTC))
        except ConfigError as exc:  # the template: the writes meet it too; said once
            self._misconfiguration(exc)
            self._next_sweep = time.monotonic() + min(self._sweep_every, 60.0)
            return
        except Exception as exc:
            log.warning("search retention not applied (retried later): %s", exc)
            self._next_sweep = time.monotonic() + min(self._sweep_every, 60.0)
            return
        self._misconfigured = None
        if removed:
            log.info("search retention (%d days) removed %s", self._retention_days, removed)

    def run_once(self) -> bool:
        """Indexes every log that is behind, up to its current size; whether anything was."""
        if self._building is None:
            self._load_building()  # planned before anything is indexed
        positions = self._backend.positions()
        self._publish(positions)
        progressed = False
        for log_id, size in sorted(self._store.log_sizes().items()):
            start = positions.get(log_id, 0)
            if size > start and not self._stop.is_set():
                progressed = self._catch_up(log_id, start, size) or progressed
                if log_id in self._stalled or log_id in self._refused:  # held
                    self._tell_held(log_id)
                    progressed = self._apply_erasures(log_id, size) or progressed
                    continue
            if log_id in self._swept:
                self._publish_swept(log_id, None)
        return progressed

    def _catch_up(self, log_id: str, start: int, size: int) -> bool:
        """Indexes one log from ``start`` to ``size``, building a batch while the last is sent."""
        in_flight: Future[int] | None = None
        progressed = False
        try:
            for _ in range(_PASS_BATCHES):
                if start >= size or self._stop.is_set():
                    break
                # A log held at a refused event is tried one entry at a time. A batch
                # of large events ends at READ_BYTES stored: the next goes on after it.
                limit = 1 if self._refused.get(log_id) == start else self._batch
                entries, damage = self._read(log_id, start, limit)
                docs, erased, damage = self._build(log_id, entries, damage)
                if docs:
                    end = docs[-1].sequence + 1
                    if in_flight is not None:
                        landed, in_flight = self._landed(log_id, in_flight), None
                        if not landed:
                            return progressed
                        progressed = True
                    show = self._shows(log_id, start, end, size)
                    in_flight = self._writer.submit(self._write, log_id, docs, erased, end, show)
                    start = end
                if damage is not None:  # what came before it is indexed; the log waits at it
                    self._hold(log_id, damage)
                    break
                if not docs:
                    break
                mended = self._stalled.pop(log_id, None)
                if mended is not None and self._told_held.get(log_id) == mended:
                    self._tell_mended(log_id, mended)
        finally:
            if in_flight is not None:  # raises if that bulk failed (an outage)
                progressed = self._landed(log_id, in_flight) or progressed
        return progressed

    def _read(
        self, log_id: str, start: int, limit: int
    ) -> tuple[list[StoredEvent], _Damage | None]:
        """Entries from ``start`` (``limit`` at most), up to the first row that does not read.

        A read that meets a damaged row (:data:`~aiaudit.common.store.readable.DAMAGED_ROW`:
        sealed content that does not open, content JSON that does not parse,
        ...) is narrowed down to the longest prefix that reads
        (:func:`~aiaudit.common.store.readable.readable_prefix`): it is indexed,
        and the log held at the damaged row, not at the start of its batch.
        Store errors propagate (an outage, not damage).
        """
        try:
            return self._store.read_log(log_id, start, limit, max_bytes=READ_BYTES), None
        except sa.exc.SQLAlchemyError:
            raise
        except DAMAGED_ROW as exc:
            failed: Exception = exc
        good, damage = readable_prefix(
            lambda n: self._store.read_log(log_id, start, n, max_bytes=READ_BYTES),
            log_id,
            start,
            limit,
            failed,
        )
        if damage is None:
            return good, None
        sequence = start + len(good)
        return good, _Damage(sequence, f"event {self._event_id(log_id, sequence)}", damage)

    def _event_id(self, log_id: str, sequence: int) -> str:
        """The quoted id of a log's entry, read alone (its other columns may not read back)."""
        e = log_entries.c
        with self._store.engine.connect() as conn:
            found = conn.execute(
                sa.select(e.event_id).where(e.log_id == log_id, e.seq == sequence)
            ).scalar()
        return repr(found) if found is not None else "?"

    def _build(
        self, log_id: str, entries: list[StoredEvent], damage: _Damage | None
    ) -> tuple[list[Document], list[Document], _Damage | None]:
        """The documents of the entries before the first damaged one, and of what they erase.

        A stored event that does not parse ends the batch there, as does an
        erasure (or retention) record naming an event that does not: the
        documents before it are indexed, the log is held at it (``damage``).
        """
        docs: list[Document] = []
        for entry in entries:
            try:
                docs.append(stored_document.from_stored(entry))
            except Exception as exc:  # a damaged row: hold this log, keep indexing the others
                damage = _Damage(entry.sequence, f"event {entry.event_id!r}", exc)
                break
        kept = entries[: len(docs)]
        while True:
            erased, broken = self._erased(log_id, kept)
            if broken is None:
                break
            damage = broken  # a record among the kept ones: earlier than any damage found
            kept = [e for e in kept if e.sequence < broken.sequence]
            docs = docs[: len(kept)]
        for d in docs:
            if d.omitted_entries:
                log.warning(
                    "search indexer: event %r (log %s, sequence %d) has %d multi-valued "
                    "values; the index holds its first %d, so filters on the other %d do not "
                    "find it (the store keeps them all)",
                    d.event_id,
                    log_id,
                    d.sequence,
                    len(d.entries) + d.omitted_entries,
                    len(d.entries),
                    d.omitted_entries,
                )
        return docs, erased, damage

    def _landed(self, log_id: str, in_flight: Future[int]) -> bool:
        """Whether a write landed whole; False when the backend refused a document.

        The log is then held at that document (DocumentRefusedError's
        position, up to which the write moved it, published by :meth:`_write`);
        it is not counted as progress, so the next try waits for the next pass.
        """
        try:
            end = in_flight.result()  # its position published (:meth:`_write`)
        except DocumentRefusedError as exc:
            if self._refused.get(log_id) != exc.position:
                log.error(
                    "search indexer holds log %s at sequence %d: %s (the other logs go on; "
                    "this one is tried again each pass; the store keeps the event)",
                    log_id,
                    exc.position,
                    exc,
                )
                self._refused[log_id] = exc.position
            return False
        if self._refused.pop(log_id, None) is not None:
            log.info("search indexer: log %s goes on (indexed up to %d)", log_id, end)
        return True

    def _shows(self, log_id: str, start: int, end: int, size: int) -> bool:
        """Whether a batch from ``start`` to ``end`` is made searchable as it lands.

        One that reaches the head of its log (live traffic), or that ends the
        log's build: its position says "built" to every replica, and a read
        must then find the build's events (until 2026-12-06 such a batch
        short of the head, the log grown since the build began or held past
        its target, left them to the periodic refresh).
        """
        if self._backend.visible_on_write:
            return False
        target = (self._building or {}).get(log_id)
        return end >= size or (target is not None and start < target <= end)

    def _write(
        self, log_id: str, docs: list[Document], erased: list[Document], end: int, show: bool
    ) -> int:
        """Indexes a batch's events, then the content-free documents of the events it erases.

        Events past retention are not indexed (again), whatever a sweep did. An
        erased one past retention still has its text taken out (``gone``): an
        OpenSearch sweep drops whole months only, so its old document, text
        included, may still be there. A batch with erasures has the backend
        remove the replaced text physically too (``erasing``).

        The new position (a refused document's, up to which the write moved it)
        is published here, as the write returns, and a paged aggregate's
        snapshot waits for it meanwhile (:meth:`position`).
        """
        erasing = bool(erased)
        gone: list[Document] = []
        if self._retention_days:
            cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=self._retention_days)
            oldest = (cutoff - _EPOCH) // dt.timedelta(microseconds=1)

            def kept(d: Document) -> bool:
                return int(d.scalars.get("occurred_time", oldest)) >= oldest

            docs = [d for d in docs if kept(d)]
            gone = [d for d in erased if not kept(d)]
            erased = [d for d in erased if kept(d)]
        if show:  # at most one refresh every _SHOW_GAP seconds: this one waits for its turn
            wait = self._shown + _SHOW_GAP - time.monotonic()
            if wait > 0:
                self._stop.wait(wait)
        with self._progress:
            self._landing[log_id] = end
        landed: int | None = None
        try:
            self._backend.write(log_id, docs + erased, end, gone, erasing, visible=show)
            landed = end
        except DocumentRefusedError as exc:
            landed = exc.position
            raise
        finally:
            self._land(log_id, landed)
        if show:
            self._shown = time.monotonic()
        return end

    def _land(self, log_id: str, position: int | None) -> None:
        """Ends the log's write in flight, publishing where it left the log (None: nowhere).

        A position only grows: an erasure's write (at the log's position) does not move it.
        """
        with self._progress:
            del self._landing[log_id]
            if position is not None and position > self._positions.get(log_id, 0):
                self._publish({log_id: position})
            self._progress.notify_all()

    def _publish(
        self,
        positions: dict[str, int],
        applied: dict[str, int] | None = None,
        holds: dict[str, int] | None = None,
    ) -> None:
        """Tells ``wait_indexed`` how far each log is indexed.

        Standing by, also how far the leader applied the erasures past held
        logs' positions (``applied``), and, while logs are being built, where
        it found them held (``holds``, for :meth:`building`).
        """
        with self._progress:
            self._positions.update(positions)
            self._applied.update(applied or {})
            if holds is not None:
                self._holds = holds
            if self._building:
                for log_id, position in positions.items():
                    if self._building.get(log_id, position + 1) <= position:
                        del self._building[log_id]
                if not self._building:
                    log.info(
                        "search index built: every log is indexed up to its size when "
                        "the build began; reads answer again"
                    )
            self._progress.notify_all()

    def _hold(self, log_id: str, damage: _Damage) -> None:
        """Logs once per log and position that a damaged event holds the log there."""
        if self._stalled.get(log_id) != damage.sequence:
            log.error(
                "search indexer holds log %s at sequence %d: %s is damaged: %s (the other "
                "logs go on, and so do this log's erasures past it; `aiaudit verify` names it)",
                log_id,
                damage.sequence,
                damage.what,
                _reason(damage.error),
            )
            self._stalled[log_id] = damage.sequence

    def _erased(
        self, log_id: str, entries: list[StoredEvent]
    ) -> tuple[list[Document], _Damage | None]:
        """The events that erasure records of the batch name, indexed again without content.

        Their document ids are their event ids, so the new documents replace the
        old ones, text and highlights included, in the same bulk as the record.
        Each is at the revision of the last record naming it, above any document
        of the event with its text. A named event whose stored form does not
        parse is damage at the first record naming it (the second value).
        """
        named: dict[str, int] = {}
        first: dict[str, StoredEvent] = {}
        for entry in entries:
            for event_id in erasure.erased_ids(entry.canonical):
                named[event_id] = entry.sequence
                first.setdefault(event_id, entry)
        docs, failed = self._erased_docs(log_id, named)
        if not failed:
            return docs, None
        event_id, error = min(failed.items(), key=lambda f: first[f[0]].sequence)
        record = first[event_id]
        return docs, _Damage(
            record.sequence, f"event {event_id!r}, erased by the record {record.event_id!r},", error
        )

    def _erased_docs(
        self, log_id: str, named: dict[str, int]
    ) -> tuple[list[Document], dict[str, Exception]]:
        """The content-free documents of ``named`` (event id -> revision), and those that fail.

        A named event whose stored row does not read back (sealed content
        that does not open, content or a canonical form that does not parse)
        is left out, with its error; store errors propagate.
        """
        if not named:
            return [], {}
        failed: dict[str, Exception] = {}
        try:
            found = self._store.read_event_ids(log_id, list(named))
        except sa.exc.SQLAlchemyError:
            raise
        except DAMAGED_ROW:  # one of them does not read back: which one
            found = []
            for event_id in named:
                try:
                    found += self._store.read_event_ids(log_id, [event_id])
                except sa.exc.SQLAlchemyError:
                    raise
                except DAMAGED_ROW as exc:
                    failed[event_id] = exc
        docs: list[Document] = []
        for stored in found:
            try:
                doc = stored_document.from_stored(stored)
            except Exception as exc:  # damage: the caller holds the log, or reports it
                failed[stored.event_id] = exc
                continue
            doc.revision = named[stored.event_id]  # the entry's id, not the JSON's
            docs.append(doc)
        return docs, failed

    def _apply_erasures(self, log_id: str, size: int) -> bool:
        """Takes the text of erased events out of the index while their log is held.

        A held log (a damaged event, a refused document) waits at its position,
        but an erasure (or retention) record committed after that is applied
        all the same: the content-free documents of the events it names are
        written at the record's revision, so no later write of the events
        brings their text back, and the position does not move. When the log
        goes on, the records are indexed in their turn (their documents are
        there already: the backends keep the higher revision).

        What is applied is published for :meth:`wait_indexed`. A named event
        that does not parse is left as it is (its document keeps its text):
        the records from that one on no longer count as applied; so do the
        records from one that does not parse itself (which events it erases is
        not known; until 2026-12-06 it counted as applied, naming none, and one
        rewritten as text on SQLite paused the indexer for every tenant). A
        held log is swept from its position once, then for new records only; a
        new position starts over. Returns whether records are left for the next
        pass (a sweep writes about a batch of documents).
        """
        hold = self._positions.get(log_id, 0)
        swept = self._swept.get(log_id)
        if swept is None or swept.hold != hold:
            swept = _Swept(hold, hold, hold, frozenset())
        if swept.scanned >= size:
            self._publish_swept(log_id, swept)
            return False
        records = self._records(log_id, swept.scanned, size)
        named: dict[str, int] = {}
        first: dict[str, int] = {}
        taken: list[int] = []
        unread: list[int] = []
        for sequence, canonical in records:
            if taken and len(named) >= self._batch:
                break
            taken.append(sequence)
            if not _is_record(canonical):
                unread.append(sequence)
                continue
            for event_id in erasure.erased_ids(canonical):
                named[event_id] = sequence
                first.setdefault(event_id, sequence)
        more = len(taken) < len(records) or len(records) == _SWEEP_RECORDS
        scanned = taken[-1] + 1 if more else size
        docs, failed = self._erased_docs(log_id, named)
        stuck = min([first[event_id] for event_id in failed] + unread, default=scanned)
        if docs:
            try:
                self._write(log_id, [], docs, hold, False)
            except DocumentRefusedError as exc:  # the others were written
                failed[exc.event_id] = exc
                stuck = taken[0]  # which records it spoils is not told: none of these count
        for event_id, error in failed.items():
            if first.get(event_id) != hold:  # at the hold, the hold's own error names it
                log.error(
                    "search indexer: the record at sequence %d of held log %s erases event "
                    "%r, whose document cannot be rewritten: %s (its text stays in the index "
                    "until the event is repaired; the other erased events' text left)",
                    first.get(event_id, taken[0]),
                    log_id,
                    event_id,
                    _reason(error),
                )
        for sequence in unread:
            if sequence != hold:  # at the hold, the hold's own error names it
                log.error(
                    "search indexer: the erasure (or retention) record at sequence %d of held "
                    "log %s does not parse: which events it erases is not known, so their text "
                    "stays in the index until it is repaired (`aiaudit verify` names it)",
                    sequence,
                    log_id,
                )
        applied = swept.applied if swept.applied < swept.scanned else min(stuck, scanned)
        done = swept.records | {s for s in taken if s < applied}
        self._publish_swept(log_id, _Swept(hold, scanned, applied, frozenset(done)))
        return more

    def _records(self, log_id: str, start: int, stop: int) -> list[tuple[int, bytes]]:
        """(sequence, canonical form) of the erasure and retention records in ``start .. stop-1``.

        Found by their own index (:meth:`SqlEventStore.records_between`); at most
        _SWEEP_RECORDS.
        """
        return self._store.records_between(log_id, start, stop, _SWEEP_RECORDS)

    def _publish_swept(self, log_id: str, swept: _Swept | None) -> None:
        """Tells ``wait_indexed`` which erasures a held log has applied past its position.

        And the standby replicas, through the store, which otherwise tell them
        the positions only: once a record is applied, the sequence after the
        latest applied (every record below it is, :class:`_Swept`), so the
        store is written once per record, not at every entry the log grows
        by. What is applied stays applied (an erased event's text-free
        document is at the record's revision, above any write of its text),
        so this is never moved back, whatever the hold becomes.
        """
        if swept is not None and swept.records:
            applied = max(swept.records) + 1
            if applied > self._recorded.get(log_id, 0):
                self._backend.record_erasures_applied(log_id, applied)
                self._recorded[log_id] = applied
        with self._progress:
            if swept is None:
                self._swept.pop(log_id, None)
            else:
                self._swept[log_id] = swept
            self._progress.notify_all()


def _is_record(canonical: bytes) -> bool:
    """Whether an erasure (or retention) record's canonical form parses as one."""
    try:
        node = orjson.loads(canonical)
    except orjson.JSONDecodeError:
        return False
    return isinstance(node, dict) and node.get("eventType") in erasure.RECORD_TYPES


def _reason(error: Exception) -> str:
    """What a damaged row's error says in the log: never the parser's message.

    That may quote the damaged bytes, content or personal data that the
    logs would keep past any erasure (as :class:`aiaudit.common.restore.DamagedStoredEventError`
    says); SealError's, a refused document's and a damaged stored event's
    messages are our own.
    """
    if isinstance(error, (SealError, DocumentRefusedError, restore.DamagedStoredEventError)):
        return str(error)
    return f"its stored row does not read back ({type(error).__name__})"


@dataclass(frozen=True)
class Building:
    """A log the index is still building (:meth:`Indexer.building`)."""

    indexed: int
    """Entries of the log indexed."""
    target: int | None
    """Entries to index before its reads are whole (its size when the build began); None:
    the build is not planned yet (the store was out of reach at start)."""
    held: int | None
    """The sequence the log is held at (a damaged event, a refused document), if it is."""


@dataclass(frozen=True)
class _Damage:
    """Where a log is held: the entry's sequence, what is damaged, the error."""

    sequence: int
    what: str
    error: Exception


@dataclass(frozen=True)
class _Swept:
    """The erasure and retention records a held log applied past its position (``hold``).

    Every record below ``applied`` is applied; those below ``scanned`` were
    tried; ``records``: the sequences of the records applied.
    """

    hold: int
    scanned: int
    applied: int
    records: frozenset[int]
