"""The rule engine: tails every tenant's log with the cursor ``alerting``.

For each batch of a log, one transaction claims the cursor (it must still be
where the batch started: another replica that got there first makes this one
back off, and leaves the log to it for ``handover_seconds``), evaluates every
enabled rule on every event (in the native core: ``aiaudit.alerting.evaluate``),
writes new or updated alerts and their delivery outbox rows and advances the
cursor. Either all of it commits or none: a crash re-evaluates the batch from
the same state, so nothing is lost and nothing fires twice (alert ids are
derived from the rule, dedup key and first event, so even a replay would
produce the same ids).

Window samples are saved, with their own cursor ``alerting-windows``, once
``window_save_events`` events have passed since the last save, not with every
batch: rewriting every changed slot each batch cost more than evaluating the
rules. Loading them replays the entries after that cursor through the rules
(deterministic: same events, receive times and rules) with their hits
dropped, since those were committed when the entries were first processed.
Window state and open alerts are kept for the engine's next batch of the log
instead of being read again, as long as nobody else can have changed them
(:mod:`aiaudit.alerting.state` says how that is checked).

An erasure or retention record (``EVENT_TYPE_PRIVACY_ERASURE``,
``EVENT_TYPE_RETENTION_APPLIED``) in a batch blanks the
evidence excerpts of every alert naming one of its events, in the same
transaction (:mod:`aiaudit.common.erasure`).

Fault isolation: a stored event that cannot be read back (a damaged row) or
evaluated holds only its own tenant's log, just before that event, with one
error naming the log and sequence; it is retried on later passes while every
other log goes on (health stays SERVING). Store errors (the database down)
stop the whole pass: the thread backs off and reports NOT_SERVING.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import aiaudit_native
import sqlalchemy as sa

from aiaudit.alerting.evaluate import (
    Evaluator,
    Hit,
    Recorded,
    WindowState,
    evaluator,
    reads_content,
)
from aiaudit.alerting.model import FIRING, Alert
from aiaudit.alerting.rulebook import RuleBook
from aiaudit.alerting.rules import Rule
from aiaudit.alerting.state import LogState, StateCache, snapshot
from aiaudit.alerting.store import AlertStore, scrub
from aiaudit.common import commits, erasure, media
from aiaudit.common.canonical import native_schema
from aiaudit.common.restore import (
    Content,
    StoredAsTextEventError,
    restore_wires,
)
from aiaudit.common.store import cursors
from aiaudit.common.store.readable import DAMAGED_ROW, readable_prefix
from aiaudit.common.store.schema import consumer_cursors, log_entries
from aiaudit.common.store.sql import (
    READ_BYTES,
    SqlEventStore,
    StoredEvent,
    StoredEvents,
    truncate_sqlite_wal,
)
from aiaudit.common.v1 import event_pb2
from aiaudit.common.worker import Worker

log = logging.getLogger(__name__)

CONSUMER = "alerting"
WINDOWS = "alerting-windows"
"""The cursor of the saved window state: the log position its samples are as of."""
MAX_EVENT_IDS = 100
MAX_EVIDENCE = 20
_HELD_RECORDS = 1000
"""Erasure and retention records past a held log's hold applied a pass (``_erase_past_hold``)."""

_CONTENT_COLUMNS = frozenset({"event_content.content", "event_content.salt"})
"""Columns stored as text that a read without content does not meet (replayed as erased)."""


class DamagedEventError(Exception):
    """A stored event of a log that cannot be rebuilt into an Event."""

    def __init__(self, log_id: str, sequence: int, cause: Exception) -> None:
        """Names the log and the sequence of the damaged entry."""
        super().__init__(f"damaged stored event: {cause!r}")
        self.log_id = log_id
        self.sequence = sequence


def alert_id(tenant: str, rule_id: str, dedup_key: str, event_id: str) -> str:
    """Deterministic id: the same incident replayed gets the same id (sinks dedupe on it)."""
    raw = "\0".join((tenant, rule_id, dedup_key, event_id)).encode()
    return hashlib.sha256(raw).hexdigest()[:32]


