"""No read of a log without its access record: errors of proof reads, and ``export-bundle``.

The record failing is made real as ``tests/search/test_access_log.py`` does it:
INSERT on ``log_entries`` revoked from ``aiaudit_writer`` (PostgreSQL only:
SQLite has no grants), then granted back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import psycopg
import pytest
import sqlalchemy as sa
import yaml
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from aiaudit.cli.main import main
from aiaudit.common import access
from aiaudit.common.store import SqlEventStore, entries, open_store
from aiaudit.integrity.signers import FileKeys
from aiaudit.integrity.v1 import integrity_service_pb2 as pb
from tests.conftest import Postgres
from tests.helpers import access_records, wait_until
from tests.integrity.conftest import ORIGIN_PREFIX, Notaries, append, login, start_suite
from tests.integrity.test_cli import event_lines, said, scope_of
from tests.integrity.test_notary import covers
from tests.integrity.test_service import append as ingest
from tests.integrity.test_service import checkpoint_covers, integrity

EXPORT = "integrity.export_bundle"


@contextlib.contextmanager
def records_refused(pg: Postgres) -> Iterator[None]:
    """While inside, no access record (no log entry at all) can be written."""
    with psycopg.connect(pg.admin_dsn, autocommit=True) as admin:
        admin.execute("REVOKE INSERT ON log_entries FROM aiaudit_writer")
        try:
            yield
        finally:
            admin.execute("GRANT INSERT ON log_entries TO aiaudit_writer")


def reason(err: grpc.RpcError) -> str:
    """The google.rpc.ErrorInfo reason of a failed call."""
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason
    return ""


def refusal(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value


def test_an_error_about_the_log_waits_for_its_access_record(
    postgres: Postgres, tmp_path: Path, tenant: str
) -> None:
    """NOT_FOUND for an event id, a tree size or a sequence says what the log holds: with the
    record failing every one of them was answered (unrecorded) before; now UNAVAILABLE."""
    running = start_suite(postgres.app_url, login(postgres, "aiaudit_notary"), tmp_path)
    try:
        ingest(running, tenant, 2)
        wait_until(lambda: checkpoint_covers(running, tenant, 2))
        stub = integrity(running)
        big = 10**6
        signed = stub.GetCheckpoint(pb.GetCheckpointRequest(log_id=tenant)).checkpoint.tree_size
        calls: dict[str, tuple[Callable[[], object], grpc.StatusCode]] = {
            "inclusion of an unknown event id": (
                lambda: stub.GetInclusionProof(
                    pb.GetInclusionProofRequest(log_id=tenant, event_id="nope")
                ),
                grpc.StatusCode.NOT_FOUND,
            ),
            "inclusion of an unknown sequence": (
                lambda: stub.GetInclusionProof(
                    pb.GetInclusionProofRequest(log_id=tenant, sequence=big)
                ),
                grpc.StatusCode.NOT_FOUND,
            ),
            "verify an unknown event": (
                lambda: stub.VerifyEvent(pb.VerifyEventRequest(log_id=tenant, event_id="nope")),
                grpc.StatusCode.NOT_FOUND,
            ),
            "a size never signed": (
                lambda: stub.GetCheckpoint(pb.GetCheckpointRequest(log_id=tenant, tree_size=big)),
                grpc.StatusCode.NOT_FOUND,
            ),
            "a batch past the latest size": (
                lambda: stub.BatchGetInclusionProofs(
                    pb.BatchGetInclusionProofsRequest(log_id=tenant, sequences=[big])
                ),
                grpc.StatusCode.FAILED_PRECONDITION,
            ),
            "a batch past a signed size": (
                lambda: stub.BatchGetInclusionProofs(
                    pb.BatchGetInclusionProofsRequest(
                        log_id=tenant, sequences=[big], tree_size=signed
                    )
                ),
                grpc.StatusCode.INVALID_ARGUMENT,
            ),
            "consistency from past the latest size": (
                lambda: stub.GetConsistencyProof(
                    pb.GetConsistencyProofRequest(log_id=tenant, from_size=big)
                ),
                grpc.StatusCode.INVALID_ARGUMENT,
            ),
            "consistency to a size never signed": (
                lambda: stub.GetConsistencyProof(
                    pb.GetConsistencyProofRequest(log_id=tenant, from_size=1, to_size=big)
                ),
                grpc.StatusCode.NOT_FOUND,
            ),
        }
        before = len(access_records(postgres.app_url, tenant))
        with records_refused(postgres):
            for name, (call, _) in calls.items():
                err = refusal(call)
                assert (err.code(), err.details(), reason(err)) == (
                    grpc.StatusCode.UNAVAILABLE,
                    access.NOT_RECORDED,
                    "STORE_UNAVAILABLE",
                ), name
                assert str(big) not in (err.details() or ""), name
            # Bad input is refused before anything is read or recorded: it tells nothing.
            bad = refusal(
                lambda: stub.GetInclusionProof(
                    pb.GetInclusionProofRequest(log_id=tenant, sequence=-1)
                )
            )
            assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
            # A tenant with no log has nothing to tell: NOT_FOUND, no record to wait for.
            ghost = refusal(
                lambda: stub.GetCheckpoint(pb.GetCheckpointRequest(log_id=f"{tenant}-none"))
            )
            assert (ghost.code(), reason(ghost)) == (grpc.StatusCode.NOT_FOUND, "TENANT_NOT_FOUND")
        assert len(access_records(postgres.app_url, tenant)) == before

        # With the record durable, each error goes out as before, and was recorded.
        for name, (call, code) in calls.items():
            assert refusal(call).code() == code, name
        actions = [
            e.attributes["access.action"].string_value
            for e in access_records(postgres.app_url, tenant)[before:]
        ]
        assert len(actions) == len(calls)
        # Until 2026-12-07 the record opened a log for the tenant that had none.
        assert f"{tenant}-none" not in running.suite.store.log_sizes()  # type: ignore[attr-defined]
    finally:
        running.channel.close()
        running.suite.stop()  # type: ignore[attr-defined]


def write_config(tmp_path: Path, store_url: str, notary_url: str) -> Path:
    """The suite's store (the writer) and the notary's own login, as a deployment sets them."""
    cfg: dict[str, object] = {"database_url": store_url}
    if notary_url != store_url:
        cfg["integrity"] = {"database_url": notary_url}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_export_bundle_is_recorded_in_the_exported_log(
    store_url: str,
    store: SqlEventStore,
    notaries: Notaries,
    tenant: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bundle holds the log's content and salts: before, it left no trace at all."""
    append(store, tenant, 4)
    notaries.start(FileKeys(ORIGIN_PREFIX, tmp_path / "key.pem"))
    wait_until(lambda: covers(notaries.url, tenant, 4))
    config = write_config(tmp_path, store_url, notaries.url)
    monkeypatch.setenv("USER", "dpo@example.test")  # --requested-by's default
    export = ["integrity", "export-bundle", "--config", str(config), "--log", tenant]

    whole = tmp_path / "whole.jsonl"
    assert main([*export, str(whole)]) == 0
    part = tmp_path / "part.jsonl"
    assert main([*export, "--start", "1", "--count", "2", "--no-content", str(part)]) == 0

    records = access_records(store_url, tenant)
    assert [e.attributes["access.action"].string_value for e in records] == [EXPORT, EXPORT]
    first, second = records
    size = first.attributes["access.tree_size"].int_value
    assert size >= 4
    assert len(event_lines(whole)) == size
    assert all("content" in line for line in event_lines(whole)[:4])
    assert [line["sequence"] for line in event_lines(part)] == [1, 2]
    assert not any("content" in line for line in event_lines(part))
    user = sa.make_url(notaries.url).username or ""  # SQLite: no login
    expected = [
        {"start": 0, "end": size, "include_content": True},
        {"start": 1, "end": 3, "include_content": False},
    ]
    for record, want in zip(records, expected, strict=True):
        assert record.actor.user_id == "dpo@example.test"
        got = record.attributes
        assert got["access.requested_by"].string_value == "dpo@example.test"
        assert got["access.start"].int_value == want["start"]
        assert got["access.end"].int_value == want["end"]
        assert got["access.include_content"].bool_value is want["include_content"]
        assert got["access.database_user"].string_value == user  # the login that read
    assert second.attributes["access.tree_size"].int_value >= size


