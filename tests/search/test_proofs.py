"""Exports with proofs and GetEvent's integrity status: search calling IntegrityService.

The whole suite (ingest, integrity, search) runs in-process on each store;
on PostgreSQL the notary logs in with ``aiaudit_notary`` and search with
``aiaudit_consumer``, as in production. The exported bundle is checked by
the ``aiaudit verify --bundle`` command in its own process: what an auditor
runs, with nothing but the file and the verifier key, and by
``interop/go-verifier``, which uses none of our code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
import sqlalchemy as sa
import yaml

from aiaudit.cli.main import main
from aiaudit.common import client
from aiaudit.common.erasure import erase
from aiaudit.common.store import open_store
from aiaudit.integrity.v1 import integrity_service_pb2 as ipb
from aiaudit.integrity.v1 import integrity_service_pb2_grpc as ipb_grpc
from aiaudit.search.v1 import search_service_pb2 as pb
from tests import go_verifier as go
from tests.conftest import Postgres, serve_suite, subprocess_env
from tests.helpers import error_info, field_violations, interaction, wait_until, whole_log
from tests.integrity.conftest import ORIGIN_PREFIX, login
from tests.integrity.test_cli import event_lines, scope_of
from tests.search.conftest import NOT_ACCESS, SearchSuite, suite_of
from tests.search.test_access_details import attribute, records, said


def start_proof_suite(
    tmp_path: Path,
    store_url: str,
    pg: Postgres | None,
    integrity: dict[str, Any] | None = None,
    search: dict[str, Any] | None = None,
) -> SearchSuite:
    """Ingest, integrity and search on one port, each on its least-privileged login."""
    integrity_section: dict[str, Any] = {
        "origin_prefix": ORIGIN_PREFIX,
        "checkpoint_interval": 0.05,
        "poll_interval": 0.02,
    }
    search_section: dict[str, Any] = {"backend": "sqlite", "poll_interval": 0.1}
    if pg is not None:
        integrity_section["database_url"] = login(pg, "aiaudit_notary")
        search_section["database_url"] = pg.consumer_url
    integrity_section.update(integrity or {})
    search_section.update(search or {})
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"integrity": integrity_section, "search": search_section}))
    services = ("ingest", "integrity", "search")
    suite, keys = serve_suite(tmp_path, cfg, database_url=store_url, services=services)
    return suite_of("sqlite", suite, keys)


def database(store_url: str, request: pytest.FixtureRequest) -> tuple[str, Postgres | None]:
    """The store, and on PostgreSQL a database of the test's own: the notary and the indexer
    start from every log of their store, and the session's database holds every earlier test's."""
    if not store_url.startswith("postgresql"):
        return store_url, None
    pg: Postgres = request.getfixturevalue("own_postgres")
    return pg.app_url, pg


def checkpoint_count(url: str) -> int:
    """Checkpoints signed so far, over every log of the database."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            counted = conn.execute(sa.text("SELECT count(*) FROM integrity_checkpoints"))
            return int(counted.scalar_one())
    finally:
        engine.dispose()


def stop(running: SearchSuite) -> None:
    running.channel.close()
    running.suite.stop()


@pytest.fixture
def proof_suite(
    tmp_path: Path, store_url: str, request: pytest.FixtureRequest
) -> Iterator[SearchSuite]:
    running = start_proof_suite(tmp_path, *database(store_url, request))
    yield running
    stop(running)


def integrity_stub(running: SearchSuite, role: str = "auditor") -> ipb_grpc.IntegrityServiceStub:
    return ipb_grpc.IntegrityServiceStub(client.channel(running.address, running.keys[role]))


def covered_size(running: SearchSuite, tenant: str) -> int:
    try:
        request = ipb.GetCheckpointRequest(log_id=tenant)
        return integrity_stub(running).GetCheckpoint(request).checkpoint.tree_size
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        return 0


