"""Bundle edits the two verifiers named differently, found by a mutation review (2026-12-07).

Every field of every line of real exports (a sealed search export, a range export, an
empty sealed export) was changed, lines dropped, repeated, moved and cut short, and both
verifiers, ``aiaudit verify --bundle`` and ``interop/go-verifier``, run on each result. Each
edit was refused by both, but some were named differently, or counted differently in a
seal; each such case is here, with the same problem lines expected of both (``both``).
The bundles are built in memory, as ``test_bundle_seal`` builds them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aiaudit.cli.main import main
from aiaudit.integrity.cli import NOTHING_VERIFIED
from tests import go_verifier as go
from tests.integrity.conftest import ORIGIN_PREFIX
from tests.integrity.test_bundle_seal import sealed_export
from tests.integrity.test_cli import TENANT, Line, key_of, write
from tests.integrity.test_go_verifier import both

LAST_INDEX = 2**64 - 1


@pytest.mark.parametrize("sequence", [-1, LAST_INDEX + 1, 10**30])
def test_a_sequence_no_leaf_can_have_is_a_malformed_line_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path, sequence: int
) -> None:
    """Go reads a line's sequence as a uint64 and called -1 or 2**64 a malformed line, left
    out of the seal's count (`1 missing`); aiaudit read any integer, counted the line and
    named it `proof index 0 is not the event's sequence -1` and the seal's digest as not
    the lines'."""
    lines = sealed_export(tmp_path)
    lines[1] = {**lines[1], "sequence": sequence}
    assert both(go_verifier, capsys, write(tmp_path / "b.jsonl", lines)) == (
        1,
        [
            f"line 2 event e-0: malformed line: field 'sequence' must be an integer from 0 "
            f"to {LAST_INDEX}, not {sequence}",
            "line 5 seal: the closing record counts 3 event line(s) and the bundle holds 2: "
            "1 missing (a line removed)",
        ],
    )


@pytest.mark.parametrize("sequence", [2**63, LAST_INDEX])
def test_two_lines_at_one_sequence_past_int64_are_a_duplicate_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path, sequence: int
) -> None:
    """aiaudit kept a log's sequences in int64 ranges and skipped those from 2**63: two
    lines there were no duplicate, where Go named the second one."""
    lines = sealed_export(tmp_path)
    lines[1] = {**lines[1], "sequence": sequence}
    lines[2] = {**lines[2], "sequence": sequence}
    status, problems = both(go_verifier, capsys, write(tmp_path / "b.jsonl", lines))
    assert status == 1
    assert "line 3 event e-1: duplicate: line 2 has the same log and sequence" in problems


def test_a_proof_index_past_64_bits_is_a_malformed_line_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path
) -> None:
    """Go's tlog-proof library refuses an index past 2**64 - 1 (a malformed line, not
    counted in the seal), aiaudit read it, counted the line and found the seal whole: one
    problem against two. The malformed line is named in each verifier's words (the
    tlog-proof's spelling, README), the seal's problem alike."""
    lines = sealed_export(tmp_path)
    proof = lines[1]["tlog_proof"].replace("\nindex 0\n", f"\nindex {LAST_INDEX + 1}\n")
    lines[1] = {**lines[1], "tlog_proof": proof}
    python, independent = verdicts(go_verifier, capsys, write(tmp_path / "b.jsonl", lines))
    seal = (
        "line 5 seal: the closing record counts 3 event line(s) and the bundle holds 2: "
        "1 missing (a line removed)"
    )
    assert python == [
        f"line 2 event e-0: malformed line: tlog-proof index {LAST_INDEX + 1} is past "
        f"{LAST_INDEX}, the last leaf index",
        seal,
    ]
    assert len(independent) == 2 and independent[1] == seal, independent
    assert independent[0].startswith("line 2 event e-0: tlog-proof: "), independent


