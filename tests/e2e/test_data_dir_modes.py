"""The embedded data directory and its files are the owner's alone.

Under the usual umask (022) the directory was 0755 and ``aiaudit.db``,
``search.db`` and their ``-wal``/``-shm`` 0644: any local user read the
prompts the search index holds as plain text, and the user ids and addresses
of the store (review, 2026-12-05). Only ``content.kek`` and the notary key
were 0600.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from aiaudit.cli.server import Suite, start
from aiaudit.common import client, config
from aiaudit.ingest.v1 import ingest_service_pb2 as ipb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as ipb_grpc
from tests.helpers import holding, interaction, secret_word, wait_until


def _modes(data_dir: Path) -> dict[str, int]:
    """Each file and directory under ``data_dir`` (itself ``.``) and its permission bits.

    ``checkpoints/`` is left out: signed tree heads, published by design (read-only
    WORM files), no content; and the directory above is the owner's alone now.
    """
    found = {".": stat.S_IMODE(data_dir.stat().st_mode)}
    for root, dirs, files in os.walk(data_dir):
        dirs[:] = [d for d in dirs if not (root == str(data_dir) and d == "checkpoints")]
        for name in [*dirs, *files]:
            path = Path(root, name)
            found[str(path.relative_to(data_dir))] = stat.S_IMODE(path.stat().st_mode)
    return found


def _serve(data_dir: Path) -> Suite:
    """The embedded suite (dev mode on loopback) with its data in ``data_dir``."""
    return start(config.load(env={}, overrides={"address": "127.0.0.1:0", "data_dir": data_dir}))


def test_the_data_directory_and_every_file_in_it_are_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    suite = _serve(data_dir)
    secret = secret_word()
    try:
        with client.channel(f"127.0.0.1:{suite.port}", None) as channel:
            stub = ipb_grpc.IngestServiceStub(channel)  # type: ignore[no-untyped-call]
            stub.Append(ipb.AppendRequest(events=[interaction("acme", text=secret)]), timeout=30)
        # Indexed: the prompt is in the index's files in plain text.
        wait_until(lambda: holding(data_dir.glob("search.db*"), secret))
        modes = _modes(data_dir)
    finally:
        suite.stop()
    assert modes["."] == 0o700
    expected = {"aiaudit.db", "aiaudit.db-wal", "search.db", "search.db-wal", "content.kek"}
    assert expected <= set(modes), modes
    open_to_others = {name: oct(mode) for name, mode in modes.items() if mode & 0o077}
    assert open_to_others == {}


def test_files_of_an_older_release_are_narrowed_and_an_open_directory_is_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A directory made by hand (or by an older release) is the operator's to narrow: each
    start warns. The database files in it were made 0644 by older releases: they are
    narrowed to 0600, which SQLite's ``-wal`` and ``-shm`` then follow."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    for name in ("aiaudit.db", "search.db"):
        (data_dir / name).touch(mode=0o644)  # an empty file is a new database to SQLite
        (data_dir / name).chmod(0o644)
    with caplog.at_level(logging.WARNING):
        _serve(data_dir).stop()
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o755  # left as its owner set it
    warned = [r for r in caplog.records if r.getMessage().startswith("data_dir is open")]
    assert [getattr(r, "data_dir", None) for r in warned] == [str(data_dir)]
    narrowed = {getattr(r, "path", None) for r in caplog.records if "made 0600" in r.getMessage()}
    assert narrowed == {str(data_dir / "aiaudit.db"), str(data_dir / "search.db")}
    open_to_others = {n: oct(m) for n, m in _modes(data_dir).items() if n != "." and m & 0o077}
    assert open_to_others == {}
