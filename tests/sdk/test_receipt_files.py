"""The SDK's receipt files on a real disk: appended per log and day, whole after a crash.

Notes signed by the integrity component's own notary (a key file), written by
``ReceiptFiles`` in child processes stopped half-way through a write (a pipe
says when) and killed there with SIGKILL, or let go; every file is read back
by ``aiaudit verify --receipt``.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from aiaudit.cli.main import main
from aiaudit.common import receipt_files
from aiaudit.common.store.sql import Receipt
from aiaudit.integrity import merkle
from aiaudit.integrity.receipts import ReceiptNotary
from aiaudit.integrity.signers import FileKeys
from aiaudit.sdk.receipts import STALE_TEMP_AGE, ReceiptFiles, file_name
from tests.conftest import REPO, subprocess_env

PREFIX = "sdk.test/log"
DAY = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)

HALF_WRITTEN = r"""
import json, os, sys
from pathlib import Path
from aiaudit.sdk import receipts
directory, notes, ready, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
before, during = json.loads(Path(notes).read_text())
files = receipts.ReceiptFiles(directory)
files.keep(before)
whole = receipts.write_all
def half(fd, data):
    whole(fd, data[: len(data) // 2])
    os.write(ready, b"!")  # half written: the test kills this process here, or lets it go on
    os.read(go, 1)
    whole(fd, data[len(data) // 2 :])
receipts.write_all = half
files.keep(during)
"""

RACING = r"""
import json, os, sys
from pathlib import Path
from aiaudit.sdk import receipts
directory, notes, ready, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
files = receipts.ReceiptFiles(directory)
os.write(ready, b"!")
os.read(go, 1)  # every writer starts at once
for note in json.loads(Path(notes).read_text()):
    files.keep([note])
"""


class Signer:
    """Signs receipt notes as ingest's notary does, numbering each log's events."""

    def __init__(self, tmp: Path) -> None:
        self.keys = FileKeys(PREFIX, tmp / "receipt-key.pem")
        self.notary = ReceiptNotary(self.keys, PREFIX)
        self.next: dict[str, int] = {}

    def note(self, log_id: str, events: int = 3) -> str:
        first = self.next.get(log_id, 0)
        self.next[log_id] = first + events
        return self.notary.sign(
            [
                Receipt(
                    f"{log_id}-{n}",
                    log_id,
                    n,
                    merkle.leaf_hash(f"{log_id} {n}".encode()),
                    DAY + dt.timedelta(microseconds=n),
                )
                for n in range(first, first + events)
            ]
        )[0]

    def verify(
        self, path: Path, capsys: pytest.CaptureFixture[str]
    ) -> tuple[int, list[tuple[str, int]], str, str]:
        """``aiaudit verify --receipt``: exit code, (log, sequence) of each event, out, err."""
        capsys.readouterr()
        code = main(
            [
                "verify",
                "--receipt",
                str(path),
                "--verifier-key",
                self.keys.verifier_keys()[0].encode(),
                "--origin-prefix",
                PREFIX,
                "--data-dir",
                str(path.parent.parent / "auditor"),
            ]
        )
        out, err = capsys.readouterr()
        events = [
            (line.split(" ")[1], int(line.split(" ")[3]))
            for line in out.splitlines()
            if line.startswith("log ")
        ]
        return code, events, out, err


def events_of(*ranges: tuple[str, int, int]) -> list[tuple[str, int]]:
    return [(log_id, n) for log_id, first, end in ranges for n in range(first, end)]


def child(
    script: str, directory: Path, notes: object, tmp: Path, name: str
) -> tuple[subprocess.Popen[bytes], int, int]:
    """A writer process given ``notes``; returns it, the pipe end it signals on, the one to go."""
    notes_file = tmp / f"{name}.json"
    notes_file.write_text(json.dumps(notes))
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(directory), str(notes_file), str(ready_w), str(go_r)],
        pass_fds=(ready_w, go_r),
        cwd=REPO,
        env=subprocess_env(),
    )
    os.close(ready_w)
    os.close(go_r)
    return proc, ready_r, go_w


def signalled(proc: subprocess.Popen[bytes], ready: int) -> None:
    """Waits for the child's signal (an empty read: it died first, and the test fails)."""
    got = os.read(ready, 1)
    os.close(ready)
    assert got == b"!", f"writer exited {proc.wait()} before its signal"


def killed_mid_write(script: str, directory: Path, notes: object, tmp: Path, name: str) -> None:
    """A writer process given ``notes``, SIGKILLed once it signals it is half-way through."""
    killed, ready, go = child(script, directory, notes, tmp, name)
    signalled(killed, ready)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL
    os.close(go)


def test_a_writer_killed_in_its_write_leaves_nothing_once_the_directory_is_opened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A SIGKILL half-way through a receipt's write left its temporary file for good (one
    per crash, never removed). Now the directory opened again holds each log's file, its
    torn tail cut off, and nothing else; a write still going on in another process, its
    file locked, is left alone and ends whole."""
    signer = Signer(tmp_path)
    receipts = tmp_path / "receipts"
    killed_mid_write(
        HALF_WRITTEN, receipts, [[signer.note("a")], [signer.note("a")]], tmp_path, "killed"
    )
    live, live_ready, live_go = child(
        HALF_WRITTEN, receipts, [[signer.note("b")], [signer.note("b")]], tmp_path, "live"
    )
    signalled(live, live_ready)

    files = ReceiptFiles(receipts)  # a gateway starts while the other one is mid-write

    a_file, b_file = receipts / "a.2026-03-01.notes", receipts / "b.2026-03-01.notes"
    assert sorted(os.listdir(receipts)) == [a_file.name, b_file.name]
    assert a_file.read_bytes().endswith(b"\n.\n")  # the killed write's half is gone
    code, events, _, err = signer.verify(a_file, capsys)
    assert (code, events) == (0, events_of(("a", 0, 3))) and "skipped" not in err
    files.keep([signer.note("a")])  # appends go on after the crash
    assert signer.verify(a_file, capsys)[:2] == (0, events_of(("a", 0, 3), ("a", 6, 9)))

    os.write(live_go, b"!")
    os.close(live_go)
    assert live.wait() == 0
    code, events, _, err = signer.verify(b_file, capsys)
    assert (code, events) == (0, events_of(("b", 0, 6))) and "skipped" not in err


def test_temporary_files_of_the_earlier_layout_are_removed_once_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An earlier version wrote each note under ``.<name>.<uuid>.tmp`` and left it there when
    killed. Opening the directory removes those older than ``STALE_TEMP_AGE``; a younger one
    may be a write going on in a process of that version (it locks nothing), and stays. The
    earlier layout's notes stay and verify."""
    signer = Signer(tmp_path)
    receipts = tmp_path / "receipts"
    receipts.mkdir()
    old_note = receipts / "a.0-2.0123456789abcdef.note"
    old_note.write_text(signer.note("a"))
    stale = receipts / f".a.3-5.00112233445566ff.note.{'ab' * 16}.tmp"
    stale.write_text(signer.note("a")[:40])
    young = receipts / f".a.6-8.00112233445566ee.note.{'cd' * 16}.tmp"
    young.write_text(signer.note("a")[:40])
    long_ago = time.time() - STALE_TEMP_AGE - 60
    os.utime(stale, (long_ago, long_ago))
    other = receipts / "notes.tmp"  # not a name the SDK ever wrote: not its to remove
    other.write_text("")

    ReceiptFiles(receipts)

    assert sorted(os.listdir(receipts)) == sorted([old_note.name, young.name, other.name])
    assert signer.verify(old_note, capsys)[:2] == (0, events_of(("a", 0, 3)))


def test_many_batches_of_two_processes_append_to_one_file_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two gateways' loggers on one directory, each keeping 60 batches of one log at once:
    one file (it was one per batch), every note in it whole and verified, none twice."""
    signer = Signer(tmp_path)
    receipts = tmp_path / "receipts"
    writers = []
    for name in ("first", "second"):
        notes = [signer.note("busy", events=200) for _ in range(60)]
        writers.append(child(RACING, receipts, notes, tmp_path, name))
    for proc, ready, _ in writers:
        signalled(proc, ready)
    for _, _, go in writers:
        os.close(go)  # both read end of file and start
    assert [proc.wait() for proc, _, _ in writers] == [0, 0]

    assert os.listdir(receipts) == ["busy.2026-03-01.notes"]
    code, events, _, err = signer.verify(receipts / "busy.2026-03-01.notes", capsys)
    assert code == 0 and "120 notes, valid signatures, 24000 event(s)" in err
    assert sorted(events) == events_of(("busy", 0, 24_000))


def test_verify_reads_a_days_file_note_by_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A note that does not verify is a problem (exit 1) named by where it starts, the others
    still printed; what follows the last whole note (a write cut short) is skipped and said;
    a file holding no whole note vouches for nothing (exit 1)."""
    signer = Signer(tmp_path)
    receipts = tmp_path / "receipts"
    receipts.mkdir()
    notes = [signer.note("t") for _ in range(3)]
    assert {file_name(n) for n in notes} == {"t.2026-03-01.notes"}
    path = receipts / "t.2026-03-01.notes"
    torn = receipt_files.record(signer.note("t").encode())[:-30]

    path.write_bytes(b"".join(receipt_files.record(n.encode()) for n in notes) + torn)
    code, events, _, err = signer.verify(path, capsys)
    assert (code, events) == (0, events_of(("t", 0, 9)))
    assert f"{len(torn)} byte(s) after the last note skipped" in err

    forged = notes[1].replace("\n3 ", "\n30 ")
    records = [receipt_files.record(n.encode()) for n in (notes[0], forged, notes[2])]
    path.write_bytes(b"".join(records))
    code, events, out, _ = signer.verify(path, capsys)
    assert (code, events) == (1, events_of(("t", 0, 3), ("t", 6, 9)))
    assert f"note at byte {len(records[0])}: invalid signature" in out

    path.write_bytes(torn)
    code, events, out, _ = signer.verify(path, capsys)
    assert (code, events) == (1, []) and "no whole note" in out


ROTATED = r"""
import fcntl, json, os, sys
from pathlib import Path
from aiaudit.sdk import receipts
directory, notes, ready, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
first = [True]
def flock(fd, operation):
    if operation & fcntl.LOCK_EX and first:
        first.clear()
        os.write(ready, b"!")  # the file is open: the test moves it away now
        os.read(go, 1)
    fcntl.flock(fd, operation)
files = receipts.ReceiptFiles(directory, lock=flock)
for note in json.loads(Path(notes).read_text()):
    files.keep([note])
"""


def test_files_the_sdk_never_writes_are_left_alone_when_the_directory_is_opened(
    tmp_path: Path,
) -> None:
    """Opening the directory cut the "torn tail" of any recent ``*.notes`` file (a user's
    ``meeting.notes``, no ``.`` line in it, came out empty) and removed any stale hidden
    ``.*.note.<32 hex>.tmp``. Only the names the SDK writes are its own to clean."""
    receipts = tmp_path / "receipts"
    receipts.mkdir()
    mine = receipts / "meeting.notes"
    mine.write_text("agenda\n- receipts\n")
    long_ago = time.time() - STALE_TEMP_AGE - 60
    temp = receipts / f".draft.note.{'ef' * 16}.tmp"  # an editor's, not the SDK's
    temp.write_text("draft\n")
    os.utime(temp, (long_ago, long_ago))
    stale = receipts / f".receipt.00112233445566ff.note.{'ab' * 16}.tmp"  # the SDK's
    stale.write_text("aiaudit")
    os.utime(stale, (long_ago, long_ago))

    ReceiptFiles(receipts)

    assert sorted(os.listdir(receipts)) == sorted([mine.name, temp.name])
    assert (mine.read_text(), temp.read_text()) == ("agenda\n- receipts\n", "draft\n")


def test_a_note_holding_a_dot_line_is_not_appended_and_spoils_no_other(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A note from the service holding a line ``.`` (a buggy or hostile service, a proxy
    adding a line) was appended as it was: its ``.`` line read as the end of a record, and
    the next, genuine note of the file began with ``.`` and no longer verified. Such a
    text is no receipt note: it is refused (logged), and the notes around it verify."""
    signer = Signer(tmp_path)
    receipts = tmp_path / "receipts"
    files = ReceiptFiles(receipts)
    files.keep([signer.note("t")])
    files.keep([signer.note("t") + "."])  # a line '.' after the signature, no newline
    files.keep([signer.note("t")])
    inner = signer.note("t").replace("\n\n", "\n.\n\n", 1)  # a line '.' in its text
    files.keep([inner, signer.note("t")])

    code, events, out, _ = signer.verify(receipts / "t.2026-03-01.notes", capsys)
    assert (code, events) == (0, events_of(("t", 0, 3), ("t", 6, 9), ("t", 12, 15))), out
    refused = [r for r in caplog.records if "audit receipt not kept" in r.getMessage()]
    assert len(refused) == 2


def test_an_append_waiting_for_a_file_moved_away_goes_to_the_file_at_its_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A day's file moved away (archived) by a tool that holds its lock while it moves it: a
    writer that had opened the file before and waited for the lock appended to the moved
    file, after the tool had let go of it (and maybe already compressed or copied it). It
    opens the name again: the note is in a new file at the name, the moved one unchanged."""
    signer = Signer(tmp_path)
    receipts = tmp_path / "receipts"
    ReceiptFiles(receipts).keep([signer.note("t")])
    path = receipts / "t.2026-03-01.notes"
    archive = tmp_path / "archive"
    archive.mkdir()
    moved = archive / path.name
    holder = os.open(path, os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)
    writer, ready, go = child(ROTATED, receipts, [signer.note("t")], tmp_path, "writer")
    signalled(writer, ready)  # it opened the file and is about to lock it
    os.close(go)
    path.rename(moved)
    os.close(holder)  # lets go of the lock
    assert writer.wait() == 0

    assert signer.verify(moved, capsys)[:2] == (0, events_of(("t", 0, 3)))
    assert signer.verify(path, capsys)[:2] == (0, events_of(("t", 3, 6)))


NO_LOCKS_WRITER = r"""
import errno, json, os, sys
from pathlib import Path
from aiaudit.sdk import receipts
directory, notes, ready, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
before, during = json.loads(Path(notes).read_text())
def no_locks(fd, operation):  # NFS without its lock daemon
    raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))
files = receipts.ReceiptFiles(directory, lock=no_locks)
files.keep(before)
whole = receipts.write_all
def half(fd, data):
    whole(fd, data[: len(data) // 2])
    os.write(ready, b"!")  # half written: the test kills this process here
    os.read(go, 1)
    whole(fd, data[len(data) // 2 :])
receipts.write_all = half
files.keep(during)
"""

APART = r"(?P<log>[a-z]+)\.2026-03-01\.[0-9a-f]{32}\.notes"


def kept_events(
    signer: Signer, receipts: Path, capsys: pytest.CaptureFixture[str]
) -> list[tuple[str, int]]:
    """Every event of every ``*.notes`` file of ``receipts``, each file verified (exit 0)."""
    events: list[tuple[str, int]] = []
    for path in sorted(receipts.glob("*.notes")):
        code, found, out, err = signer.verify(path, capsys)
        assert code == 0 and "skipped" not in err, (path, out, err)
        events += found
    return sorted(events)


@pytest.mark.parametrize("error", [errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL])
def test_a_directory_whose_files_cannot_be_locked_keeps_each_batch_in_a_file_of_its_own(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    error: int,
) -> None:
    """On NFS without its lock daemon ``flock`` raises ENOLCK (EOPNOTSUPP or EINVAL on some
    FUSE filesystems): every receipt was "not kept", logged batch after batch, lost for
    good. Now each batch's notes of a log go to a file of their own beside the day's
    files (``<log>.<day>.<32 hex>.notes``, the same layout), written whole and renamed, and
    the directory is said once to be unlockable. No empty day's file is left (verify would
    find it holding no note); each event is in one file; a later writer that can lock
    appends to the day's file again and leaves those files as they are."""
    signer = Signer(tmp_path)
    receipts = tmp_path / "receipts"

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(error, os.strerror(error))

    files = ReceiptFiles(receipts, lock=no_locks)
    for _ in range(3):
        files.keep([signer.note("a"), signer.note("b")])

    names = os.listdir(receipts)
    logs = [re.fullmatch(APART, name) for name in names]
    assert all(logs) and sorted(m["log"] for m in logs if m) == ["a"] * 3 + ["b"] * 3, names
    assert kept_events(signer, receipts, capsys) == events_of(("a", 0, 9), ("b", 0, 9))
    messages = [r.getMessage() for r in caplog.records]
    assert sum("cannot be locked" in m for m in messages) == 1, messages
    assert not [m for m in messages if "not kept" in m]

    ReceiptFiles(receipts).keep([signer.note("a")])  # flock works again
    assert sorted(os.listdir(receipts)) == sorted([*names, "a.2026-03-01.notes"])
    assert kept_events(signer, receipts, capsys) == events_of(("a", 0, 12), ("b", 0, 9))


def test_a_writer_killed_writing_a_file_of_its_own_leaves_no_torn_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A writer that cannot lock, SIGKILLed half-way through a batch's file of its own, leaves
    its temporary name only (no note at a ``.notes`` name is ever torn), which opening the
    directory removes once stale; a younger one may be a write going on, and stays."""
    signer = Signer(tmp_path)
    receipts = tmp_path / "receipts"
    killed_mid_write(
        NO_LOCKS_WRITER, receipts, [[signer.note("a")], [signer.note("a")]], tmp_path, "k"
    )

    (kept,) = [n for n in os.listdir(receipts) if re.fullmatch(APART, n)]
    (temp,) = [n for n in os.listdir(receipts) if n != kept]
    assert re.fullmatch(rf"\.{APART}\.tmp", temp)
    assert kept_events(signer, receipts, capsys) == events_of(("a", 0, 3))
    young = receipts / f".a.2026-03-01.{'cd' * 16}.notes.tmp"
    young.write_text(signer.note("a")[:40])
    long_ago = time.time() - STALE_TEMP_AGE - 60
    os.utime(receipts / temp, (long_ago, long_ago))

    ReceiptFiles(receipts)

    assert sorted(os.listdir(receipts)) == sorted([kept, young.name])


HOLDER = r"""
import fcntl, json, os, sys
from pathlib import Path
directory, notes, ready, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
fd = os.open(directory / json.loads(Path(notes).read_text()), os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(ready, b"!")  # holds the lock: the test stops this process now
os.read(go, 1)
"""


def test_a_writer_stopped_while_it_holds_a_file_stalls_no_other(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A process SIGSTOPped while it held a day's file's lock stalled every other writer's
    ``keep`` (so its logger's delivery) until it went on, for ever if never. Now an append
    waits ``lock_wait`` at most, then keeps its notes in a file of their own, and the next
    batches of that file do not wait again (one warning); the other logs' files are
    appended to as ever, and once the holder lets go the day's file is appended to again.
    Each event is in one file."""
    signer = Signer(tmp_path)
    receipts = tmp_path / "receipts"
    files = ReceiptFiles(receipts, lock_wait=0.2)
    files.keep([signer.note("a")])
    holder, ready, go = child(HOLDER, receipts, "a.2026-03-01.notes", tmp_path, "holder")
    signalled(holder, ready)
    holder.send_signal(signal.SIGSTOP)
    stalled = threading.Thread(
        target=lambda: [files.keep([signer.note("a"), signer.note("b")]) for _ in range(3)]
    )
    try:
        stalled.start()
        stalled.join(timeout=60)
        assert not stalled.is_alive(), "keep waits for the stopped holder"
    finally:
        holder.send_signal(signal.SIGCONT)
        os.close(go)
        assert holder.wait() == 0
        stalled.join()

    apart = sorted(n for n in os.listdir(receipts) if re.fullmatch(APART, n))
    assert len(apart) == 3 and all(n.startswith("a.") for n in apart)
    assert signer.verify(receipts / "b.2026-03-01.notes", capsys)[:2] == (
        0,
        events_of(("b", 0, 9)),
    )
    files.keep([signer.note("a")])  # let go: appended to the day's file again
    assert signer.verify(receipts / "a.2026-03-01.notes", capsys)[:2] == (
        0,
        events_of(("a", 0, 3), ("a", 12, 15)),
    )
    assert kept_events(signer, receipts, capsys) == events_of(("a", 0, 15), ("b", 0, 9))
    messages = [r.getMessage() for r in caplog.records]
    assert sum("held locked by another writer" in m for m in messages) == 1, messages
    assert not [m for m in messages if "not kept" in m]


def test_a_directory_that_locks_again_gets_day_files_again(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A directory found unlockable (the lock daemon down when the logger opened it) made no
    day's file again for the process's life: only an existing day's file's lock could say
    that locks work again, so a missing one (a fresh directory, the next day's, a new log's)
    sent every batch's notes to a file of their own for good, after the lock daemon was back
    (review, 2026-12-06). Now the directory is tried again (``PROBE_AGAIN``, 0 here) when a
    day's file is missing, and the notes are appended to the day's files once it locks."""
    from aiaudit.sdk import receipts as module

    monkeypatch.setattr(module, "PROBE_AGAIN", 0.0, raising=False)
    signer = Signer(tmp_path)
    receipts = tmp_path / "receipts"
    down = [True]

    def lockd(fd: int, operation: int) -> None:  # NFS, its lock daemon down, then back
        if down:
            raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))
        fcntl.flock(fd, operation)

    files = ReceiptFiles(receipts, lock=lockd)
    files.keep([signer.note("a")])
    (apart,) = os.listdir(receipts)
    assert re.fullmatch(APART, apart)
    down.clear()
    for _ in range(2):
        files.keep([signer.note("a"), signer.note("b")])

    assert sorted(os.listdir(receipts)) == sorted(
        [apart, "a.2026-03-01.notes", "b.2026-03-01.notes"]
    )
    assert signer.verify(receipts / "a.2026-03-01.notes", capsys)[:2] == (
        0,
        events_of(("a", 3, 9)),
    )
    assert kept_events(signer, receipts, capsys) == events_of(("a", 0, 9), ("b", 0, 6))
    messages = [r.getMessage() for r in caplog.records]
    assert sum("cannot be locked" in m for m in messages) == 1, messages
    assert sum("can be locked again" in m for m in messages) == 1, messages
