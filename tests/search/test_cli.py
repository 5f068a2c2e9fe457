"""`aiaudit search`, `aiaudit aggregate` and `aiaudit export` against a running server."""

from __future__ import annotations

import base64
import contextlib
import csv
import datetime as dt
import errno
import fcntl
import io
import os
import re
import signal
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from google.protobuf import json_format

from aiaudit.cli.main import main
from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.search import aggregate_table
from aiaudit.search.cli import visible
from aiaudit.search.v1 import search_service_pb2 as pb
from tests.conftest import subprocess_env
from tests.helpers import interaction, wait_until
from tests.search.conftest import NOT_ACCESS, SearchSuite, start_suite


def test_search_and_export_commands(
    tmp_path: Path, tenant: str, capsys: pytest.CaptureFixture[str]
) -> None:
    running = start_suite(tmp_path, "sqlite", {})
    try:
        running.append(
            [interaction(tenant, f"c-{i}", user=f"u{i % 2}", text=f"topic{i}") for i in range(6)]
        )
        running.wait_indexed(tenant, 6)
        key = running.keys["auditor"]
        common = ["--address", running.address, f"--api-key={key}"]  # a key may start with "-"
        code = main(
            [
                "search",
                *common,
                "--tenant",
                tenant,
                "--filter",
                f'actor.user_id = "u1" AND {NOT_ACCESS}',
                "--order-by",
                "sequence",
            ]
        )
        out, err = capsys.readouterr()
        assert code == 0
        assert [line.split()[3] for line in out.splitlines()] == ["c-1", "c-3", "c-5"]
        assert "3 of 3 matching" in err

        target = tmp_path / "out.csv"
        code = main(
            [
                "export",
                *common,
                "--tenant",
                tenant,
                "--format",
                "csv",
                "--query",
                "topic4",
                "--output",
                str(target),
            ]
        )
        assert code == 0
        rows = list(csv.DictReader(target.open(newline="")))
        assert [r["event_id"] for r in rows] == ["c-4"]
        assert rows[0]["input.text"] == "topic4"

        code = main(["search", *common, "--tenant", tenant, "--filter", "(broken"])
        _, err = capsys.readouterr()
        assert code == 1 and "INVALID_ARGUMENT" in err and "column 2" in err
    finally:
        running.channel.close()
        running.suite.stop()


@pytest.mark.parametrize("limit", ["0", "-5", "many"])
def test_a_limit_below_one_is_refused_by_name(
    limit: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["search", "--tenant", "t", "--limit", limit])
    assert exit_.value.code == 2
    assert "--limit" in capsys.readouterr().err


_RAW_CONTROLS = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
"""Control characters a terminal may act on (a line feed ends each printed line)."""


