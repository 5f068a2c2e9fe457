"""The SDK's disk spool: batches the service has not acknowledged, kept until it does.

One file per batch, named by a counter so they replay oldest first, holding
the ``AppendRequest`` exactly as it will be sent again behind a digest of it
(``encode_batch``): a file damaged on disk (a flipped byte, a truncation, even
one between two events, which still parses) is set aside, never replayed as
other events or fewer. A file is written
under a temporary name, fsynced, renamed and the directory fsynced: after a
crash a batch is either whole in the spool or not there (and then still in
the caller's memory, or never acknowledged). It is removed only once the
service acknowledged it; a crash between the two resends it, which the
service answers with the original receipts (idempotent on event ids).

The spool may be bounded (``max_bytes``): a batch that would take its batch
files past the bound is refused (``SpoolFullError``) and stays with the caller.
Their sizes are counted at open and kept as files are written, rewritten and
removed, never by listing the directory again; the counts change together, under a
lock, so a reading from another thread (``usage``) is of one state of the spool.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import logging
import os
import threading
import uuid
import weakref
from pathlib import Path

from google.protobuf.message import DecodeError

from aiaudit.ingest.v1 import ingest_service_pb2 as pb

log = logging.getLogger(__name__)

_SUFFIX = ".batch"
_DIGEST_BYTES = 32
_HEADER = b"\xfa\xff\xff\xff\x0f" + bytes([_DIGEST_BYTES])
"""Starts a batch file written since 2026-12-07: the digest as field 536870911 (the
highest number; length-delimited, 32 bytes) of the ``AppendRequest``, ahead of its events.

The SDK before that read the bare batch and set aside what did not parse: a header
starting with byte 0 had every batch of this version set aside as ``*.damaged`` after a
rollback, none sent (review). A field it does not know it skips, and it replays the
events. A bare batch (earlier versions) starts with ``\\x0a``, its ``events``: 4 bits
from this header's first byte."""
_LEGACY = b"\x0a"
_OPEN: weakref.WeakSet[Spool] = weakref.WeakSet()
"""Open spools, whose lock a forked child lets go of (``_after_fork``)."""


class SpoolInUseError(RuntimeError):
    """Another logger holds the spool directory (each needs its own)."""


@dataclasses.dataclass(frozen=True)
class SpoolUsage:
    """What the spool holds, for a gateway's metrics (``AuditLogger.spool_usage``)."""

    spooled_bytes: int
    """The batch files' total size (their bytes, not the disk blocks they take)."""
    spooled_files: int
    max_spool_bytes: int | None
    """The bound (None: unbounded)."""
    full: bool
    """A batch waits in memory because spooling it would pass the bound."""


class SpoolFullError(RuntimeError):
    """Spooling the batch would take the spool past its bound: the caller keeps it."""

    def __init__(self, why: str, *, divisible: bool = False) -> None:
        super().__init__(why)
        self.divisible = divisible
        """A batch of several events larger than the bound itself: the caller spools it in
        parts (the spool is not counted full for it, nothing is logged)."""


class DamagedBatchError(ValueError):
    """A spool file whose bytes are not those written (its digest differs, or no batch)."""


def encode_batch(request: pb.AppendRequest) -> bytes:
    """A batch file's bytes: ``_HEADER``, the BLAKE2b digest of the batch, the batch.

    Until 2026-12-07 a file held the bare batch: of the single-bit flips of a
    5-event file, 335 in 565 still parsed, as other content or other ids (a
    second event stored), and one cut between two events parsed as fewer, the
    rest lost without a word (review).
    """
    payload = request.SerializeToString()
    return _HEADER + hashlib.blake2b(payload, digest_size=_DIGEST_BYTES).digest() + payload


def decode_batch(data: bytes) -> pb.AppendRequest:
    """The batch a file holds; raises ``DamagedBatchError`` or ``DecodeError`` if damaged.

    A file of an earlier version (the bare batch, no digest) is read as it is.
    """
    if data.startswith(_HEADER):
        digest = data[len(_HEADER) : len(_HEADER) + _DIGEST_BYTES]
        payload = data[len(_HEADER) + _DIGEST_BYTES :]
        if hashlib.blake2b(payload, digest_size=_DIGEST_BYTES).digest() != digest:
            raise DamagedBatchError(f"digest differs from its {len(payload)} bytes of batch")
        return pb.AppendRequest.FromString(payload)
    if data and not data.startswith(_LEGACY):
        raise DamagedBatchError(f"{len(data)} bytes that start as no batch file")
    return pb.AppendRequest.FromString(data)


