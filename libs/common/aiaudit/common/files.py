"""Output files that appear whole or not at all, readable by their owner only."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
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

    A symbolic link is written through: the temporary file goes beside the
    file it names (followed to the end, a link that names no file yet
    included) and is renamed there, the link kept. Renamed over the link, as
    until 2026-12-05, the file the link named (a copy on WORM storage) was
    never written, and a link to ``/proc/self/fd/1`` became a private file
    while stdout got nothing.

    The destination is checked on entry, before the block runs, so that a
    caller can do what must precede the writing (record the export) only once
    the file can be written: a directory raises ``IsADirectoryError``, a
    missing or read-only directory the ``OSError`` of creating the file. What
    is not a regular file (a FIFO, a device) and what is reached through a
    ``/proc`` link (``/dev/stdout``, ``/proc/self/fd/N``: the file an open
    descriptor has, even a regular one) cannot be renamed over: it is written
    in place as it comes, appended to (stdout redirected with ``>>`` keeps
    what it held), once an empty write showed it takes writes (``/dev/full``
    refuses even that). Nothing is created then, so nothing is made ``0600``.
    """
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(target))
    resolved = _resolved(target)
    if resolved is None or (resolved.exists() and not resolved.is_file()):
        device = os.fdopen(os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC), "wb")
        try:
            os.write(device.fileno(), b"")
            yield device
            device.close()
        except BaseException:
            _close_quietly(device)
            raise
        return
    fd, name = tempfile.mkstemp(dir=resolved.parent, prefix=f".{resolved.name}.", suffix=".partial")
    partial = Path(name)
    out = os.fdopen(fd, "wb")
    try:
        yield out
        out.flush()
        os.fsync(out.fileno())  # the whole file, not an empty one, after a power cut
        out.close()
        partial.replace(resolved)
    except BaseException:
        _close_quietly(out)
        partial.unlink(missing_ok=True)
        raise


_MAX_LINKS = 40  # as the kernel follows (ELOOP beyond)


def _resolved(target: Path) -> Path | None:
    """The path ``target``'s symbolic links lead to; ``None`` through a ``/proc`` link.

    Followed one link at a time, since what a ``/proc`` link names is the
    file an open descriptor has (a pipe, a socket, the file stdout was
    redirected to), which no path names for certain: such a destination is
    written in place. The directories on the way are resolved as
    ``os.path.realpath`` does.
    """
    proc = _device("/proc")
    current = Path(os.path.realpath(target.parent)) / target.name
    for _ in range(_MAX_LINKS):
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            return current  # a new file, or one a dangling link names
        if not stat.S_ISLNK(st.st_mode):
            return current
        if st.st_dev == proc:
            return None
        following = current.parent / os.readlink(current)  # an absolute link replaces the parent
        current = Path(os.path.realpath(following.parent)) / following.name
    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(target))


def _device(path: str) -> int | None:
    """The file system ``path`` is on (``st_dev``); ``None`` if there is no such path."""
    try:
        return os.stat(path).st_dev
    except OSError:
        return None


def _close_quietly(f: BinaryIO) -> None:
    """Closes ``f`` after a failure, whose error this one must not hide.

    The data it still buffers may not fit either (ENOSPC).
    """
    with contextlib.suppress(OSError):
        f.close()
