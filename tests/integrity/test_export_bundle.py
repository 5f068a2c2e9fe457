"""``aiaudit integrity export-bundle``'s output file: whole or absent, private, checked first.

The bundle holds content and salts, and each of its lines verifies on its
own: a file cut after any line passes for a complete bundle. So it is
written to a private temporary file beside the destination and renamed once
complete, and a destination that cannot be written fails the command before
the export's access record is committed.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from aiaudit.cli.main import main
from aiaudit.common.store import SqlEventStore
from aiaudit.common.store.prepare import prepare
from aiaudit.common.store.schema import content_keys
from aiaudit.integrity.signers import FileKeys
from tests.helpers import access_records, interaction, wait_until
from tests.integrity.conftest import ORIGIN_PREFIX, Notaries, append
from tests.integrity.test_cli import checkpointed, event_lines, said, verify
from tests.integrity.test_notary import covers


def exporting(store_url: str, notaries: Notaries, tenant: str) -> list[str]:
    """The command line of an export of ``tenant``, read as the notary, recorded by the writer."""
    return [
        "integrity",
        "export-bundle",
        "--database-url",
        notaries.url,
        "--record-database-url",
        store_url,
        "--requested-by",
        "dpo",
        "--log",
        tenant,
    ]


def leftovers(directory: Path) -> list[str]:
    """Temporary files an export left beside its destination."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".partial"))


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, under which a plain ``open`` makes a file anyone may read."""
    before = os.umask(0o022)
    yield
    os.umask(before)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the one sealing by default
def test_an_export_that_fails_midway_leaves_no_bundle(
    store_url: str,
    store: SqlEventStore,
    notaries: Notaries,
    tenant: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Written in place, the first 1,000 lines stayed under the bundle's name: a bundle that
    verified as complete. The failure here is real: bob's data key altered, so the second
    batch of events (his) does not open, after alice's 1,000 were written."""
    now = dt.datetime.now(dt.UTC)
    events = [interaction(tenant, text=f"m{i}") for i in range(1000)]
    events += [interaction(tenant, text=f"b{i}", user="bob") for i in range(2)]
    store.append_group([[prepare(e, now) for e in events]])
    keys = FileKeys(ORIGIN_PREFIX, tmp_path / "key.pem")
    notaries.start(keys)
    wait_until(lambda: covers(notaries.url, tenant, 1002))
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        changed = conn.execute(
            sa.update(content_keys)
            .where(content_keys.c.log_id == tenant, content_keys.c.subject == "bob")
            .values(wrapped=sa.func.substr(content_keys.c.wrapped, 2))
        )
        assert changed.rowcount == 1, "the embedded store seals content"
    engine.dispose()
    out = tmp_path / "out.jsonl"
    out.write_text("an earlier file\n")
    assert main([*exporting(store_url, notaries, tenant), str(out)]) == 1
    assert "does not open" in said(capsys)[0]
    assert out.read_text() == "an earlier file\n"  # neither cut nor truncated
    assert leftovers(tmp_path) == []
    # Without content nothing is unsealed: the whole bundle is written, under its name.
    assert main([*exporting(store_url, notaries, tenant), "--no-content", str(out)]) == 0
    assert len(out.read_text().splitlines()) >= 1002
    key = keys.verifier_keys()[0].encode()
    assert verify(out, key, "--origin-prefix", ORIGIN_PREFIX, "--log", tenant) == 0
    assert leftovers(tmp_path) == []


