"""What the user's environment gets wrong reaches them as one line and an exit code.

A server that is down, a port in use, a path that does not exist, a database
out of reach: each used to end the command in a Python traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import json_format

from aiaudit.cli.main import main
from tests.conftest import serve_suite
from tests.helpers import free_port, interaction, run_into_closed_pipe


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("aiaudit: ")]
    assert len(lines) == 1, err
    return lines[0]


def test_a_server_that_is_down(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--address", f"127.0.0.1:{free_port()}"]) == 1
    assert "UNAVAILABLE" in _one_line_error(capsys)


def test_serve_on_a_port_in_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "first").mkdir()
    first, _ = serve_suite(tmp_path / "first", services=("ingest",))
    try:
        argv = ["serve", "--address", f"127.0.0.1:{first.port}", "--data-dir", str(tmp_path)]
        assert main(argv) == 1
    finally:
        first.stop()
    assert "cannot bind" in _one_line_error(capsys)


def test_a_database_out_of_reach(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"postgresql+psycopg://nobody:secret-pw@127.0.0.1:{free_port()}/aiaudit"
    assert main(["db", "migrate", "--database-url", url]) == 1
    line = _one_line_error(capsys)
    assert "cannot use the database" in line and "secret-pw" not in line


def test_serve_workers_on_a_port_in_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Workers bind with SO_REUSEPORT and joined another server's port: two stores then
    split its connections."""
    (tmp_path / "first").mkdir()
    first, _ = serve_suite(tmp_path / "first", services=("ingest",))
    try:
        argv = ["serve", "--address", f"127.0.0.1:{first.port}", "--data-dir", str(tmp_path)]
        assert main([*argv, "--services", "ingest", "--workers", "2"]) == 1
    finally:
        first.stop()
    assert "cannot bind" in _one_line_error(capsys)


