"""Output files that appear whole or not at all, readable by their owner only."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def written_whole(target: Path) -> Iterator[BinaryIO]:
    """A file to write ``target`` through: it takes ``target``'s name once the block ends.

    What is written goes to a temporary file beside ``target`` (the same file
    system, so the rename is atomic), created ``0600`` whatever the umask:
    an export holds content a user on the machine may not read. It is synced
    and renamed over ``target`` when the block ends; on any exception (Ctrl-C
    included) it is removed and an earlier ``target`` is left as it was.
    Written in place, an interrupted export left a partial file that passed
    for the whole one (a JSON Lines file cut between two lines looks complete).

    The destination is checked on entry, before the block runs, so that a
    caller can do what must precede the writing (record the export) only once
    the file can be written: a directory raises ``IsADirectoryError``, a
    missing or read-only directory the ``OSError`` of creating the file. A
    FIFO or a device (``/dev/stdout``) cannot be renamed over: it is written
    in place, once an empty write showed it takes writes (``/dev/full``
    refuses even that).
    """
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(target))
    if target.exists() and not target.is_file():
        device = target.open("wb")
        try:
            os.write(device.fileno(), b"")
            yield device
            device.close()
        except BaseException:
            _close_quietly(device)
            raise
        return
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    partial = Path(name)
    out = os.fdopen(fd, "wb")
    try:
        yield out
        out.flush()
        os.fsync(out.fileno())  # the whole file, not an empty one, after a power cut
        out.close()
        partial.replace(target)
    except BaseException:
        _close_quietly(out)
        partial.unlink(missing_ok=True)
        raise


def _close_quietly(f: BinaryIO) -> None:
    """Closes ``f`` after a failure, whose error this one must not hide.

    The data it still buffers may not fit either (ENOSPC).
    """
    with contextlib.suppress(OSError):
        f.close()
