"""Content put back after its erasure, in an offline bundle: both verifiers name it.

Content restored from a backup taken before its erasure is served again; ``verify`` and
``VerifyEvent`` name it in the store since 2026-12-07, but a bundle exported from that
store showed the content with its salt, the erasure record after it, and verified clean
in both offline verifiers (``verify --bundle`` and ``interop/go-verifier``): bundles are
what an auditor verifies offline. A line with content that a proven erasure or retention
record after it in the bundle names is now a problem; a record outside the bundle cannot
be seen there.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from aiaudit.cli.main import main
from aiaudit.common import erasure
from aiaudit.common.store import open_store
from aiaudit.common.v1 import event_pb2
from aiaudit.ingest.v1 import ingest_service_pb2 as ingest_pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from aiaudit.integrity.v1 import integrity_service_pb2 as pb
from tests import go_verifier as go
from tests.conftest import Running
from tests.helpers import interaction, wait_until
from tests.integrity.conftest import ORIGIN_PREFIX
from tests.integrity.test_cli import TENANT, proved_lines, scope_line, write
from tests.integrity.test_go_verifier import both, verified, withheld
from tests.integrity.test_service import checkpoint_covers, integrity


def put_back(sequence: int, record: int) -> str:
    return (
        f"sequence {sequence}: content present although the erasure record at sequence "
        f"{record} in the bundle names the event (put back?)"
    )


def test_content_put_back_in_a_store_is_named_in_its_bundle_by_both_verifiers(
    suite: Running,
    store_url: str,
    notary_url: str,
    admin_url: str,
    tenant: str,
    tmp_path: Path,
    go_verifier: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two events erased in two parts (one record each, at sequences 4 and 5), their
    content rows then restored by the database owner: the bundle of the log holds their
    content and both records, and both verifiers name each line with its part's record.
    The honest bundle before, one without the records (range 0..3) and one exported with
    ``--no-content`` verify."""
    events = [interaction(tenant, f"g-{i}", text=f"question {i}") for i in range(4)]
    ingest_grpc.IngestServiceStub(suite.channel).Append(ingest_pb.AppendRequest(events=events))
    admin = sa.create_engine(admin_url)
    try:
        with admin.connect() as conn:
            backup = [
                row._asdict()
                for row in conn.execute(
                    sa.text("SELECT * FROM event_content WHERE log_id = :t AND seq IN (0, 1)"),
                    {"t": tenant},
                )
            ]
        assert len(backup) == 2
        owner = open_store(admin_url)
        try:
            done = erasure.erase(owner, tenant, "request", "dpo", ["g-0", "g-1"], per_record=1)
        finally:
            owner.close()
        assert len(done.record_ids) == 2  # at sequences 4 and 5
        wait_until(lambda: checkpoint_covers(suite, tenant, 6))
        key = integrity(suite).GetVerifierKey(pb.GetVerifierKeyRequest()).verifier_keys[0]
        export = ["integrity", "export-bundle", "--database-url", notary_url, "--log", tenant]
        export += ["--record-database-url", store_url, "--requested-by", "auditor"]

        honest = tmp_path / "honest.jsonl"
        assert main([*export, "--count", "6", str(honest)]) == 0
        assert verdicts(key, honest, go_verifier, capsys) == (0, [])

        with admin.begin() as conn:  # the restore of those rows
            for row in backup:
                columns = ", ".join(row)
                conn.execute(
                    sa.text(f"INSERT INTO event_content ({columns}) VALUES (:{', :'.join(row)})"),
                    row,
                )
    finally:
        admin.dispose()

    restored = tmp_path / "restored.jsonl"
    assert main([*export, "--count", "6", str(restored)]) == 0
    assert verdicts(key, restored, go_verifier, capsys) == (
        1,
        [f"line 2 event g-0: {put_back(0, 4)}", f"line 3 event g-1: {put_back(1, 5)}"],
    )
    # The records outside the bundle: nothing in it shows the erasure (documented).
    before = tmp_path / "before.jsonl"
    assert main([*export, "--count", "4", str(before)]) == 0
    assert verdicts(key, before, go_verifier, capsys) == (0, [])
    # Without content, the lines say nothing of it: erased, as the records say.
    bare = tmp_path / "bare.jsonl"
    assert main([*export, "--count", "6", "--no-content", str(bare)]) == 0
    assert verdicts(key, bare, go_verifier, capsys) == (0, [])


