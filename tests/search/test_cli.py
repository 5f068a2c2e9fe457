"""`aiaudit search` and `aiaudit export` against a running server."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from aiaudit.cli.main import main
from tests.helpers import interaction
from tests.search.conftest import NOT_ACCESS, start_suite


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
