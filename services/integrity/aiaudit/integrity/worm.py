"""The append-only copy of every checkpoint outside the database (the WORM export target).

One file per checkpoint, ``<dir>/<log_id>/<shard>/<tree_size, 20 digits>-<key id>.checkpoint``
(epoch n >= 1 of a log, after an accepted loss: ``<dir>/<log_id>/epoch-<n>/<shard>/...``,
its signed ``loss-statement.note`` in ``epoch-<n>/``), written and fsynced under a temporary
name, then linked into place read-only; an existing file is never overwritten.
The shard is the tree size divided by :data:`SHARD_SIZES`, 12 digits: one flat folder took
86,400 files a day per log, which ext4 without ``large_dir`` refuses once its index is full
(some 10-20 M names, months of a busy log), and which every takeover listed whole.
Versions before 2026-12-07 wrote the file in the epoch's folder itself; those
stay there (WORM) and every reader reads both places.
Point the directory at WORM storage (object lock, an append-only mount) so
that a database administrator cannot rewrite history without the copy
disagreeing.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple, TypeGuard

from aiaudit.common import tenants

STATEMENT = "loss-statement.note"
"""The signed loss statement that begins an epoch, in that epoch's folder (:mod:`loss`)."""
SHARD_SIZES = 65_536
"""Tree sizes per shard folder: folder k holds the checkpoints of sizes k * 65,536 up to
(k + 1) * 65,536 - 1, so a log's folder grows by one shard per 65,536 leaves."""
_SHARD_DIGITS = 12
_SHARD_FOLDER = re.compile(r"[0-9]{12}")
_EPOCH_FOLDER = re.compile(r"epoch-([1-9][0-9]*)")
_TEMPORARY = re.compile(r"\..+\.[0-9]+\.[0-9]+\.tmp")
"""A :func:`write_once` temporary file, left by a crash mid-write: harmless, not a stray."""
NOT_OURS = "is no checkpoint the notary wrote (no size in its name, not a file, or not UTF-8 text)"
STRAY_FOLDER = (
    f"is no shard folder the notary made (its name is the size // {SHARD_SIZES:,} in 12 digits)"
)


def folder(directory: Path, log_id: str, epoch: int = 0) -> Path:
    """The folder of a log's checkpoints of ``epoch`` (its shards, and the earlier flat files)."""
    if not tenants.valid(log_id):  # a directory name: never `..` or a path
        raise ValueError(f"log id {log_id!r} is not {tenants.RULE}: not exported")
    return directory / log_id if epoch == 0 else directory / log_id / f"epoch-{epoch}"


def shard(tree_size: int) -> str:
    """The name of the shard folder that holds the checkpoints of ``tree_size``."""
    number = tree_size // SHARD_SIZES
    if number >= 10**_SHARD_DIGITS:  # 6.5e16 leaves: no log gets there
        raise ValueError(f"tree size {tree_size} is past the last shard folder")
    return f"{number:0{_SHARD_DIGITS}d}"


def path_for(directory: Path, log_id: str, tree_size: int, key_id: bytes, epoch: int = 0) -> Path:
    """Where a log's checkpoint of ``epoch`` at ``tree_size`` signed by ``key_id`` is exported."""
    name = f"{tree_size:020d}-{key_id.hex()}.checkpoint"
    return folder(directory, log_id, epoch) / shard(tree_size) / name


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
    copy is a conflict, also one an earlier version wrote unsharded.
    A shard name taken by anything but a folder (a file, a link: anyone who
    may add files can make the next one first) gets its checkpoints flat, in
    the log's folder: the file refused every export of its 65,536 sizes, the
    link took them out of the directory (review, 2026-12-07); verify names it.
    """
    target = path_for(directory, log_id, tree_size, key_id, epoch)
    unsharded = target.parent.parent / target.name
    if unsharded.is_file():  # exported before 2026-12-07: it stays the copy
        _check_same(unsharded, signed_note.encode("utf-8"), "checkpoint")
        return
    if _taken(target.parent):
        target = unsharded
    write_once(target, signed_note, "checkpoint", directory)


def write_statement(directory: Path, log_id: str, epoch: int, signed_note: str) -> Path:
    """Writes the loss statement beginning ``epoch`` once, as a checkpoint is; returns its path.

    An identical statement already there is accepted; a different one is a
    conflict (``FileExistsError``): an epoch begins with one statement only.
    """
    target = statement_path(directory, log_id, epoch)
    write_once(target, signed_note, "loss statement", directory)
    return target


def write_once(target: Path, text: str, what: str, root: Path) -> None:
    """Creates ``target`` read-only with ``text``, fsynced; an identical file is accepted.

    A different existing file is a conflict (``FileExistsError``), never overwritten.
    Its folder is fsynced, also for an identical file (a retry whose first try may have
    stopped after the link), and once a process each folder below ``root`` in its parent.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")
    if target.exists():
        _check_same(target, data, what)
        _sync_folders(target.parent, root)
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
    _sync_folders(target.parent, root)


_NAMED: set[Path] = set()
"""Folders under a root whose names this process has fsynced in their parents."""