def export(running: SearchSuite, role: str, tenant: str, **kw: Any) -> bytes:
    stub = running.as_role(role)
    return b"".join(c.data for c in stub.Export(pb.ExportRequest(tenant_id=tenant, **kw)))


def bundle_of(running: SearchSuite, tenant: str, filter: str = "") -> bytes:
    """A compliance officer's export with proofs (JSON Lines): the bundle an auditor gets."""
    return export(
        running,
        "compliance_officer",
        tenant,
        filter=filter,
        format=pb.EXPORT_FORMAT_JSONL,
        include_proofs=True,
    )


def verify_cli(bundle: Path, key: str) -> subprocess.CompletedProcess[str]:
    """``aiaudit verify --bundle`` in its own process, as an auditor runs it."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "aiaudit.cli.main",
            "verify",
            "--bundle",
            str(bundle),
            "--verifier-key",
            key,
            "--origin-prefix",
            ORIGIN_PREFIX,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=subprocess_env(),
        check=False,
    )


def test_exported_bundle_verifies_offline_and_names_tampered_events(
    proof_suite: SearchSuite, tenant: str, tmp_path: Path, go_verifier: Path
) -> None:
    ids = [f"p-{i}" for i in range(6)]
    proof_suite.append([interaction(tenant, e, text=f"secret {e}") for e in ids])
    proof_suite.wait_indexed(tenant, 6)
    bundle = tmp_path / "export.jsonl"
    key = proof_suite.keys["compliance_officer"]
    common = ["--address", proof_suite.address, f"--api-key={key}"]  # a key may start with "-"
    code = main(
        [
            "export",
            *common,
            "--tenant",
            tenant,
            "--filter",
            NOT_ACCESS,
            "--include-proofs",
            "--output",
            str(bundle),
        ]
    )
    assert code == 0
    scope = bundle.read_text().splitlines()[0]
    lines = event_lines(bundle)
    assert [line["event_id"] for line in lines] == ids
    assert all(line["log_id"] == tenant for line in lines)
    assert all(line["content"] for line in lines)  # the officer may read content
    key = integrity_stub(proof_suite).GetVerifierKey(ipb.GetVerifierKeyRequest()).verifier_keys[0]

    ok = verify_cli(bundle, key)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "6 event(s) checked, 0 problem(s)" in ok.stderr
    go_check = ["bundle", "-verifier-key", key, "-origin-prefix", ORIGIN_PREFIX, bundle]
    independent = go.run(go_verifier, *go_check)  # public Go libraries, none of our code
    assert independent.returncode == 0, independent.stdout
    *summary, count = independent.stdout.splitlines()
    assert count == "6 event(s) checked, 0 problem(s)"
    said = [line for line in ok.stderr.splitlines() if not line.startswith("{")][:-1]
    assert summary and summary == said  # the same summary as aiaudit's

    # Tamper with one event's content and another's committed bytes.
    lines[1]["content"] = {k: "rewritten" for k in lines[1]["content"]}
    committed = base64.b64decode(lines[4]["canonical"])
    lines[4]["canonical"] = base64.b64encode(committed.replace(b"gpt-4o", b"gpt-4x")).decode()
    bundle.write_text(scope + "\n" + "".join(json.dumps(line) + "\n" for line in lines))
    bad = verify_cli(bundle, key)
    assert bad.returncode == 1
    named = {line.split()[3].rstrip(":") for line in bad.stdout.splitlines()}
    assert named == {"p-1", "p-4"}, bad.stdout
    assert "line 6 event p-4: inclusion proof" in bad.stdout
    independent = go.run(go_verifier, *go_check)
    assert independent.returncode == 1
    assert {line.split()[3].rstrip(":") for line in independent.stdout.splitlines()[:-1]} == named


def test_an_export_bundle_names_its_access_record_and_says_what_it_holds(
    proof_suite: SearchSuite,
    store_url: str,
    request: pytest.FixtureRequest,
    tenant: str,
    tmp_path: Path,
    go_verifier: Path,
) -> None:
    """A bundle did not say what it was made for (tenant, filter, query, order, checkpoint,
    snapshot, time, exporter), nor which access record of the log is its export's: an auditor
    handed one could not tell what it claims, nor match it with the log. Its first line now
    says so, as the record does (which now also names the checkpoint and whether content was
    included); `verify --bundle` prints it as the exporter's claim. The record is written
    after the checkpoint is taken, so the bundle cannot prove it: its id is matched in the
    log. A line without content says why when the bundle can: erased, named by an erasure
    record the export holds; or, with content included, a line stripped of it is not taken
    for an erased one."""
    events = [interaction(tenant, f"s-{i}", text=f"secret {i}", user="alice") for i in range(3)]
    proof_suite.append([*events, interaction(tenant, "s-3", user="bob")])
    if store_url.startswith("postgresql"):  # as `aiaudit erase` runs: the privacy role
        pg: Postgres = request.getfixturevalue("own_postgres")
        privacy = open_store(pg.privacy_url, keys=proof_suite.suite.store.keys)
        try:
            erase(privacy, tenant, "art. 17", "dpo", event_ids=["s-1"])
        finally:
            privacy.close()
    else:
        erase(proof_suite.suite.store, tenant, "art. 17", "dpo", event_ids=["s-1"])
    proof_suite.wait_indexed(tenant, 5)
    wanted = 'actor.user_id = "alice" OR event_type = "EVENT_TYPE_PRIVACY_ERASURE"'
    bundle = tmp_path / "export.jsonl"
    key = proof_suite.keys["compliance_officer"]
    command = ["export", "--address", proof_suite.address, f"--api-key={key}"]
    command += ["--tenant", tenant, "--filter", wanted, "--include-proofs", "--output", str(bundle)]
    assert main(command) == 0
    lines = event_lines(bundle)
    assert [line["event_id"] for line in lines][:3] == ["s-0", "s-1", "s-2"]
    assert "content" not in lines[1]  # erased
    (record,) = records(proof_suite, tenant, "search.export")
    size = attribute(record, "tree_size")
    assert attribute(record, "include_content") is True
    assert said(record)["filter"] == wanted
    scope = scope_of(bundle)
    assert scope == {
        "action": "search.export",
        "log_id": tenant,
        "tree_size": size,
        "exported_at": scope["exported_at"],
        "requested_by": record.actor.user_id,
        "access_record": record.event_id,
        "content": "included",
        "filter": wanted,
        "query": "",
        "order_by": "sequence asc",
        "up_to_sequence": attribute(record, "up_to_sequence"),
    }
    assert all(line["tlog_proof"].split("\n\n", 1)[1].split("\n")[1] == str(size) for line in lines)
    at = {e.event_id: e.sequence for e in whole_log(proof_suite.suite.store, tenant)}
    assert at[record.event_id] >= size  # past the checkpoint: no line can prove the record

    verifier = integrity_stub(proof_suite).GetVerifierKey(ipb.GetVerifierKeyRequest())
    verifier_key = verifier.verifier_keys[0]
    ok = verify_cli(bundle, verifier_key)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    told = [line for line in ok.stderr.splitlines() if not line.startswith("{")]
    assert told[2] == (  # the erasure record holds content too (its reason)
        f"log {tenant}: content verified for 3 event(s); 1 erased (named by an erasure or "
        "retention record in the bundle)"
    )
    assert told[3:6] == [  # sealed: its closing record commits to the scope line
        "scope (line 1): the export's, as its seal's closing record commits to it "
        "(access.scope_sha256); checked against the proven lines: its log, checkpoint size and "
        "sequences",
        f"scope: search.export of log {tenant!r} requested by {record.actor.user_id!r} at "
        f"{scope['exported_at']!r}; access record {record.event_id!r} (an event of the log "
        "written after this checkpoint: match it there)",
        f"scope: filter {wanted!r}; query ''; order_by 'sequence asc'; events before sequence "
        f"{scope['up_to_sequence']}; checkpoint size {size}; content included",
    ], told
    go_check = ["bundle", "-verifier-key", verifier_key, "-origin-prefix", ORIGIN_PREFIX, bundle]
    independent = go.run(go_verifier, *go_check)
    assert independent.returncode == 0, independent.stdout
    assert independent.stdout.splitlines()[:-1] == told[:-1]

    # A genuine line stripped of its content is not taken for an erased one.
    first, *rest = bundle.read_text().splitlines(keepends=True)
    stripped = {k: v for k, v in json.loads(rest[0]).items() if k not in ("salt", "content")}
    bundle.write_text(first + json.dumps(stripped) + "\n" + "".join(rest[1:]))
    ok = verify_cli(bundle, verifier_key)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert (
        "1 without content though the scope says it was included, and no erasure record in the "
        "bundle names them (erased by a record not in the bundle, or their content removed from "
        "the line): their content is not proven"
    ) in ok.stderr
    # A scope edited where a line refutes it (another tenant) is named on every line.
    edited = json.loads(first)
    edited["scope"]["log_id"] = "t-other"
    bundle.write_text(json.dumps(edited) + "\n" + "".join(rest))
    bad = verify_cli(bundle, verifier_key)
    assert bad.returncode == 1
    assert f"line 2 event s-0: log {tenant!r} is not the scope's log 't-other' (line 1)" in (
        bad.stdout.splitlines()
    )


def test_an_export_with_proofs_sends_their_checkpoint_in_its_first_message(
    proof_suite: SearchSuite, tenant: str
) -> None:
    """``ExportResponse.checkpoint``: "the checkpoint the attached proofs are against (first
    message only)". No message carried it (review, 2026-12-05)."""
    ids = [f"c-{i:02d}" for i in range(20)]
    proof_suite.append([interaction(tenant, e, text=f"{e} " + "x" * 8_000) for e in ids])
    proof_suite.wait_indexed(tenant, len(ids))
    stub = proof_suite.as_role("compliance_officer")
    request = pb.ExportRequest(
        tenant_id=tenant, filter=NOT_ACCESS, format=pb.EXPORT_FORMAT_JSONL, include_proofs=True
    )
    chunks = list(stub.Export(request))
    assert len(chunks) > 1  # 160 KB: the later messages are data only
    assert chunks[0].HasField("checkpoint")
    assert not any(c.HasField("checkpoint") for c in chunks[1:])
    checkpoint = chunks[0].checkpoint
    assert checkpoint.log_id == tenant and checkpoint.tree_size >= len(ids)
    lines = event_lines(b"".join(c.data for c in chunks))
    assert [line["event_id"] for line in lines] == ids
    assert all(line["tlog_proof"].endswith("\n\n" + checkpoint.signed_note) for line in lines)

    plain = stub.Export(
        pb.ExportRequest(tenant_id=tenant, filter=NOT_ACCESS, format=pb.EXPORT_FORMAT_JSONL)
    )
    assert not any(c.HasField("checkpoint") for c in plain)  # no proofs, no checkpoint


