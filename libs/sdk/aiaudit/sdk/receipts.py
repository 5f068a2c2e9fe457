"""Signed receipts the gateway keeps: its evidence of what the service acknowledged.

Until a signed checkpoint covers an event, whoever owns the database can change
or append entries unnoticed by ``aiaudit verify``; a receipt note (one per log
of an acknowledged batch, signed by the checkpoint key) is the service's signed
promise of each event's sequence and leaf hash, checked offline with
``aiaudit verify --receipt FILE --verifier-key KEY``. That command reads one note
a file, so each note is a file of its own, written once and never changed:

    <receipts_dir>/<log id>.<first sequence>-<last sequence>.<16 hex of its SHA-256>.note

The log and the range say which file holds an event's receipt; the hash keeps
apart two notes over the same range (a resend answered as duplicates, signed
again in another batch or by a newer key version), so none overwrites another,
and the same note written twice is one file. A file is written under a
temporary name, fsynced, renamed and the directory fsynced, so it is whole or
absent. Several loggers may share one directory.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Iterable
from pathlib import Path

from aiaudit.common import tenants
from aiaudit.sdk.spool import fsync_dir, write_all

log = logging.getLogger(__name__)


class ReceiptFiles:
    """A directory of signed receipt notes, one file each."""

    def __init__(self, directory: Path) -> None:
        """Creates the directory (0700) if needed: a path that cannot be one fails here, at once."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory = directory

    def keep(self, notes: Iterable[str]) -> None:
        """Writes each note durably; a failure is logged, never raised.

        The events are stored whatever happens here: a disk that refuses a
        receipt must not hold or resend the batch, nor the ones behind it.
        """
        for note in notes:
            path = self.directory / note_name(note)
            try:
                if not path.exists():
                    _write_new(path, note.encode())
            except OSError as err:
                log.error(
                    "audit receipt not kept: %s could not be written (%s); its events are "
                    "stored, but this gateway holds no signed receipt of them",
                    path,
                    err,
                )


def note_name(note: str) -> str:
    """The file name of a note: its log, first and last sequence, and a hash of it.

    Read from the note's own text (``<format>``, ``<origin prefix>/<log id>``,
    ``<sequence> ...`` lines, then the signatures after a blank line). A text
    that does not read so is still kept, named by its hash alone.
    """
    digest = hashlib.sha256(note.encode()).hexdigest()[:16]
    lines = note.split("\n\n", 1)[0].split("\n")
    log_id = lines[1].rsplit("/", 1)[-1] if len(lines) > 2 else ""
    try:
        sequences = [int(line.split(" ", 1)[0]) for line in lines[2:]]
    except ValueError:
        sequences = []
    if not tenants.valid(log_id) or not sequences or min(sequences) < 0:
        return f"receipt.{digest}.note"
    return f"{log_id}.{min(sequences)}-{max(sequences)}.{digest}.note"


def _write_new(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        write_all(fd, data)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        tmp.rename(path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
