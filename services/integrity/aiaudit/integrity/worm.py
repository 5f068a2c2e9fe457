"""The append-only copy of every checkpoint outside the database (the WORM export target).

One file per checkpoint, ``<dir>/<log_id>/<tree_size, 20 digits>-<key id>.checkpoint``,
created exclusively, written, fsynced and made read-only; an existing file is
never overwritten. Point the directory at WORM storage (object lock, an
append-only mount) so that a database administrator cannot rewrite history
without the copy disagreeing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path


def path_for(directory: Path, log_id: str, tree_size: int, key_id: bytes) -> Path:
    """Where a log's checkpoint at ``tree_size`` signed by ``key_id`` is exported."""
    return directory / log_id / f"{tree_size:020d}-{key_id.hex()}.checkpoint"


def export(directory: Path, log_id: str, tree_size: int, key_id: bytes, signed_note: str) -> None:
    """Writes the checkpoint once; an identical existing copy is accepted (a retried export).

    The notary exports before it stores, so a crash in between leaves a copy
    that the retry finds: Ed25519 signatures are deterministic, so re-signing
    the same size with the same key gives the same bytes (a new key version
    gets its own file). A different existing copy is a conflict.
    """
    target = path_for(directory, log_id, tree_size, key_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = signed_note.encode("utf-8")
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    except FileExistsError:
        if target.read_bytes() != data:
            raise FileExistsError(f"{target} holds a different checkpoint") from None
        return
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_all(directory: Path, log_id: str) -> Iterator[tuple[int, str]]:
    """(tree size, signed note) of every exported checkpoint of a log, smallest first."""
    folder = directory / log_id
    if not folder.is_dir():
        return
    for item in sorted(folder.glob("*.checkpoint")):
        yield int(item.stem.partition("-")[0]), item.read_text("utf-8")
