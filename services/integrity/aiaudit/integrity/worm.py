"""The append-only copy of every checkpoint outside the database (the WORM export target).

One file per checkpoint, ``<dir>/<log_id>/<tree_size, 20 digits>-<key id>.checkpoint``
(epoch n >= 1 of a log, after an accepted loss: ``<dir>/<log_id>/epoch-<n>/...``,
beside its signed ``loss-statement.note``), written and fsynced under a temporary
name, then linked into place read-only; an existing file is never overwritten.
Point the directory at WORM storage (object lock, an append-only mount) so
that a database administrator cannot rewrite history without the copy
disagreeing.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from aiaudit.common import tenants

STATEMENT = "loss-statement.note"
"""The signed loss statement that begins an epoch, in that epoch's folder (:mod:`loss`)."""
_EPOCH_FOLDER = re.compile(r"epoch-([1-9][0-9]*)")


def folder(directory: Path, log_id: str, epoch: int = 0) -> Path:
    """The folder of a log's checkpoints of ``epoch``."""
    if not tenants.valid(log_id):  # a directory name: never `..` or a path
        raise ValueError(f"log id {log_id!r} is not {tenants.RULE}: not exported")
    return directory / log_id if epoch == 0 else directory / log_id / f"epoch-{epoch}"


def path_for(directory: Path, log_id: str, tree_size: int, key_id: bytes, epoch: int = 0) -> Path:
    """Where a log's checkpoint of ``epoch`` at ``tree_size`` signed by ``key_id`` is exported."""
    return folder(directory, log_id, epoch) / f"{tree_size:020d}-{key_id.hex()}.checkpoint"


def statement_path(directory: Path, log_id: str, epoch: int) -> Path:
    """Where the loss statement beginning ``epoch`` (>= 1) of a log lies."""
    if epoch < 1:
        raise ValueError(f"log {log_id}: epoch 0 begins with no loss statement")
    return folder(directory, log_id, epoch) / STATEMENT


def export(
    directory: Path, log_id: str, tree_size: int, key_id: bytes, signed_note: str, epoch: int = 0
) -> None:
    """Writes the checkpoint once; an identical existing copy is accepted (a retried export).

    The bytes go to a temporary file first, fsynced, then linked to their
    final name: a crash or a full disk mid-write leaves only a stray temporary
    file, never a torn checkpoint under the final name (which every later
    export at that size would take for a conflict). Ed25519 signatures are
    deterministic, so re-signing the same size with the same key gives the
    same bytes (a new key version gets its own file). A different existing
    copy is a conflict.
    """
    write_once(path_for(directory, log_id, tree_size, key_id, epoch), signed_note, "checkpoint")


def write_statement(directory: Path, log_id: str, epoch: int, signed_note: str) -> Path:
    """Writes the loss statement beginning ``epoch`` once, as a checkpoint is; returns its path.

    An identical statement already there is accepted; a different one is a
    conflict (``FileExistsError``): an epoch begins with one statement only.
    """
    target = statement_path(directory, log_id, epoch)
    write_once(target, signed_note, "loss statement")
    return target


