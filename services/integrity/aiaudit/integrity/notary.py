"""The notary: integrates each log's new entries into its Merkle tree and signs checkpoints.

It is the ``integrity`` consumer of every log (the outbox contract): for each
batch it loads the tree edge (``CompactRange``) at its cursor, appends the
leaf hashes in sequence order, and in one transaction stores the perfect
subtree nodes that became complete and moves the cursor. A crash loses
nothing: the next leader resumes from the cursor and the stored nodes.

Every ``checkpoint_interval`` it signs a checkpoint of each log that grew,
exports it to the append-only directory, then stores it. If the key store
cannot sign (Vault unreachable), integration goes on, nothing is signed,
health turns NOT_SERVING, and the next attempt signs the current size, so
the checkpoints catch up with nothing lost.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from aiaudit.common.leader import Leadership
from aiaudit.common.store import cursors
from aiaudit.integrity import loss, merkle, origins, storage, worm
from aiaudit.integrity.merkle import CompactRange
from aiaudit.integrity.note import (
    Checkpoint,
    NoteError,
    format_checkpoint,
    open_checkpoint,
    sign_notes,
)
from aiaudit.integrity.signers import KeySource, SignerUnavailableError

log = logging.getLogger(__name__)

CONSUMER = "integrity"
"""The notary's cursor name in ``consumer_cursors``."""
_EXPORTERS = 16
"""Checkpoints written (and fsynced) to the append-only directory at once."""


@dataclass(frozen=True)
class NotaryConfig:
    """How the notary runs."""

    origin_prefix: str
    checkpoint_dir: Path
    checkpoint_interval: float = 1.0
    poll_interval: float = 1.0
    batch_size: int = 5000

    def origin(self, log_id: str, epoch: int = 0) -> str:
        """Checkpoint origin line of a log in ``epoch`` (:mod:`origins`)."""
        return origins.origin(self.origin_prefix, log_id, epoch)