def test_a_bundle_is_readable_by_its_owner_only(
    store_url: str,
    store: SqlEventStore,
    notaries: Notaries,
    tenant: str,
    tmp_path: Path,
    umask_022: None,
) -> None:
    """It holds content and salts; it was created 0644 under the usual umask."""
    keys = checkpointed(store, notaries, tenant, tmp_path)
    out = tmp_path / "out.jsonl"
    out.write_text("an earlier file, readable by all\n")
    out.chmod(0o644)
    assert main([*exporting(store_url, notaries, tenant), str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    lines = event_lines(out)
    assert len(lines) >= 3 and all("content" in line for line in lines[:3])
    key = keys.verifier_keys()[0].encode()
    assert verify(out, key, "--origin-prefix", ORIGIN_PREFIX, "--log", tenant) == 0
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("where", "error"),
    [
        ("directory", "Is a directory"),
        ("/dev/full", "No space left on device"),  # a device that refuses every write
        ("missing/out.jsonl", "No such file or directory"),
    ],
)
def test_an_unwritable_destination_records_no_export(
    store_url: str,
    store: SqlEventStore,
    notaries: Notaries,
    tenant: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    where: str,
    error: str,
) -> None:
    """The record was committed before the file was opened: it named an export that did not
    happen. The destination is opened (and a device tried) first now."""
    checkpointed(store, notaries, tenant, tmp_path)
    (tmp_path / "directory").mkdir()
    out = tmp_path / where if not where.startswith("/") else Path(where)
    capsys.readouterr()
    assert main([*exporting(store_url, notaries, tenant), str(out)]) == 1
    assert said(capsys) == [f"aiaudit integrity export-bundle: cannot write {out}: {error}"]
    assert access_records(store_url, tenant) == []
    assert leftovers(tmp_path) == leftovers(tmp_path / "directory") == []


def test_events_past_the_latest_checkpoint_are_refused_not_left_out(
    store_url: str,
    store: SqlEventStore,
    notaries: Notaries,
    tenant: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """During a notary outage the export wrote the checkpointed 10 events of 21, exit 0, as
    if it were the whole log (review 2026-12-05): events the latest checkpoint does not cover
    cannot be proven, so asking for them fails, naming them, unless the range asked for lies
    within the checkpoint (--count, or --up-to-checkpoint); a notary back within --wait is
    waited for."""
    keys = FileKeys(ORIGIN_PREFIX, tmp_path / "key.pem")
    key = keys.verifier_keys()[0].encode()
    append(store, tenant, 3)
    # The notary signs its first checkpoint at once, the next only after an hour.
    slow = notaries.start(keys, interval=3600)
    wait_until(lambda: covers(notaries.url, tenant, 3))
    append(store, tenant, 4)  # sequences 3..6: not covered
    out = tmp_path / "out.jsonl"
    capsys.readouterr()
    # As the review ran it (no new option): it waits --wait's default 10 s, then fails.
    assert main([*exporting(store_url, notaries, tenant), str(out)]) == 1
    assert said(capsys)[-1].endswith(
        "after waiting 10s; nothing was exported. Wait for the "
        "notary to sign a checkpoint covering them and run again, or export only what the latest "
        "checkpoint covers: --up-to-checkpoint, or --start/--count within sequences 0..2"
    )
    export = [*exporting(store_url, notaries, tenant), "--wait", "0"]
    assert main([*export, str(out)]) == 1
    assert said(capsys) == [
        f"aiaudit integrity export-bundle: 4 event(s) of log {tenant!r} (sequences 3..6) are "
        "not yet covered by a signed checkpoint (the latest has size 3), after waiting 0s; "
        "nothing was exported. Wait for the notary to sign a checkpoint covering them and run "
        "again, or export only what the latest checkpoint covers: --up-to-checkpoint, or "
        "--start/--count within sequences 0..2"
    ]
    assert main([*export, "--start", "2", "--count", "2", str(out)]) == 1
    assert f"1 event(s) of log {tenant!r} (sequences 3..3) are not yet" in said(capsys)[0]
    assert main([*export, "--start", "7", str(out)]) == 1
    assert said(capsys) == [
        f"aiaudit integrity export-bundle: --start 7 is past the end of log {tenant!r} "
        "(7 event(s)): nothing to export"
    ]
    assert not out.exists()
    assert access_records(store_url, tenant) == []  # refused before anything was recorded

    def sequences(path: Path) -> list[int]:
        return [line["sequence"] for line in event_lines(path)]

    written = r"(\d+) event\(s\) written to (\S+): sequences (\d+)\.\.(\d+) of (\S+) against "
    written += r"checkpoint size (\d+) \(root ([A-Za-z0-9+/=]{44})\)"
    # A range the checkpoint covers is exported, and says which.
    assert main([*export, "--count", "3", str(out)]) == 0
    (line,) = said(capsys)
    assert (found := re.fullmatch(written, line)) is not None, line
    assert found.groups()[:6] == ("3", str(out), "0", "2", tenant, "3")
    assert sequences(out) == [0, 1, 2]
    assert verify(out, key, "--origin-prefix", ORIGIN_PREFIX, "--log", tenant) == 0
    capsys.readouterr()
    # --up-to-checkpoint: what the checkpoint covers, and what it left out is said
    # (the export above recorded itself: sequence 7).
    upto = tmp_path / "upto.jsonl"
    assert main([*export, "--up-to-checkpoint", str(upto)]) == 0
    told = said(capsys)
    assert re.fullmatch(written, told[0]) is not None, told
    assert told[1:] == [
        "5 event(s) not yet covered by a signed checkpoint left out (sequences 3..7; "
        "--up-to-checkpoint)"
    ]
    assert sequences(upto) == [0, 1, 2]
    assert main([*export, "--up-to-checkpoint", "--start", "3", str(upto)]) == 1
    assert f"6 event(s) of log {tenant!r} (sequences 3..8) are not yet" in said(capsys)[0]

    # The notary back while the command waits: the whole log as it stood, proven.
    slow.stop()
    done: list[int] = []
    waiting = threading.Thread(
        target=lambda: done.append(main([*export[:-1], "60", str(out)])), daemon=True
    )
    waiting.start()
    notaries.start(keys)
    waiting.join(timeout=120)
    assert done == [0]
    assert sequences(out) == list(range(len(sequences(out))))
    assert len(sequences(out)) >= 9  # 7 events and two records, at least
    assert verify(out, key, "--origin-prefix", ORIGIN_PREFIX, "--log", tenant) == 0


@pytest.mark.parametrize(
    ("column", "where"),
    [
        ("events.canonical", "seq = 1"),
        ("log_entries.leaf_hash", "seq = 1"),
        ("integrity_nodes.hash", "level = 0 AND idx = 1"),
        ("integrity_checkpoints.root_hash", "tree_size = 3"),
    ],
)
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # bytea holds no text
def test_a_row_stored_as_text_fails_the_export_in_one_line_naming_the_column(
    store_url: str,
    store: SqlEventStore,
    notaries: Notaries,
    tenant: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    column: str,
    where: str,
) -> None:
    """SQLite keeps any type in any column: a binary column rewritten as text by raw SQL
    stopped the export with a traceback (StoredAsTextEventError, StoredAsTextError)."""
    checkpointed(store, notaries, tenant, tmp_path)
    table, name = column.split(".")
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        changed = conn.execute(
            sa.text(
                f"UPDATE {table} SET {name} = CAST({name} AS TEXT) WHERE log_id = :t AND {where}"
            ),
            {"t": tenant},
        )
        assert changed.rowcount == 1
    engine.dispose()
    out = tmp_path / "out.jsonl"
    capsys.readouterr()
    assert main([*exporting(store_url, notaries, tenant), str(out)]) == 1
    (told,) = said(capsys)
    assert told.startswith("aiaudit integrity export-bundle: ")
    assert f"column {column} is stored as text, not bytes (rewritten by raw SQL?)" in told
    assert not out.exists()
    assert leftovers(tmp_path) == []
