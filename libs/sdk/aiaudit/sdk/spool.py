"""The SDK's disk spool: batches the service has not acknowledged, kept until it does.

One file per batch, named by a counter so they replay oldest first, holding
the ``AppendRequest`` exactly as it will be sent again. A file is written
under a temporary name, fsynced, renamed and the directory fsynced: after a
crash a batch is either whole in the spool or not there (and then still in
the caller's memory, or never acknowledged). It is removed only once the
service acknowledged it; a crash between the two resends it, which the
service answers with the original receipts (idempotent on event ids).
"""

from __future__ import annotations

import os
from pathlib import Path

from aiaudit.ingest.v1 import ingest_service_pb2 as pb

_SUFFIX = ".batch"


class Spool:
    """Unacknowledged batches in a directory of their own (created 0700)."""

    def __init__(self, directory: Path) -> None:
        """Opens (or creates) the spool; batches left by an earlier process stay queued."""
        self.directory = directory
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for stale in directory.glob("*.tmp"):  # a write the crash interrupted: never renamed
            stale.unlink()
        names = [int(p.stem) for p in self.pending()]
        self._next = max(names, default=0) + 1

    def pending(self) -> list[Path]:
        """The spooled batches, oldest first (none while the directory cannot be read)."""
        try:
            return sorted(self.directory.glob(f"*{_SUFFIX}"), key=lambda p: int(p.stem))
        except OSError:
            return []

    def put(self, request: pb.AppendRequest) -> Path:
        """Writes one batch durably; returns its file."""
        path = self.directory / f"{self._next:020d}{_SUFFIX}"
        self._next += 1
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, request.SerializeToString())
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.rename(path)
        _fsync_dir(self.directory)
        return path

    @staticmethod
    def read(path: Path) -> pb.AppendRequest:
        """A spooled batch as it was put."""
        return pb.AppendRequest.FromString(path.read_bytes())

    def remove(self, path: Path) -> None:
        """Forgets a batch the service acknowledged."""
        path.unlink(missing_ok=True)
        _fsync_dir(self.directory)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