class Notary:
    """One notary replica; only the leader (see ``leader``) writes."""

    def __init__(
        self,
        engine: sa.Engine,
        keys: KeySource,
        leadership: Leadership,
        config: NotaryConfig,
        on_health: Callable[[bool], None] = lambda ok: None,
    ) -> None:
        """Reads the backlog through ``engine``; writes through the leader's connection."""
        self._engine = engine
        self._keys = keys
        self._leadership = leadership
        self._config = config
        self._on_health = on_health
        self._ranges: dict[str, CompactRange] = {}
        self._unsigned: set[str] = set()
        self._forked: set[str] = set()
        """Logs whose tree did not extend their last checkpoint in the last round, that are behind
        a checkpoint they exported, or whose next leaf hash is stored as text (SQLite): unsigned
        (past that leaf). Each integration pass tries them again, and only it releases them."""
        self._held: set[str] = set()
        """Logs the last load held for a reason that may pass without a repair (a loss statement
        unreadable, Vault not answering, a node of the epoch check missing), not named as
        forks: tried again by each integration pass like ``_forked``. Until 2026-12-07 the
        signing round dropped them, reporting SERVING: one with nothing new past its cursor
        was not signed until its next event or a takeover."""
        self._unlisted: set[str] = set()
        """Logs whose exported checkpoints could not be listed (warned once)."""
        self._chains: dict[str, loss.Chain] = {}
        """Each loaded log's accepted losses: its current epoch signs under its own origin."""
        self._ignored: set[str] = set()
        """Loss statements named as not counting (each said once)."""
        self._last_sign = float("-inf")  # the first checkpoint is due at once
        self._last_integrate = float("-inf")
        self._leading = False
        self._healthy: bool | None = None
        self._signed = True
        """Whether the last signing round signed and exported everything due."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def leading(self) -> bool:
        """Whether this replica currently integrates and signs."""
        return self._leading

    def start(self) -> None:
        """Runs the notary loop in a background thread."""
        self._thread = threading.Thread(target=self._run, name="notary", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stops the loop and gives up leadership."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._leadership.release()
        self._leading = False

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self.step()
                if failures:  # working again: as healthy as its signing
                    self._set_health(self._signed)
                failures = 0
            except Exception as exc:
                if failures == 0:
                    log.exception("notary step failed; giving up leadership and retrying")
                else:
                    log.warning("notary step failed again: %s", exc)
                failures += 1
                self._set_health(False)  # nothing is integrated or signed until a step works
                self._leadership.release()
                self._leading = False
                self._ranges.clear()
            # Back off on repeated failures (a database down), up to 5 s.
            pause = min(5.0, self._config.poll_interval * 2**failures) if failures else 0.0
            self._stop.wait(max(pause, self._next_wait()))

    def _next_wait(self) -> float:
        if not self._leading:  # a follower asks for the lock once an interval, not in a loop
            return self._config.poll_interval
        # The next integration slot, or the signature due before it.
        wait = max(0.0, self._last_integrate + self._config.poll_interval - time.monotonic())
        if self._unsigned:
            due = self._last_sign + self._config.checkpoint_interval - time.monotonic()
            wait = min(wait, max(due, 0.0))
        return wait

    def step(self) -> None:
        """One round: lead if possible, integrate every backlog, sign when due."""
        conn = self._leadership.acquire()
        if conn is None:
            self._leading = False
            self._set_health(True)
            return
        if not self._leading:
            self._ranges.clear()
            self._unsigned = self._logs_needing_checkpoints(conn)
            self._unsigned |= self._held_behind_exports(conn)
            self._leading = True
            log.info("notary is the leader", extra={"unsigned_logs": len(self._unsigned)})
        # Integrate once per poll interval, and always right before signing: a
        # stream of small commits (every read's access record) shares one
        # integration transaction and its fsync instead of paying one each, and
        # checkpoints still cover everything up to the moment they are signed.
        now = time.monotonic()
        due = self._last_sign + self._config.checkpoint_interval
        if now - self._last_integrate >= self._config.poll_interval or (
            self._unsigned and now >= due
        ):
            self._last_integrate = now
            self._integrate_all(conn)
        if self._unsigned and time.monotonic() >= due:
            self._sign_all(conn)

    def _logs_needing_checkpoints(self, conn: sa.Connection) -> set[str]:
        with conn.begin():
            signed = storage.signed_sizes(conn)
            positions = cursors.positions(conn, CONSUMER)
        return {log_id for log_id, size in positions.items() if size > signed.get(log_id, 0)}

    def _held_behind_exports(self, conn: sa.Connection) -> set[str]:
        """Every log with a folder in the checkpoint directory compared with it; those held.

        Only the logs with events to integrate or leaves to sign were loaded,
        so a quiet log restored to its stored checkpoint, behind one it
        exported, reported SERVING until its next event (2026-12-07). This
        compares the store's position of each log with its folder, as a load
        does (:meth:`_behind_exports`, :meth:`_off_epoch`), without reading its
        tree: one listing of the directory, then each log's folder and last
        shard. A held log is then tried by each integration pass as any other.
        A directory that cannot be listed is one warning a takeover: the
        logs with events are still checked as they are loaded.
        The names are listed outside any transaction (the leader's SQLite
        transactions hold the write lock: one over 5,000 folders kept ingest
        from committing for 3.4 s, review 2026-12-07); only a log with a name
        past its position or an accepted loss is read and checked, each in a
        transaction of its own.
        """
        try:
            exported = worm.logs(self._config.checkpoint_dir)
        except OSError as exc:
            log.warning(
                "the checkpoint directory cannot be listed (%s): a log restored from an older "
                "backup is noticed only at its next event; give the notary read access to %s",
                exc,
                self._config.checkpoint_dir,
            )
            return set()
        with conn.begin():
            positions = cursors.positions(conn, CONSUMER)
        held: set[str] = set()
        for log_id in exported:
            position = positions.get(log_id, 0)
            try:
                if not worm.named_past(self._config.checkpoint_dir, log_id, position):
                    continue
            except OSError:  # a folder that cannot be listed: the check below names it
                pass
            with conn.begin():
                if self._hold_if_behind(conn, log_id, position):
                    held.add(log_id)
        return held

    def _integrate_all(self, conn: sa.Connection) -> None:
        with self._engine.connect() as reader:
            backlog = cursors.backlog(reader, CONSUMER)
        # Only a full batch means more was already waiting: entries committed during
        # the round wait for the next one, or a steady stream of small commits (every
        # read's access record) would keep the notary integrating one leaf at a time.
        # One batch per log per pass, and no new pass once a checkpoint interval is
        # spent: a log with a long backlog (a million entries took 33 s) held every
        # other tenant's checkpoint until it was all integrated; now it gets
        # checkpoints of its own on the way, and the others theirs on time.
        # One transaction a pass, not one a log: with hundreds of active logs the
        # commits alone took a third of a second.
        # Held logs too, also with nothing new past their cursor: only this pass releases a
        # hold (:meth:`_due` leaves them), so that a log released integrates its backlog
        # before it is signed.
        deadline = time.monotonic() + self._config.checkpoint_interval
        heads = {entry.log_id: entry.size for entry in backlog}
        pending = [entry.log_id for entry in backlog]
        pending += sorted(self._holding() - set(pending))
        while pending and not self._stop.is_set():
            with conn.begin():
                grown = {
                    log_id: self._integrate_batch(conn, log_id, heads.get(log_id, 0))
                    for log_id in pending
                }
            added = {}
            for log_id, (count, edge) in grown.items():  # once committed: the edges follow
                if edge is not None:
                    self._ranges[log_id] = edge
                    self._unsigned.add(log_id)
                added[log_id] = count
            pending = [log_id for log_id in pending if added[log_id] == self._config.batch_size]
            if time.monotonic() >= deadline:
                break

    def _integrate_batch(
        self, conn: sa.Connection, log_id: str, head: int
    ) -> tuple[int, CompactRange | None]:
        """Integrates the next batch of one log in the caller's transaction.

        ``head``: the log's size read before (0: not read). Returns how many leaves
        it added and the log's new edge (None: none added).
        """
        position = cursors.position(conn, CONSUMER, log_id)
        edge = self._ranges.get(log_id)
        if edge is None or edge.size != position:
            edge = self._load(conn, log_id, position)
            if edge is None:
                self._unsigned.add(log_id)  # so that the signing round reports it
                return 0, None
        try:
            rows = storage.leaves(conn, log_id, position, self._config.batch_size)
        except storage.StoredAsTextError as exc:  # its next leaf: the log stops before it
            return self._stopped_at(log_id, position, edge, str(exc))
        first = rows[0][0] if rows else None
        if first != position and (first is not None or position < head):
            # Entries commit with their head: none below it, or before a later one, is late.
            past = f"has one at {first}" if first is not None else f"its head is {head}"
            return self._stopped_at(
                log_id,
                position,
                edge,
                f"it has no entry at sequence {position} but {past} (deleted by raw SQL?)",
            )
        self._forked.discard(log_id)  # its leaves read again (repaired)
        contiguous = [leaf for i, (seq, leaf) in enumerate(rows) if seq == position + i]
        if not contiguous:
            return 0, None
        grown = CompactRange(edge.size, edge.hashes())
        storage.write_nodes(conn, log_id, grown.extend(contiguous))
        cursors.advance(conn, CONSUMER, log_id, grown.size)
        return len(contiguous), grown

    def _stopped_at(
        self, log_id: str, position: int, edge: CompactRange, why: str
    ) -> tuple[int, None]:
        """A log whose next leaf cannot be integrated: signed up to it, named once, unsigned past.

        A leaf hash stored as text, or an entry missing at the cursor with later ones
        stored: until 2026-12-07 (review) the notary then integrated nothing more of
        that log, said nothing and reported SERVING, so an event deleted by raw SQL
        before it was integrated left every later one of its log unsigned unnoticed.
        """
        if log_id not in self._forked:  # named once, not every round
            log.error(
                "log %s not integrated nor signed past its %d leaves: %s; run aiaudit verify",
                log_id,
                position,
                why,
            )
            self._forked.add(log_id)
        self._ranges[log_id] = edge  # as committed: not loaded again each round
        self._unsigned.add(log_id)
        return 0, None

    def _sign_all(self, conn: sa.Connection) -> None:
        """Signs a checkpoint of every log that grew, exports them all, then stores them.

        In batches, not log by log: with hundreds of active logs the round of
        one Vault call, two fsyncs and two transactions each (3.5-5.7 ms a log)
        took longer than the checkpoint interval, and every tenant's lag grew.
        Exported first, so no stored checkpoint lacks its copy. A replica that
        lost its session meanwhile fails to store: its exported checkpoints are
        still this tree's (``verify`` accepts them as such), and the next leader
        signs those sizes again, to the same bytes.
        """
        self._last_sign = time.monotonic()
        try:
            key = self._keys.active()
            due = self._due(conn)
            texts: dict[str, str] = {}
            for log_id, cp in due.items():
                try:
                    texts[log_id] = format_checkpoint(cp)
                except NoteError as exc:  # this log cannot be noted: the others can
                    log.error("checkpoint of log %s cannot be signed: %s", log_id, exc)
            notes = dict(zip(texts, sign_notes(list(texts.values()), [key.signer]), strict=True))
        except (SignerUnavailableError, NoteError) as exc:  # NoteError: a wrong key's signature
            if self._healthy is not False:
                log.warning("cannot sign checkpoints, will retry: %s", exc)
            self._signed = False
            self._set_health(False)
            return
        for log_id in set(self._unsigned) - set(due):  # nothing new since the last checkpoint
            self._unsigned.discard(log_id)
        exported = self._export(due, notes, key.signer.verifier_key.key_id)
        now = dt.datetime.now(dt.UTC)
        with conn.begin():
            storage.insert_checkpoints(
                conn,
                [
                    storage.StoredCheckpoint(
                        log_id,
                        due[log_id].size,
                        due[log_id].root_hash,
                        notes[log_id],
                        now,
                        key.version,
                    )
                    for log_id in exported
                ],
            )
        self._unsigned -= set(exported)
        self._unsigned |= self._holding()  # tried again each round, and named each time
        self._signed = len(exported) == len(due) and not self._holding()
        self._set_health(self._signed)

    def _due(self, conn: sa.Connection) -> dict[str, Checkpoint]:
        """The checkpoint to sign of each unsigned log that grew past its latest one.

        A held log (:meth:`_holding`) whose edge is not loaded is left to the next
        round's integration pass, which releases it and integrates its backlog
        first: a loss statement written after this round's pass held the log
        was read here, and the new epoch's first checkpoint signed the
        statement's size M, without the events waiting past it (epoch 2 signed
        8, then 11, about one run in ten with the suite's notary running).
        A stored checkpoint past the log's integrated size (a row inserted by raw
        SQL: the notary stores only sizes it integrated) is checked by loading the
        edge again, which names it: until 2026-12-07 (review) the log was passed
        over without a word, SERVING, and its new events went unsigned.
        """
        due: dict[str, Checkpoint] = {}
        with conn.begin():
            for log_id, position, latest in storage.positions_and_latest(
                conn, CONSUMER, sorted(self._unsigned)
            ):
                if position == 0 or latest == position:
                    continue
                if latest > position:  # a stored checkpoint past the tree: the load names it
                    self._ranges.pop(log_id, None)
                edge = self._ranges.get(log_id)
                if edge is None or edge.size != position:
                    if log_id in self._holding():  # released by the integration pass
                        continue
                    edge = self._load(conn, log_id, position)
                    if edge is None:
                        continue
                    self._ranges[log_id] = edge
                due[log_id] = Checkpoint(
                    self._config.origin(log_id, self._epoch(log_id)), position, edge.root()
                )
        return due

    def _load(self, conn: sa.Connection, log_id: str, position: int) -> CompactRange | None:
        """The log's right edge read from its node rows, if it extends its last checkpoint.

        A consistency proof from the log's last stored checkpoint to the edge's
        root, read from the same rows: with one changed (or a history
        rewritten and integrated again) a restarted notary integrated on top
        of it and signed a fork of its own earlier checkpoint with the real key
        (review, 2026-12-05). Such a log is neither integrated nor signed, the
        error names it, and the notary reports NOT_SERVING until it is repaired.
        So is a log whose edge cannot be read (a node row deleted): that raised
        out of the round, and every other log went unintegrated and unsigned
        with it (review, 2026-12-05), and one behind a checkpoint it exported
        (:meth:`_behind_exports`).
        """
        signed = None
        try:
            edge = CompactRange.load(position, storage.NodeTable(conn, log_id))
            signed = storage.latest_checkpoint(conn, log_id)
            if signed is not None:
                proof = merkle.consistency_proof(
                    signed.tree_size, position, storage.NodeTable(conn, log_id)
                )
                merkle.verify_consistency(
                    signed.tree_size, position, signed.root_hash, edge.root(), proof
                )
        except (ValueError, merkle.MissingNodeError) as exc:  # ProofError is a ValueError
            if log_id in self._forked:  # named once, not every round
                return None
            log.error(
                "log %s not integrated nor signed: its %d leaves %s (%s); run aiaudit verify",
                log_id,
                position,
                "have no readable tree"
                if signed is None
                else f"do not extend its checkpoint of {signed.tree_size}",
                exc,
            )
            self._forked.add(log_id)
            return None
        if self._hold_if_behind(conn, log_id, position):
            return None
        self._forked.discard(log_id)
        self._held.discard(log_id)
        return edge

    def _hold_if_behind(self, conn: sa.Connection, log_id: str, position: int) -> bool:
        """Whether the log at ``position`` is behind its exports or off its epoch: then held."""
        if self._behind_exports(conn, log_id, position) or self._off_epoch(conn, log_id, position):
            if log_id not in self._forked:  # held for now, not named as a fork
                self._held.add(log_id)
            return True
        return False

    def _holding(self) -> set[str]:
        """The logs held, forked or for now: only the integration pass releases them."""
        return self._forked | self._held

    def _epoch(self, log_id: str) -> int:
        """The log's current epoch, as found when its edge was last loaded."""
        chain = self._chains.get(log_id)
        return 0 if chain is None else chain.epoch

    def _chain(self, conn: sa.Connection, log_id: str, position: int) -> loss.Chain:
        """The log's accepted losses, read from the append-only directory.

        A statement that does not open with this notary's keys, or whose
        ``continues`` root is not this store's, does not count (one error
        names it): the log then stays in the epoch before it. The keys are
        read only for a log with statement files: every load read them from
        Vault, one request a log at a leader takeover, and a notary started
        while Vault was down integrated nothing (review, 2026-12-07).
        """
        nodes = storage.NodeTable(conn, log_id)

        def root_at(size: int) -> bytes | None:
            try:
                return merkle.root_at(size, nodes) if size <= position else None
            except merkle.MissingNodeError:
                return None

        files = list(worm.statements(self._config.checkpoint_dir, log_id))
        if not files:  # Vault not asked: a log without statements integrates while it is down
            self._chains[log_id] = loss.Chain()
            return self._chains[log_id]
        keys = self._keys.verifier_keys()
        found = loss.opened(files, self._config.origin_prefix, log_id, keys)
        chain, errors, _ = loss.chain(found, root_at)
        for error in errors:
            if error not in self._ignored:
                log.error("log %s: %s; the statement is ignored", log_id, error)
                self._ignored.add(error)
        self._chains[log_id] = chain
        return chain

    def _behind_exports(self, conn: sa.Connection, log_id: str, position: int) -> bool:
        """Whether the log is behind a checkpoint of its own exported to the append-only directory.

        The notary signs only sizes it has integrated, so an exported copy past
        its cursor means the store went back in time: restored from a backup
        older than that checkpoint, nodes, cursor and checkpoints with it. The
        stored checkpoints are then consistent with the edge, and the log took
        new events at the lost sequences: signing those forked the exported
        history with the real key (until 2026-12-06). Copies that do not
        open with this notary's keys and origin are not its own (``verify``
        names them); keys that cannot be read now hold the log for the round.
        A folder that cannot be listed is a warning and the log goes on as before
        the check: its error escaped the round and held every log (review,
        2026-12-06).
        The size is the one the note is signed for, not the file's name: a copy
        of one of its own earlier checkpoints under a larger name (anyone who
        may add files to the directory can make one) held the log for good
        (review, 2026-12-06); ``verify`` names such a copy.
        Every epoch's checkpoints are looked at (:mod:`loss`): an earlier
        epoch's past the position are no hold when a later loss statement
        covers them (they are the accepted loss), and hold the log when none does.
        A statement signs its epoch's tree at its size M as a checkpoint does:
        a store below M (restored older still before the epoch signed past it,
        or the statement signed on another copy of the database) is held too;
        until a review of 2026-12-07 it signed the new epoch from below M.
        """
        try:
            chain = self._chain(conn, log_id, position)
        except (SignerUnavailableError, OSError) as exc:  # its epoch, so its origin, unknown
            return self._held_for_now(
                log_id, "its loss statements cannot be read or checked (%s)", exc
            )
        if (ahead := self._ahead_statement(chain, position)) is not None:
            if log_id not in self._forked:  # named once, not every round
                log.error(
                    "log %s not integrated nor signed: its %d integrated leaves are behind the "
                    "loss statement of %s, which continues %s at size %d (the store restored "
                    "from a backup older still, or the statement signed on another copy of the "
                    "database?); run aiaudit verify",
                    log_id,
                    position,
                    ahead.origin,
                    ahead.previous,
                    ahead.size,
                )
                self._forked.add(log_id)
            return True
        try:
            exported = [
                (epoch, named, signed)
                for epoch in range(chain.epoch + 1)
                for named, signed in worm.beyond(
                    self._config.checkpoint_dir, log_id, position, epoch
                )
            ]
        except OSError as exc:
            return self._unlistable(log_id, exc)
        for epoch, named, signed in exported:
            try:
                size = open_checkpoint(
                    signed, self._keys.verifier_keys(), self._config.origin(log_id, epoch)
                ).size
            except NoteError:
                continue
            except SignerUnavailableError as exc:
                return self._held_for_now(
                    log_id, "its exported checkpoint of %d cannot be checked (%s)", named, exc
                )
            if size <= position:  # named past its size: not past the log
                continue
            covering = chain.later_loss(epoch, size)
            if covering is not None and size <= covering.lost_size:  # an accepted loss
                continue
            if log_id not in self._forked:  # named once, not every round
                self._name_hold(log_id, position, size, epoch, covering)
                self._forked.add(log_id)
            return True
        return False

    def _off_epoch(self, conn: sa.Connection, log_id: str, position: int) -> bool:
        """Whether the store's tree is not its current epoch's at that epoch's latest checkpoint.

        After an accepted loss the lost history is another tree past M: a
        store restored from a backup of it (found later, "recovering them is
        always better") was past every checkpoint the new epoch exported, and
        the notary signed on over it, a fork of the new epoch (review,
        2026-12-07). Only logs in an epoch >= 1 are looked at: their folder and last shard.
        """
        epoch = self._epoch(log_id)
        if epoch == 0:
            return False
        origin = self._config.origin(log_id, epoch)
        try:
            cp = self._latest_own(log_id, position, epoch)
            if cp is None:
                return False
            root = merkle.root_at(cp.size, storage.NodeTable(conn, log_id))
        except OSError as exc:
            return self._unlistable(log_id, exc)
        except (SignerUnavailableError, merkle.MissingNodeError) as exc:
            return self._held_for_now(log_id, "%s", exc)
        if root == cp.root_hash:
            return False
        if log_id not in self._forked:  # named once, not every round
            log.error(
                "log %s not integrated nor signed: its tree at size %d is not the one its "
                "exported checkpoint of %s signed there (the store restored from a backup of "
                "another epoch's history?); run aiaudit verify",
                log_id,
                cp.size,
                origin,
            )
            self._forked.add(log_id)
        return True

    def _latest_own(self, log_id: str, position: int, epoch: int) -> Checkpoint | None:
        """The epoch's largest exported checkpoint of at most ``position`` that is its own.

        Copies that do not open with this notary's keys and the epoch's origin,
        or are signed for another size than their name's, are passed over
        (``verify`` names them).
        """
        origin = self._config.origin(log_id, epoch)
        for named, signed in worm.at_most(self._config.checkpoint_dir, log_id, position, epoch):
            try:
                cp = open_checkpoint(signed, self._keys.verifier_keys(), origin)
            except NoteError:
                continue
            if cp.size == named:
                return cp
        return None

    @staticmethod
    def _ahead_statement(chain: loss.Chain, position: int) -> loss.LossStatement | None:
        """A statement whose M, still within the store's shared prefix, is past ``position``."""
        return next(
            (
                statement
                for epoch, statement in enumerate(chain.losses, start=1)
                if statement.size > position and chain.later_loss(epoch, statement.size) is None
            ),
            None,
        )

    def _held_for_now(self, log_id: str, why: str, *args: object) -> bool:
        """Warns of a log held for a reason that may pass, once until it is released; True.

        Every integration pass tries a held log again (:attr:`_held`): a warning
        each time was one a second for as long as a statement stayed unreadable.
        """
        if log_id not in self._held:
            log.warning("log %s not integrated nor signed for now: " + why, log_id, *args)
        return True

    def _unlistable(self, log_id: str, exc: OSError) -> bool:
        """A write-only drop box, a mount's I/O error: this log goes on unchecked, one warning."""
        if log_id not in self._unlisted:  # said once, not every round
            log.warning(
                "log %s: its exported checkpoints cannot be listed (%s), so a store "
                "restored from an older backup would not be noticed; give the notary "
                "read access to %s",
                log_id,
                exc,
                self._config.checkpoint_dir,
            )
            self._unlisted.add(log_id)
        return False

    def _name_hold(
        self, log_id: str, position: int, size: int, epoch: int, covering: loss.LossStatement | None
    ) -> None:
        """The error of a log held behind an exported checkpoint of ``epoch`` at ``size``."""
        of = "" if epoch == 0 else f" of epoch {epoch} ({self._config.origin(log_id, epoch)})"
        if covering is not None:  # signed past what a later statement says was lost
            log.error(
                "log %s not integrated nor signed: its exported checkpoint of size %d%s is "
                "past the loss statement of %s, which covers sizes up to %d only; run aiaudit "
                "verify",
                log_id,
                size,
                of,
                covering.origin,
                covering.lost_size,
            )
            return
        log.error(
            "log %s not integrated nor signed: its %d integrated leaves are behind its "
            "checkpoint of size %d%s, signed and exported to %s (the store restored from "
            "an older backup? sequences %d..%d are missing, and signing new events at "
            "them would fork the exported history); run aiaudit verify, and once no later "
            "backup holds them, aiaudit integrity accept-loss --log %s",
            log_id,
            position,
            size,
            of,
            self._config.checkpoint_dir,
            position,
            size - 1,
            log_id,
        )

    def _export(
        self, due: dict[str, Checkpoint], notes: dict[str, str], key_id: bytes
    ) -> list[str]:
        """Writes every note to the append-only directory at once; the logs whose copy is safe.

        Concurrent fsyncs share the file system's journal commits. A log whose
        export fails (the directory) is retried next round; the others go on.
        """
        if not notes:
            return []

        def one(log_id: str) -> str | None:
            size = due[log_id].size
            try:
                epoch = self._epoch(log_id)
                worm.export(self._config.checkpoint_dir, log_id, size, key_id, notes[log_id], epoch)
            except (OSError, ValueError) as exc:
                log.error("checkpoint of log %s not exported, will retry: %s", log_id, exc)
                return None
            return log_id

        with ThreadPoolExecutor(min(_EXPORTERS, len(notes)), "checkpoint-export") as pool:
            return [log_id for log_id in pool.map(one, notes) if log_id is not None]

    def _set_health(self, ok: bool) -> None:
        """Reports on every attempt, so a status overwritten elsewhere is corrected soon."""
        self._healthy = ok
        self._on_health(ok)
