"""The checkpoint directory's shard folders: ``<log>/<tree_size // 65536, 12 digits>/<name>``.

One flat folder per log took 86,400 files a day: ext4 without ``large_dir``
refuses new names once a folder's index is full (some 10-20 M, months of a
busy log), so the notary could no longer export, nor sign; and each leader
takeover listed the whole folder (about 30 s a year of checkpoints). Since
2026-12-07 a checkpoint goes to its shard; the flat files of earlier
versions stay where they are (WORM), and every reader reads both layouts.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiaudit.integrity import worm
from tests.helpers import this_thread_only
from tests.integrity.conftest import append
from tests.integrity.test_loss_acceptance import Site, postgres, site  # noqa: F401 (fixtures)

KEY = b"\x01\x02\x03\x04"


def name(size: int) -> str:
    return f"{size:020d}-01020304.checkpoint"


def unsharded(copy: Path) -> Path:
    """A checkpoint the notary exported moved to where versions before 2026-12-07 wrote it."""
    flat = copy.parent.parent / copy.name
    copy.rename(flat)
    if not any(copy.parent.iterdir()):
        copy.parent.rmdir()
    return flat


@pytest.fixture
def listed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Path]]:
    """The folders :mod:`worm` lists (``os.scandir``), in order; real listings of a real folder."""
    paths: list[Path] = []
    scandir = os.scandir

    def counted(path: str) -> Iterator[os.DirEntry[str]]:
        paths.append(Path(path))
        return scandir(path)

    monkeypatch.setattr(worm.os, "scandir", this_thread_only(counted, scandir))
    yield paths


def test_exports_land_in_the_shard_of_their_size_and_each_new_folder_is_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shard holds 65,536 sizes; an epoch's shards lie in its folder, beside its statement.
    A new shard is fsynced with its file and in the log's folder (and a new log's folder in
    the directory), so the file's name survives a power cut."""
    synced: list[Path] = []
    fsync = os.fsync

    def recorded(fd: int) -> None:
        synced.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)

    monkeypatch.setattr(worm.os, "fsync", this_thread_only(recorded, fsync))
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    log = directory / "acme"
    for size, made in [
        (1, [log / "000000000000", log, directory]),  # a new log: the shard, the log, the dir
        (65_535, [log / "000000000000"]),  # the same shard: the new name only
        (65_536, [log / "000000000001", log]),  # a new shard
        (200_000, [log / "000000000003", log]),
    ]:
        synced.clear()
        worm.export(directory, "acme", size, KEY, f"note {size}\n")
        temporary = f".{name(size)}.{os.getpid()}.{threading.get_ident()}.tmp"
        assert synced[0] == log / made[0].name / temporary  # the file, before its link
        assert synced[1:] == made, size
    worm.export(directory, "acme", 3, KEY, "epoch 1 note\n", epoch=1)
    worm.write_statement(directory, "acme", 1, "statement\n")
    assert sorted(str(p.relative_to(directory)) for p in directory.rglob("*.*")) == [
        f"acme/000000000000/{name(1)}",
        f"acme/000000000000/{name(65_535)}",
        f"acme/000000000001/{name(65_536)}",
        f"acme/000000000003/{name(200_000)}",
        f"acme/epoch-1/000000000000/{name(3)}",
        "acme/epoch-1/loss-statement.note",
    ]
    assert worm.path_for(directory, "acme", 65_536, KEY) == log / "000000000001" / name(65_536)
    assert list(worm.read_all(directory, "acme")) == [
        (size, f"note {size}\n") for size in (1, 65_535, 65_536, 200_000)
    ]
    assert list(worm.read_all(directory, "acme", 1)) == [(3, "epoch 1 note\n")]


def test_a_copy_an_earlier_version_wrote_unsharded_is_read_and_its_conflicts_kept(
    tmp_path: Path,
) -> None:
    """Flat files stay where they are: read with the shards' in size order, a retried export
    of one is accepted without a second copy, and a different text at its name is still a
    conflict."""
    directory = tmp_path / "checkpoints"
    worm.export(directory, "acme", 7, KEY, "note 7\n")
    flat = unsharded(worm.path_for(directory, "acme", 7, KEY))
    worm.export(directory, "acme", 70_000, KEY, "note 70000\n")
    unsharded(worm.path_for(directory, "acme", 70_000, KEY))
    worm.export(directory, "acme", 5, KEY, "note 5\n")
    worm.export(directory, "acme", 65_540, KEY, "note 65540\n")
    worm.export(directory, "acme", 7, KEY, "note 7\n")  # a retry: the flat copy is the copy
    assert not worm.path_for(directory, "acme", 7, KEY).exists()
    with pytest.raises(FileExistsError, match=f"{flat} holds a different checkpoint"):
        worm.export(directory, "acme", 7, KEY, "other\n")
    sizes = [5, 7, 65_540, 70_000]
    assert [size for size, _ in worm.read_all(directory, "acme")] == sizes
    assert [size for size, _ in worm.beyond(directory, "acme", 6)] == sizes[:0:-1]
    assert [size for size, _ in worm.at_most(directory, "acme", 69_999, 0)] == [65_540, 7, 5]
    assert worm.strays(directory, "acme") == []


