"""Only the client commands take the client options (``--address``, ``--api-key``, TLS).

Every command took them until 2026-12-07, and listed them in its ``--help``; the ones
that call no server ignored them: ``aiaudit verify --address HOST`` seemed to verify
that server's store.
"""

from __future__ import annotations

import pytest

from aiaudit.cli.main import main

NOT_CLIENTS = [
    (["serve"], []),
    (["db", "migrate"], []),
    (["db", "partitions"], []),
    (["db", "reindex-erasures"], []),
    (["erase"], ["--tenant", "t", "--reason", "r"]),
    (["verify"], []),
    (["content-keys", "bootstrap-vault"], []),
    (["content-keys", "rewrap"], []),
    (["alerting", "redeliver"], ["--sink", "webhook"]),
    (["integrity", "bootstrap-vault"], []),
    (["integrity", "export-bundle"], ["--log", "t", "out.jsonl"]),
    (["integrity", "accept-loss"], ["--log", "t", "--reason", "r"]),
]

OPTIONS = [
    ["--address", "h:1"],
    ["--api-key", "k"],
    ["--ca-file", "ca.pem"],
    ["--client-cert", "c.pem"],
    ["--client-key", "k.pem"],
]

REFUSED = [
    (path, needed, option)
    for path, needed in NOT_CLIENTS
    for option in OPTIONS
    if not (path == ["serve"] and option[0] == "--address")  # serve's: where it serves
]


@pytest.mark.parametrize(
    ("path", "needed", "option"), REFUSED, ids=[f"{' '.join(p)} {o[0]}" for p, _, o in REFUSED]
)
def test_a_command_that_calls_no_server_refuses_the_client_options(
    path: list[str], needed: list[str], option: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*path, *needed, *option])
    assert exited.value.code == 2
    assert f"unrecognized arguments: {' '.join(option)}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "path", [p for p, _ in NOT_CLIENTS], ids=[" ".join(p) for p, _ in NOT_CLIENTS]
)
def test_their_help_lists_no_client_option(
    path: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*path, "--help"])
    assert exited.value.code == 0
    listed = capsys.readouterr().out
    assert [o for o, _ in OPTIONS[1:] if o in listed] == []
    assert ("--address" in listed) == (path == ["serve"])


@pytest.mark.parametrize(
    "path",
    [["demo"], ["search"], ["aggregate"], ["export"], ["integrity", "verifier-key"]],
    ids=" ".join,
)
def test_the_client_commands_list_them(path: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([*path, "--help"])
    listed = capsys.readouterr().out
    assert [o for o, _ in OPTIONS if o not in listed] == []


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: o[0])
def test_verifier_key_local_refuses_them(
    option: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--local`` calls no server: ``--local --address HOST`` printed this machine's key."""
    monkeypatch.setenv("AIAUDIT_API_KEY", "from-the-environment")  # its default: not refused
    with pytest.raises(SystemExit) as exited:
        main(["integrity", "verifier-key", "--local", *option])
    assert exited.value.code == 2
    said = capsys.readouterr().err
    assert f"argument {option[0]}: not allowed with argument --local" in said
