"""Every edit of a sealed export's fields and lines is refused by both verifiers, alike.

A sealed search export (scope, three events with content, seal: ``test_bundle_seal``'s)
is edited one value at a time, each edit keeping the value's type and spelling (a byte
of a base64 value flipped and encoded again; a text with a character added, emptied, or
ending in an escaped lone surrogate; a number plus one, -1 or 2**64; a content path left
out; each line of a tlog-proof edited in its own form) and one line at a time (left out,
repeated, moved first). ``aiaudit verify --bundle`` and
``interop/go-verifier`` must both exit 1, print as many problems, on the same lines.
Only leaving out the seal keeps a bundle that verifies: it is then unsealed, and says its
selection is not proven (README). Found by the review of 2026-12-07, which ran this on
real exports (``tests/integrity/test_bundle_agreement.py`` holds what it found).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aiaudit.cli.main import main
from aiaudit.common import canonical
from tests import go_verifier as go
from tests.integrity.conftest import ORIGIN_PREFIX
from tests.integrity.test_bundle_seal import sealed_export
from tests.integrity.test_cli import Line, key_of

Edit = Callable[[list[Line]], list[Line]]


def _flip(value: str, at: int) -> str:
    """A canonical base64 value with one bit of its byte ``at`` flipped, encoded again."""
    raw = bytearray(base64.b64decode(value))
    raw[at % len(raw)] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _b64(value: str) -> bool:
    try:
        return len(value) >= 4 and canonical.b64decode_canonical(value) != b""
    except ValueError:
        return False


def _proof_edits(proof: str) -> Iterator[tuple[str, str]]:
    """A tlog-proof edited line by line, each value in its own form."""
    rows = proof.split("\n")
    for i, row in enumerate(rows):
        if row.startswith("index "):
            yield "index", "\n".join([*rows[:i], f"index {int(row[6:]) + 1}", *rows[i + 1 :]])
        elif row.startswith("\u2014 "):  # a signature: keyid || signature
            name, sig = row.rsplit(" ", 1)
            for at in (0, -1):  # the key id, the signature
                edited = f"{name} {_flip(sig, at)}"
                yield f"signature byte {at}", "\n".join([*rows[:i], edited, *rows[i + 1 :]])
        elif re.fullmatch(r"[0-9]+", row):
            yield "checkpoint size", "\n".join([*rows[:i], str(int(row) + 1), *rows[i + 1 :]])
        elif _b64(row):
            yield f"proof row {i}", "\n".join([*rows[:i], _flip(row, 0), *rows[i + 1 :]])
        elif row.startswith(ORIGIN_PREFIX):
            yield "checkpoint origin", "\n".join([*rows[:i], row + "x", *rows[i + 1 :]])


def _values(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str, Any]]:
    """(where, edited value) for each leaf of a line's JSON value, in its own form."""
    where = "/".join(map(str, path))
    if isinstance(value, dict):
        for k, v in value.items():
            for at, edited in _values(v, (*path, k)):
                yield at, {**value, k: edited}
        if path and path[-1] == "content" and value:
            yield f"{where} a path left out", dict(list(value.items())[1:])
    elif isinstance(value, list):
        for i, v in enumerate(value):
            for at, edited in _values(v, (*path, i)):
                yield at, [*value[:i], edited, *value[i + 1 :]]
    elif isinstance(value, bool):
        pass
    elif isinstance(value, int):
        for edited in (value + 1, -1, 2**64):
            yield f"{where} {edited}", edited
    elif isinstance(value, str) and path[-1] == "tlog_proof":
        for what, edited in _proof_edits(value):
            yield f"{where} {what}", edited
    elif isinstance(value, str) and _b64(value):
        yield f"{where} byte 0", _flip(value, 0)
    elif isinstance(value, str):
        for edited in (value + "x", "", value + "\ud800"):
            yield f"{where} {edited!r}", edited


def _edits(lines: list[Line]) -> Iterator[tuple[str, Edit]]:
    def put(i: int, edited: Line) -> Edit:
        return lambda ls: [*ls[:i], edited, *ls[i + 1 :]]

    for i, line in enumerate(lines):
        for where, edited in _values(line):
            if edited != line:
                yield f"line {i + 1} {where}", put(i, edited)
        if i < len(lines) - 1:  # leaving out the seal leaves an unsealed export
            yield f"line {i + 1} left out", lambda ls, i=i: [*ls[:i], *ls[i + 1 :]]
        yield f"line {i + 1} twice", lambda ls, i=i: [*ls[: i + 1], *ls[i:]]
        if i:
            yield f"line {i + 1} first", lambda ls, i=i: [ls[i], *ls[:i], *ls[i + 1 :]]


def _verdicts(
    path: Path, go_verifier: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, list[str], int, list[str]]:
    """aiaudit's exit status and problem lines, then the Go verifier's."""
    key = key_of(path.parent)
    python = ["verify", "--bundle", str(path), "--verifier-key", key]
    status = main([*python, "--origin-prefix", ORIGIN_PREFIX])
    problems = capsys.readouterr().out.splitlines()
    check = ["bundle", "-verifier-key", key, "-origin-prefix", ORIGIN_PREFIX, path]
    independent = go.run(go_verifier, *check)
    return status, problems, independent.returncode, independent.stdout.splitlines()[:-1]


def _where(problem: str) -> str:
    """``line N event E`` or ``line N seal``/``scope``: what a problem is of."""
    return problem.split(":", 1)[0]


def test_every_edit_of_a_sealed_export_is_refused_alike_by_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path
) -> None:
    lines = sealed_export(tmp_path)
    path = tmp_path / "b.jsonl"

    def written(ls: list[Line]) -> Path:
        path.write_text("".join(json.dumps(line) + "\n" for line in ls))
        return path

    assert _verdicts(written(lines), go_verifier, capsys)[::2] == (0, 0)
    assert _verdicts(written(lines[:-1]), go_verifier, capsys)[::2] == (0, 0)  # unsealed
    wrong = []
    edits = list(_edits(lines))
    for name, edit in edits:
        status, python, go_status, found = _verdicts(written(edit(lines)), go_verifier, capsys)
        if (status, go_status) != (1, 1) or [*map(_where, python)] != [*map(_where, found)]:
            wrong.append(f"{name}: aiaudit {status} {python}; Go {go_status} {found}")
    assert not wrong, "\n".join(wrong)
    assert len(edits) > 140  # every field of each of the 5 lines, and each line