@dataclass(frozen=True)
class Outcome:
    """What one batch did."""

    processed: int
    changed: list[Alert]


def folds(current: Alert, hit: Hit, now: dt.datetime) -> bool:
    """Whether a hit belongs to an open alert of its rule and key: within the throttle.

    And no more severe: with ``severity_from: flag`` a critical flag folded into an open low
    alert would stay low, and reach no sink (sinks are sent an alert when it opens).
    """
    within = now - current.last_seen_time <= dt.timedelta(seconds=hit.rule.throttle_seconds)
    return within and hit.severity <= current.severity


def fold(current: Alert, hit: Hit, now: dt.datetime) -> None:
    """Counts a hit into an open alert, its events and evidence bounded as stored."""
    current.occurrence_count += 1
    current.last_seen_time = max(current.last_seen_time, now)
    if hit.event_id not in current.event_ids and len(current.event_ids) < MAX_EVENT_IDS:
        current.event_ids.append(hit.event_id)
    if hit.event_id in current.event_ids:  # an excerpt erasure could not find would stay
        room = MAX_EVIDENCE - len(current.evidence)
        current.evidence.extend(hit.evidence[: max(0, room)])


def new_alert(tenant: str, hit: Hit, now: dt.datetime, change_seq: int = 0) -> Alert:
    """The alert a hit opens."""
    return Alert(
        tenant=tenant,
        alert_id=alert_id(tenant, hit.rule.id, hit.dedup_key, hit.event_id),
        rule_id=hit.rule.id,
        dedup_key=hit.dedup_key,
        state=FIRING,
        severity=hit.severity,
        summary=hit.summary,
        event_ids=[hit.event_id],
        evidence=list(hit.evidence[:MAX_EVIDENCE]),
        labels=dict(hit.rule.labels),
        occurrence_count=1,
        create_time=now,
        last_seen_time=now,
        change_seq=change_seq,
    )


def apply_hit(
    store: AlertStore,
    conn: sa.Connection,
    tenant: str,
    hit: Hit,
    now: dt.datetime,
    open_alerts: dict[tuple[str, str], Alert | None],
    change_seq: int = 0,
) -> tuple[Alert, bool]:
    """Folds a hit into the open alert of its rule and dedup key, or opens a new one (True).

    The alert is stamped with ``change_seq``, the tenant's next change number.

    ``open_alerts`` caches the open alert per (rule id, dedup key) for one batch, so a
    burst of hits on one key costs one lookup; folded alerts are changed in
    memory and written once by the caller.
    """
    rule = hit.rule
    key = (rule.id, hit.dedup_key)  # an alert belongs to one rule, whatever its key renders to
    if key not in open_alerts:
        open_alerts[key] = store.open_alert(conn, tenant, rule.id, hit.dedup_key)
    current = open_alerts[key]
    if current is not None and folds(current, hit, now):
        fold(current, hit, now)
        current.change_seq = change_seq
        return current, False
    alert = new_alert(tenant, hit, now, change_seq)
    store.insert_alert(conn, alert)
    open_alerts[key] = alert
    return alert, True