def test_beyond_and_at_most_list_only_the_shards_of_the_sizes_asked_for(
    tmp_path: Path, listed: list[Path]
) -> None:
    """A log of 300 shards: the notary's check at a takeover and every round (``beyond`` its
    position) lists the log's folder and the position's shard, not every shard: one listing
    of the whole folder grew with the log's age (30 s a year). ``at_most`` lists shards
    from the position down only while its caller reads on."""
    directory = tmp_path / "checkpoints"
    for shard in range(300):
        copy = worm.path_for(directory, "acme", shard * 65_536 + 7, KEY)
        copy.parent.mkdir(parents=True)
        copy.write_text(f"note {shard}\n")
    flat = directory / "acme" / name(299 * 65_536 + 100)  # an earlier version's, past them all
    flat.write_text("flat\n")
    log = directory / "acme"
    assert len([p for p in log.iterdir() if p.is_dir()]) == 300
    position = 299 * 65_536 + 50
    listed.clear()
    assert list(worm.beyond(directory, "acme", position)) == [(299 * 65_536 + 100, "flat\n")]
    assert listed == [log, log / "000000000299"]
    listed.clear()
    assert list(worm.beyond(directory, "acme", 298 * 65_536 + 7)) == [
        (299 * 65_536 + 100, "flat\n"),
        (299 * 65_536 + 7, "note 299\n"),
    ]
    assert listed == [log, log / "000000000299", log / "000000000298"]
    listed.clear()
    latest = worm.at_most(directory, "acme", position, 0)
    assert next(latest) == (299 * 65_536 + 7, "note 299\n")
    assert listed == [log, log / "000000000299"]
    assert next(latest) == (298 * 65_536 + 7, "note 298\n")
    assert listed[-1] == log / "000000000298"
    listed.clear()
    assert len(list(worm.read_all(directory, "acme"))) == 301  # verify reads every shard
    assert len(listed) == 301


def test_a_directory_of_both_layouts_verifies_clean(site: Site) -> None:  # noqa: F811
    """The checkpoints an earlier version exported flat, the later ones in a shard: verify
    reads both; one size in both places with the same text (a retried export across the
    upgrade) is no problem."""
    append(site.store, site.tenant, 10)
    assert site.sign()[-1] is True
    key_id = site.keys.verifier_keys()[0].key_id
    first = worm.path_for(site.checkpoints, site.tenant, 10, key_id)
    assert first.parent == site.checkpoints / site.tenant / "000000000000"
    unsharded(first)  # as the version before this one wrote it
    append(site.store, site.tenant, 16)
    assert site.sign()[-1] is True
    latest = worm.path_for(site.checkpoints, site.tenant, 26, key_id)
    assert latest.is_file()
    assert site.exported() == [10, 26]
    report = site.verify()
    assert (report.problems, report.checkpoints) == ([], 4)
    (latest.parent.parent / latest.name).write_bytes(latest.read_bytes())
    assert site.exported() == [10, 26, 26]
    report = site.verify()
    assert (report.problems, report.checkpoints) == ([], 5)