def test_search_prints_no_control_character_from_event_data(
    tmp_path: Path, tenant: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A prompt could clear the screen, hide text or write the clipboard: every value
    printed comes with its C0/C1 controls and DEL as ``\\xNN``; ``--json`` stays exact."""
    text = "invoice \x1b]52;c;ZWNobyBwd25lZA==\x07 \x1b[2J\x1b[1;31mALL CLEAR\x1b[0m \x9b2J\x7f"
    event = interaction(tenant, "esc-1", text=text, user="bob\x1b[8m", model="gpt\x9b8m\u202e")
    running = start_suite(tmp_path, "sqlite", {})
    try:
        running.append([event])
        running.wait_indexed(tenant, 1)
        common = ["--address", running.address, f"--api-key={running.keys['auditor']}"]
        search = [
            "search",
            *common,
            "--tenant",
            tenant,
            "--filter",
            NOT_ACCESS,
            "--query",
            "invoice",
        ]
        assert main(search) == 0
        out = capsys.readouterr().out
        assert not _RAW_CONTROLS.search(out), repr(out)
        (line,) = out.splitlines()
        assert "  bob\\x1b[8m  gpt\\x9b8m\\u202e  " in line  # a bidi override too
        assert "\\x1b]52;c;ZWNobyBwd25lZA==\\x07 \\x1b[2J\\x1b[1;31mALL CLEAR\\x1b[0m" in line
        assert line.endswith("\\x9b2J\\x7f"), line
        assert main([*search, "--json"]) == 0
        out = capsys.readouterr().out
        assert not _RAW_CONTROLS.search(out), repr(out)
        (printed,) = out.splitlines()
        got = json_format.Parse(printed, ev.Event())
        assert got.input.messages[0].parts[0].text == text
        assert (got.actor.user_id, got.model.name) == ("bob\x1b[8m", "gpt\x9b8m\u202e")
    finally:
        running.channel.close()
        running.suite.stop()


def _state(pid: int) -> str:
    """The process's state letter in /proc (``T``: stopped)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"]
)
def test_an_interrupted_export_leaves_no_file(
    tmp_path: Path, tenant: str, sig: signal.Signals, code: int
) -> None:
    """``aiaudit export --output F`` in its own process, SIGINT or SIGTERM mid-stream: no F,
    no partial, exit 128 + the signal.

    Written in place, F was left with the events received so far, a JSON Lines
    file that could pass for the whole export. The export is stopped (SIGSTOP)
    once bytes are on disk, so it is certainly mid-stream when the signal comes.
    Until 2026-12-05 SIGTERM (``timeout``, systemd, a CI job cancelled) killed
    the process and left ``.F.<random>.partial``.
    """
    text, count = "y" * 20_000, 1000  # 40 MB of JSON (input and output carry the text)
    running = start_suite(tmp_path, "sqlite", {})
    try:
        for first in range(0, count, 50):
            running.append(
                [interaction(tenant, f"big-{i}", text=text) for i in range(first, first + 50)]
            )
        running.wait_indexed(tenant, count, timeout=120)
        out = tmp_path / "out"
        out.mkdir()
        target = out / "export.jsonl"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aiaudit.cli.main",
                "export",
                "--address",
                running.address,
                f"--api-key={running.keys['compliance_officer']}",
                "--tenant",
                tenant,
                "--filter",
                NOT_ACCESS,
                "--output",
                str(target),
            ],
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:

            def on_disk() -> int:
                return sum(f.stat().st_size for f in out.iterdir())

            wait_until(lambda: proc.poll() is not None or on_disk() > 0, timeout=60)
            os.kill(proc.pid, signal.SIGSTOP)
            wait_until(lambda: _state(proc.pid) == "T")
            assert 0 < on_disk() < count * len(text), "not stopped mid-stream"
            os.kill(proc.pid, sig)
            os.kill(proc.pid, signal.SIGCONT)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert sorted(out.iterdir()) == [], err
        assert proc.returncode == code and b"interrupted" in err, err
    finally:
        running.channel.close()
        running.suite.stop()