def test_get_event_reports_integrity_status(proof_suite: SearchSuite, tenant: str) -> None:
    proof_suite.append([interaction(tenant, "v-1")])
    wait_until(lambda: covered_size(proof_suite, tenant) >= 1)
    request = pb.GetEventRequest(tenant_id=tenant, event_id="v-1")
    officer = proof_suite.as_role("compliance_officer").GetEvent(request)
    assert officer.event.event_id == "v-1"
    assert officer.integrity_status == ipb.VERIFY_STATUS_VERIFIED
    # Without proofs.read the verdict is not asked for: the read still succeeds.
    analyst = proof_suite.as_role("analyst").GetEvent(request)
    assert analyst.event.event_id == "v-1"
    assert analyst.integrity_status == ipb.VERIFY_STATUS_UNSPECIFIED


def test_include_proofs_refusals(proof_suite: SearchSuite, tenant: str) -> None:
    proof_suite.append([interaction(tenant, "r-1")])
    proof_suite.wait_indexed(tenant, 1)
    for fmt in (pb.EXPORT_FORMAT_CSV, pb.EXPORT_FORMAT_XML):
        with pytest.raises(grpc.RpcError) as caught:
            export(proof_suite, "compliance_officer", tenant, format=fmt, include_proofs=True)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "EXPORT_FORMAT_JSONL" in field_violations(caught.value)["include_proofs"]
    # Auditors read no PII, and the committed bytes carry actor.ip_address verbatim.
    with pytest.raises(grpc.RpcError) as caught:
        export(proof_suite, "auditor", tenant, format=pb.EXPORT_FORMAT_JSONL, include_proofs=True)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "pii.read" in str(caught.value.details())
    # Without proofs the auditor's export works.
    plain = export(proof_suite, "auditor", tenant, format=pb.EXPORT_FORMAT_JSONL)
    assert b'"r-1"' in plain


