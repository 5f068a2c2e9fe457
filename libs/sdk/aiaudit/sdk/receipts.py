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

Opening the directory cleans what a crash left: the torn tails of files written
in the last two days (named ``<log id>.<YYYY-MM-DD>.notes``; another
``*.notes`` file there is left alone), and the temporary files of the earlier layout's writes
once older than an hour (a write still going on in a process of an earlier
version lasts seconds, and holds no lock that could tell).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path

from aiaudit.common import receipt_files, tenants
from aiaudit.sdk.spool import fsync_dir, write_all

log = logging.getLogger(__name__)

STALE_TEMP_AGE = 3600.0
"""Seconds after which an earlier version's temporary receipt file is taken as a crash's."""
REPAIR_WINDOW = 2 * 86400.0
"""Files modified this recently get a torn tail cut off when the directory is opened."""
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
_KNOWN_LIMIT = 10_000


class ReceiptFiles:
    """A directory of signed receipt notes, appended to one file per log and day."""

    def __init__(self, directory: Path) -> None:
        """Creates the directory (0700) if needed, then cleans what a crash left in it.

        A path that cannot be a directory fails here, at once; a leftover that
        cannot be cleaned is logged, never raised.
        """
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory = directory
        self._synced: set[tuple[int, int]] = set()
        """The files (device, inode) whose directory entry this writer has synced: by inode,
        as a name moved away and made again is a new entry to sync."""
        self._clean()

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
        fd, inode = _open_locked(path)
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
                fcntl.flock(fd, fcntl.LOCK_UN)
            # Outside the lock: a sync writes every writer's appends so far, ours with them.
            _sync_data(fd)
        finally:
            os.close(fd)
        if inode not in self._synced:
            fsync_dir(self.directory)
            if len(self._synced) >= _KNOWN_LIMIT:
                self._synced.clear()
            self._synced.add(inode)

    def _clean(self) -> None:
        """Removes the earlier layout's stale temporary files; cuts recent files' torn tails."""
        now = time.time()
        try:
            entries = list(os.scandir(self.directory))
        except OSError as err:
            log.warning("audit receipts directory %s not cleaned: %s", self.directory, err)
            return
        removed = 0
        for entry in entries:
            try:
                if _OLD_TEMP.fullmatch(entry.name):
                    if now - entry.stat(follow_symlinks=False).st_mtime >= STALE_TEMP_AGE:
                        os.unlink(entry.path)
                        removed += 1
                elif _DAYS_FILE.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                    recent = now - entry.stat(follow_symlinks=False).st_mtime < REPAIR_WINDOW
                    if recent:
                        _repair(Path(entry.path))
            except FileNotFoundError:
                continue  # removed meanwhile (another logger cleaning too)
            except OSError as err:
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


def _open_locked(path: Path) -> tuple[int, tuple[int, int]]:
    """Opens (creates) the file at ``path`` and locks it; returns it and its (device, inode).

    Opened again while the name no longer leads to the file locked: a tool that
    moved it away (archived it) while it held the lock, as another writer waited
    for it, must not get appends after it let go.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held = os.fstat(fd)
            try:
                named = os.stat(path)
            except FileNotFoundError:
                named = None
        except BaseException:
            os.close(fd)
            raise
        if named is not None and (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino):
            return fd, (held.st_dev, held.st_ino)
        os.close(fd)  # and its lock


def _repair(path: Path) -> None:
    """Cuts off a torn tail, unless a writer holds the file (it cuts it off itself)."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
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