class Engine:
    """Evaluates rules on the log; ``run_once`` is one pass over every backlog."""

    def __init__(
        self,
        events: SqlEventStore,
        store: AlertStore,
        book: RuleBook,
        sinks: tuple[str, ...] = (),
        batch_size: int = 2000,
        payload: Callable[[Alert], str] = lambda a: a.alert_id,
        on_change: Callable[[list[Alert]], None] = lambda _: None,
        cached_logs: int = 64,
        window_save_events: int = 20_000,
        handover_seconds: float = 5.0,
        pass_budget: float = 0.2,
    ) -> None:
        """An engine over the event store (reads) and the alert store (writes, same database).

        The state of the ``cached_logs`` logs processed last is kept between batches.
        """
        self.events = events
        self.store = store
        self.book = book
        self.sinks = sinks
        self.batch_size = batch_size
        self.payload = payload
        self.on_change = on_change
        self._postgres = store.engine.dialect.name == "postgresql"
        self.held: dict[str, int] = {}
        """Logs held at a damaged event (log id -> sequence); retried every pass."""
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="alerting-read-ahead")
        self._ahead: dict[str, tuple[int, Future[StoredEvents]]] = {}
        self._states = StateCache(cached_logs)
        self.window_save_events = window_save_events
        """Window samples are saved once this many events have passed since the last save."""
        self.handover_seconds = handover_seconds
        self._elsewhere: dict[str, float] = {}
        """Logs another replica is processing (log id -> monotonic time to look again)."""
        self.pass_budget = pass_budget
        """Seconds a pass spends on logs more than a batch behind, after the live ones."""
        self._last_behind = ""
        """The backlogged log the last pass processed last: the next pass starts after it."""
        self._swept: dict[str, tuple[int, int]] = {}
        """Held logs: (hold, sequence) up to which records past the hold were applied."""

    def close(self) -> None:
        """Stops the read-ahead thread."""
        self._reader.shutdown(wait=False, cancel_futures=True)
        self._ahead.clear()

    def _read(self, log_id: str, start: int) -> StoredEvents:
        """The batch at ``start``; a whole batch also starts reading the next one.

        The database reads the next batch while this one is evaluated. Entries
        are immutable once committed, so a batch read ahead is used as is when
        it was whole; a partial one may have missed later commits and is read again.
        A batch ends at ``batch_size`` events or at READ_BYTES stored (large
        events: ``cut``), whole either way.
        """
        ahead = self._ahead.pop(log_id, None)
        entries: StoredEvents | None = None
        if ahead is not None and ahead[0] == start:
            got = ahead[1].result()
            entries = got if len(got) == self.batch_size or got.cut else None
        if entries is None:
            entries = self._batch(log_id, start, self.batch_size)
        if len(entries) == self.batch_size or entries.cut:
            after = start + len(entries)
            read = self._reader.submit(self._batch, log_id, after, self.batch_size)
            self._ahead[log_id] = (after, read)
        return entries

    def _readable(self, log_id: str, start: int) -> list[StoredEvent]:
        """The batch at ``start``, up to the first row the store's read refuses.

        Such a row (:data:`~aiaudit.common.store.readable.DAMAGED_ROW`: sealed
        content that does not open, on SQLite a column stored as text) ends the
        batch before it, as a canonical form that does not parse does
        (:meth:`_decode`): the events before it are evaluated, and the next
        batch, starting at it, raises DamagedEventError (the log is held at the
        damaged event, not at the start of its batch). Store errors propagate.
        """
        try:
            return self._read(log_id, start)
        except sa.exc.SQLAlchemyError:
            raise
        except DAMAGED_ROW as exc:
            failed: Exception = exc
        good, damage = readable_prefix(
            lambda n: self._batch(log_id, start, n), log_id, start, self.batch_size, failed
        )
        if damage is not None and not good:
            raise DamagedEventError(log_id, start, damage) from damage
        return good

    def _replay_read(self, log_id: str, start: int, count: int) -> tuple[list[StoredEvent], bool]:
        """Entries ``start..`` to replay (``count`` at most), or none and True: leave it out.

        Sealed content (or a subject's key) altered since the entries were
        processed, or content whose JSON no longer parses (a row rewritten since;
        until 2026-12-06 it held the log for good, at the event after the replay):
        the batch is replayed as if erased, from its canonical forms
        and the samples journaled for its content (verify names the rows), and
        so is an entry whose content alone is stored as text (SQLite). One whose
        canonical form or leaf hash is stored as text is left out of the windows,
        as one that no longer parses; the entries before it are read first.
        """
        content = True
        while True:
            try:
                return self._batch(log_id, start, count, content), False
            except StoredAsTextEventError as exc:
                if exc.log_id == log_id and exc.sequence > start:
                    count = min(count, exc.sequence - start)  # the entries before it first
                    continue
                if not content or not _CONTENT_COLUMNS.issuperset(exc.columns):
                    return [], True
                log.warning(
                    "log %s entry %d: content stored as text, replayed as erased (%s)",
                    log_id,
                    start,
                    exc,
                )
                count, content = 1, False
            except DAMAGED_ROW as exc:  # SealError, content JSON that no longer parses, ...
                if not content:
                    raise
                log.warning(
                    "log %s entries %d-%d: content that no longer reads, replayed as erased (%s)",
                    log_id,
                    start,
                    start + count - 1,
                    exc,
                )
                content = False

    def _batch(self, log_id: str, start: int, count: int, content: bool = True) -> StoredEvents:
        """Entries from ``start`` on: at most ``count``, and at most READ_BYTES stored but one.

        2,000 events of a few MB each were gigabytes a batch: the engine was
        killed for its memory, restarted at the same batch, and no log went on.
        """
        return self.events.read_log(log_id, start, count, content, max_bytes=READ_BYTES)

    def run_once(self) -> int:
        """Processes one batch of every live log, then of backlogged ones; returns how many events.

        Live logs (at most a batch behind: fresh traffic) come first, every pass.
        Logs further behind follow in turn, from the one after where the last pass
        stopped, until the pass has taken ``pass_budget`` seconds (and processed
        at least one batch): a tenant's backlog (a restart, a bulk import) delays
        another tenant's fresh events by about one batch, not by a batch of every
        backlogged log. Store errors propagate (every log would fail alike); any
        other error is the log's own (a damaged row, an event the rules cannot
        evaluate) and holds only that log.
        """
        with self.store.engine.connect() as conn:
            pending = cursors.backlog(conn, CONSUMER)
        live = [b for b in pending if b.size - b.position <= self.batch_size]
        behind = sorted(
            (b for b in pending if b.size - b.position > self.batch_size),
            key=lambda b: (b.log_id <= self._last_behind, b.log_id),
        )
        now = time.monotonic()
        total = sum(self._one_batch(b, now) for b in live)
        worked = False  # a held log, or one another replica has, does not end the pass
        for b in behind:
            if worked and time.monotonic() >= now + self.pass_budget:
                break
            self._last_behind = b.log_id
            done = self._one_batch(b, now)
            worked = worked or done > 0
            total += done
        return total

    def _one_batch(self, b: cursors.Backlog, now: float) -> int:
        """Processes a batch of one log; how many events (0: another replica has it, or held)."""
        if self._elsewhere.get(b.log_id, 0.0) > now:
            return 0
        try:
            outcome = self.process(b.log_id, b.position)
        except sa.exc.SQLAlchemyError:
            raise
        except Exception as exc:
            at = exc.sequence if isinstance(exc, DamagedEventError) else b.position
            self._hold(b.log_id, at, exc)
            try:
                self._erase_past_hold(b.log_id, at, b.size)
            except sa.exc.SQLAlchemyError:
                raise
            except Exception as failed:  # an alert row that does not read: tried next pass
                log.error(
                    "alerting engine: the erasures past held log %s not applied to its "
                    "alerts (tried again next pass): %r",
                    b.log_id,
                    failed,
                )
            return 0
        self.held.pop(b.log_id, None)
        self._swept.pop(b.log_id, None)
        if outcome.changed:
            self.on_change(outcome.changed)
        return outcome.processed

    def _hold(self, log_id: str, sequence: int, exc: Exception) -> None:
        """Logs once per log and position that the log is held there."""
        if self.held.get(log_id) == sequence:
            return
        self.held[log_id] = sequence
        log.error(
            "alerting engine holds log %s at sequence %d: %s "
            "(other logs go on; `aiaudit verify` names a damaged event)",
            log_id,
            sequence,
            exc,
        )

    def _erase_past_hold(self, log_id: str, hold: int, size: int) -> None:
        """Blanks the excerpts of alerts naming events that records past a held log's hold erase.

        A held log waits at its damaged event, but an erasure (or retention)
        record committed after it is applied all the same, as the search
        indexer applies it to its index: until 2026-12-06 the erased excerpts
        stayed in the alerts and their delivery payloads, shown to every
        ``alerts.read`` caller, for as long as the log was held (review). Every
        alert names events processed already, before the hold, hence before
        any such record: each id a record names is erased for them. Up to
        :data:`_HELD_RECORDS` records a pass, each read once per hold; when the
        log goes on, the engine meets them again, which blanks nothing more.
        """
        swept = self._swept.get(log_id)
        start = swept[1] if swept is not None and swept[0] == hold else hold
        if start >= size:
            return
        records = self.events.records_between(log_id, start, size, _HELD_RECORDS)
        erased = {e for _, canonical in records for e in erasure.erased_ids(canonical)}
        if erased:
            with self.store.write() as conn, conn.begin():
                head = self.store.lock_head(conn, log_id)
                head = self.store.scrub_evidence(conn, log_id, erased, self.payload, head)
                self.store.set_head(conn, log_id, head)
            self._states.take(log_id)  # a kept copy would write the excerpts back
            truncate_sqlite_wal(self.store.engine, "alerting")
        self._swept[log_id] = (hold, records[-1][0] + 1 if len(records) == _HELD_RECORDS else size)

    def _decode(self, entries: list[StoredEvent]) -> list[bytes]:
        """The serialised events of a batch, up to the first damaged one.

        The damaged one starts a batch of its own: DamagedEventError when it is the first.
        """
        decoded: list[bytes] = []
        restored = evaluated(entries)
        for stored, wire in zip(entries, restored, strict=True):
            if isinstance(wire, Exception):
                if not decoded:
                    raise DamagedEventError(stored.log_id, stored.sequence, wire) from wire
                break
            decoded.append(wire)
        return decoded

    def _claim(self, conn: sa.Connection, log_id: str, expected: int) -> bool:
        """Locks the cursor row and checks it is still at ``expected``."""
        q = sa.select(consumer_cursors.c.position).where(
            consumer_cursors.c.consumer == CONSUMER, consumer_cursors.c.log_id == log_id
        )
        if self._postgres:
            q = q.with_for_update()
        found = conn.execute(q).scalar()
        return int(found or 0) == expected

    def _log_start(self, log_id: str) -> float:
        """The receive time of a log's first entry: the engine has seen every event since.

        A spike rule's empty baseline counts as quiet only if it began at or after this
        (and after the rule's last change): else a new log's first busy users would
        all spike. Read from the log, not kept, so a restart decides as the engine did;
        from its entry alone, which reads whatever its event's other columns hold (a
        canonical form stored as text, damaged since it was processed, held the log).
        """
        e = log_entries.c
        with self.events.engine.connect() as conn:
            first: dt.datetime | None = conn.execute(
                sa.select(e.receive_time).where(e.log_id == log_id, e.seq == 0)
            ).scalar()
        if first is None:
            return -math.inf
        return (
            first if first.tzinfo else first.replace(tzinfo=dt.UTC)
        ).timestamp()  # SQLite: naive

    def _replay(
        self,
        rules: list[Rule],
        log_id: str,
        start: int,
        end: int,
        windows: WindowState,
        since: Mapping[str, float],
        journal: Callable[[], Mapping[int, list[tuple[str, str, float, float]]]] = dict,
    ) -> None:
        """Rebuilds window samples from the saved ones by evaluating entries ``start..end``.

        Window samples are saved every ``window_save_events`` events, not with
        every batch (rewriting every changed slot each batch cost more than
        evaluating the rules). Evaluation is deterministic (the same events,
        receive times and rules), so replaying the entries after the saved
        position gives the samples the engine had; their hits were committed
        when those entries were first processed and are dropped here.

        Only windowed rules keep state, and a rule counts only events received
        since its row last changed (``since``, rule id -> seconds), as it did
        live (:meth:`process` passes the same times): a rule deleted and created
        again, or edited, starts with an empty window, whatever the position of
        the last save (which used to decide how many older events came back).

        An event whose content was erased since (no content row) would not
        match a rule reading content as it did the first time: such rules
        take the samples journaled for it when it was processed (``journal``,
        read once, at the first such event) instead of evaluating it again. So
        do the events of a batch whose sealed content no longer opens.
        """
        windowed = [r for r in rules if r.window is not None]
        rest = [r for r in windowed if not reads_content(r)]
        reading = [r for r in windowed if reads_content(r)]
        other = evaluator(rest) if rest else None
        content = evaluator(reading) if reading else None
        journaled: Mapping[int, list[tuple[str, str, float, float]]] | None = None
        while (other is not None or content is not None) and start < end:
            count = min(self.batch_size, end - start)
            entries, left_out = self._replay_read(log_id, start, count)
            if left_out:
                log.warning(
                    "log %s entry %d damaged since it was processed: left out of the windows",
                    log_id,
                    start,
                )
                start += 1
                continue
            if not entries:
                break
            try:
                wire = self._decode(entries)
            except DamagedEventError as exc:
                # Processed when it was whole, damaged since: it stays out of the rebuilt
                # windows rather than holding the log for good (verify names the row).
                log.warning(
                    "log %s entry %d damaged since it was processed: left out of the windows",
                    log_id,
                    exc.sequence,
                )
                start += 1
                continue
            entries = entries[: len(wire)]  # up to a row damaged since it was processed
            times = [e.receive_time.timestamp() for e in entries]
            erased = [e.content is None for e in entries]
            if other is not None:
                other.evaluate(wire, times, windows, since=since)
            if content is not None:
                whole = [i for i, gone in enumerate(erased) if not gone]
                _evaluate_some(content, whole, wire, times, windows, since)
                gone = [e.sequence for e, lost in zip(entries, erased, strict=True) if lost]
                if gone:
                    if journaled is None:
                        journaled = journal()
                    samples = [
                        x
                        for seq in gone
                        for x in journaled.get(seq, ())
                        if x[2] >= since.get(x[0], -math.inf)
                    ]
                    if samples:
                        content.add_samples(samples, windows)
            start += len(entries)

    def process(self, log_id: str, start: int) -> Outcome:
        """Evaluates entries ``start..`` of a log and commits alerts, windows and cursor at once."""
        entries: list[StoredEvent] = self._readable(log_id, start)
        if not entries:
            return Outcome(0, [])
        decoded = self._decode(entries)
        entries = entries[: len(decoded)]
        tenant = log_id
        changed: dict[str, Alert] = {}
        fresh: set[str] = set()
        # Out for the batch: evaluation changes kept series and alerts in place.
        kept = self._states.take(log_id)
        with self.store.write() as conn, conn.begin():
            if not self._claim(conn, log_id, start):
                # Another replica got there first: it keeps the log (and its windows in
                # memory) while it is alive, instead of the two taking turns, each turn
                # reading the windows back and replaying the entries since their last save.
                self._elsewhere[log_id] = time.monotonic() + self.handover_seconds
                return Outcome(0, [])
            self._elsewhere.pop(log_id, None)
            ruleset = self.book.snapshot(conn, tenant)
            rules = ruleset.rules
            # A windowed rule counts only events received since its row last changed,
            # here and in a replay alike: a restart must rebuild what was counted live.
            since = {rule_id: when.timestamp() for rule_id, when, _, _ in ruleset.version}
            if kept is not None and kept.position == start and kept.rules == ruleset.version:
                windows, saved = kept.windows, kept.windows_saved
            else:
                windowed = [r.id for r in rules if r.window is not None]
                windows = self.store.load_windows(conn, tenant, windowed)
                windows.start = self._log_start(log_id)
                saved = cursors.position(conn, WINDOWS, log_id)
                journal = functools.partial(self.store.load_journal, conn, tenant, saved, start)
                self._replay(rules, log_id, saved, start, windows, since, journal)
            head = kept.head if kept is not None else None
            open_alerts = kept.open_alerts if kept is not None else {}
            seq: int | None = None  # the tenant's change head, locked at the first hit
            times = [stored.receive_time.timestamp() for stored in entries]
            recorded: list[Recorded] = []
            for i, hit in evaluator(rules).evaluate(decoded, times, windows, recorded, since):
                now = entries[i].receive_time
                if seq is None:
                    seq = self.store.lock_head(conn, tenant)
                    if seq != head:  # someone else changed alerts: the kept ones may be stale
                        open_alerts = {}
                seq += 1
                alert, new = apply_hit(self.store, conn, tenant, hit, now, open_alerts, seq)
                changed[alert.alert_id] = alert
                if new:
                    fresh.add(alert.alert_id)
                    self.store.enqueue(conn, alert, self.sinks, self.payload(alert), now)
            erased = _erased_by(entries, decoded)
            if erased:  # the kept copies too, or a later write would restore their excerpts
                for alert in [*changed.values(), *(a for a in open_alerts.values() if a)]:
                    if not erased.isdisjoint(alert.event_ids):
                        scrub(alert)
            self.store.update_alerts(
                conn,
                [a for a in changed.values() if a.alert_id not in fresh or a.occurrence_count > 1],
            )
            if erased:
                if seq is None:
                    seq = self.store.lock_head(conn, tenant)
                    if seq != head:
                        open_alerts = {}
                seq = self.store.scrub_evidence(conn, tenant, erased, self.payload, seq)
            end = start + len(entries)
            save = end - saved >= self.window_save_events
            if save:
                # Under the head lock, which rule writers take too: a rule changed since
                # this batch read them has had its windows reset, and saving the samples
                # counted under its old definition would bring them back. Saved next time.
                if seq is None:
                    seq = self.store.lock_head(conn, tenant)
                    if seq != head:
                        open_alerts = {}
                save = self.book.version(conn, tenant) == ruleset.version
            if seq is not None:
                self.store.set_head(conn, tenant, seq)
                head = seq
            if save:
                self.store.save_windows(conn, tenant, windows.take_changed())
                self.store.drop_journal(conn, tenant, end)
                cursors.advance(conn, WINDOWS, log_id, end)
                saved = end
            elif recorded:
                self.store.save_journal(
                    conn, tenant, end, [(start + i, r, g, t, v) for i, r, g, t, v in recorded]
                )
            cursors.advance(conn, CONSUMER, log_id, end)
        if erased:  # the blanked excerpts' old page images leave the WAL
            truncate_sqlite_wal(self.store.engine, "alerting")
        state = LogState(end, ruleset.version, windows, saved, head, open_alerts)
        self._states.put(log_id, state)
        return Outcome(len(entries), [snapshot(a) for a in changed.values()])