def test_an_export_bundle_names_its_access_record_and_says_what_it_holds(
    store_url: str,
    store: SqlEventStore,
    notaries: Notaries,
    tenant: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A bundle did not say what it was made for: an auditor handed one could not tell the
    log, range, checkpoint, time or exporter it claims, nor match it with the log's record
    of the export. Its first line now says so, naming that record; `verify --bundle` prints
    it as the exporter's claim. The record is written after the checkpoint is taken, so the
    bundle's checkpoint never covers it: it is matched in the log."""
    append(store, tenant, 4)
    keys = FileKeys(ORIGIN_PREFIX, tmp_path / "key.pem")
    notaries.start(keys)
    wait_until(lambda: covers(notaries.url, tenant, 4))
    config = write_config(tmp_path, store_url, notaries.url)
    monkeypatch.setenv("USER", "dpo@example.test")
    export = ["integrity", "export-bundle", "--config", str(config), "--log", tenant]
    whole, part = tmp_path / "whole.jsonl", tmp_path / "part.jsonl"
    assert main([*export, str(whole)]) == 0
    assert main([*export, "--start", "1", "--count", "2", "--no-content", str(part)]) == 0
    records = access_records(store_url, tenant)
    key = keys.verifier_keys()[0].encode()
    capsys.readouterr()
    wanted = [(0, None, "included", "content included"), (1, 3, "left out: --no-content",
              "content left out (--no-content)")]  # fmt: skip
    for path, record, (start, end, content, shown) in zip(
        (whole, part), records, wanted, strict=True
    ):
        size = record.attributes["access.tree_size"].int_value
        end = size if end is None else end
        scope = scope_of(path)
        assert scope == {
            "action": EXPORT,
            "log_id": tenant,
            "tree_size": size,
            "exported_at": scope["exported_at"],
            "requested_by": "dpo@example.test",
            "access_record": record.event_id,
            "content": content,
            "start": start,
            "end": end,
        }
        when = dt.datetime.strptime(scope["exported_at"], "%Y-%m-%dT%H:%M:%S.%f%z")
        assert abs(when - record.occurred_time.ToDatetime(dt.UTC)) < dt.timedelta(minutes=1)
        with store.engine.connect() as conn:  # past the checkpoint: no line can prove it
            at = entries.entry_sequence(conn, tenant, record.event_id)
        assert at is not None and at >= size
        check = ["verify", "--bundle", str(path), "--verifier-key", key, "--log", tenant]
        assert main([*check, "--origin-prefix", ORIGIN_PREFIX]) == 0
        told = said(capsys)
        assert told[3:6] == [
            "scope (line 1): the exporter's claim, which no signature covers; checked against "
            "the proven lines: its log, checkpoint size and sequences",
            f"scope: {EXPORT} of log {tenant!r} requested by 'dpo@example.test' at "
            f"{scope['exported_at']!r}; access record {record.event_id!r} (an event of the log "
            "written after this checkpoint: match it there)",
            f"scope: sequences {start}..{end - 1}; checkpoint size {size}; {shown}",
        ], told
        assert told[-1] == f"{end - start} event(s) checked, 0 problem(s)"


def test_export_bundle_without_its_access_record_writes_no_bundle(
    postgres: Postgres,
    tenant: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The notary's login reads the log but may not append to it: the record goes through the
    writer, and when it cannot be written the command fails and writes nothing."""
    notary_url = login(postgres, "aiaudit_notary")
    notaries = Notaries(notary_url, tmp_path, [])
    writer = open_store(postgres.app_url)
    try:
        append(writer, tenant, 3)
        notaries.start(FileKeys(ORIGIN_PREFIX, tmp_path / "key.pem"))
        wait_until(lambda: covers(notary_url, tenant, 3))
    finally:
        writer.close()
        for notary, store in notaries.started:
            notary.stop()
            store.close()
    config = write_config(tmp_path, postgres.app_url, notary_url)
    monkeypatch.setenv("USER", "dpo@example.test")
    out = tmp_path / "out.jsonl"
    export = ["integrity", "export-bundle", "--config", str(config), "--log", tenant, str(out)]
    capsys.readouterr()

    with records_refused(postgres):  # the writer refused (a grant revoked, a full disk)
        assert main(export) == 1
    assert not out.exists()
    said = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("{")]
    assert len(said) == 1
    assert said[0].startswith(
        "aiaudit integrity export-bundle: the access record could not be written to "
    )
    assert "permission denied for table log_entries" in said[0]
    assert "nothing was exported" in said[0]

    # Nor does the notary's own login do as the record's writer: it has no INSERT, by design.
    assert main([*export, "--record-database-url", notary_url]) == 1
    assert not out.exists()
    assert "permission denied for table logs" in capsys.readouterr().err  # the log head first
    assert access_records(postgres.app_url, tenant) == []

    assert main(export) == 0  # granted again: recorded, then written
    recorded = access_records(postgres.app_url, tenant)
    assert [e.attributes["access.action"].string_value for e in recorded] == [EXPORT]
    assert len(out.read_text().splitlines()) >= 3


def test_export_bundle_needs_who_asked_and_an_existing_record_store(
    store_url: str,
    store: SqlEventStore,
    notaries: Notaries,
    tenant: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    append(store, tenant, 1)
    notaries.start(FileKeys(ORIGIN_PREFIX, tmp_path / "key.pem"))
    wait_until(lambda: covers(notaries.url, tenant, 1))
    monkeypatch.delenv("USER", raising=False)
    out = tmp_path / "out.jsonl"
    export = ["integrity", "export-bundle", "--database-url", notaries.url, "--log", tenant]
    capsys.readouterr()
    assert main([*export, str(out)]) == 2
    assert "--requested-by: required, who asked for the export" in capsys.readouterr().err
    too_long = ["--requested-by", "x" * 300, str(out)]
    assert main([*export, *too_long]) == 2
    assert "--requested-by is 300 characters; the limit is 256" in capsys.readouterr().err
    nowhere = tmp_path / "none" / "aiaudit.db"
    missing = ["--record-database-url", f"sqlite:///{nowhere}", "--requested-by", "dpo"]
    assert main([*export, *missing, str(out)]) == 2
    assert f"no store at {nowhere}; pass --record-database-url" in capsys.readouterr().err
    assert not out.exists()
    assert access_records(store_url, tenant) == []


def test_export_bundle_refuses_a_record_that_went_to_another_store(
    store_url: str,
    store: SqlEventStore,
    notaries: Notaries,
    tenant: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A freshly migrated scratch store as ``--record-database-url`` took the record while
    the bundle (content and salts) was read from the real store, and the exported log showed
    no read (review, 2026-12-05): the command now finds the record missing from the log it
    read, fails and writes nothing."""
    append(store, tenant, 4)
    notaries.start(FileKeys(ORIGIN_PREFIX, tmp_path / "key.pem"))
    wait_until(lambda: covers(notaries.url, tenant, 4))
    config = write_config(tmp_path, store_url, notaries.url)
    scratch = f"sqlite:///{tmp_path / 'scratch.db'}"
    scratched = open_store(scratch, run_migrations=True)  # `aiaudit db migrate --database-url`
    append(scratched, tenant, 1)  # a log of that name (a record never opens one)
    scratched.close()
    monkeypatch.setenv("USER", "dpo@example.test")
    out = tmp_path / "out.jsonl"
    export = ["integrity", "export-bundle", "--config", str(config), "--log", tenant]
    capsys.readouterr()

    assert main([*export, "--record-database-url", scratch, str(out)]) == 1
    assert not out.exists()
    assert list(tmp_path.glob("*.jsonl*")) == []  # no temporary file left beside it either
    said = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("{")]
    assert len(said) == 1
    assert said[0].startswith(
        "aiaudit integrity export-bundle: the access record went to another store than the "
        "one exported (record access-"
    )
    assert f"written to {scratch}, not an entry of log {tenant!r} in " in said[0]
    assert said[0].endswith(
        "--record-database-url must name the same database as the exported store (as a "
        "login allowed to append); nothing was exported"
    )
    assert access_records(store_url, tenant) == []
    assert len(access_records(scratch, tenant)) == 1  # the stray record, named above


def test_export_bundle_records_through_another_login_of_the_same_database(
    store_url: str,
    store: SqlEventStore,
    notaries: Notaries,
    tenant: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    """The normal use: read as the notary, record through a login allowed to append, under
    a URL of its own (PostgreSQL: another login; SQLite: the file by another path). The
    check that refuses another store passes it, and the record is an entry of the log."""
    append(store, tenant, 3)
    notaries.start(FileKeys(ORIGIN_PREFIX, tmp_path / "key.pem"))
    wait_until(lambda: covers(notaries.url, tenant, 3))
    config = write_config(tmp_path, store_url, notaries.url)
    if store_url.startswith("sqlite"):
        (tmp_path / "alias").symlink_to(tmp_path, target_is_directory=True)
        record_url = f"sqlite:///{tmp_path / 'alias' / 'aiaudit.db'}"
    else:
        record_url = login(request.getfixturevalue("postgres"), "aiaudit_writer")
    assert record_url not in (store_url, notaries.url)
    monkeypatch.setenv("USER", "dpo@example.test")
    out = tmp_path / "out.jsonl"
    export = ["integrity", "export-bundle", "--config", str(config), "--log", tenant]

    assert main([*export, "--record-database-url", record_url, str(out)]) == 0
    assert [line["sequence"] for line in event_lines(out)] == [0, 1, 2]
    (record,) = access_records(store_url, tenant)  # read back from log L itself
    assert record.attributes["access.action"].string_value == EXPORT
    assert record.attributes["access.end"].int_value == 3
    assert record.attributes["access.database_user"].string_value == (
        sa.make_url(notaries.url).username or ""
    )
