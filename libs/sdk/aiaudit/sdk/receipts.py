"""Signed receipts the gateway keeps: its evidence of what the service acknowledged.

Until a signed checkpoint covers an event, whoever owns the database can change
or append entries unnoticed by ``aiaudit verify``; a receipt note (one per log
of an acknowledged batch, signed by the checkpoint key) is the service's signed
promise of each event's sequence and leaf hash, checked offline with
``aiaudit verify --receipt FILE --verifier-key KEY``. The notes of one log and
one day (UTC, of the receive time of a note's first event) are appended to one
file, which that command reads note by note (``aiaudit.common.receipt_files``)::

    <receipts_dir>/<log id>.<YYYY-MM-DD>.notes

A note is signed whole, so one whose events span midnight stays in the file of
its first event's day (the receipts of the next day's first events may be in
the day before's file). A note that does not read so goes to
``receipt.<YYYY-MM-DD>.notes`` (today); a text that is no receipt note (a line
``.`` in it, which would end a record early) is refused, logged.
Until 2026-12-06 each note was a file of its own (``<log id>.<first>-<last>.
<hash>.note``, written under a temporary name and renamed): a busy gateway
made a file, two fsyncs and a directory entry per batch and log, hundreds of
thousands of files a day. Those files stay where they are and verify as before.

An append is durable before ``keep`` returns, so before the batch counts as
acknowledged: the file is locked (``flock``: several loggers, in this process or
others, may share the directory), a tail that a writer killed in its write left
is cut off, the notes are written, the lock let go and the file's data synced
(one ``fdatasync`` a file and batch; the directory is synced too the first time
this process writes a file, which another may just have made). A crash leaves
each note whole or not acknowledged. A file locked and then found no longer at
its name (moved away while this writer waited) is let go and the name opened
again: an archiving tool that locks a day's file (``flock``) while it moves it
gets no append after it lets go.

A batch never waits for a lock for ever, nor loses its notes to one: the lock
is tried again for ``lock_wait`` (5 s) at most while another holds the file (a
process stopped while it held it), and the notes of a file that cannot be
locked (that, or a filesystem whose ``flock`` fails: NFS without its lock
daemon, ``ENOLCK``; some FUSE filesystems, ``EOPNOTSUPP``/``EINVAL``) are kept
in a file of their own beside it, ``<log id>.<YYYY-MM-DD>.<32 hex>.notes``, in
the same layout, written under ``.<its name>.tmp``, synced and renamed (no lock
needed: a crash leaves it whole or not there), the directory synced. That is
logged once: a filesystem that cannot lock when it is found so (the directory
is tried once when opened, a file of its own locked and removed, so that no
day's file is made, empty, only to fail), a file held past ``lock_wait`` for
that file, whose next batches try its lock once, not waiting, until it is let
go. A day's file missing while the directory cannot lock is made again once
a lock of the directory's own works (tried every ``PROBE_AGAIN``, 60 s), so
that notes go back to the day's files when the lock daemon is back. Each note
is in one file only: nothing is written to a file not locked.

Opening the directory cleans what a crash left: the torn tails of files written
in the last two days (named ``<log id>.<YYYY-MM-DD>.notes``; another
``*.notes`` file there is left alone), and the temporary files of the earlier layout's writes
and of notes kept apart once older than an hour (a write still going on lasts
seconds, and holds no lock that could tell).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from aiaudit.common import receipt_files, tenants
from aiaudit.sdk.spool import fsync_dir, write_all

log = logging.getLogger(__name__)

STALE_TEMP_AGE = 3600.0
"""Seconds after which an earlier version's temporary receipt file is taken as a crash's."""
REPAIR_WINDOW = 2 * 86400.0
"""Files modified this recently get a torn tail cut off when the directory is opened."""
LOCK_WAIT = 5.0
"""Seconds an append waits for a day's file another holds locked (a lock is held for a write
of milliseconds) before its notes go to a file of their own."""
NO_LOCKS = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL})
"""``flock``'s errors on a filesystem that cannot lock: NFS without its lock daemon
(``ENOLCK``), some FUSE filesystems (``EOPNOTSUPP``, ``EINVAL``)."""
PROBE_AGAIN = 60.0
"""Seconds between two tries of a directory found unlockable, when a batch's day's file is
missing: a lock daemon back (or a transient failure when opened) lets the day's files be
made and appended to again, not a file of their own per batch for the process's life."""
_POLL = 0.01
"""The longest pause between two tries of a lock another holds."""
Lock = Callable[[int, int], None]
"""How a file is locked and let go: ``fcntl.flock``'s signature."""
_OLD_TEMP = re.compile(
    rf"\.(?:(?:{tenants.TENANT_ID.pattern})\.\d+-\d+|receipt)\.[0-9a-f]{{16}}\.note"
    r"\.[0-9a-f]{32}\.tmp"
)
"""The earlier layout's temporary name: ``.<note file name>.<uuid hex>.tmp``, its note file
named ``<log id>.<first>-<last>.<16 hex>.note`` or ``receipt.<16 hex>.note``."""
_DAY = re.compile(r"\d{4}-\d\d-\d\d")
_DAYS_FILE = re.compile(
    rf"(?:{tenants.TENANT_ID.pattern})\.{_DAY.pattern}{re.escape(receipt_files.SUFFIX)}"
)
"""The name of a file this module appends to (``receipt``, the odd notes' file, is a log id's
shape too); another ``*.notes`` file in the directory is not its to cut."""
_APART_TEMP = re.compile(
    rf"\.(?:{tenants.TENANT_ID.pattern})\.{_DAY.pattern}\.[0-9a-f]{{32}}"
    rf"{re.escape(receipt_files.SUFFIX)}\.tmp"
)
"""The temporary name of a file of notes kept apart: ``.<log id>.<day>.<32 hex>.notes.tmp``."""
_PROBE = re.compile(r"\.lock-probe\.[0-9a-f]{32}\.tmp")
"""The name of the empty file locked once when the directory is opened, then removed."""
_KNOWN_LIMIT = 10_000