def _evaluate_some(
    program: Evaluator,
    keep: list[int],
    wire: list[bytes],
    times: list[float],
    windows: WindowState,
    since: Mapping[str, float],
) -> None:
    """Evaluates the events at indexes ``keep`` of a batch, for their window samples only."""
    if len(keep) == len(times):
        program.evaluate(wire, times, windows, since=since)
    elif keep:
        kept = [times[i] for i in keep]
        program.evaluate([wire[i] for i in keep], kept, windows, since=since)


_OWN_RECORDS = frozenset(
    event_pb2.EventType.Name(t)
    for t in (event_pb2.EVENT_TYPE_AUDIT_ACCESS, event_pb2.EVENT_TYPE_RULE_CHANGE)
)
_OWN_JSON = re.compile("|".join(f'"{name}"' for name in sorted(_OWN_RECORDS)).encode())
"""Either type as a JSON string: one scan of each entry's bytes rules most of them out."""


def as_evaluated(entries: Sequence[StoredEvent]) -> list[tuple[bytes, Content]]:
    """Stored events as rules see them: the suite's own records without their content.

    An access record's or a rule change's content is what someone looked for
    (a searched phrase, a rule's source), not an interaction: evaluated, a
    rule on message text would fire on the record of its own creation, and a
    detector on every phrase searched for or tested. Their other fields are evaluated
    (a rule on ``event_type`` still sees them). Ingest refuses these types
    from clients; the type is read from the event, not found in its bytes (a
    client's attribute may hold the name).
    """
    named = _OWN_JSON.search
    candidates = [i for i, e in enumerate(entries) if named(e.canonical)]
    own: set[int] = set()
    if candidates:
        schema = native_schema()
        bare = restore_wires([(entries[i].canonical, None) for i in candidates])
        own = {
            i
            for i, wire in zip(candidates, bare, strict=True)
            if not isinstance(wire, Exception)
            and not _OWN_RECORDS.isdisjoint(aiaudit_native.field_values(schema, wire, "event_type"))
        }
    return [(e.canonical, None if i in own else e.content) for i, e in enumerate(entries)]