def verdicts(
    key: str, path: Path, go_verifier: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, list[str]]:
    """Both verifiers' exit status and problem lines, which must agree (as
    ``test_go_verifier.both``, with the server's key)."""
    capsys.readouterr()
    python = ["verify", "--bundle", str(path), "--verifier-key", key]
    status = main([*python, "--origin-prefix", ORIGIN_PREFIX])
    problems = capsys.readouterr().out.splitlines()
    check = ["bundle", "-verifier-key", key, "-origin-prefix", ORIGIN_PREFIX, path]
    independent = go.run(go_verifier, *check)
    assert independent.returncode == status, independent.stdout + independent.stderr
    *go_lines, count = independent.stdout.splitlines()
    n = sum(1 for line in path.read_text().splitlines() if not scope_line(line))
    assert count == f"{n} event(s) checked, {len(problems)} problem(s)"
    if status:
        assert go_lines == problems, independent.stdout
    else:
        assert verified(independent, n), independent.stdout
    return status, problems


def records(*named: tuple[str, event_pb2.EventType]) -> list[event_pb2.Event]:
    """Records of TENANT, each naming one event: an erasure's or a retention's."""
    now = dt.datetime.now(dt.UTC)
    return [erasure.erasure_event(TENANT, [e], "art. 17", "dpo", "", now, t) for e, t in named]


ERASURE = event_pb2.EVENT_TYPE_PRIVACY_ERASURE
RETENTION = event_pb2.EVENT_TYPE_RETENTION_APPLIED


def test_content_a_later_record_in_the_bundle_names_is_a_problem_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path
) -> None:
    """Lines with content that an erasure or a retention record after them names, in any
    order of lines: named by line with the record's sequence (the latest naming it). A
    record before the event (its id given again afterwards) names no put-back, a line
    without content is erased, and a record that does not verify proves nothing."""
    events = [interaction(TENANT, f"e-{i}", text=f"secret {i}") for i in range(4)]
    named = records(("e-1", ERASURE), ("e-2", RETENTION), ("e-1", ERASURE), ("e-9", ERASURE))
    early = records(("e-3", ERASURE))
    lines = proved_lines(tmp_path, [*early, *events, *named])  # e-3 named at 0, before it
    shuffled = [lines[0], lines[1], lines[5], *lines[2:5], *lines[6:]]  # a record first
    path = write(tmp_path / "b.jsonl", shuffled)
    assert both(go_verifier, capsys, path) == (
        1,
        [f"line 4 event e-1: {put_back(2, 7)}", f"line 5 event e-2: {put_back(3, 6)}"],
    )
    honest = [lines[0], lines[1], withheld(lines[2]), withheld(lines[3]), *lines[4:]]
    assert both(go_verifier, capsys, write(tmp_path / "b.jsonl", honest)) == (0, [])
    forged: dict[str, Any] = {**lines[7], "event_id": "r-0"}  # the last record naming e-1
    path = write(tmp_path / "b.jsonl", [*lines[:7], forged])
    status, problems = both(go_verifier, capsys, path)
    assert status == 1 and len(problems) == 3, problems  # the forged line's own first
    assert problems[1:] == [
        f"line 3 event e-1: {put_back(2, 5)}",
        f"line 4 event e-2: {put_back(3, 6)}",
    ]


def test_only_lines_without_problems_count_for_put_back_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path
) -> None:
    """aiaudit matched content and records of lines with a problem (a duplicate copy, a
    line of a second checkpoint: another export joined), the Go verifier did not: their
    problem lists differed, and an old export's content joined with a newer export's
    record was named put back, though it was exported before the erasure (review)."""
    events = [interaction(TENANT, f"e-{i}", text=f"secret {i}") for i in range(3)]
    older = proved_lines(tmp_path, events)
    newer = proved_lines(tmp_path, [*events, *records(("e-1", ERASURE))])
    joined = write(tmp_path / "joined.jsonl", [*older, newer[3]])
    status, problems = both(go_verifier, capsys, joined)
    assert status == 1 and len(problems) == 1, problems
    record = newer[3]["event_id"]
    assert problems[0].startswith(f"line 4 event {record}: log '{TENANT}' has a second")
    twice = write(tmp_path / "twice.jsonl", [*newer, newer[1]])
    assert both(go_verifier, capsys, twice) == (
        1,
        [
            "line 5 event e-1: duplicate: line 2 has the same log and sequence",
            f"line 2 event e-1: {put_back(1, 3)}",
        ],
    )


def test_content_of_no_fields_is_no_put_back_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path
) -> None:
    """A line whose content is ``{}`` (an event with no content field: a salt committing to
    nothing) that a later record names was content put back to both verifiers, while
    ``verify`` and ``VerifyEvent`` skip ``{}``: it holds nothing to erase (review)."""
    bare = interaction(TENANT, "e-0")
    bare.ClearField("input")
    bare.ClearField("output")
    lines = proved_lines(tmp_path, [bare, *records(("e-0", ERASURE))])
    assert lines[0]["content"] == {} and "salt" in lines[0]
    assert both(go_verifier, capsys, write(tmp_path / "b.jsonl", lines)) == (0, [])