def test_a_failed_export_leaves_an_earlier_file_of_that_name_as_it_was(
    tmp_path: Path, tenant: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The export goes to a file beside F, renamed over it only once complete."""
    running = start_suite(tmp_path, "sqlite", {})
    try:
        running.append([interaction(tenant, "e-1")])
        running.wait_indexed(tenant, 1)
        out = tmp_path / "out"
        out.mkdir()
        target = out / "export.csv"
        target.write_text("yesterday's export\n")
        common = ["--address", running.address, f"--api-key={running.keys['auditor']}"]
        export = ["export", *common, "--tenant", tenant, "--format", "csv", "--output", str(target)]
        assert main([*export, "--filter", "(broken"]) == 1
        assert "INVALID_ARGUMENT" in capsys.readouterr().err
        assert target.read_text() == "yesterday's export\n"
        assert main([*export, "--filter", NOT_ACCESS]) == 0
        assert [r["event_id"] for r in csv.DictReader(target.open(newline=""))] == ["e-1"]
        assert list(out.iterdir()) == [target]  # nothing beside it
        assert target.stat().st_mode & 0o777 == 0o600  # it holds what the key may read
        # A destination that cannot be written: one line, exit 1, before any export.
        capsys.readouterr()
        for where in (out, out / "missing" / "export.csv"):
            assert main([*export[:-1], str(where), "--filter", NOT_ACCESS]) == 1
            assert capsys.readouterr().err.startswith(f"aiaudit export: cannot write {where}: ")
    finally:
        running.channel.close()
        running.suite.stop()


def test_an_export_to_stdout_that_cannot_be_written_names_stdout(
    tmp_path: Path,
    tenant: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """stdout full (or a pipe its reader closed) mid-export: one line naming stdout, exit 1.
    Until 2026-12-07 it read ``aiaudit export: cannot write None: ...``."""
    running = start_suite(tmp_path, "sqlite", {})
    try:
        running.append([interaction(tenant, "full-1")])
        running.wait_indexed(tenant, 1)
        common = ["--address", running.address, f"--api-key={running.keys['auditor']}"]
        with (
            open("/dev/full", "wb", buffering=0) as raw,  # every write: ENOSPC
            io.TextIOWrapper(raw) as full,
        ):
            monkeypatch.setattr(sys, "stdout", full)
            code = main(["export", *common, "--tenant", tenant, "--filter", NOT_ACCESS])
        assert code == 1
        said = _said(capsys.readouterr().err)
        assert said == ["aiaudit export: cannot write stdout: No space left on device"], said
    finally:
        running.channel.close()
        running.suite.stop()


def test_an_export_and_a_search_whose_reader_closed_the_pipe_exit_quietly(
    tmp_path: Path,
    tenant: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``aiaudit export | head``: the reader closing the pipe is no error to report (exit 1,
    nothing said), as for every command. Until 2026-12-07 the export said ``cannot write
    stdout: Broken pipe`` and a search ``aiaudit: [Errno 32] Broken pipe``."""
    running = start_suite(tmp_path, "sqlite", {})
    try:
        running.append([interaction(tenant, "pipe-1")])
        running.wait_indexed(tenant, 1)
        common = ["--address", running.address, f"--api-key={running.keys['auditor']}"]
        query = ["--tenant", tenant, "--filter", NOT_ACCESS]
        for command in (["export", *common, *query], ["search", *common, *query]):
            read, write = os.pipe()
            os.close(read)  # the reader gone before the command writes: every write fails
            with open(write, "w") as gone:
                monkeypatch.setattr(sys, "stdout", gone)
                code = main(command)
                monkeypatch.undo()
                with contextlib.suppress(BrokenPipeError):  # what the command wrote, if any
                    gone.close()
            said = _said(capsys.readouterr().err)
            assert (code, said) == (1, []), command
    finally:
        running.channel.close()
        running.suite.stop()


def _said(err: str) -> list[str]:
    """The lines the command wrote to stderr, without the JSON log lines of the servers
    running in this process (their loggers write to the same stderr once a test before
    has turned logging on)."""
    return [line for line in err.splitlines() if not line.startswith('{"time": ')]


def _aggregated(tenant: str) -> list[ev.Event]:
    """Six events 50 minutes apart: users u0 (3), u1 (2) and "" (1, no user), each with
    its output tokens (percentiles both backends compute alike)."""
    out = []
    for i, (user, tokens) in enumerate(
        [("u0", 10), ("u0", 20), ("u0", 30), ("u1", 5), ("u1", 5), ("", 1)]
    ):
        e = interaction(tenant, f"a-{i}", user=user)
        e.usage.output_tokens = tokens
        e.occurred_time.FromDatetime(AGGREGATE_START + dt.timedelta(minutes=50 * i))
        out.append(e)
    return out


AGGREGATE_START = dt.datetime(2026, 3, 1, 9, 0)


def test_aggregate_command(
    search_suite: SearchSuite, tenant: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``aiaudit aggregate``: one answer as a table or JSON; pages one at a time, each
    naming the next's token, or all of them; a bad filter is one line and exit 1."""
    search_suite.append(_aggregated(tenant))
    search_suite.wait_indexed(tenant, 6)
    key = search_suite.keys["auditor"]
    aggregate = ["aggregate", "--address", search_suite.address, f"--api-key={key}"]
    aggregate += ["--tenant", tenant, "--filter", NOT_ACCESS, "--group-by", "actor.user_id"]
    stats = ["--metric", "usage.output_tokens", "--percentile", "50", "--percentile", "100"]

    assert main([*aggregate, *stats, "--histogram", "1h"]) == 0
    out, err = capsys.readouterr()
    groups, histogram = out.split("\n\n")
    header, *rows = groups.splitlines()
    hours, *buckets = histogram.splitlines()
    assert header.split() == [
        "actor.user_id",
        "count",
        *(f"usage.output_tokens.{s}" for s in ("count", "min", "max", "avg", "sum")),
        "usage.output_tokens.p50",
        "usage.output_tokens.p100",
    ]
    assert [r.split() for r in rows] == [  # the largest group first
        ["u0", "3", "3", "10", "30", "20", "60", "20", "30"],
        ["u1", "2", "2", "5", "5", "5", "10", "5", "5"],
        ["-", "1", "1", "1", "1", "1", "1", "1", "1"],  # no user
    ]
    assert hours.split() == ["occurred_time", "count"]
    assert [b.split() for b in buckets] == [
        ["2026-03-01T09:00:00Z", "2"],
        ["2026-03-01T10:00:00Z", "1"],
        ["2026-03-01T11:00:00Z", "1"],
        ["2026-03-01T12:00:00Z", "1"],
        ["2026-03-01T13:00:00Z", "1"],
    ]
    assert _said(err) == ["3 group(s) of 6 event(s)"]

    assert main([*aggregate, "--json"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    whole = json_format.Parse(line, pb.AggregateResponse())
    assert [(list(b.keys), b.count) for b in whole.buckets] == [(["u0"], 3), (["u1"], 2), ([""], 1)]

    # One page, then the next from its token: in key order, the missing value first.
    assert main([*aggregate, "--json", "--page-size", "2"]) == 0
    out, err = capsys.readouterr()
    first = json_format.Parse(out, pb.AggregateResponse())
    assert [list(b.keys) for b in first.buckets] == [[""], ["u0"]]
    assert _said(err) == [
        "2 group(s) of 4 event(s)",
        f"next page: --page-token {first.next_page_token}",
    ]
    assert main([*aggregate, "--page-size", "2", "--page-token", first.next_page_token]) == 0
    out, err = capsys.readouterr()
    assert [r.split()[:2] for r in out.splitlines()] == [["actor.user_id", "count"], ["u1", "2"]]
    assert _said(err) == ["1 group(s) of 2 event(s)"]  # the last page: no token

    assert main([*aggregate, "--json", "--page-size", "1", "--all-pages"]) == 0
    out, err = capsys.readouterr()
    pages = [json_format.Parse(line, pb.AggregateResponse()) for line in out.splitlines()]
    assert [[list(b.keys) for b in p.buckets] for p in pages] == [[[""]], [["u0"]], [["u1"]]]
    assert _said(err) == ["3 group(s) of 6 event(s)"]

    assert main([*aggregate, "--filter", "(broken"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert _said(err)[0].startswith("aiaudit aggregate: INVALID_ARGUMENT: "), err
    assert "column 2" in err
    assert main([*aggregate, "--all-pages"]) == 2
    assert "--all-pages needs --page-size" in capsys.readouterr().err


def test_aggregate_table_prints_no_control_character_from_a_key() -> None:
    """A group's key is event data: written as ``aiaudit search`` writes values."""
    page = pb.AggregateResponse(buckets=[pb.Bucket(keys=["bob\x1b[8m\u202e"], count=1)])
    lines = aggregate_table.group_lines(page, ["actor.user_id"], [], [], visible, header=False)
    assert lines == ["bob\\x1b[8m\\u202e      1"]  # under a header's "count"


def test_aggregate_shows_a_group_without_a_metric_value_as_dashes(
    search_suite: SearchSuite, tenant: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A group none of whose events hold the metric has no statistics for it.

    Until 2026-12-07 such a group stopped the command with a traceback when
    percentiles were asked (its row had fewer cells than the header, or the
    header fewer than the rows when it came first), and without percentiles
    showed a min, max, avg and sum of 0 its events do not have.
    """
    events = _aggregated(tenant)
    for e in events[:3]:  # u0's events only
        e.timing.latency.FromMilliseconds(250)
    search_suite.append(events)
    search_suite.wait_indexed(tenant, 6)
    key = search_suite.keys["auditor"]
    aggregate = ["aggregate", "--address", search_suite.address, f"--api-key={key}"]
    aggregate += ["--tenant", tenant, "--filter", NOT_ACCESS, "--group-by", "actor.user_id"]
    aggregate += ["--metric", "timing.latency"]
    for order, first in (([], "u0"), (["--page-size", "3"], "-")):  # u0 first, then last
        assert main([*aggregate, "--percentile", "50", *order]) == 0
        out, err = capsys.readouterr()
        header, *rows = out.splitlines()
        assert header.split()[-1] == "timing.latency.p50"
        by_key = {r.split()[0]: r.split() for r in rows}
        assert rows[0].split()[0] == first
        assert by_key["u0"] == ["u0", "3", "3", "0.25", "0.25", "0.25", "0.75", "0.25"]
        assert by_key["u1"] == ["u1", "2", "0", "-", "-", "-", "-", "-"]
        assert by_key["-"] == ["-", "1", "0", "-", "-", "-", "-", "-"]
        assert _said(err)[0] == "3 group(s) of 6 event(s)"
    assert main(aggregate) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [r.split() for r in rows][1:] == [
        ["u1", "2", "0", "-", "-", "-", "-"],
        ["-", "1", "0", "-", "-", "-", "-"],
    ]


def test_aggregate_all_pages_prints_the_histogram_after_every_group(
    search_suite: SearchSuite, tenant: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The histogram comes on the first page only; the groups of every page come first.

    Until 2026-12-07 it was printed after the first page's groups, and the later
    pages' groups under it, as if they were time buckets; and each page's columns
    were as wide as its own cells, not under the header.
    """
    search_suite.append(_aggregated(tenant))
    search_suite.wait_indexed(tenant, 6)
    key = search_suite.keys["auditor"]
    aggregate = ["aggregate", "--address", search_suite.address, f"--api-key={key}"]
    aggregate += ["--tenant", tenant, "--filter", NOT_ACCESS, "--group-by", "actor.user_id"]
    assert main([*aggregate, "--histogram", "1h", "--page-size", "1", "--all-pages"]) == 0
    out, err = capsys.readouterr()
    groups, histogram = out.split("\n\n")
    assert len({len(r) for r in groups.splitlines()}) == 1  # each page's under the header
    assert [r.split() for r in groups.splitlines()] == [
        ["actor.user_id", "count"],
        ["-", "1"],
        ["u0", "3"],
        ["u1", "2"],
    ]
    assert histogram.splitlines()[0].split() == ["occurred_time", "count"]
    assert len(histogram.splitlines()) == 6
    assert _said(err) == ["3 group(s) of 6 event(s)"]


_FOUR = ("user_id", "application", "agent_name", "agent_id")
"""Keyword fields of 256 characters at most: four make a row of 1 KB."""


def test_aggregate_all_pages_failing_mid_way_names_the_page_to_go_on_from(
    tmp_path: Path, tenant: str
) -> None:
    """The server gone after some pages: the error, what was printed, the next token, exit 1.

    The command runs in its own process with its output unread: once the pipe
    holds 20 KB (of 150 KB) the server stops, then the output is read and the
    command asks for its next page. Until 2026-12-07 it said the error alone:
    the groups printed so far were a part of the answer, with no token to fetch
    the rest from (a table shows none).
    """
    running = start_suite(tmp_path, "sqlite", {})
    stopped = False
    try:
        users = [f"u{i:03d}" + "x" * 252 for i in range(150)]  # a 1 KB row a page
        events = [interaction(tenant, f"m-{i}", user=u) for i, u in enumerate(users)]
        for e in events:
            e.actor.application = e.actor.agent_name = e.actor.agent_id = e.actor.user_id
            e.occurred_time.FromDatetime(AGGREGATE_START)
        running.append(events)
        running.wait_indexed(tenant, len(users))
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aiaudit.cli.main",
                "aggregate",
                "--address",
                running.address,
                f"--api-key={running.keys['auditor']}",
                "--tenant",
                tenant,
                "--filter",
                NOT_ACCESS,
                *(f"--group-by=actor.{f}" for f in _FOUR),
                "--histogram",
                "1d",
                "--page-size",
                "1",
                "--all-pages",
            ],
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:

            def unread() -> int:
                buf = bytearray(4)
                fcntl.ioctl(proc.stdout.fileno(), termios.FIONREAD, buf)  # type: ignore[union-attr]
                return int.from_bytes(buf, sys.byteorder)

            # Mid-way for good: the pipe holds at most 64 KB, its reader reads nothing yet.
            wait_until(lambda: proc.poll() is not None or unread() >= 20_000, timeout=60)
            assert proc.poll() is None, "finished before the server stopped"
            running.suite.stop()
            stopped = True
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 1, err
        groups, histogram = out.split("\n\n")
        printed = [r.split()[0] for r in groups.splitlines()[1:]]
        assert 0 < len(printed) < len(users) and printed == users[: len(printed)]
        assert [h.split() for h in histogram.splitlines()][1:] == [["2026-03-01T00:00:00Z", "150"]]
        failure, summary, token = _said(err)
        # UNAVAILABLE, or CANCELLED for a page the server was answering as it stopped.
        assert re.match("aiaudit aggregate: (UNAVAILABLE|CANCELLED): ", failure), err
        assert summary == f"{len(printed)} group(s) of {len(printed)} event(s)"
        assert token.startswith("next page: --page-token ")
        after = token.removeprefix("next page: --page-token ")
        raw = base64.urlsafe_b64decode(after + "=" * (-len(after) % 4))  # readable JSON
        assert printed[-1].encode() in raw  # on from the last group printed
    finally:
        running.channel.close()
        if not stopped:
            running.suite.stop()


MAX_ARG_STRLEN = 131_072
"""The longest argument Linux passes to a program, its NUL included (32 pages)."""
_LONG_KEYS = ("actor.user_role", "actor.agent_name", "actor.agent_id", "model.version")
"""Keyword fields of up to 4,096 characters (``user_id`` and ``application`` are 256)."""


def test_aggregate_goes_on_from_a_token_too_long_for_the_command_line(
    search_suite: SearchSuite, tenant: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Four keys of 4,096 control characters, 6 bytes each in the token's JSON: the
    next page's token (about 131,170 characters) is longer than any argument Linux
    passes, so ``--page-token`` cannot carry it. ``--page-token-file`` reads it from a
    file, or from stdin (``-``); until 2026-12-07 such an aggregate could not be gone
    on with from the command line."""
    keys = ["\x01" * 4095 + last for last in "ab"]
    events = [interaction(tenant, f"long-{i}") for i in range(len(keys))]
    for e, key in zip(events, keys, strict=True):
        e.actor.user_role = e.actor.agent_name = e.actor.agent_id = e.model.version = key
    search_suite.append(events)
    search_suite.wait_indexed(tenant, len(events))
    aggregate = ["aggregate", "--address", search_suite.address, "--tenant", tenant]
    aggregate += [f"--api-key={search_suite.keys['auditor']}", "--filter", NOT_ACCESS]
    aggregate += [f"--group-by={f}" for f in _LONG_KEYS]
    aggregate += ["--page-size", "1", "--json"]
    assert main(aggregate) == 0
    first = json_format.Parse(capsys.readouterr().out, pb.AggregateResponse())
    token = first.next_page_token
    assert len(token) >= MAX_ARG_STRLEN
    with pytest.raises(OSError) as refused:  # the kernel runs no program given it
        subprocess.run([sys.executable, "-c", "", token], check=False)
    assert refused.value.errno == errno.E2BIG

    saved = tmp_path / "token"
    saved.write_text(token + "\n")  # as `jq -r .nextPageToken` writes it
    assert main([*aggregate, "--page-token-file", str(saved)]) == 0
    out, err = capsys.readouterr()
    second = json_format.Parse(out, pb.AggregateResponse())
    assert [list(b.keys) for b in second.buckets] == [[keys[1]] * 4]
    assert _said(err) == ["1 group(s) of 1 event(s)"]  # the last page: no token
    proc = subprocess.run(
        [sys.executable, "-m", "aiaudit.cli.main", *aggregate, "--page-token-file", "-"],
        input=token,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json_format.Parse(proc.stdout, pb.AggregateResponse()) == second


def test_a_page_token_file_without_a_token_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Named, with why, before any call; with ``--page-token`` as well, argparse's usage."""
    aggregate = ["aggregate", "--tenant", "t", "--page-size", "1", "--page-token-file"]
    missing, empty, binary, large = (tmp_path / n for n in ("missing", "empty", "bin", "large"))
    empty.write_text("\n")
    binary.write_bytes(b"\xff\xfe token")
    large.write_bytes(b"A" * (2 << 20))
    for path, why in [
        (missing, f"cannot read --page-token-file {missing}: No such file or directory"),
        (tmp_path, f"cannot read --page-token-file {tmp_path}: Is a directory"),
        (empty, f"--page-token-file {empty} is empty"),
        (binary, f"--page-token-file {binary} holds no page token (not ASCII)"),
        (large, f"--page-token-file {large} is over 1,048,576 bytes: no page token is"),
    ]:
        assert main([*aggregate, str(path)]) == 2
        out, err = capsys.readouterr()
        assert (out, _said(err)) == ("", [f"aiaudit aggregate: {why}"])
    with pytest.raises(SystemExit) as usage:
        main([*aggregate, str(empty), "--page-token", "x"])
    assert usage.value.code == 2
    assert "not allowed with argument --page-token-file" in capsys.readouterr().err


def _aggregate_from_stdin(
    shell: str, stdin: int | None = None, path: str = "-"
) -> tuple[int, str, str]:
    """``aiaudit aggregate --page-token-file -`` (or ``path``) run by ``sh -c shell``
    (``"$@"``: the command) as a process of its own, no server asked: its exit code,
    stdout, stderr."""
    aggregate = ["aggregate", "--tenant", "t", "--page-size", "1", "--page-token-file", path]
    done = subprocess.run(
        ["sh", "-c", shell, "sh", sys.executable, "-m", "aiaudit.cli.main", *aggregate],
        stdin=stdin,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


def test_a_page_token_from_a_stdin_with_nothing_to_read_is_one_line_and_exit_2() -> None:
    """A stdin closed at the start (``<&-``: Python's ``sys.stdin`` is None) and a
    non-blocking one with nothing in it yet (its read is None): until 2026-12-07 each
    ended the command with a traceback, exit 1 (review)."""
    why = "cannot read --page-token-file stdin: Bad file descriptor"
    assert _aggregate_from_stdin('exec "$@" <&-') == (2, "", f"aiaudit aggregate: {why}\n")
    read, write = os.pipe()
    try:
        os.set_blocking(read, False)
        waiting = _aggregate_from_stdin('exec "$@"', stdin=read)
    finally:
        os.close(read)
        os.close(write)
    why = "cannot read --page-token-file stdin: Resource temporarily unavailable"
    assert waiting == (2, "", f"aiaudit aggregate: {why}\n")


@pytest.mark.parametrize("path", ["-", "/dev/stdin"])
def test_a_page_token_file_on_a_terminal_is_one_line_and_exit_2(path: str) -> None:
    """A terminal is read to its end (Ctrl-D), not its line: until 2026-12-07 the
    command sat there after the token's Enter (review). A line there holds at most
    4,095 characters, none of the tokens this option is for: it is refused."""
    terminal, line = os.openpty()
    try:
        os.write(terminal, b"token\n")  # typed, Enter, and no Ctrl-D
        done = _aggregate_from_stdin('exec "$@"', stdin=line, path=path)
    finally:
        os.close(line)
        os.close(terminal)
    where = "stdin" if path == "-" else path
    why = f"--page-token-file {where} is a terminal: pipe the token in, or name its file"
    assert done == (2, "", f"aiaudit aggregate: {why}\n")


def test_a_page_token_file_named_dash_in_a_directory_is_that_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``./-`` is the file ``-`` here, not stdin: until 2026-12-07 the argument was a
    ``Path``, which drops the ``./`` (review)."""
    (tmp_path / "-").write_text("\n")
    monkeypatch.chdir(tmp_path)
    aggregate = ["aggregate", "--tenant", "t", "--page-size", "1", "--page-token-file", "./-"]
    assert main(aggregate) == 2
    out, err = capsys.readouterr()
    assert (out, _said(err)) == ("", ["aiaudit aggregate: --page-token-file ./- is empty"])