_MEDIA_HASH_JSON = b'"sha256"'
"""How a media hash's key reads in a canonical form: an entry without it has none to clear."""


def evaluated(entries: Sequence[StoredEvent]) -> list[bytes | Exception]:
    """The serialised events rules evaluate (:func:`as_evaluated`); a damaged one's error.

    An event whose content is gone (erased, expired, or a suite record's) loses
    its media parts' SHA-256 too, as search shows it (:mod:`aiaudit.common.media`):
    unsalted and kept in the canonical form, the hash matched a rule's ``equals``
    after the image's erasure, confirming a guessed file (review, 2026-12-05).
    """
    views = as_evaluated(entries)
    wires = restore_wires(views)
    for i, ((canonical, content), wire) in enumerate(zip(views, wires, strict=True)):
        if content is None and _MEDIA_HASH_JSON in canonical and isinstance(wire, bytes):
            event = event_pb2.Event.FromString(wire)
            media.drop_hashes(event)
            wires[i] = event.SerializeToString()
    return wires


_ERASURE_JSON = re.compile("|".join(f'"{t}"' for t in erasure.RECORD_TYPES).encode())


def _one_of(values: list[str | int | float | bool], wanted: tuple[str, ...]) -> bool:
    return len(values) == 1 and values[0] in wanted