def _sync_folders(where: Path, root: Path) -> None:
    """Syncs ``where`` and, once a process, the parent of each folder below ``root`` on the way.

    Not only the folders this call made: one made by an export that failed
    after its ``mkdir`` (a full disk, a crash) was found there by the next,
    which left its name unsynced (review, 2026-12-07). A folder already named
    in this process costs nothing more.
    """
    _fsync(where)
    while where not in _NAMED and root in where.parents:
        _fsync(where.parent)
        _NAMED.add(where)
        where = where.parent


def _fsync(where: Path) -> None:
    dir_fd = os.open(where, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _taken(shard_folder: Path) -> bool:
    """Whether a shard's name is taken by anything but a folder (a file, a link, a socket)."""
    try:
        return not stat.S_ISDIR(os.lstat(shard_folder).st_mode)
    except FileNotFoundError:
        return False


def _check_same(target: Path, data: bytes, what: str) -> None:
    if target.read_bytes() != data:
        raise FileExistsError(f"{target} holds a different {what}")


def beyond(directory: Path, log_id: str, size: int, epoch: int = 0) -> Iterator[tuple[int, str]]:
    """(tree size, signed note) of a log's exported checkpoints larger than ``size``, largest first.

    Only the names are listed: the epoch's folder and the shards from ``size``'s
    up, so the notary's check at a takeover and every round lists one shard, however
    old the log. The texts read are those past ``size``, which a notary's own
    exports never are (it signs only sizes it has integrated). Entries that are
    no readable file are left out.
    """
    yield from _read(_named(directory, log_id, epoch, size + 1, None))


def at_most(directory: Path, log_id: str, size: int, epoch: int) -> Iterator[tuple[int, str]]:
    """(tree size, signed note) of a log's exported checkpoints of at most ``size``, largest first.

    Read lazily, a shard at a time: a caller that stops at the first it can
    open lists ``size``'s shard (or the next below with one) and reads one file.
    """
    yield from _read(_named(directory, log_id, epoch, 0, size))


def _named(
    directory: Path, log_id: str, epoch: int, low: int, high: int | None
) -> Iterator[tuple[int, str]]:
    """(size its name says, path) of the epoch's checkpoints of ``low``..``high``, largest first.

    No ``high``: no upper bound. A shard is listed only once the larger sizes are given.
    """
    if not tenants.valid(log_id):  # a directory name: never `..` or a path
        return
    where = folder(directory, log_id, epoch)
    if not where.is_dir():
        return
    flat, shards, _ = _top(where, epoch)

    def within(size: int | None) -> TypeGuard[int]:
        return size is not None and low <= size and (high is None or size <= high)

    unsharded: dict[int, list[tuple[int, str]]] = {}
    for item in flat:
        if within(size := _size(item.name)) and item.is_file():
            unsharded.setdefault(size // SHARD_SIZES, []).append((size, item.path))
    first, last = low // SHARD_SIZES, None if high is None else high // SHARD_SIZES
    numbers = {n for n in shards if first <= n and (last is None or n <= last)}
    for number in sorted(numbers | unsharded.keys(), reverse=True):
        found = unsharded.get(number, [])
        if number in shards:
            with os.scandir(shards[number]) as items:
                for item in items:
                    size = _size(item.name)
                    if within(size) and size // SHARD_SIZES == number and item.is_file():
                        found.append((size, item.path))
        yield from sorted(found, reverse=True)


def _top(where: Path, epoch: int) -> tuple[list[os.DirEntry[str]], dict[int, str], list[str]]:
    """An epoch's folder: its entries named ``*.checkpoint``, its shard folders by number, others.

    The ``*.checkpoint`` entries are earlier versions' flat copies; the others
    are the names of folders that are no shard's (nor, in epoch 0, an epoch's)
    and of shard names that are no folder: strays.
    """
    flat: list[os.DirEntry[str]] = []
    shards: dict[int, str] = {}
    others: list[str] = []
    with os.scandir(where) as items:
        for item in items:
            sharded = _SHARD_FOLDER.fullmatch(item.name) is not None
            if item.name.endswith(".checkpoint"):
                flat.append(item)
            elif sharded and item.is_dir(follow_symlinks=False):  # a link: no one reads it
                shards[int(item.name)] = item.path
            elif (sharded or item.is_dir()) and (
                epoch != 0 or _EPOCH_FOLDER.fullmatch(item.name) is None
            ):
                others.append(item.name)
    return flat, shards, others


def _size(name: str) -> int | None:
    """The tree size a ``<size>-<key id>.checkpoint`` name says; None for any other name."""
    digits, dash, _ = name.partition("-")
    ours = name.endswith(".checkpoint") and dash and digits.isascii() and digits.isdigit()
    return int(digits) if ours else None


def _read(named: Iterable[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    for tree_size, path in named:
        try:
            text = Path(path).read_text("utf-8")
        except (OSError, UnicodeDecodeError):  # no copy to read: verify names it
            continue
        yield tree_size, text


def read_all(directory: Path, log_id: str, epoch: int = 0) -> Iterator[tuple[int, str]]:
    """(tree size, signed note) of every exported checkpoint of a log's epoch, smallest first.

    Both layouts, merged by size: each shard in turn, with the flat files of
    earlier versions in its range. Entries that are no readable checkpoint file
    under a size's name (in its own shard) are left out: :func:`strays` names
    them (``verify`` counts each as a problem).
    """
    for copy in _copies(directory, log_id, epoch):
        if isinstance(copy, _Copy):
            yield copy.size, copy.text


def strays(directory: Path, log_id: str, epoch: int = 0) -> list[tuple[str, str]]:
    """(name under the epoch's folder, why) of each entry there that no notary wrote as it is.

    A ``*.checkpoint`` entry with no size before the name's ``-``, no regular
    file, or no UTF-8 text: until 2026-12-07 one such entry (which anyone who
    may add files to the directory can make) stopped ``verify`` and
    ``accept-loss`` with a traceback. In a shard, also any other entry (but a
    temporary file a crash left) and a checkpoint of a size outside the
    shard's; beside the shards, a folder that is no shard (nor an epoch's).
    """
    return [
        (copy.name, copy.why)
        for copy in _copies(directory, log_id, epoch)
        if isinstance(copy, _Stray)
    ]


class _Copy(NamedTuple):
    name: str
    size: int
    text: str


class _Stray(NamedTuple):
    name: str
    why: str


def _copies(directory: Path, log_id: str, epoch: int) -> Iterator[_Copy | _Stray]:
    """Each entry of a log's epoch's folder and of its shards: a checkpoint or a stray.

    The checkpoints come in size order, a shard at a time (each listed once);
    the folder's own strays first, a shard's as it is read.
    """
    where = directory / log_id if epoch == 0 else directory / log_id / f"epoch-{epoch}"
    if not where.is_dir():
        return
    flat, shards, others = _top(where, epoch)
    yield from (_Stray(name, STRAY_FOLDER) for name in sorted(others))
    unsharded: dict[int, list[tuple[int, str, str]]] = {}
    for item in sorted(flat, key=lambda item: item.name):
        if (size := _size(item.name)) is None:
            yield _Stray(item.name, NOT_OURS)
        else:
            unsharded.setdefault(size // SHARD_SIZES, []).append((size, item.name, item.path))
    for number in sorted(shards.keys() | unsharded.keys()):
        found = unsharded.get(number, [])
        if number in shards:
            with os.scandir(shards[number]) as items:
                listed = sorted((item.name, item.path) for item in items)
            for name, path in listed:
                size, named = _size(name), f"{number:0{_SHARD_DIGITS}d}/{name}"
                if size is not None and size // SHARD_SIZES == number:
                    found.append((size, named, path))
                elif size is not None:
                    yield _Stray(named, _misplaced(number))
                elif _TEMPORARY.fullmatch(name) is None:
                    yield _Stray(named, NOT_OURS)
        for size, named, path in sorted(found):
            try:
                yield _Copy(named, size, Path(path).read_text("utf-8"))
            except (OSError, UnicodeDecodeError):  # a directory, unreadable, not UTF-8
                yield _Stray(named, NOT_OURS)


def _misplaced(number: int) -> str:
    """Why a checkpoint in shard ``number`` whose size is another shard's is a stray."""
    low = number * SHARD_SIZES
    return (
        f"is no checkpoint the notary wrote there (shard of sizes {low}..{low + SHARD_SIZES - 1})"
    )


def logs(directory: Path) -> list[str]:
    """The logs with a folder in the directory (sorted): every log that may have exported one.

    One listing of the directory's top, one entry a log: their folders are not
    listed here. None yet (no directory): no log.
    """
    if not directory.is_dir():
        return []
    with os.scandir(directory) as items:
        return sorted(item.name for item in items if tenants.valid(item.name) and item.is_dir())


def named_past(directory: Path, log_id: str, size: int) -> bool:
    """Whether the log's folder names a checkpoint past ``size`` or holds an epoch's folder.

    Names only, no file read: a log for which this is False cannot be behind
    its exports nor off its epoch, so the notary's takeover reads no more of it.
    """
    if epochs(directory, log_id):
        return True
    return next(_named(directory, log_id, 0, size + 1, None), None) is not None


def epochs(directory: Path, log_id: str) -> list[int]:
    """The epochs >= 1 that have a folder under the log's, in order."""
    if not tenants.valid(log_id) or not (directory / log_id).is_dir():
        return []
    found = (_EPOCH_FOLDER.fullmatch(item.name) for item in (directory / log_id).iterdir())
    return sorted(int(m.group(1)) for m in found if m is not None)


def statements(directory: Path, log_id: str) -> Iterator[tuple[int, Path, bytes]]:
    """(epoch, path, bytes) of each loss statement file of a log, in epoch order.

    The epoch folders are probed from ``epoch-1`` on until one is missing, not
    listed: the log's folder may hold a flat file per checkpoint of earlier
    versions, and the notary reads the statements of every log it takes the lead of.
    """
    if not tenants.valid(log_id):
        return
    epoch = 1
    while (path := statement_path(directory, log_id, epoch)).parent.is_dir():
        if path.is_file():
            yield epoch, path, path.read_bytes()
        epoch += 1
