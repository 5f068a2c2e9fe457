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
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from aiaudit.common.leader import Leadership
from aiaudit.common.store import cursors
from aiaudit.integrity import storage, worm
from aiaudit.integrity.merkle import CompactRange
from aiaudit.integrity.note import Checkpoint, NoteError, NoteSigner, sign_checkpoint
from aiaudit.integrity.signers import KeySource, SignerUnavailableError

log = logging.getLogger(__name__)

CONSUMER = "integrity"
"""The notary's cursor name in ``consumer_cursors``."""


@dataclass(frozen=True)
class NotaryConfig:
    """How the notary runs."""

    origin_prefix: str
    checkpoint_dir: Path
    checkpoint_interval: float = 1.0
    poll_interval: float = 1.0
    batch_size: int = 5000

    def origin(self, log_id: str) -> str:
        """Checkpoint origin line of a log."""
        return f"{self.origin_prefix}/{log_id}"


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
        self._last_sign = float("-inf")  # the first checkpoint is due at once
        self._last_integrate = float("-inf")
        self._leading = False
        self._healthy: bool | None = None
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
                failures = 0
            except Exception as exc:
                if failures == 0:
                    log.exception("notary step failed; giving up leadership and retrying")
                else:
                    log.warning("notary step failed again: %s", exc)
                failures += 1
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
            positions = storage.cursor_positions(conn, CONSUMER)
        return {log_id for log_id, size in positions.items() if size > signed.get(log_id, 0)}

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
        deadline = time.monotonic() + self._config.checkpoint_interval
        pending = [entry.log_id for entry in backlog]
        while pending and not self._stop.is_set():
            pending = [
                log_id
                for log_id in pending
                if self._integrate_batch(conn, log_id) == self._config.batch_size
            ]
            if time.monotonic() >= deadline:
                break

    def _integrate_batch(self, conn: sa.Connection, log_id: str) -> int:
        """Integrates the next batch of one log; returns how many leaves it added."""
        with conn.begin():
            position = cursors.position(conn, CONSUMER, log_id)
            edge = self._ranges.get(log_id)
            if edge is None or edge.size != position:
                edge = CompactRange.load(position, storage.NodeTable(conn, log_id))
            rows = storage.leaves(conn, log_id, position, self._config.batch_size)
            contiguous = [leaf for i, (seq, leaf) in enumerate(rows) if seq == position + i]
            if not contiguous:
                return 0
            grown = CompactRange(edge.size, edge.hashes())
            storage.write_nodes(conn, log_id, grown.extend(contiguous))
            cursors.advance(conn, CONSUMER, log_id, grown.size)
        self._ranges[log_id] = grown
        self._unsigned.add(log_id)
        return len(contiguous)

    def _sign_all(self, conn: sa.Connection) -> None:
        self._last_sign = time.monotonic()
        exported = True
        try:
            key = self._keys.active()
            for log_id in sorted(self._unsigned):
                try:
                    self._sign(conn, log_id, key.signer, key.version)
                except OSError as exc:  # the export directory: the other logs go on
                    log.error("checkpoint of log %s not exported, will retry: %s", log_id, exc)
                    exported = False
                    continue
                except (ValueError, NoteError) as exc:  # this log cannot be noted: the others can
                    log.error("checkpoint of log %s cannot be signed: %s", log_id, exc)
                    exported = False
                    continue
                self._unsigned.discard(log_id)
        except SignerUnavailableError as exc:
            if self._healthy is not False:
                log.warning("cannot sign checkpoints, will retry: %s", exc)
            self._set_health(False)
            return
        self._set_health(exported)

    def _sign(self, conn: sa.Connection, log_id: str, signer: NoteSigner, version: str) -> None:
        """Signs the log's checkpoint if it grew, exports it, then stores it.

        Exported first, so no stored checkpoint lacks its copy. A replica that
        lost its session meanwhile fails to store: its exported checkpoint is
        still one of this tree's (``verify`` accepts it as such), and the next
        leader signs the size again, to the same bytes.
        """
        with conn.begin():
            position = cursors.position(conn, CONSUMER, log_id)
            latest = storage.latest_checkpoint(conn, log_id)
            edge = self._ranges.get(log_id)
            if edge is None or edge.size != position:
                edge = CompactRange.load(position, storage.NodeTable(conn, log_id))
                self._ranges[log_id] = edge
        if position == 0 or (latest is not None and latest.tree_size >= position):
            return
        root = edge.root()
        note = sign_checkpoint(Checkpoint(self._config.origin(log_id), position, root), [signer])
        worm.export(self._config.checkpoint_dir, log_id, position, signer.verifier_key.key_id, note)
        with conn.begin():
            storage.insert_checkpoint(
                conn,
                storage.StoredCheckpoint(
                    log_id, position, root, note, dt.datetime.now(dt.UTC), version
                ),
            )

    def _set_health(self, ok: bool) -> None:
        """Reports on every attempt, so a status overwritten elsewhere is corrected soon."""
        self._healthy = ok
        self._on_health(ok)