def verdicts(
    go_verifier: Path, capsys: pytest.CaptureFixture[str], path: Path
) -> tuple[list[str], list[str]]:
    """Each verifier's problem lines, both exiting 1 (``both`` for lines worded alike)."""
    key = key_of(path.parent)
    python = ["verify", "--bundle", str(path), "--verifier-key", key]
    assert main([*python, "--origin-prefix", ORIGIN_PREFIX]) == 1
    problems = capsys.readouterr().out.splitlines()
    check = ["bundle", "-verifier-key", key, "-origin-prefix", ORIGIN_PREFIX, path]
    independent = go.run(go_verifier, *check)
    assert independent.returncode == 1, independent.stdout + independent.stderr
    *found, count = independent.stdout.splitlines()
    assert count == f"3 event(s) checked, {len(problems)} problem(s)"
    return problems, found


def _lone(line: Line, member: str) -> Line:
    """The line with a lone surrogate escaped in ``member`` (a content value or path too)."""
    if member == "content value":
        return {**line, "content": {path: "\udc80" for path in line["content"]}}
    if member == "content path":
        return {**line, "content": {f"{path}\ud800": v for path, v in line["content"].items()}}
    return {**line, member: line[member] + "\ud800"}


@pytest.mark.parametrize(
    ("member", "named"),
    [
        ("event_id", "event_id"),
        ("log_id", "log_id"),
        ("content value", "content"),
        ("content path", "content"),
    ],
)
def test_a_line_escaping_a_lone_surrogate_is_malformed_in_both_verifiers(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    go_verifier: Path,
    member: str,
    named: str,
) -> None:
    """The README says both verifiers call such a line malformed; only Go did. aiaudit read
    the surrogate as itself: `canonical eventId/tenantId are not the line's ...` for an id,
    `bytes 'utf-8' codec can't encode ...` for a content value, `content without a
    commitment` for a path, and counted the line in the seal, which Go found `1 missing`."""
    lines = sealed_export(tmp_path)
    lines[1] = _lone(lines[1], member)
    assert both(go_verifier, capsys, write(tmp_path / "b.jsonl", lines)) == (
        1,
        [
            f'line 2 event ?: malformed line: the value of "{named}" escapes a lone surrogate '
            "(read elsewhere as U+FFFD)",
            "line 5 seal: the closing record counts 3 event line(s) and the bundle holds 2: "
            "1 missing (a line removed)",
        ],
    )


def test_an_empty_event_or_log_id_is_named_alike_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path
) -> None:
    """The Go verifier kept a check from before it read lines strictly, `log_id, event_id
    and sequence are required`, for an empty id: a string aiaudit reads like any other
    and names by what it fails (the canonical form's id, the checkpoint's origin)."""
    lines = sealed_export(tmp_path)
    lines[1] = {**lines[1], "event_id": ""}
    lines[2] = {**lines[2], "log_id": ""}
    assert both(go_verifier, capsys, write(tmp_path / "b.jsonl", lines)) == (
        1,
        [
            "line 2 event ?: canonical eventId/tenantId are not the line's event_id/log_id",
            f"line 3 event e-1: checkpoint origin '{ORIGIN_PREFIX}/{TENANT}' is not "
            f"{ORIGIN_PREFIX}/",
            f"line 3 event e-1: log '' is not the scope's log '{TENANT}' (line 1)",
        ],
    )


def test_a_scope_line_after_the_seal_is_a_problem_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path
) -> None:
    """A scope line must be the bundle's first (README): only an event line before it
    counted, so an empty export's seal moved before its scope verified in both, `complete:
    the export matched no event`, from a file the export did not write."""
    scope, seal = sealed_export(tmp_path, exported=())
    assert both(go_verifier, capsys, write(tmp_path / "b.jsonl", [scope, seal]))[0] == 0
    assert both(go_verifier, capsys, write(tmp_path / "b.jsonl", [seal, scope])) == (
        1,
        [
            "line 2 scope: a scope line must be the bundle's first line (an export writes it "
            "first)",
            "line 1 seal: a seal closes the export its scope line names, and the bundle has none",
            NOTHING_VERIFIED,
        ],
    )