class ReceiptFiles:
    """A directory of signed receipt notes, appended to one file per log and day."""

    def __init__(
        self, directory: Path, *, lock: Lock = fcntl.flock, lock_wait: float = LOCK_WAIT
    ) -> None:
        """Creates the directory (0700) if needed, then cleans what a crash left in it.

        A path that cannot be a directory fails here, at once; a leftover that
        cannot be cleaned is logged, never raised. ``lock``: how a file is
        locked (``fcntl.flock``); ``lock_wait``: how long an append waits for a
        file another holds before its notes go to a file of their own.
        """
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory = directory
        self._lock = lock
        self._lock_wait = lock_wait
        self._synced: set[tuple[int, int]] = set()
        """The files (device, inode) whose directory entry this writer has synced: by inode,
        as a name moved away and made again is a new entry to sync."""
        self._unlockable: OSError | None = None
        self._probed = time.monotonic()
        """When the directory was last tried with a lock of its own (``_probe``)."""
        """Why the directory's files cannot be locked, since a lock last failed so (logged
        then): a missing day's file is not made to try again, its notes go apart, until a
        lock of the directory's own works (``_lockable_again``)."""
        self._held: set[str] = set()
        """Files found held past ``lock_wait`` (logged then): tried once a batch, not waited
        for again, until locked."""
        self._clean()
        if self._unlockable is None:
            self._probe()

    def keep(self, notes: Iterable[str]) -> None:
        """Appends each note durably; a failure is logged, never raised.

        The events are stored whatever happens here: a disk that refuses a
        receipt must not hold or resend the batch, nor the ones behind it.
        """
        files: dict[str, list[bytes]] = {}
        for note in notes:
            try:
                data = receipt_files.record(note.encode())
            except ValueError as err:
                log.error(
                    "audit receipt not kept: the service answered a text that is no receipt "
                    "note (%s), %d character(s): %r; its events are stored",
                    err,
                    len(note),
                    note[:200],
                )
                continue
            files.setdefault(file_name(note), []).append(data)
        for name, records in files.items():
            path = self.directory / name
            try:
                self._append(path, b"".join(records))
            except OSError as err:
                log.error(
                    "audit receipt not kept: %d note(s) could not be appended to %s (%s); "
                    "their events are stored, but this gateway holds no signed receipt of them",
                    len(records),
                    path,
                    err,
                )

    def _append(self, path: Path, data: bytes) -> None:
        opened = self._open_locked(path)
        if opened is None:
            self._write_apart(path, data)
            return
        fd, inode = opened
        try:
            try:
                end = _cut_torn_tail(fd, path)
                if end == 0:  # new (made by this open or another's): its entry to sync
                    self._synced.discard(inode)
                try:
                    write_all(fd, data)
                except BaseException:
                    with contextlib.suppress(OSError):  # else the next writer cuts it off
                        os.ftruncate(fd, end)
                    raise
            finally:
                with contextlib.suppress(OSError):  # else let go when closed, after the sync
                    self._lock(fd, fcntl.LOCK_UN)
            # Outside the lock: a sync writes every writer's appends so far, ours with them.
            _sync_data(fd)
        finally:
            os.close(fd)
        if inode not in self._synced:
            fsync_dir(self.directory)
            if len(self._synced) >= _KNOWN_LIMIT:
                self._synced.clear()
            self._synced.add(inode)

    def _open_locked(self, path: Path) -> tuple[int, tuple[int, int]] | None:
        """Opens (creates) the file at ``path`` and locks it; returns it and its (device, inode).

        ``None`` when it cannot be locked (the directory's filesystem cannot lock,
        or another holds the file past ``lock_wait``): nothing was written to it.
        Opened again while the name no longer leads to the file locked: a tool that
        moved it away (archived it) while it held the lock, as another writer waited
        for it, must not get appends after it let go.
        """
        name = path.name
        deadline = time.monotonic() + (0.0 if name in self._held else self._lock_wait)
        create = os.O_CREAT if self._unlockable is None else 0
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_APPEND | create, 0o600)
            except FileNotFoundError:
                if create:
                    raise
                if not self._lockable_again():
                    return None  # not made only to find again that it cannot be locked
                create = os.O_CREAT
                continue
            try:
                locked = _lock_until(self._lock, fd, deadline)
                if locked:
                    held = os.fstat(fd)
                    try:
                        named = os.stat(path)
                    except FileNotFoundError:
                        named = None
            except OSError as err:
                os.close(fd)
                if err.errno not in NO_LOCKS:
                    raise
                self._cannot_lock(err)
                return None
            except BaseException:
                os.close(fd)
                raise
            if not locked:
                os.close(fd)
                if name not in self._held:
                    if len(self._held) >= _KNOWN_LIMIT:
                        self._held.clear()
                    self._held.add(name)
                    log.warning(
                        "audit receipts: %s held locked by another writer for over %.1f s (a "
                        "process stopped while it holds it?): until it is let go, each "
                        "batch's notes of it are kept in a file of their own beside it",
                        path,
                        self._lock_wait,
                    )
                return None
            if named is not None and (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino):
                if self._unlockable is not None:
                    self._unlockable = None
                    log.warning("audit receipts: %s can be locked again", path)
                if name in self._held:
                    self._held.discard(name)
                    log.warning("audit receipts: %s let go, appended to again", path)
                return fd, (held.st_dev, held.st_ino)
            os.close(fd)  # and its lock

    def _lockable_again(self) -> bool:
        """Whether a directory found unlockable locks again, tried every ``PROBE_AGAIN`` s.

        Only an existing day's file's lock said so until 2026-12-06: a day's
        file missing (the next day's, a new log's, a directory that could not
        lock when opened) was never made, so every batch's notes went to a file
        of their own for the rest of the process's life, after the lock daemon
        was long back (review, 2026-12-06).
        """
        if time.monotonic() - self._probed < PROBE_AGAIN:
            return False
        self._probe()
        return self._unlockable is None

    def _probe(self) -> None:
        """Locks a file of its own: a directory that cannot lock then makes no day's file.

        Else the first append would make (empty) the file it fails to lock, a
        file ``verify --receipt`` finds holding no note; one that fails so later
        (a lock daemon gone) may still leave one. Tried when opened, and again
        by ``_lockable_again``; a lock taken clears ``_unlockable`` (logged).
        """
        self._probed = time.monotonic()
        probe = self.directory / f".lock-probe.{uuid.uuid4().hex}.tmp"
        try:
            fd = os.open(probe, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as err:
            log.warning("audit receipts: %s not made to try a lock: %s", probe, err)
            return
        try:
            self._lock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in NO_LOCKS:
                self._cannot_lock(err)
            else:  # not a filesystem that cannot lock: each day's file's lock will tell
                log.warning("audit receipts: %s not locked: %s", probe, err)
        else:
            if self._unlockable is not None:
                self._unlockable = None
                log.warning("audit receipts: the files of %s can be locked again", self.directory)
        finally:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(probe)

    def _cannot_lock(self, err: OSError) -> None:
        if self._unlockable is None:
            log.warning(
                "audit receipts: the files of %s cannot be locked (%s): each batch's notes "
                "are kept in a file of their own (<log id>.<day>.<32 hex>.notes)",
                self.directory,
                err,
            )
        self._unlockable = err

    def _write_apart(self, path: Path, data: bytes) -> None:
        """Keeps the notes of ``path`` in a file of their own beside it, needing no lock.

        ``<log id>.<day>.<32 hex>.notes``, the same layout (``verify --receipt``
        reads it), written under ``.<its name>.tmp``, synced and renamed, so a
        crash leaves it whole or not there.
        """
        stem = path.name.removesuffix(receipt_files.SUFFIX)
        final = path.with_name(f"{stem}.{uuid.uuid4().hex}{receipt_files.SUFFIX}")
        temp = path.with_name(f".{final.name}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                write_all(fd, data)
                _sync_data(fd)
            finally:
                os.close(fd)
            os.rename(temp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        fsync_dir(self.directory)

    def _clean(self) -> None:
        """Removes stale temporary files (earlier layout's, notes apart); cuts torn tails."""
        now = time.time()
        try:
            entries = list(os.scandir(self.directory))
        except OSError as err:
            log.warning("audit receipts directory %s not cleaned: %s", self.directory, err)
            return
        removed = 0
        for entry in entries:
            try:
                if any(p.fullmatch(entry.name) for p in (_OLD_TEMP, _APART_TEMP, _PROBE)):
                    if now - entry.stat(follow_symlinks=False).st_mtime >= STALE_TEMP_AGE:
                        os.unlink(entry.path)
                        removed += 1
                elif (
                    self._unlockable is None
                    and _DAYS_FILE.fullmatch(entry.name)
                    and entry.is_file(follow_symlinks=False)
                ):
                    recent = now - entry.stat(follow_symlinks=False).st_mtime < REPAIR_WINDOW
                    if recent:
                        _repair(Path(entry.path), self._lock)
            except FileNotFoundError:
                continue  # removed meanwhile (another logger cleaning too)
            except OSError as err:
                if err.errno in NO_LOCKS:
                    self._cannot_lock(err)  # a tail is cut by the next writer that can lock
                else:
                    log.warning("audit receipts: %s not cleaned: %s", entry.path, err)
        if removed:
            with contextlib.suppress(OSError):
                fsync_dir(self.directory)
            log.warning(
                "audit receipts: %d temporary file(s) of writes a crash interrupted removed "
                "from %s",
                removed,
                self.directory,
            )


def _lock_until(lock: Lock, fd: int, deadline: float) -> bool:
    """Locks ``fd``, trying again until ``deadline`` (``time.monotonic``) while another holds it.

    False if still held then. A lock is held for a write of milliseconds, so
    the pauses start short; an error other than "held" (a filesystem that
    cannot lock) is raised.
    """
    pause = 0.0005
    while True:
        try:
            lock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(pause, left))
            pause = min(2 * pause, _POLL)


def _repair(path: Path, lock: Lock) -> None:
    """Cuts off a torn tail, unless a writer holds the file (it cuts it off itself)."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND)
    try:
        try:
            lock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        size = os.fstat(fd).st_size
        if _cut_torn_tail(fd, path) != size:
            _sync_data(fd)
    finally:
        os.close(fd)


def _cut_torn_tail(fd: int, path: Path) -> int:
    size = os.fstat(fd).st_size
    end = receipt_files.whole_end(fd)
    if end != size:
        log.warning(
            "audit receipts: %d byte(s) of a write a crash interrupted (never acknowledged) "
            "cut off the end of %s",
            size - end,
            path,
        )
    return end


def _sync_data(fd: int) -> None:
    getattr(os, "fdatasync", os.fsync)(fd)


def file_name(note: str) -> str:
    """The file a note is appended to: its log's, of the day of its first receive time.

    Read from the note's own text (``<format>``, ``<origin prefix>/<log id>``,
    ``<sequence> <leaf hash> <receive time>`` lines, then the signatures after a
    blank line). A text that does not read so goes to ``receipt.<today>.notes``.
    """
    lines = note.split("\n\n", 1)[0].split("\n")
    log_id = lines[1].rsplit("/", 1)[-1] if len(lines) > 2 else ""
    fields = lines[2].split(" ") if len(lines) > 2 else []
    day = fields[2][:10] if len(fields) == 3 else ""
    if tenants.valid(log_id) and _DAY.fullmatch(day):
        return f"{log_id}.{day}{receipt_files.SUFFIX}"
    return f"receipt.{dt.datetime.now(dt.UTC).date().isoformat()}{receipt_files.SUFFIX}"