def _serve_config(tmp_path: Path, text: str) -> list[str]:
    """``serve`` with a config file holding ``text``, data in ``tmp_path``, on a free port."""
    f = tmp_path / "config.yaml"
    f.write_text(text)
    return [
        "serve",
        "--config",
        str(f),
        "--data-dir",
        str(tmp_path / "data"),
        "--address",
        f"127.0.0.1:{free_port()}",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "max_message_bytes: 99999999999\n",
            "'max_message_bytes': 99999999999; at most 2147483647",
        ),
        (
            "max_event_bytes: 8388608\nmax_message_bytes: 8388608\n",
            "'max_message_bytes': 8388608 leaves no room for an event of max_event_bytes",
        ),
    ],
)
def test_a_message_size_grpc_cannot_take(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    """99999999999 crashed serve with gRPC's OverflowError traceback and exit 1; a message
    no bigger than the largest event let gRPC refuse such events before ingest saw them."""
    assert main(_serve_config(tmp_path, text)) == 2
    line = _one_line_error(capsys)
    assert line.startswith("aiaudit: configuration error: setting ") and message in line


@pytest.mark.parametrize("health", ["garbage", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536"])
def test_a_health_address_that_is_no_host_and_port(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], health: str
) -> None:
    """'garbage' exited 1 after gRPC's own E... add_port.cc line, not naming the setting;
    port 0 bound a port no probe could know."""
    assert main(_serve_config(tmp_path, f"health_address: '{health}'\n")) == 2
    line = _one_line_error(capsys)
    assert f"setting 'health_address': {health!r} is not HOST:PORT" in line
    assert not (tmp_path / "data").exists()  # refused before anything was made


def test_a_health_address_whose_host_does_not_resolve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """gRPC resolved it only when it bound, after the store was migrated and the services
    started: exit 1 after its own E... add_port.cc line, and the server left running."""
    health = "no-such-host.invalid:8081"
    assert main(_serve_config(tmp_path, f"health_address: '{health}'\n")) == 2
    line = _one_line_error(capsys)
    assert f"setting 'health_address': {health!r}: the host does not resolve" in line
    assert not (tmp_path / "data").exists()  # refused before anything was made


def test_workers_beyond_the_bound(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The bound is checked first: a slip is named as one whichever services are given."""
    assert main([*_serve_config(tmp_path, ""), "--workers", "100"]) == 2
    line = _one_line_error(capsys)
    assert line.startswith("aiaudit: configuration error: setting 'workers': 100; at most 16")


def test_a_misspelt_variable_of_a_service_not_hosted(tmp_path: Path) -> None:
    """An ingest pod took ``AIAUDIT_ALERTING_WEBHOOK_URLL`` silently: only a process hosting
    alerting checked alerting's variables. A process of its own, since the old code served."""
    argv = _serve_config(tmp_path, "")
    env = {**os.environ, "AIAUDIT_ALERTING_WEBHOOK_URLL": "https://hooks.example"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiaudit.cli.main", *argv, "--services", "ingest"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    served = proc.stdout.readline()  # "aiaudit serving on ..." if it serves; "" once it exits
    if served:
        proc.terminate()
    err = proc.stderr.read()
    assert (proc.wait(), served) == (2, ""), err
    assert "Traceback" not in err
    assert "environment variable AIAUDIT_ALERTING_WEBHOOK_URLL: no such setting" in err
    assert "did you mean AIAUDIT_ALERTING_WEBHOOK_URL?" in err
    assert not (tmp_path / "data").exists()


def test_a_data_dir_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``serve --data-dir /etc/hostname`` exited 1 with 'aiaudit: [Errno 17] File exists',
    naming neither the setting nor the path."""
    afile = tmp_path / "hostname"
    afile.write_text("not a directory\n")
    for data_dir, says in (
        (afile, f"setting 'data_dir': {afile} exists and is not a directory"),
        (afile / "data", f"setting 'data_dir': cannot make the directory {afile / 'data'}: "),
    ):
        argv = ["serve", "--data-dir", str(data_dir), "--address", f"127.0.0.1:{free_port()}"]
        assert main(argv) == 2
        line = _one_line_error(capsys)
        assert line.startswith(f"aiaudit: configuration error: {says}"), line


def test_a_misspelt_environment_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``AIAUDIT_MAX_BATCH_EVENT=10`` was ignored, where ``max_batch_event: 10`` in the file
    is refused. Every command reads its settings as ``serve`` does; this one returns."""
    monkeypatch.setenv("AIAUDIT_MAX_BATCH_EVENT", "10")
    assert main(["db", "migrate", "--data-dir", str(tmp_path)]) == 2
    line = _one_line_error(capsys)
    assert "environment variable AIAUDIT_MAX_BATCH_EVENT: no such setting" in line
    assert "did you mean AIAUDIT_MAX_BATCH_EVENTS?" in line
    assert list(tmp_path.iterdir()) == []  # refused before the store was made


@pytest.mark.parametrize("command", ["check", "test"])
def test_a_reader_that_closed_the_pipe(tmp_path: Path, command: str) -> None:
    """``aiaudit rules test R E | head`` (or ``verify``, ``search``...) said ``aiaudit:
    [Errno 32] Broken pipe``: a reader that stops reading is no error. Exit 1 (the command
    did not finish), nothing said. A process of its own: the real stdout and the exit."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - id: a\n    severity: low\n    when: {field: actor.user_id, exists: true}\n"
    )
    events = tmp_path / "events.jsonl"
    line = json_format.MessageToJson(interaction("t", event_id="e"), indent=None)
    events.write_text(f"{line}\n" * 1000)
    files = [str(rules)] if command == "check" else [str(rules), str(events)]
    proc = run_into_closed_pipe(["rules", command, *files])
    assert (proc.returncode, proc.stderr) == (1, "")


@pytest.mark.parametrize(
    ("command", "text", "says"),
    [
        (
            ["db", "migrate"],
            "log_level: INFO\nmax_batch_event: 10\n",
            "line 2: unknown setting 'max_batch_event' (did you mean max_batch_events?)",
        ),
        (
            ["verify"],
            "log_level: INFO\nintegrity:\n  key_name: n\n  origin_prefx: x\n",
            "line 4: unknown setting 'integrity.origin_prefx' (did you mean "
            "integrity.origin_prefix?)",
        ),
    ],
)
def test_a_misspelt_key_of_the_config_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str], text: str, says: str
) -> None:
    """``max_batch_event: 10`` said ``unknown setting(s) max_batch_event``: neither the file,
    nor the line, nor what was meant, as a misspelt variable's refusal says."""
    f = tmp_path / "config.yaml"
    f.write_text(text)
    assert main([*command, "--config", str(f), "--data-dir", str(tmp_path / "data")]) == 2
    line = _one_line_error(capsys)
    assert line == f"aiaudit: configuration error: config file {f}, {says}"
    assert not (tmp_path / "data").exists()  # refused before the store was made