def _erased_by(entries: list[StoredEvent], batch: list[bytes]) -> set[str]:
    """The events erasure and retention records of the batch erased: their alerts lose excerpts.

    A record's canonical form names its type as a JSON string, so most entries
    are ruled out by a byte search; the rest are read. A record may name an id
    no event has yet, which erases nothing: an event of the batch given that id
    later keeps its content, so its id counts only when a record naming it comes
    after it (ids of events from earlier batches count as before).
    """
    schema = native_schema()
    named: dict[str, int] = {}  # id -> sequence of the last record naming it
    named_type = _ERASURE_JSON.search
    for stored, wire in zip(entries, batch, strict=True):
        if named_type(stored.canonical) and _one_of(
            aiaudit_native.field_values(schema, wire, "event_type"), erasure.RECORD_TYPES
        ):
            for event_id in event_pb2.Event.FromString(wire).privacy_action.event_ids:
                named[event_id] = stored.sequence
    if not named:
        return set()
    here = {stored.event_id: stored.sequence for stored in entries}
    return {i for i, at in named.items() if i not in here or at > here[i]}


class EngineThread(Worker):
    """Runs the engine until stopped: polls, and wakes early when told new events exist."""

    def __init__(
        self,
        engine: Engine,
        poll_interval: float,
        on_health: Callable[[bool], None] = lambda _: None,
    ) -> None:
        """A stopped worker; ``start`` runs it."""
        super().__init__("alerting-engine")
        self.engine = engine
        self.poll_interval = poll_interval
        self.on_health = on_health

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self.engine.close()

    def _loop(self) -> None:
        delay = self.poll_interval
        healthy = True
        rechecks: Iterator[float] = iter(())
        while not self._stop.is_set():
            self._wake.clear()
            try:
                busy = self.engine.run_once() > 0
                if not healthy:
                    self.on_health(True)
                    healthy = True
                delay = self.poll_interval
            except sa.exc.SQLAlchemyError as exc:
                log.warning("alerting engine: store error, retrying", extra={"error": str(exc)})
                if healthy:
                    self.on_health(False)
                    healthy = False
                busy = False
                delay = min(delay * 2, 5.0)
            if not busy:
                # A wake-up arrives just before its COMMIT lands: while looks find
                # nothing, look again after growing pauses rather than a whole poll later.
                pause = next(rechecks, delay) if healthy else delay
                if self._wake.wait(min(pause, delay)):
                    rechecks = iter(commits.RECHECKS)