def test_events_not_yet_checkpointed_are_refused_with_their_count(
    tmp_path: Path, store_url: str, request: pytest.FixtureRequest, tenant: str
) -> None:
    # The notary signs its first checkpoint at once, the next only after an hour:
    # once it has signed anything (another tenant's event), this tenant's events stay pending.
    store_url, pg = database(store_url, request)
    owner_url = pg.admin_url if pg is not None else store_url
    signed_before = checkpoint_count(owner_url)
    running = start_proof_suite(
        tmp_path, store_url, pg, {"checkpoint_interval": 3600}, {"proof_wait": 0.3}
    )
    try:
        running.append([interaction(f"{tenant}-other")])
        wait_until(lambda: checkpoint_count(owner_url) > signed_before)
        running.append([interaction(tenant, f"c-{i}") for i in range(3)])
        running.wait_indexed(tenant, 3)
        covered = covered_size(running, tenant)
        store = open_store(store_url)
        try:
            size = store.log_sizes()[tenant]
        finally:
            store.close()
        assert size - covered >= 3
        with pytest.raises(grpc.RpcError) as caught:
            bundle_of(running, tenant)
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        # Reads add access records to the same log while the export runs, so the
        # uncovered count lies between the sizes seen before and after it.
        store = open_store(store_url)
        try:
            size_after = store.log_sizes()[tenant]
        finally:
            store.close()
        found = re.search(r"(\d+) event\(s\)", str(caught.value.details()))
        assert found is not None, caught.value.details()
        assert size - covered <= int(found.group(1)) <= size_after - covered
    finally:
        stop(running)