def write_once(target: Path, text: str, what: str) -> None:
    """Creates ``target`` read-only with ``text``, fsynced; an identical file is accepted.

    A different existing file is a conflict (``FileExistsError``), never overwritten.
    """
    new_folder = not target.parent.is_dir()
    target.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")
    if target.exists():
        _check_same(target, data, what)
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
        _check_same(target, data, what)
    finally:
        os.unlink(temporary)
    for written in (target.parent, target.parent.parent)[: 1 + new_folder]:
        dir_fd = os.open(written, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _check_same(target: Path, data: bytes, what: str) -> None:
    if target.read_bytes() != data:
        raise FileExistsError(f"{target} holds a different {what}")


def beyond(directory: Path, log_id: str, size: int, epoch: int = 0) -> Iterator[tuple[int, str]]:
    """(tree size, signed note) of a log's exported checkpoints larger than ``size``, largest first.

    Only the names are listed; the texts read are those past ``size``, which a
    notary's own exports never are (it signs only sizes it has integrated).
    Entries that are no readable file are left out.
    """
    yield from _read(item for item in _named(directory, log_id, epoch) if item[0] > size)


def at_most(directory: Path, log_id: str, size: int, epoch: int) -> Iterator[tuple[int, str]]:
    """(tree size, signed note) of a log's exported checkpoints of at most ``size``, largest first.

    Read lazily: a caller that stops at the first it can open reads one file.
    """
    yield from _read(item for item in _named(directory, log_id, epoch) if item[0] <= size)


def _named(directory: Path, log_id: str, epoch: int) -> list[tuple[int, str]]:
    """(size its name says, path) of the checkpoint files of a log's epoch, largest first."""
    if not tenants.valid(log_id):  # a directory name: never `..` or a path
        return []
    where = folder(directory, log_id, epoch)
    if not where.is_dir():
        return []
    found = []
    with os.scandir(where) as items:
        for item in items:
            stem, _, kind = item.name.partition(".")
            digits = stem.partition("-")[0]
            ours = kind == "checkpoint" and digits.isascii() and digits.isdigit()
            if ours and item.is_file():
                found.append((int(digits), item.path))
    return sorted(found, reverse=True)


def _read(named: Iterable[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    for tree_size, path in named:
        try:
            text = Path(path).read_text("utf-8")
        except (OSError, UnicodeDecodeError):  # no copy to read: verify names it
            continue
        yield tree_size, text


def read_all(directory: Path, log_id: str, epoch: int = 0) -> Iterator[tuple[int, str]]:
    """(tree size, signed note) of every exported checkpoint of a log's epoch, smallest first.

    Entries that are no readable checkpoint file under a size's name are left out:
    :func:`strays` names them (``verify`` counts each as a problem).
    """
    for _, size, text in _copies(directory, log_id, epoch):
        if size is not None and text is not None:
            yield size, text


def strays(directory: Path, log_id: str, epoch: int = 0) -> list[str]:
    """Names of a log's epoch's ``*.checkpoint`` entries that no notary wrote as they are.

    No size before the name's ``-``, no regular file, or no UTF-8 text: until 2026-12-07
    one such entry (which anyone who may add files to the directory can make) stopped
    ``verify`` and ``accept-loss`` with a traceback.
    """
    return [
        name
        for name, size, text in _copies(directory, log_id, epoch)
        if size is None or text is None
    ]


def _copies(
    directory: Path, log_id: str, epoch: int
) -> Iterator[tuple[str, int | None, str | None]]:
    """(name, size from the name, text) of each ``*.checkpoint`` entry, in name order."""
    where = directory / log_id if epoch == 0 else directory / log_id / f"epoch-{epoch}"
    if not where.is_dir():
        return
    for item in sorted(where.glob("*.checkpoint")):
        digits, dash, _ = item.name.partition("-")
        size = int(digits) if dash and digits.isascii() and digits.isdigit() else None
        try:
            text: str | None = item.read_text("utf-8")
        except (OSError, UnicodeDecodeError):  # a directory, unreadable, not UTF-8
            text = None
        yield item.name, size, text


def epochs(directory: Path, log_id: str) -> list[int]:
    """The epochs >= 1 that have a folder under the log's, in order."""
    if not tenants.valid(log_id) or not (directory / log_id).is_dir():
        return []
    found = (_EPOCH_FOLDER.fullmatch(item.name) for item in (directory / log_id).iterdir())
    return sorted(int(m.group(1)) for m in found if m is not None)


def statements(directory: Path, log_id: str) -> Iterator[tuple[int, Path, bytes]]:
    """(epoch, path, bytes) of each loss statement file of a log, in epoch order.

    The epoch folders are probed from ``epoch-1`` on until one is missing, not
    listed: the log's folder holds a file per checkpoint, and the notary reads
    the statements of every log it takes the lead of.
    """
    if not tenants.valid(log_id):
        return
    epoch = 1
    while (path := statement_path(directory, log_id, epoch)).parent.is_dir():
        if path.is_file():
            yield epoch, path, path.read_bytes()
        epoch += 1
