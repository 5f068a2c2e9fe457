"""The append-only copy of every checkpoint outside the database (the WORM export target).

One file per checkpoint, ``<dir>/<log_id>/<tree_size, 20 digits>-<key id>.checkpoint``,
written and fsynced under a temporary name, then linked into place read-only;
an existing file is never overwritten. Point the directory at WORM storage (object lock, an
append-only mount) so that a database administrator cannot rewrite history
without the copy disagreeing.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from aiaudit.common import tenants


def path_for(directory: Path, log_id: str, tree_size: int, key_id: bytes) -> Path:
    """Where a log's checkpoint at ``tree_size`` signed by ``key_id`` is exported."""
    if not tenants.valid(log_id):  # a directory name: never `..` or a path
        raise ValueError(f"log id {log_id!r} is not {tenants.RULE}: not exported")
    return directory / log_id / f"{tree_size:020d}-{key_id.hex()}.checkpoint"


def export(directory: Path, log_id: str, tree_size: int, key_id: bytes, signed_note: str) -> None:
    """Writes the checkpoint once; an identical existing copy is accepted (a retried export).

    The bytes go to a temporary file first, fsynced, then linked to their
    final name: a crash or a full disk mid-write leaves only a stray temporary
    file, never a torn checkpoint under the final name (which every later
    export at that size would take for a conflict). Ed25519 signatures are
    deterministic, so re-signing the same size with the same key gives the
    same bytes (a new key version gets its own file). A different existing
    copy is a conflict.
    """
    target = path_for(directory, log_id, tree_size, key_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = signed_note.encode("utf-8")
    if target.exists():
        _check_same(target, data)
        return
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with contextlib.suppress(FileNotFoundError):  # left by a crash of a process with our pid
        os.unlink(temporary)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o444)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temporary, target)
    except FileExistsError:  # another writer won meanwhile
        _check_same(target, data)
    finally:
        os.unlink(temporary)
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _check_same(target: Path, data: bytes) -> None:
    if target.read_bytes() != data:
        raise FileExistsError(f"{target} holds a different checkpoint")


def beyond(directory: Path, log_id: str, size: int) -> Iterator[tuple[int, str]]:
    """(tree size, signed note) of a log's exported checkpoints larger than ``size``, largest first.

    Only the names are listed; the texts read are those past ``size``, which a
    notary's own exports never are (it signs only sizes it has integrated).
    Entries that are no readable file are left out.
    """
    if not tenants.valid(log_id):  # a directory name: never `..` or a path
        return
    folder = directory / log_id
    if not folder.is_dir():
        return
    found = []
    with os.scandir(folder) as items:
        for item in items:
            stem, _, kind = item.name.partition(".")
            digits = stem.partition("-")[0]
            ours = kind == "checkpoint" and digits.isascii() and digits.isdigit()
            if ours and int(digits) > size and item.is_file():
                found.append((int(digits), item.path))
    for tree_size, path in sorted(found, reverse=True):
        try:
            text = Path(path).read_text("utf-8")
        except (OSError, UnicodeDecodeError):  # no copy to read: verify names it
            continue
        yield tree_size, text


def read_all(directory: Path, log_id: str) -> Iterator[tuple[int, str]]:
    """(tree size, signed note) of every exported checkpoint of a log, smallest first."""
    folder = directory / log_id
    if not folder.is_dir():
        return
    for item in sorted(folder.glob("*.checkpoint")):
        yield int(item.stem.partition("-")[0]), item.read_text("utf-8")