def test_the_notary_holds_a_log_behind_a_checkpoint_an_earlier_version_exported_flat(
    site: Site,  # noqa: F811 (the fixture)
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Checkpoints 10 and 26 exported flat before the upgrade, then the store restored from a
    backup at 10, which takes new events: the upgraded notary still sees 26 past its position
    and holds the log."""
    append(site.store, site.tenant, 10)
    assert site.sign()[-1] is True
    append(site.store, site.tenant, 16)
    assert site.sign()[-1] is True
    key_id = site.keys.verifier_keys()[0].key_id
    for size in (10, 26):
        unsharded(worm.path_for(site.checkpoints, site.tenant, size, key_id))
    assert sorted(p.name for p in (site.checkpoints / site.tenant).iterdir()) == [
        f"{size:020d}-{key_id.hex()}.checkpoint" for size in (10, 26)
    ]  # as the version before this one left it
    site.take_back(10)
    append(site.store, site.tenant, 3)  # new events at the lost sequences 10..12
    with caplog.at_level(logging.ERROR, "aiaudit.integrity.notary"):
        assert site.sign()[-1] is False
    assert any(
        "its 10 integrated leaves are behind its checkpoint of size 26" in r.getMessage()
        for r in caplog.records
    )
    assert site.exported() == [10, 26]  # nothing signed at 13: no fork of the exported history


def test_stray_shard_folders_and_misplaced_or_foreign_shard_entries_are_named(
    site: Site,  # noqa: F811 (the fixture)
) -> None:
    """A folder beside the shards that is no shard, a shard name that is no folder, a
    checkpoint in another size's shard and a file of a shard that is no checkpoint: anyone
    who may add files to the directory can make them. verify names each (the misplaced copy
    is read by no notary); a temporary file a crash left in a shard is no problem."""
    append(site.store, site.tenant, 10)
    assert site.sign()[-1] is True
    key_id = site.keys.verifier_keys()[0].key_id
    genuine = worm.path_for(site.checkpoints, site.tenant, 10, key_id)
    log = site.checkpoints / site.tenant
    (log / "12345").mkdir()
    (log / "00000000000x").mkdir()
    (log / "000000000002").write_text("")
    (log / "000000000001").mkdir()
    (log / "000000000001" / genuine.name).write_bytes(genuine.read_bytes())
    (genuine.parent / "notes.txt").write_text("")
    (genuine.parent / f".{genuine.name}.1.2.tmp").write_text("torn")
    not_ours = (
        "is no checkpoint the notary wrote (no size in its name, not a file, or not UTF-8 text)"
    )
    no_shard = "is no shard folder the notary made (its name is the size // 65,536 in 12 digits)"
    assert sorted(str(p) for p in site.verify().problems) == sorted(
        f"log {site.tenant}: exported file {entry!r} {why}"
        for entry, why in [
            ("12345", no_shard),
            ("00000000000x", no_shard),
            ("000000000002", no_shard),
            (
                f"000000000001/{genuine.name}",
                "is no checkpoint the notary wrote there (shard of sizes 65536..131071)",
            ),
            ("000000000000/notes.txt", not_ours),
        ]
    )
    assert site.exported() == [10]


@pytest.mark.parametrize("taken_by", ["file", "link", "dangling link"])
def test_a_shard_name_someone_else_took_first_gets_its_checkpoints_flat(
    tmp_path: Path, taken_by: str
) -> None:
    """Anyone who may add files to the directory can make a log's next shard before the
    notary does. A file there refused every export of its 65,536 sizes (the log signed
    nothing until it grew past them); a link there took them out of the directory, to a
    folder whose files its maker may delete (a store restored later is then signed over,
    and verify passed). Its checkpoints go flat in the log's folder, as before the shards;
    the link is read by no one, and verify names the name."""
    directory = tmp_path / "checkpoints"
    worm.export(directory, "acme", 7, KEY, "note 7\n")
    log, elsewhere = directory / "acme", tmp_path / "elsewhere"
    elsewhere.mkdir()
    if taken_by == "file":
        (log / "000000000001").write_text("")
    else:
        (log / "000000000001").symlink_to(elsewhere if taken_by == "link" else tmp_path / "no")
    (elsewhere / name(65_600)).write_text("not the notary's\n")
    worm.export(directory, "acme", 65_536, KEY, "note 65536\n")
    worm.export(directory, "acme", 65_536, KEY, "note 65536\n")  # a retry: accepted
    worm.export(directory, "acme", 131_072, KEY, "note 131072\n")
    assert (log / name(65_536)).read_text() == "note 65536\n"
    assert list(elsewhere.iterdir()) == [elsewhere / name(65_600)]
    assert list(worm.read_all(directory, "acme")) == [
        (7, "note 7\n"), (65_536, "note 65536\n"), (131_072, "note 131072\n")
    ]  # fmt: skip
    assert [size for size, _ in worm.beyond(directory, "acme", 7)] == [131_072, 65_536]
    assert [size for size, _ in worm.at_most(directory, "acme", 70_000, 0)] == [65_536, 7]
    assert worm.strays(directory, "acme") == [("000000000001", worm.STRAY_FOLDER)]


def test_a_shard_made_by_an_export_that_failed_is_fsynced_in_its_folder_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk after the new shard was made (or a crash before its folder's fsync) left
    the shard's name unsynced; the next export found the shard there and fsynced only it,
    so a power cut could take the shard, with checkpoints the store holds, off the disk. A
    retried export of a file already there fsynces its folders too (its first try may have
    stopped after the link)."""
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    worm.export(directory, "acme", 1, KEY, "note 1\n")
    log = directory / "acme"

    def disk_full(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(worm.os, "write", this_thread_only(disk_full, os.write))
        with pytest.raises(OSError, match="No space"):
            worm.export(directory, "acme", 65_536, KEY, "note 65536\n")
    assert (log / "000000000001").is_dir()
    synced: list[Path] = []
    fsync = os.fsync

    def recorded(fd: int) -> None:
        synced.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)

    def failed_on_folders(fd: int) -> None:
        if Path(os.readlink(f"/proc/self/fd/{fd}")).is_dir():
            raise OSError(5, "Input/output error")
        fsync(fd)

    monkeypatch.setattr(worm.os, "fsync", this_thread_only(recorded, fsync))
    worm.export(directory, "acme", 65_537, KEY, "note 65537\n")
    assert synced[1:] == [log / "000000000001", log]
    with monkeypatch.context() as patched:
        patched.setattr(worm.os, "fsync", this_thread_only(failed_on_folders, fsync))
        with pytest.raises(OSError, match="Input/output"):
            worm.export(directory, "acme", 131_072, KEY, "note 131072\n")
    synced.clear()
    worm.export(directory, "acme", 131_072, KEY, "note 131072\n")  # the notary's retry
    assert synced == [log / "000000000002", log]
