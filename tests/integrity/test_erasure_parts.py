"""An erasure recorded in several records: every verifier finds each erased event's record.

A heavy subject's erasure is recorded in parts since 2026-12-06 (one record naming every
id grew past what readers fetch). ``VerifyEvent``, ``aiaudit verify`` of the store and of
an exported bundle, and the Go verifier accept the missing content of the events of any
part, and still name content deleted without one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from aiaudit.cli.main import main
from aiaudit.common.erasure import erase
from aiaudit.common.store import open_store
from aiaudit.ingest.v1 import ingest_service_pb2 as ingest_pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from aiaudit.integrity.note import parse_verifier_key
from aiaudit.integrity.v1 import integrity_service_pb2 as pb
from aiaudit.integrity.verify import verify_store
from tests import go_verifier as go
from tests.conftest import Running
from tests.helpers import interaction, wait_until
from tests.integrity.conftest import ORIGIN_PREFIX
from tests.integrity.test_go_verifier import verified
from tests.integrity.test_service import checkpoint_covers, integrity

ERASED = "3 erased (named by an erasure or retention record in the bundle)"


def test_an_erasure_in_parts_verifies_in_every_verifier(
    suite: Running,
    store_url: str,
    notary_url: str,
    admin_url: str,
    tenant: str,
    tmp_path: Path,
    go_verifier: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    events = [
        interaction(tenant, f"g-{i}", text=f"question {i}", user="bob" if i == 3 else "alice")
        for i in range(4)
    ]
    ingest_grpc.IngestServiceStub(suite.channel).Append(ingest_pb.AppendRequest(events=events))
    privileged = open_store(admin_url)
    try:
        done = erase(privileged, tenant, "request", "dpo", subject_id="alice", per_record=1)
    finally:
        privileged.close()
    assert len(done.record_ids) == 3  # at sequences 4, 5 and 6
    wait_until(lambda: checkpoint_covers(suite, tenant, 7))

    stub = integrity(suite)
    key = stub.GetVerifierKey(pb.GetVerifierKeyRequest()).verifier_keys[0]
    for event_id in ("g-0", "g-2"):  # named by the first and by the last part
        answer = stub.VerifyEvent(pb.VerifyEventRequest(log_id=tenant, event_id=event_id))
        assert answer.status == pb.VERIFY_STATUS_VERIFIED_ERASED, answer.problems

    admin = sa.create_engine(admin_url)
    try:
        report = verify_store(admin, [parse_verifier_key(key)], ORIGIN_PREFIX, None, [tenant])
        assert report.ok, report.problems
    finally:
        admin.dispose()

    bundle = tmp_path / "bundle.jsonl"
    export = ["integrity", "export-bundle", "--database-url", notary_url, "--log", tenant]
    export += ["--record-database-url", store_url, "--requested-by", "auditor"]
    assert main([*export, "--count", "7", str(bundle)]) == 0
    capsys.readouterr()
    check = ["--verifier-key", key, "--origin-prefix", ORIGIN_PREFIX]
    assert main(["verify", "--bundle", str(bundle), *check]) == 0
    assert ERASED in capsys.readouterr().err
    go_check = ["bundle", "-verifier-key", key, "-origin-prefix", ORIGIN_PREFIX, bundle]
    independent = go.run(go_verifier, *go_check)
    assert verified(independent, 7), independent.stdout + independent.stderr
    assert ERASED in independent.stdout