def test_unreachable_integrity_service_never_fails_reads(tmp_path: Path, tenant: str) -> None:
    url = f"sqlite:///{tmp_path / 'aiaudit.db'}"
    open_store(url, run_migrations=True).close()
    running = start_proof_suite(
        tmp_path, url, None, search={"integrity_address": "127.0.0.1:1", "integrity_timeout": 2.0}
    )
    try:
        running.append([interaction(tenant, "u-1")])
        running.wait_indexed(tenant, 1)
        got = running.as_role("compliance_officer").GetEvent(
            pb.GetEventRequest(tenant_id=tenant, event_id="u-1")
        )
        assert got.event.event_id == "u-1"
        assert got.integrity_status == ipb.VERIFY_STATUS_UNSPECIFIED
        with pytest.raises(grpc.RpcError) as caught:
            bundle_of(running, tenant)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "127.0.0.1:1" in str(caught.value.details())
    finally:
        stop(running)


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)  # SQLite's readers never wait
def test_an_integrity_call_that_times_out_says_so(
    tmp_path: Path, store_url: str, request: pytest.FixtureRequest, tenant: str
) -> None:
    """It was reported as the integrity service being unavailable, "retry": a retry of the
    same export timed out again. Made real: the checkpoints table locked by the database
    owner while the export asks integrity for its checkpoint."""
    url, pg = database(store_url, request)
    assert pg is not None
    running = start_proof_suite(tmp_path, url, pg, search={"integrity_timeout": 0.5})
    try:
        running.append([interaction(tenant, f"d-{i}") for i in range(3)])
        running.wait_indexed(tenant, 3)
        wait_until(lambda: covered_size(running, tenant) >= 3)
        with psycopg.connect(pg.admin_dsn) as owner:
            owner.execute("LOCK TABLE integrity_checkpoints IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(grpc.RpcError) as caught:
                bundle_of(running, tenant)
            owner.rollback()
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert caught.value.details() == (
            f"the integrity service at {running.address} did not answer within 0.5s "
            "(search.integrity_timeout); the export was stopped"
        )
    finally:
        stop(running)


def signed_size(url: str, tenant: str) -> int:
    """The size of the tenant's latest signed checkpoint, read from the store (no access record)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            size = conn.execute(
                sa.text("SELECT max(tree_size) FROM integrity_checkpoints WHERE log_id = :t"),
                {"t": tenant},
            ).scalar()
            return int(size or 0)
    finally:
        engine.dispose()


def test_an_export_with_proofs_ends_with_a_seal_that_proves_its_lines_complete(
    proof_suite: SearchSuite, tenant: str, tmp_path: Path, go_verifier: Path
) -> None:
    """A search export's lines were the events its filter matched, and nothing proved which
    those were: a line removed, or another event of the log added with its proof, verified
    alike, and `verify --bundle` said the selection was "not proven" (review, 2026-12-06).
    The export now writes its closing record to the log (the number of event lines and a
    digest of them), waits for a checkpoint covering it, and ends with the seal line: both
    verifiers then say the lines are the export's whole, and a line removed is named."""
    proof_suite.append(
        [interaction(tenant, f"k-{i}", text=f"secret {i}", user="alice") for i in range(4)]
        + [interaction(tenant, "k-4", user="bob")]
    )
    proof_suite.wait_indexed(tenant, 5)
    wanted = f'actor.user_id = "alice" AND {NOT_ACCESS}'
    data = bundle_of(proof_suite, tenant, wanted)
    texts = data.decode().splitlines()
    assert [line["event_id"] for line in event_lines(data)] == [f"k-{i}" for i in range(4)]
    seal = json.loads(texts[-1])["seal"]
    (closing,) = records(proof_suite, tenant, "search.export.seal")
    scope = scope_of(data)
    assert seal["event_id"] == closing.event_id
    assert attribute(closing, "export_record") == scope["access_record"]
    assert attribute(closing, "count") == 4
    assert attribute(closing, "tree_size") == scope["tree_size"]
    # The record commits to the scope line as written (salted: the filter is content).
    salt = base64.b64decode(seal["scope_salt"])
    assert (
        attribute(closing, "scope_sha256")
        == hashlib.sha256(salt + data.split(b"\n")[0]).hexdigest()
    )
    at = {e.event_id: e.sequence for e in whole_log(proof_suite.suite.store, tenant)}
    assert seal["sequence"] == at[closing.event_id]

    bundle = tmp_path / "export.jsonl"
    bundle.write_bytes(data)
    key = integrity_stub(proof_suite).GetVerifierKey(ipb.GetVerifierKeyRequest()).verifier_keys[0]
    ok = verify_cli(bundle, key)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    told = [line for line in ok.stderr.splitlines() if not line.startswith("{")]
    covering = seal["tlog_proof"].split("\n\n", 1)[1].split("\n")[1]
    assert told[3] == (
        "scope (line 1): the export's, as its seal's closing record commits to it "
        "(access.scope_sha256); checked against the proven lines: its log, checkpoint size and "
        "sequences"
    ), told
    assert told[6] == (
        "scope: complete: the lines are every event the export wrote, in its order (4 event(s), "
        f"sealed by its closing record {closing.event_id!r} at sequence {seal['sequence']}, "
        f"proven under checkpoint size {covering})"
    ), told
    go_check = ["bundle", "-verifier-key", key, "-origin-prefix", ORIGIN_PREFIX, bundle]
    independent = go.run(go_verifier, *go_check)
    assert independent.returncode == 0, independent.stdout
    assert independent.stdout.splitlines()[:-1] == told[:-1]

    # The scope edited to claim a wider filter: named by both (review, 2026-12-06).
    wider = json.dumps({"scope": {**scope, "filter": NOT_ACCESS}}, separators=(",", ":"))
    bundle.write_text("".join(f"{t}\n" for t in [wider, *texts[1:]]))
    edited = (
        f"line {len(texts)} seal: the scope line (line 1) is not the one the closing record "
        "commits to (access.scope_sha256): the scope was edited"
    )
    bad = verify_cli(bundle, key)
    assert (bad.returncode, bad.stdout.splitlines()) == (1, [edited])
    independent = go.run(go_verifier, *go_check)
    assert independent.stdout.splitlines()[:-1] == [edited]

    # A line removed: named by both.
    bundle.write_text("".join(f"{t}\n" for i, t in enumerate(texts) if i != 2))
    bad = verify_cli(bundle, key)
    assert bad.returncode == 1
    problem = (
        f"line {len(texts) - 1} seal: the closing record counts 4 event line(s) and the bundle "
        "holds 3: 1 missing (a line removed)"
    )
    assert bad.stdout.splitlines() == [problem]
    independent = go.run(go_verifier, *go_check)
    assert independent.stdout.splitlines()[:-1] == [problem]


def test_an_export_whose_seal_cannot_be_got_ends_with_its_events_unsealed(
    tmp_path: Path,
    store_url: str,
    request: pytest.FixtureRequest,
    tenant: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The events were delivered before the seal is waited for: a closing record that no
    checkpoint covers within ``proof_wait`` (here: the notary signs once, then after an
    hour) leaves the export without a seal, a WARNING said, and the bundle verifies as
    before, its selection not proven."""
    caplog.set_level(logging.WARNING, logger="aiaudit.search")
    store_url, pg = database(store_url, request)
    owner_url = pg.admin_url if pg is not None else store_url
    running = start_proof_suite(
        tmp_path, store_url, pg, {"checkpoint_interval": 3600}, {"proof_wait": 0.5}
    )
    try:
        running.append([interaction(tenant, f"n-{i}") for i in range(3)])
        wait_until(lambda: signed_size(owner_url, tenant) >= 3)  # read nothing of the log
        data = bundle_of(running, tenant, NOT_ACCESS)
        key = integrity_stub(running).GetVerifierKey(ipb.GetVerifierKeyRequest()).verifier_keys[0]
    finally:
        stop(running)
    texts = data.decode().splitlines()
    assert "seal" not in json.loads(texts[-1])
    assert [line["event_id"] for line in event_lines(data)] == ["n-0", "n-1", "n-2"]
    assert any(
        "ends unsealed" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records
    )
    bundle = tmp_path / "export.jsonl"
    bundle.write_bytes(data)
    ok = verify_cli(bundle, key)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    told = [line for line in ok.stderr.splitlines() if not line.startswith("{")]
    assert told[6].startswith("scope: not proven: that the lines are every event"), told


def test_an_export_with_proofs_that_matched_nothing_is_sealed_complete_and_empty(
    proof_suite: SearchSuite, tenant: str, tmp_path: Path, go_verifier: Path
) -> None:
    """An export that matched no event is its scope line and its seal, whose closing record
    counts 0 event lines and commits to the scope: that the filter matched nothing before
    the snapshot is evidence too ("alice had no interaction with the model"). Both
    verifiers called such a bundle "the bundle holds no events" (exit 1); they now say it
    is complete and empty, alike, and without its seal, or with another log asked for, it
    still fails."""
    proof_suite.append([interaction(tenant, f"z-{i}", user="bob") for i in range(3)])
    proof_suite.wait_indexed(tenant, 3)
    data = bundle_of(proof_suite, tenant, f'actor.user_id = "alice" AND {NOT_ACCESS}')
    texts = data.decode().splitlines()
    assert [list(json.loads(t)) for t in texts] == [["scope"], ["seal"]], texts
    scope, seal = scope_of(data), json.loads(texts[-1])["seal"]
    (closing,) = records(proof_suite, tenant, "search.export.seal")
    assert seal["event_id"] == closing.event_id
    assert attribute(closing, "export_record") == scope["access_record"]
    assert attribute(closing, "count") == 0
    assert attribute(closing, "lines_sha256") == hashlib.sha256().hexdigest()
    assert attribute(closing, "up_to_sequence") == scope["up_to_sequence"]

    bundle = tmp_path / "export.jsonl"
    bundle.write_bytes(data)
    key = integrity_stub(proof_suite).GetVerifierKey(ipb.GetVerifierKeyRequest()).verifier_keys[0]
    ok = verify_cli(bundle, key)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    told = [line for line in ok.stderr.splitlines() if not line.startswith("{")]
    covering = seal["tlog_proof"].split("\n\n", 1)[1].split("\n")[1]
    assert told[0].startswith(f"log {tenant}: checkpoint {ORIGIN_PREFIX}/{tenant} size "), told
    assert told[0].endswith(" (the seal's: the bundle holds no event line)"), told
    assert told[1] == (
        f"log {tenant}: 0 event(s); the seal's consistency proof from the scope's checkpoint "
        f"size {scope['tree_size']} is not checked (no line of the bundle holds that "
        "checkpoint, and no line needs it)"
    ), told
    assert told[5] == (
        f"scope: complete: the export matched no event before sequence "
        f"{scope['up_to_sequence']} (sealed by its closing record {closing.event_id!r} at "
        f"sequence {seal['sequence']}, proven under checkpoint size {covering})"
    ), told
    assert told[-1] == "0 event(s) checked, 0 problem(s)", told
    go_check = ["bundle", "-verifier-key", key, "-origin-prefix", ORIGIN_PREFIX]
    independent = go.run(go_verifier, *go_check, bundle)
    assert independent.returncode == 0, independent.stdout
    assert independent.stdout.splitlines()[:-1] == told[:-1]
    assert go.run(go_verifier, *go_check, "-log", tenant, bundle).returncode == 0

    # Another log asked for, or the seal removed: both fail, as an empty bundle did.
    other = go.run(go_verifier, *go_check, "-log", "t-other", bundle)
    assert other.returncode == 1
    assert other.stdout.splitlines()[0] == (
        f"line 2 seal: log {tenant!r} is not one of the logs to verify (t-other)"
    )
    bundle.write_text(texts[0] + "\n")
    bad = verify_cli(bundle, key)
    assert (bad.returncode, bad.stdout) == (1, "the bundle holds no events: nothing verified\n")
    assert go.run(go_verifier, *go_check, bundle).stdout.splitlines()[0] == (
        "the bundle holds no events: nothing verified"
    )


def test_an_export_with_proofs_of_a_tenant_with_no_event_yet_is_not_found(
    proof_suite: SearchSuite, tenant: str
) -> None:
    """A tenant with no event has no log: its export was sealed empty (checkpoint size 0),
    its access record the log's first entry, so a key on every tenant opened a log by
    exporting any name. Now NOT_FOUND, naming the tenant, and no log is opened."""
    with pytest.raises(grpc.RpcError) as err:
        bundle_of(proof_suite, tenant, NOT_ACCESS)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(err.value) == ("TENANT_NOT_FOUND", {"tenant_id": tenant})
    assert not proof_suite.suite.store.has_log(tenant)
