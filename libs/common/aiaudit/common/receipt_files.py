"""How a gateway keeps receipt notes on disk: several notes a file, each closed by a line ``.``.

The SDK (``aiaudit.sdk.receipts``) appends the signed receipt notes of one log
and one day to one file, ``<log id>.<YYYY-MM-DD>.notes``; ``aiaudit verify
--receipt FILE`` reads it back note by note. A record is a note exactly as the
service signed it (ending with a newline) followed by a line holding a single
``.``, which no receipt note holds (its lines are the format, an origin
without spaces, ``<sequence> <hash> <time>`` lines, a blank line and ``— ``
signature lines); a text that does (a faulty service or proxy) is refused by
``record``, never appended. So a whole file ends with a ``.`` line; after a
write cut short (the process killed in it, the disk full, the machine stopped)
what follows the last ``.`` line is a record never acknowledged, which the next
writer of the file cuts off before appending (``whole_end``) and a reader
reports and skips. A file of the earlier layout, one note and no ``.`` line,
reads as one note.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

SUFFIX = ".notes"
"""The name's ending of a file of appended notes (the earlier layout's files end ``.note``)."""
END = b".\n"
"""The line after each note."""
_WHOLE = b"\n" + END
_BLOCK = 1 << 16


@dataclass(frozen=True)
class Record:
    """A note read from a file: where it starts, its bytes, and whether its ``.`` line follows.

    Only the last record of a file can lack it (``whole`` false): a write cut
    short, or the one note of a file of the earlier layout.
    """

    offset: int
    data: bytes
    whole: bool


def read_records(stream: BinaryIO) -> Iterator[Record]:
    """The records of a file, in order, one at a time (a day's file may be large)."""
    offset = start = 0
    lines: list[bytes] = []
    for line in stream:
        if line == END and lines:
            yield Record(start, b"".join(lines), True)
            lines = []
            start = offset + len(line)
        else:
            lines.append(line)
        offset += len(line)
    if lines:
        yield Record(start, b"".join(lines), False)


def record(note: bytes) -> bytes:
    """What is appended for one note: the note (a newline added if it lacks one), then ``.``.

    A text that is empty or holds a line ``.`` is no receipt note and is refused
    (``ValueError``): appended, its ``.`` line would end a record early and
    what follows it, up to its own ``.`` line, would run into the start of the
    next note of the file, which would no longer verify.
    """
    if not note or b"." in note.split(b"\n"):
        raise ValueError("an empty text or one holding a line '.' is no receipt note")
    return note + (END if note.endswith(b"\n") else b"\n" + END)


def whole_end(fd: int) -> int:
    """Where the file's last whole record ends; what follows is cut off (the file truncated).

    Called with the file locked, before appending: a writer killed in its write
    left part of a record, which would otherwise run into the next one. Those
    bytes were never acknowledged (their writer had not synced them). Returns
    the new size (the number of bytes cut off is the old size less it).
    """
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, len(_WHOLE), max(0, size - len(_WHOLE))) == _WHOLE:
        return size
    end = 0
    high = size
    while high > 0:  # backwards, a block at a time, each overlapping the next by 2 bytes
        low = max(0, high - _BLOCK)
        chunk = os.pread(fd, min(size, high + len(_WHOLE) - 1) - low, low)
        found = chunk.rfind(_WHOLE)
        if found >= 0:
            end = low + found + len(_WHOLE)
            break
        high = low
    os.ftruncate(fd, end)
    return end
