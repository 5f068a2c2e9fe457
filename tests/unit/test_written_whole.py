"""``written_whole`` writes through a symbolic link, never over it (review 2026-12-05).

The temporary file was renamed over the link itself: the file the link named (a
copy on WORM storage) was never written, and a link to ``/proc/self/fd/1`` became a
private regular file while stdout got nothing (``aiaudit export --output LINK``
exited 0).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiaudit.common.files import written_whole


@pytest.fixture(autouse=True)
def _umask() -> Iterator[None]:
    """A permissive umask, so that ``0600`` is the code's doing."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _everything(*dirs: Path) -> list[str]:
    return sorted(p.name for d in dirs for p in d.iterdir())


def test_a_link_to_a_file_is_written_at_the_file_and_kept(tmp_path: Path) -> None:
    links, store = tmp_path / "links", tmp_path / "worm"
    links.mkdir()
    store.mkdir()
    (store / "bundle.jsonl").write_text("earlier\n")
    (links / "hop").symlink_to("../worm/bundle.jsonl")  # relative to the link's directory
    link = links / "bundle.jsonl"
    link.symlink_to(links / "hop")  # a chain of two
    with written_whole(link) as out:
        out.write(b"whole\n")
    assert link.is_symlink() and os.readlink(link) == str(links / "hop")
    assert (store / "bundle.jsonl").read_text() == "whole\n"
    assert (store / "bundle.jsonl").stat().st_mode & 0o777 == 0o600
    assert _everything(links, store) == ["bundle.jsonl", "bundle.jsonl", "hop"]


def test_a_failure_leaves_the_file_a_link_names_as_it_was(tmp_path: Path) -> None:
    (tmp_path / "real.jsonl").write_text("earlier\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to("real.jsonl")
    with pytest.raises(KeyboardInterrupt), written_whole(link) as out:
        out.write(b"half")
        raise KeyboardInterrupt
    assert link.is_symlink() and (tmp_path / "real.jsonl").read_text() == "earlier\n"
    assert _everything(tmp_path) == ["link.jsonl", "real.jsonl"]  # no .partial


def test_a_dangling_link_creates_the_file_it_names(tmp_path: Path) -> None:
    (tmp_path / "worm").mkdir()
    link = tmp_path / "bundle.jsonl"
    link.symlink_to(tmp_path / "worm" / "2026-12.jsonl")
    with written_whole(link) as out:
        out.write(b"whole\n")
    assert link.is_symlink()
    created = tmp_path / "worm" / "2026-12.jsonl"
    assert created.read_bytes() == b"whole\n"
    assert created.stat().st_mode & 0o777 == 0o600
    assert _everything(tmp_path / "worm") == ["2026-12.jsonl"]


def test_a_link_to_a_pipe_descriptor_is_written_in_place(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    try:
        link = tmp_path / "out.jsonl"
        link.symlink_to(f"/proc/self/fd/{write_end}")
        with written_whole(link) as out:
            out.write(b"streamed\n")
        os.close(write_end)
        write_end = -1
        assert os.read(read_end, 100) == b"streamed\n"
        assert os.read(read_end, 100) == b""  # every copy of the write end closed
        assert link.is_symlink() and _everything(tmp_path) == ["out.jsonl"]
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


@pytest.mark.parametrize("via", ["/proc/self/fd/{fd}", "/dev/fd/{fd}"])
def test_a_descriptor_of_a_regular_file_is_appended_to_in_place(tmp_path: Path, via: str) -> None:
    """``--output /dev/stdout >> all.jsonl``: the export goes where stdout goes, after
    what the file held; nothing is made beside it, the link stays."""
    redirected = tmp_path / "all.jsonl"
    redirected.write_text("earlier\n")
    fd = os.open(redirected, os.O_WRONLY | os.O_APPEND)
    try:
        link = tmp_path / "out-link"
        link.symlink_to(via.format(fd=fd))
        for target in (link, Path(via.format(fd=fd))):
            with written_whole(target) as out:
                out.write(b"whole\n")
    finally:
        os.close(fd)
    assert link.is_symlink()
    assert redirected.read_text() == "earlier\nwhole\nwhole\n"
    assert redirected.stat().st_mode & 0o777 == 0o644  # not a file of written_whole's
    assert _everything(tmp_path) == ["all.jsonl", "out-link"]


def test_a_fifo_is_written_in_place(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(fifo)
    read_end = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # so that opening to write does not wait
    try:
        with written_whole(link) as out:
            out.write(b"streamed\n")
        assert os.read(read_end, 100) == b"streamed\n"
    finally:
        os.close(read_end)
    assert _everything(tmp_path) == ["fifo", "link"]


def test_a_plain_path_is_still_renamed_into_place(tmp_path: Path) -> None:
    target = tmp_path / "export.jsonl"
    target.write_text("earlier\n")
    target.chmod(0o644)
    with written_whole(target) as out:
        out.write(b"whole\n")
    assert not target.is_symlink() and target.read_text() == "whole\n"
    assert target.stat().st_mode & 0o777 == 0o600
    assert _everything(tmp_path) == ["export.jsonl"]


def test_a_link_loop_and_a_link_to_a_directory_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(OSError), written_whole(tmp_path / "a"):
        pass
    (tmp_path / "d").mkdir()
    (tmp_path / "to-dir").symlink_to("d")
    with pytest.raises(IsADirectoryError), written_whole(tmp_path / "to-dir"):
        pass
    assert _everything(tmp_path) == ["a", "b", "d", "to-dir"]