class Spool:
    """Unacknowledged batches in a directory of their own (created 0700), one logger at a time."""

    def __init__(self, directory: Path, max_bytes: int | None = None) -> None:
        """Opens (or creates) the spool; batches left by an earlier process stay queued.

        Two loggers on one directory would number their files alike and
        overwrite each other's batches: the second is refused. ``max_bytes``
        bounds the batch files' total size (None: the disk's), theirs included.
        """
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            raise SpoolInUseError(
                f"spool directory {directory} is in use by another audit logger; "
                "give each logger a directory of its own"
            ) from None
        _OPEN.add(self)
        self._counts = threading.Lock()
        """Held while ``_pending``, ``_sizes``, ``size`` and ``_refused`` change (one writer, the
        logger's sender) and while another thread reads them (``usage``, ``pending``): never
        across a disk operation, so a reading does not wait for the disk."""
        for stale in directory.glob("*.tmp"):  # a write the crash interrupted: never renamed
            stale.unlink()
        found = [p for p in directory.glob(f"*{_SUFFIX}") if p.stem.isdigit()]
        self._pending = sorted(found, key=lambda p: int(p.stem))
        """The batches to send, oldest first: listed once, here (the lock makes this
        spool the directory's only writer), then kept by ``put``, ``remove`` and
        ``read``. Listed on every call, a spool of 50,000 files cost 1.2 s a listing,
        two or more a round of the sender: replayed at one file a second (14 hours),
        ``log`` waiting up to 0.6 s (review, 2026-12-07)."""
        self._next = int(self._pending[-1].stem) + 1 if self._pending else 1
        self._sizes = {p: _size(p) for p in self._pending}
        """Each pending file's size, kept with ``_pending``: the bound is checked on every
        ``put`` without a listing (or a stat of each file) of the directory."""
        self.size = sum(self._sizes.values())
        """The pending batch files' total size."""
        self._refused = 0
        """The size of the last batch refused for the bound, while it waits (0: none)."""

    def close(self) -> None:
        """Lets another logger open the directory."""
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1

    def pending(self) -> list[Path]:
        """The spooled batches, oldest first: found at open or put since, not yet removed.

        A file added to the directory by hand is found by the next logger.
        """
        with self._counts:
            return list(self._pending)

    def pending_sizes(self) -> list[tuple[Path, int]]:
        """``pending`` with each file's size as kept (no stat).

        A replay's call is bounded by its files' bytes before any of them is read.
        """
        with self._counts:
            return [(p, self._sizes[p]) for p in self._pending]

    def usage(self) -> SpoolUsage:
        """Its size, files and state, as kept (no listing); full until a refused batch has room.

        The logger's ``spool_usage`` stays full until that batch has left its memory. Read
        under the lock the sender changes them under, once a file is written, synced and
        renamed (or removed): read without it, a reading taken while a file was put counted
        the file and not yet its bytes, or the reverse while one was removed (review,
        2026-12-07). The lock is never held across the disk's work, so a reading waits for a
        few assignments at most.
        """
        with self._counts:
            return SpoolUsage(self.size, len(self._pending), self.max_bytes, self._refused > 0)

    def _forget(self, *paths: Path) -> None:
        gone = {p for p in paths if p in self._sizes}
        if not gone:
            return
        with self._counts:  # one pass over the list, however many files a replay's call took
            self._pending = [p for p in self._pending if p not in gone]
            self.size -= sum(self._sizes.pop(p) for p in gone)
        self._check_room()

    def _check_room(self) -> None:
        """Logs once that the spool has room again: for the batch it refused, or empty."""
        if self._refused and (self.size + self._refused <= (self.max_bytes or 0) or not self.size):
            self._not_full("has room again")

    def sent(self) -> None:
        """The caller's batch was sent from memory: the one refused no longer waits.

        A batch the service took never reaches ``put``: ``full`` stayed True for good (a
        batch larger than the bound, refused with the spool empty), and the next outage
        that filled the spool logged no ERROR (review, 2026-12-07).
        """
        if self._refused:
            self._not_full("no longer full: the batch it refused was sent")

    def _not_full(self, why: str) -> None:
        with self._counts:
            self._refused = 0
        log.info(
            "audit spool %s %s: %d bytes in %d files, max_spool_bytes %d",
            self.directory,
            why,
            self.size,
            len(self._pending),
            self.max_bytes,
        )

    def put(self, request: pb.AppendRequest, *, past_bound: bool = False) -> Path:
        """Writes one batch durably; returns its file.

        Raises ``SpoolFullError`` if the batch files would pass ``max_bytes``, unless
        ``past_bound`` (the logger's close: spooled past the bound rather than lost).
        The first refusal is logged, not each one while the spool stays full; a batch
        of several events larger than the bound itself is refused ``divisible``, neither
        logged nor counted full: whole, it would never be spooled.
        """
        data = encode_batch(request)
        if not past_bound and self.max_bytes and self.size + len(data) > self.max_bytes:
            if len(data) > self.max_bytes and len(request.events) > 1:
                raise SpoolFullError(
                    f"audit spool {self.directory}: a batch of {len(request.events)} events "
                    f"({len(data)} bytes) is larger than max_spool_bytes {self.max_bytes}",
                    divisible=True,
                )
            self._refuse(len(request.events), len(data))
        path = self.directory / f"{self._next:020d}{_SUFFIX}"
        self._next += 1
        self._write(path, data)
        with self._counts:  # the file, then its bytes: one change to a reader
            self._pending.append(path)
            self._sizes[path] = len(data)
            self.size += len(data)
        if self._refused:  # the batch refused (or what is left of it): in memory no longer
            # Past the bound at close too: ``full`` stayed True while nothing waited (review).
            self._not_full("spooled past its bound at close" if past_bound else "has room again")
        return path

    def _refuse(self, events: int, size: int) -> None:
        why = (
            f"audit spool {self.directory} full: {self.size} bytes in {len(self._pending)} "
            f"files, a batch of {events} events ({size} bytes) would pass max_spool_bytes "
            f"{self.max_bytes}"
        )
        if not self._refused:
            larger = " (larger than the bound itself)" if size > (self.max_bytes or 0) else ""
            log.error(
                "%s%s: batches wait in memory and log() blocks at max_buffered until the "
                "service has taken the spool's batches and them, in order",
                why,
                larger,
            )
        with self._counts:
            self._refused = size
        raise SpoolFullError(why)

    def _write(self, path: Path, data: bytes) -> None:
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            write_all(fd, data)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        tmp.rename(path)
        fsync_dir(self.directory)

    def replace(self, path: Path, request: pb.AppendRequest) -> None:
        """Rewrites a batch in place (what is left of it once part was settled).

        It keeps its place in the order; a crash leaves the old batch or the new
        one whole, as ``put`` does. Never refused for the bound: it holds fewer events.
        """
        data = encode_batch(request)
        self._write(path, data)
        with self._counts:
            if path not in self._sizes:
                return
            self.size += len(data) - self._sizes[path]
            self._sizes[path] = len(data)
        self._check_room()

    def read(self, path: Path) -> pb.AppendRequest | None:
        """A spooled batch as it was put; None (the file set aside, logged) if it cannot be read.

        A damaged or unreadable file would otherwise hold every later batch
        behind it for good. It is renamed ``*.damaged`` for someone to look at,
        never deleted; if even that fails, this spool skips it from now on.
        """
        try:
            request: pb.AppendRequest | None = decode_batch(path.read_bytes())
            why = "holds no event"
        except FileNotFoundError:  # removed meanwhile: nothing to set aside
            self._forget(path)
            return None
        except (DecodeError, DamagedBatchError, OSError) as err:
            request, why = None, f"{type(err).__name__}: {err}"
        if request is not None and request.events:
            return request
        self._set_aside(path, why)
        return None

    def _set_aside(self, path: Path, why: str) -> None:
        # Numbers restart when the spool empties: a name of its own, never over an earlier one.
        damaged = path.with_name(f"{path.stem}-{uuid.uuid4().hex[:12]}.damaged")
        self._forget(path)
        try:
            path.rename(damaged)
            fsync_dir(self.directory)
        except OSError as err:
            log.error("audit spool file %s unusable (%s), kept (%s): skipped", path, why, err)
            return
        log.error("audit spool file %s unusable (%s): set aside as %s", path, why, damaged.name)

    def remove(self, *paths: Path) -> None:
        """Forgets batches the service acknowledged: each file unlinked, the directory synced once.

        A sync a file cost 4 ms here: 8 s of a replay of 2,000 one-event files sent in 4
        calls (review, 2026-12-07). A crash before the sync may leave some of them, sent
        again and answered with their original receipts.
        """
        for path in paths:
            path.unlink(missing_ok=True)
        self._forget(*paths)
        fsync_dir(self.directory)


def _size(path: Path) -> int:
    """A file's size found at open; 0 if it cannot be read (``read`` sets it aside then)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _after_fork() -> None:
    """A forked child drops its copies of the locks (it must not use the parent's spools).

    The lock stays the parent's: it is released when the parent closes its spool,
    even while a child it forked lives on.
    """
    for spool in list(_OPEN):
        if spool._lock >= 0:
            os.close(spool._lock)
            spool._lock = -1


os.register_at_fork(after_in_child=_after_fork)


def fsync_dir(directory: Path) -> None:
    """Makes a rename or an unlink in ``directory`` durable (the file's own fsync does not)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Writes every byte (``os.write`` may write part of them: a disk nearly full)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
