"""IntegrityService over gRPC on the whole suite (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa

from aiaudit.cli.main import main
from aiaudit.common import client
from aiaudit.common.erasure import erase
from aiaudit.common.keys.kek import FileKek
from aiaudit.common.keys.keyring import Keyring
from aiaudit.common.store import open_store
from aiaudit.common.store.prepare import prepare
from aiaudit.common.v1 import event_pb2
from aiaudit.ingest.v1 import ingest_service_pb2 as ingest_pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from aiaudit.integrity import merkle, note
from aiaudit.integrity.v1 import integrity_service_pb2 as pb
from aiaudit.integrity.v1 import integrity_service_pb2_grpc as pb_grpc
from tests.conftest import Running
from tests.helpers import (
    assert_not_protobuf,
    assert_unauthenticated,
    error_info,
    field_violations,
    flip_sealed_content,
    interaction,
    not_protobuf,
    refused_raw,
    store_as_text,
    wait_until,
)
from tests.integrity.conftest import ORIGIN_PREFIX, start_suite


def append(running: Running, tenant: str, n: int) -> list[object]:
    stub = ingest_grpc.IngestServiceStub(running.channel)
    reply = stub.Append(
        ingest_pb.AppendRequest(events=[interaction(tenant, text=f"q{i}") for i in range(n)])
    )
    return list(reply.receipts)


def integrity(running: Running, role: str = "auditor") -> pb_grpc.IntegrityServiceStub:
    return pb_grpc.IntegrityServiceStub(running.as_role(role))


def checkpoint_covers(running: Running, tenant: str, size: int) -> bool:
    try:
        cp = integrity(running).GetCheckpoint(pb.GetCheckpointRequest(log_id=tenant)).checkpoint
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        return False
    return cp.tree_size >= size


def test_an_auditor_verifies_an_event_offline(suite: Running, tenant: str) -> None:
    receipts = append(suite, tenant, 6)
    wait_until(lambda: checkpoint_covers(suite, tenant, 6))
    stub = integrity(suite)
    published = stub.GetVerifierKey(pb.GetVerifierKeyRequest())
    assert published.origin_prefix == ORIGIN_PREFIX
    keys = [note.parse_verifier_key(k) for k in published.verifier_keys]
    target = receipts[4]

    by_id = stub.GetInclusionProof(
        pb.GetInclusionProofRequest(log_id=tenant, event_id=target.event_id)  # type: ignore[attr-defined]
    )
    cp = note.open_checkpoint(by_id.checkpoint.signed_note, keys, f"{ORIGIN_PREFIX}/{tenant}")
    assert by_id.leaf_hash == target.leaf_hash  # type: ignore[attr-defined]
    merkle.verify_inclusion(4, cp.size, target.leaf_hash, by_id.proof.hashes, cp.root_hash)  # type: ignore[attr-defined]

    by_seq = stub.GetInclusionProof(
        pb.GetInclusionProofRequest(log_id=tenant, sequence=4, tree_size=cp.size)
    )
    assert list(by_seq.proof.hashes) == list(by_id.proof.hashes)

    first = stub.GetCheckpoint(pb.GetCheckpointRequest(log_id=tenant, tree_size=cp.size))
    assert first.checkpoint.signed_note == by_id.checkpoint.signed_note
    # Reads are access events, so the log grows: wait for a larger checkpoint.
    wait_until(lambda: checkpoint_covers(suite, tenant, cp.size + 1))
    later = stub.GetCheckpoint(pb.GetCheckpointRequest(log_id=tenant)).checkpoint
    consistency = stub.GetConsistencyProof(
        pb.GetConsistencyProofRequest(log_id=tenant, from_size=cp.size, to_size=later.tree_size)
    )
    new = note.open_checkpoint(later.signed_note, keys, f"{ORIGIN_PREFIX}/{tenant}")
    merkle.verify_consistency(
        cp.size, new.size, cp.root_hash, new.root_hash, consistency.proof.hashes
    )

    verdict = stub.VerifyEvent(pb.VerifyEventRequest(log_id=tenant, event_id=target.event_id))  # type: ignore[attr-defined]
    assert verdict.status == pb.VERIFY_STATUS_VERIFIED, verdict.problems
    assert verdict.proof.tree_size == verdict.checkpoint.tree_size > 4

    # Every read above was recorded in the tenant's own log, naming the caller.
    store = open_store(suite.suite.store.engine.url.render_as_string(hide_password=False))  # type: ignore[attr-defined]
    access = [
        e.to_event()
        for e in store.read_log(tenant, 0, 1000)
        if e.to_event().event_type == event_pb2.EVENT_TYPE_AUDIT_ACCESS
    ]
    store.close()
    actions = {e.attributes["access.action"].string_value for e in access}
    assert {
        "integrity.get_inclusion_proof",
        "integrity.get_checkpoint",
        "integrity.get_consistency_proof",
        "integrity.verify_event",
    } <= actions
    assert {e.actor.user_id for e in access} == {"test-auditor"}


def test_bad_requests_name_the_field_and_errors_are_clear(suite: Running, tenant: str) -> None:
    append(suite, tenant, 2)
    wait_until(lambda: checkpoint_covers(suite, tenant, 2))
    stub = integrity(suite)
    cases = [
        (lambda: stub.GetCheckpoint(pb.GetCheckpointRequest()), "log_id"),
        # Each read appends an access record to the named log: no log no tenant could have.
        (lambda: stub.GetCheckpoint(pb.GetCheckpointRequest(log_id=f"{tenant}\tb")), "log_id"),
        (lambda: stub.GetCheckpoint(pb.GetCheckpointRequest(log_id=f"../{tenant}")), "log_id"),
        (lambda: stub.GetInclusionProof(pb.GetInclusionProofRequest(log_id=tenant)), "leaf"),
        (
            lambda: stub.GetInclusionProof(pb.GetInclusionProofRequest(log_id=tenant, sequence=-1)),
            "sequence",
        ),
        (
            lambda: stub.GetConsistencyProof(pb.GetConsistencyProofRequest(log_id=tenant)),
            "from_size",
        ),
        (
            lambda: stub.GetConsistencyProof(
                pb.GetConsistencyProofRequest(log_id=tenant, from_size=10**6)
            ),
            "from_size",
        ),
        (lambda: stub.VerifyEvent(pb.VerifyEventRequest(log_id=tenant)), "event_id"),
    ]
    for call, field in cases:
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert field in field_violations(err.value), (field, field_violations(err.value))
    assert not {f"{tenant}\tb", f"../{tenant}"} & set(suite.suite.store.log_sizes())

    for call in (
        lambda: stub.GetInclusionProof(pb.GetInclusionProofRequest(log_id=tenant, event_id="nope")),
        lambda: stub.GetCheckpoint(pb.GetCheckpointRequest(log_id=tenant, tree_size=10**6)),
        lambda: stub.VerifyEvent(pb.VerifyEventRequest(log_id=tenant, event_id="nope")),
    ):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.NOT_FOUND

    with pytest.raises(grpc.RpcError) as err:
        integrity(suite, "analyst").GetCheckpoint(pb.GetCheckpointRequest(log_id=tenant))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    anonymous = pb_grpc.IntegrityServiceStub(client.channel(suite.address))
    with pytest.raises(grpc.RpcError) as err:
        anonymous.GetVerifierKey(pb.GetVerifierKeyRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_not_yet_checkpointed_and_erased_events(
    store_url: str, notary_url: str, admin_url: str, tmp_path: Path, tenant: str
) -> None:
    running = start_suite(store_url, notary_url, tmp_path)
    try:
        first = append(running, tenant, 3)
        wait_until(lambda: checkpoint_covers(running, tenant, 3))
        running.suite.components["integrity"].notary.stop()  # type: ignore[attr-defined]
        late = append(running, tenant, 1)[0]
        stub = integrity(running)
        with pytest.raises(grpc.RpcError) as err:
            stub.GetInclusionProof(
                pb.GetInclusionProofRequest(log_id=tenant, event_id=late.event_id)  # type: ignore[attr-defined]
            )
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "no checkpoint covers sequence" in (err.value.details() or "")
        pending = stub.VerifyEvent(pb.VerifyEventRequest(log_id=tenant, event_id=late.event_id))  # type: ignore[attr-defined]
        assert pending.status == pb.VERIFY_STATUS_PENDING

        privileged = open_store(admin_url)  # erasure: content and salt go, the leaf stays
        try:
            gone = erase(privileged, tenant, "request", "dpo", event_ids=[first[1].event_id])  # type: ignore[attr-defined]
        finally:
            privileged.close()
        assert gone.erased == [first[1].event_id]  # type: ignore[attr-defined]
        erased = stub.VerifyEvent(pb.VerifyEventRequest(log_id=tenant, event_id=first[1].event_id))  # type: ignore[attr-defined]
        assert erased.status == pb.VERIFY_STATUS_VERIFIED_ERASED, erased.problems
    finally:
        running.channel.close()
        running.suite.stop()  # type: ignore[attr-defined]


def test_verify_event_names_sealed_content_that_no_longer_opens(
    tmp_path: Path, tenant: str
) -> None:
    """The embedded store seals content; a flipped byte is tampering, not a server error."""
    url = f"sqlite:///{tmp_path / 'aiaudit.db'}"
    running = start_suite(url, url, tmp_path)
    try:
        receipts = append(running, tenant, 2)
        wait_until(lambda: checkpoint_covers(running, tenant, 2))
        flip_sealed_content(url, tenant, 1)
        stub = integrity(running)
        event_id = receipts[1].event_id  # type: ignore[attr-defined]
        verdict = stub.VerifyEvent(pb.VerifyEventRequest(log_id=tenant, event_id=event_id))
        assert verdict.status == pb.VERIFY_STATUS_TAMPERED
        assert "sealed content does not open" in verdict.problems[0]
        intact = receipts[0].event_id  # type: ignore[attr-defined]
        assert (
            stub.VerifyEvent(pb.VerifyEventRequest(log_id=tenant, event_id=intact)).status
            == pb.VERIFY_STATUS_VERIFIED
        )
        foreign = open_store(url, keys=Keyring(FileKek(tmp_path / "elsewhere.kek")))
        now = dt.datetime.now(dt.UTC)
        foreign.append_group([[prepare(interaction(f"{tenant}-f", "f-0"), now)]])
        foreign.close()
        with pytest.raises(grpc.RpcError) as keyless:  # a KEK this server does not hold
            stub.VerifyEvent(pb.VerifyEventRequest(log_id=f"{tenant}-f", event_id="f-0"))
        assert keyless.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "content keys are unavailable" in (keyless.value.details() or "")
    finally:
        running.channel.close()
        running.suite.stop()  # type: ignore[attr-defined]


def test_offline_bundle_round_trip_and_tampering(
    suite: Running,
    store_url: str,
    notary_url: str,
    tenant: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    append(suite, tenant, 5)
    wait_until(lambda: checkpoint_covers(suite, tenant, 5))
    key = integrity(suite).GetVerifierKey(pb.GetVerifierKeyRequest()).verifier_keys[0]
    bundle = tmp_path / "bundle.jsonl"
    export = ["integrity", "export-bundle", "--database-url", notary_url, "--log", tenant]
    export += ["--record-database-url", store_url, "--requested-by", "auditor"]
    assert main([*export, "--count", "5", str(bundle)]) == 0
    lines = bundle.read_text().splitlines()
    assert len(lines) == 6  # the scope, then the events
    check = ["verify", "--bundle", str(bundle), "--verifier-key", key]
    check += ["--origin-prefix", ORIGIN_PREFIX]
    assert main(check) == 0

    import base64
    import json

    line = json.loads(lines[3])
    line["canonical"] = base64.b64encode(
        base64.b64decode(line["canonical"]).replace(b'"gpt-4o"', b'"gpt-4x"')
    ).decode()
    assert line["canonical"] != json.loads(lines[3])["canonical"]
    lines[3] = json.dumps(line)
    bundle.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert main(check) == 1
    out = capsys.readouterr().out
    assert f"line 4 event {line['event_id']}: inclusion proof" in out


def test_a_proof_that_does_not_verify_is_never_served(
    suite: Running, admin_url: str, tenant: str
) -> None:
    """Proofs are checked against the signed root before they leave: a tampered node gives
    DATA_LOSS, not a path that fails at the auditor; once repaired, proofs are served again
    (nodes near the root are cached, the lower ones read each time)."""
    for _ in range(6):  # 600 leaves: a proof has nodes below and above the cached levels
        append(suite, tenant, 100)
    wait_until(lambda: checkpoint_covers(suite, tenant, 600))
    stub = integrity(suite)
    # Every read adds an access record: pin the checkpoint the proofs are asked against.
    size = stub.GetCheckpoint(pb.GetCheckpointRequest(log_id=tenant)).checkpoint.tree_size
    request = pb.GetInclusionProofRequest(log_id=tenant, sequence=0, tree_size=size)
    good = stub.GetInclusionProof(request)
    merkle.verify_inclusion(
        0, size, good.leaf_hash, list(good.proof.hashes), good.checkpoint.root_hash
    )
    node = {"t": tenant, "level": 3, "idx": 1, "bad": b"\x00" * 32}  # on leaf 0's path
    where = "WHERE log_id = :t AND level = :level AND idx = :idx"
    engine = sa.create_engine(admin_url)
    with engine.begin() as conn:
        original = conn.execute(
            sa.text(f"SELECT hash FROM integrity_nodes {where}"), node
        ).scalar_one()
        conn.execute(sa.text(f"UPDATE integrity_nodes SET hash = :bad {where}"), node)
    other = pb.GetInclusionProofRequest(log_id=tenant, sequence=1, tree_size=size)
    with pytest.raises(grpc.RpcError) as err:
        stub.GetInclusionProof(request)
    assert err.value.code() == grpc.StatusCode.DATA_LOSS
    assert f"does not match its signed checkpoint at size {size}" in (err.value.details() or "")
    batch = pb.BatchGetInclusionProofsRequest(log_id=tenant, sequences=[599, 0], tree_size=size)
    with pytest.raises(grpc.RpcError) as err:  # batches (exports) are checked alike
        stub.BatchGetInclusionProofs(batch)
    assert err.value.code() == grpc.StatusCode.DATA_LOSS
    with engine.begin() as conn:
        conn.execute(
            sa.text(f"UPDATE integrity_nodes SET hash = :good {where}"), {**node, "good": original}
        )
    engine.dispose()
    leaves = {p.leaf_index: p for p in stub.BatchGetInclusionProofs(batch).proofs}
    assert set(leaves) == {599, 0}
    for req in (request, other):
        reply = stub.GetInclusionProof(req)
        merkle.verify_inclusion(
            req.sequence,
            size,
            reply.leaf_hash,
            list(reply.proof.hashes),
            reply.checkpoint.root_hash,
        )
    engine = sa.create_engine(admin_url)
    with engine.begin() as conn:  # a log entry removed under a signed checkpoint
        conn.execute(
            sa.text("DELETE FROM log_entries WHERE log_id = :t AND seq = 7"), {"t": tenant}
        )
    engine.dispose()
    with pytest.raises(grpc.RpcError) as err:
        stub.BatchGetInclusionProofs(
            pb.BatchGetInclusionProofsRequest(log_id=tenant, sequences=[6, 7], tree_size=size)
        )
    assert err.value.code() == grpc.StatusCode.DATA_LOSS
    assert "no entry at sequence 7" in (err.value.details() or "")


def test_a_served_checkpoint_carries_its_stored_sign_time(
    suite: Running, tenant: str, notary_url: str
) -> None:
    import datetime as dt

    append(suite, tenant, 2)
    wait_until(lambda: checkpoint_covers(suite, tenant, 2))
    served = integrity(suite).GetCheckpoint(pb.GetCheckpointRequest(log_id=tenant)).checkpoint
    engine = sa.create_engine(notary_url)  # the role that writes checkpoints reads them
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text(
                "SELECT sign_time FROM integrity_checkpoints WHERE log_id = :t AND tree_size = :n"
            ),
            {"t": tenant, "n": served.tree_size},
        ).scalar_one()
    engine.dispose()
    if isinstance(stored, str):  # SQLite keeps text
        stored = dt.datetime.fromisoformat(stored)
    if stored.tzinfo is None:
        stored = stored.replace(tzinfo=dt.UTC)
    assert served.sign_time.ToDatetime(dt.UTC) == stored  # to the microsecond
    assert abs(stored - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)


def _status(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        call()  # type: ignore[operator]
    return err.value.code()


def test_a_damaged_stored_tree_is_data_loss_and_deleted_content_is_tampering(
    suite: Running, tenant: str, admin_url: str
) -> None:
    """A node row deleted gave UNKNOWN; a node changed was served in a consistency proof that
    failed at the auditor's (a forked log, to them); content deleted by raw SQL was
    VERIFIED_ERASED although no erasure record names it."""
    receipts = append(suite, tenant, 20)
    wait_until(lambda: checkpoint_covers(suite, tenant, 20))
    stub = integrity(suite)
    size = stub.GetCheckpoint(pb.GetCheckpointRequest(log_id=tenant)).checkpoint.tree_size
    node = {"t": tenant, "l": 2, "i": 1}
    where = "WHERE log_id = :t AND level = :l AND idx = :i"
    admin = sa.create_engine(admin_url)
    try:
        with admin.begin() as conn:
            saved = conn.execute(
                sa.text(f"SELECT hash FROM integrity_nodes {where}"), node
            ).scalar()
            conn.execute(sa.text(f"DELETE FROM integrity_nodes {where}"), node)
        inclusion = pb.GetInclusionProofRequest(log_id=tenant, sequence=0, tree_size=size)
        consistency = pb.GetConsistencyProofRequest(log_id=tenant, from_size=3, to_size=size)
        assert _status(lambda: stub.GetInclusionProof(inclusion)) == grpc.StatusCode.DATA_LOSS
        assert _status(lambda: stub.GetConsistencyProof(consistency)) == grpc.StatusCode.DATA_LOSS
        with admin.begin() as conn:
            changed = {**node, "h": bytes(32)}
            conn.execute(
                sa.text("INSERT INTO integrity_nodes (log_id, level, idx, hash) "
                        "VALUES (:t, :l, :i, :h)"),
                changed,
            )  # fmt: skip
        assert _status(lambda: stub.GetConsistencyProof(consistency)) == grpc.StatusCode.DATA_LOSS
        with admin.begin() as conn:
            restore = sa.text(f"UPDATE integrity_nodes SET hash = :h {where}")
            conn.execute(restore, {**node, "h": saved})
        assert stub.GetConsistencyProof(consistency).proof.hashes  # intact again: served
        with admin.begin() as conn:
            delete = sa.text("DELETE FROM event_content WHERE log_id = :t AND seq = 3")
            conn.execute(delete, {"t": tenant})
    finally:
        admin.dispose()
    with admin.begin() as conn:  # an entry removed below the signed size
        conn.execute(
            sa.text("DELETE FROM log_entries WHERE log_id = :t AND seq = 7"), {"t": tenant}
        )
    gone = pb.GetInclusionProofRequest(log_id=tenant, sequence=7, tree_size=size)
    assert (
        _status(lambda: stub.GetInclusionProof(gone)) == grpc.StatusCode.DATA_LOSS
    )  # was NOT_FOUND
    third = receipts[3].event_id  # type: ignore[attr-defined]
    verdict = stub.VerifyEvent(pb.VerifyEventRequest(log_id=tenant, event_id=third))
    assert verdict.status == pb.VERIFY_STATUS_TAMPERED
    assert "content deleted without a privacy-erasure record" in " ".join(verdict.problems)


def test_stored_checkpoint_columns_that_disagree_with_the_signed_note_are_tampering(
    suite: Running, tenant: str, admin_url: str
) -> None:
    """The ``root_hash`` column of the log's checkpoints changed by raw SQL: the proof still
    checks against the signed note's root, but ``VerifyEvent`` answers TAMPERED and names the
    stored columns (mutation review 2026-12-05: dropping that check survived every test).
    Restored after, so other consumers of the shared database see an intact log again."""
    receipts = append(suite, tenant, 5)
    wait_until(lambda: checkpoint_covers(suite, tenant, 5))
    stub = integrity(suite)
    request = pb.VerifyEventRequest(log_id=tenant, event_id=receipts[0].event_id)  # type: ignore[attr-defined]
    saved: dict[int, bytes] = {}
    admin = sa.create_engine(admin_url)

    def tampered() -> pb.VerifyEventResponse | None:
        """Changes every checkpoint row not changed yet; the verdict if it met a changed one
        (reads are logged, so the notary may sign a newer checkpoint meanwhile)."""
        with admin.begin() as conn:
            rows = conn.execute(
                sa.text("SELECT tree_size, root_hash FROM integrity_checkpoints "
                        "WHERE log_id = :t"),
                {"t": tenant},
            ).all()  # fmt: skip
            for size, root in rows:
                if size in saved:
                    continue
                saved[size] = bytes(root)
                conn.execute(
                    sa.text("UPDATE integrity_checkpoints SET root_hash = :h "
                            "WHERE log_id = :t AND tree_size = :s"),
                    {"t": tenant, "s": size, "h": bytes(b ^ 0xFF for b in bytes(root))},
                )  # fmt: skip
        verdict = stub.VerifyEvent(request)
        return verdict if verdict.checkpoint.tree_size in saved else None

    try:
        verdict = wait_until(tampered)
        assert verdict.status == pb.VERIFY_STATUS_TAMPERED
        assert "stored checkpoint columns disagree with its signed note" in verdict.problems
    finally:
        with admin.begin() as conn:
            for size, root in saved.items():
                conn.execute(
                    sa.text("UPDATE integrity_checkpoints SET root_hash = :h "
                            "WHERE log_id = :t AND tree_size = :s"),
                    {"t": tenant, "s": size, "h": root},
                )  # fmt: skip
        admin.dispose()
    intact = stub.VerifyEvent(request)
    assert (intact.status, list(intact.problems)) == (pb.VERIFY_STATUS_VERIFIED, [])


def test_a_request_that_is_not_protobuf_is_invalid_argument(suite: Running, tenant: str) -> None:
    """Invalid UTF-8 in a string field was INTERNAL "Exception deserializing request!", gRPC's
    own answer, as if the server had failed (review, 2026-12-06). Nothing is recorded, and a
    caller without a key hears UNAUTHENTICATED, nothing of the parse."""
    method = "/aiaudit.integrity.v1.IntegrityService/GetInclusionProof"
    raw = not_protobuf(pb.GetInclusionProofRequest(log_id=tenant, event_id="EVID"), "EVID")
    with suite.as_role("auditor") as auditor:
        err = refused_raw(auditor, method, raw)
    assert_not_protobuf(err, "aiaudit.integrity.v1.GetInclusionProofRequest")
    assert_unauthenticated(suite.address, method, raw)
    assert suite.suite.store.log_sizes().get(tenant, 0) == 0  # type: ignore[attr-defined]


def test_integrity_authenticates_before_it_checks_a_request(
    store: object, tmp_path: Path, tenant: str
) -> None:
    """A caller without a key was told what was wrong with its request: ``GetInclusionProof{}``
    answered INVALID_ARGUMENT "leaf: set event_id or sequence" (review, 2026-12-05). Now
    UNAUTHENTICATED first, as ingest, search and alerting answer, and nothing is recorded.

    The handlers on a gRPC server of their own (no interceptor in front of them), over a real
    store: what they do themselves, whatever the server puts before them.
    """
    from concurrent import futures

    from aiaudit.common.access import AccessLog
    from aiaudit.common.auth import Authenticator
    from aiaudit.common.store import SqlEventStore
    from aiaudit.integrity import handlers
    from aiaudit.integrity.signers import FileKeys
    from tests.conftest import write_keys

    assert isinstance(store, SqlEventStore)
    keys = write_keys(tmp_path / "keys.yaml")
    auth = Authenticator.from_file(tmp_path / "keys.yaml")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handlers.add_to_server(
        server,
        handlers.IntegrityHandlers(
            store,
            handlers.read_engine(store),
            FileKeys(ORIGIN_PREFIX, tmp_path / "key.pem"),
            auth,
            AccessLog(store),
            ORIGIN_PREFIX,
        ),
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        address = f"127.0.0.1:{port}"
        bad_requests = [
            ("GetInclusionProof", pb.GetInclusionProofRequest(log_id=tenant)),
            ("GetInclusionProof", pb.GetInclusionProofRequest(log_id=tenant, sequence=-1)),
            ("GetInclusionProof", pb.GetInclusionProofRequest(log_id=tenant, event_id="x")),
            ("BatchGetInclusionProofs", pb.BatchGetInclusionProofsRequest(log_id=tenant)),
            ("GetConsistencyProof", pb.GetConsistencyProofRequest(log_id=tenant)),
            ("GetCheckpoint", pb.GetCheckpointRequest(log_id=tenant, tree_size=-1)),
            ("VerifyEvent", pb.VerifyEventRequest(log_id=tenant)),
            ("GetCheckpoint", pb.GetCheckpointRequest(log_id="../nope")),
            ("GetCheckpoint", pb.GetCheckpointRequest(log_id=tenant)),  # a good one
        ]
        for key in (None, "not-a-key"):
            stub = pb_grpc.IntegrityServiceStub(client.channel(address, key))
            for method, request in bad_requests:
                with pytest.raises(grpc.RpcError) as err:
                    getattr(stub, method)(request, timeout=10)
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, (
                    key,
                    method,
                    err.value.code(),
                    err.value.details(),
                )
                assert "missing or unknown API key" in (err.value.details() or "")
        assert store.log_sizes().get(tenant, 0) == 0  # no access record of any of them
        # With a key, the same request is still answered with what is wrong with it.
        auditor = pb_grpc.IntegrityServiceStub(client.channel(address, keys["auditor"]))
        with pytest.raises(grpc.RpcError) as err:
            auditor.GetInclusionProof(pb.GetInclusionProofRequest(log_id=tenant), timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "leaf" in field_violations(err.value)
    finally:
        server.stop(None)


def test_an_erasure_record_before_the_event_does_not_make_it_erased(
    suite: Running, tenant: str, admin_url: str
) -> None:
    """An erasure names every id it is asked for, ids no event has yet too: an event given
    one later keeps its content, and content raw SQL then deletes is tampering, not
    VERIFIED_ERASED. Only a record later in the log than the event counts."""
    append(suite, tenant, 1)
    owner = open_store(admin_url)
    try:
        done = erase(owner, tenant, "request", "dpo", event_ids=["not-yet"])
    finally:
        owner.close()
    assert (done.named, done.erased) == (["not-yet"], [])
    stub = ingest_grpc.IngestServiceStub(suite.channel)
    stub.Append(ingest_pb.AppendRequest(events=[interaction(tenant, event_id="not-yet")]))
    wait_until(lambda: checkpoint_covers(suite, tenant, 3))
    verifier = integrity(suite)
    request = pb.VerifyEventRequest(log_id=tenant, event_id="not-yet")
    assert verifier.VerifyEvent(request).status == pb.VERIFY_STATUS_VERIFIED
    _as_admin(admin_url, "DELETE FROM event_content WHERE log_id = :t AND seq = 2", t=tenant)
    verdict = verifier.VerifyEvent(request)
    assert verdict.status == pb.VERIFY_STATUS_TAMPERED
    assert list(verdict.problems) == [
        "content deleted without a privacy-erasure record naming the event"
    ]


def test_content_deleted_under_a_forged_erasure_record_is_tampering(
    suite: Running, tenant: str, admin_url: str
) -> None:
    """An event row forged as an erasure record (no log entry) naming an event whose content
    raw SQL deleted made VerifyEvent answer VERIFIED_ERASED (review, 2026-12-05)."""
    receipts = append(suite, tenant, 2)
    wait_until(lambda: checkpoint_covers(suite, tenant, 2))
    first, second = (r.event_id for r in receipts)  # type: ignore[attr-defined]
    owner = open_store(admin_url)
    try:
        record = erase(owner, tenant, "request", "dpo", event_ids=[second]).record_id
    finally:
        owner.close()
    admin = sa.create_engine(admin_url)
    try:
        with admin.begin() as conn:
            row = conn.execute(
                sa.text("SELECT * FROM events WHERE log_id = :t AND event_id = :e"),
                {"t": tenant, "e": record},
            ).one()
            forged = {**row._asdict(), "seq": 1000, "event_id": "erasure-forged"}
            forged["canonical"] = bytes(row.canonical).replace(second.encode(), first.encode())
            columns = ", ".join(forged)
            conn.execute(
                sa.text(f"INSERT INTO events ({columns}) VALUES (:{', :'.join(forged)})"), forged
            )
            conn.execute(
                sa.text("DELETE FROM event_content WHERE log_id = :t AND seq = 0"), {"t": tenant}
            )
    finally:
        admin.dispose()
    stub = integrity(suite)
    verdict = stub.VerifyEvent(pb.VerifyEventRequest(log_id=tenant, event_id=first))
    assert verdict.status == pb.VERIFY_STATUS_TAMPERED
    assert list(verdict.problems) == [
        "content deleted without a privacy-erasure record naming the event"
    ]
    erased = stub.VerifyEvent(pb.VerifyEventRequest(log_id=tenant, event_id=second))
    assert erased.status == pb.VERIFY_STATUS_VERIFIED_ERASED, erased.problems


def test_content_put_back_after_its_erasure_is_tampering(
    suite: Running, tenant: str, admin_url: str
) -> None:
    """Content restored from a backup taken before its erasure was served again, and
    VerifyEvent answered VERIFIED (it never looked for a later record naming an event
    whose content is present; review, 2026-12-07). It now finds the record through
    ``erasure_names`` and checks the record itself: a row forged there makes no
    content put back, and a row deleted there is named by ``aiaudit verify``."""
    receipts = append(suite, tenant, 2)
    wait_until(lambda: checkpoint_covers(suite, tenant, 2))
    first, second = (r.event_id for r in receipts)  # type: ignore[attr-defined]
    admin = sa.create_engine(admin_url)
    try:
        with admin.connect() as conn:
            backup = (
                conn.execute(
                    sa.text("SELECT * FROM event_content WHERE log_id = :t AND seq = 0"),
                    {"t": tenant},
                )
                .one()
                ._asdict()
            )
        owner = open_store(admin_url)
        try:
            record = erase(owner, tenant, "request", "dpo", event_ids=[first]).record_id
        finally:
            owner.close()
        with admin.connect() as conn:
            at = conn.execute(
                sa.text("SELECT seq FROM log_entries WHERE log_id = :t AND event_id = :e"),
                {"t": tenant, "e": record},
            ).scalar_one()
        wait_until(lambda: checkpoint_covers(suite, tenant, at + 1))
        stub = integrity(suite)
        request = pb.VerifyEventRequest(log_id=tenant, event_id=first)
        assert stub.VerifyEvent(request).status == pb.VERIFY_STATUS_VERIFIED_ERASED
        with admin.begin() as conn:  # the restore of that one row
            columns = ", ".join(backup)
            conn.execute(
                sa.text(f"INSERT INTO event_content ({columns}) VALUES (:{', :'.join(backup)})"),
                backup,
            )
        verdict = stub.VerifyEvent(request)
        assert verdict.status == pb.VERIFY_STATUS_TAMPERED
        assert list(verdict.problems) == [
            f"content present although the erasure record at sequence {at} names the event "
            "(put back?)"
        ]
        other = pb.VerifyEventRequest(log_id=tenant, event_id=second)
        assert stub.VerifyEvent(other).status == pb.VERIFY_STATUS_VERIFIED
        with admin.begin() as conn:  # rows pointing at no record naming it: no put-back
            for seq in (at, 1, at + 1000):  # the record, an event, no entry
                conn.execute(
                    sa.text(
                        "INSERT INTO erasure_names (log_id, event_id, record_seq)"
                        " VALUES (:t, :e, :s)"
                    ),
                    {"t": tenant, "e": second, "s": seq},
                )
        verdict = stub.VerifyEvent(other)
        assert verdict.status == pb.VERIFY_STATUS_VERIFIED, verdict.problems
    finally:
        admin.dispose()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # bytea refuses text
def test_an_erasure_record_stored_as_text_is_no_failure(
    suite: Running, tenant: str, admin_url: str
) -> None:
    """On SQLite (which takes any type) an erasure record whose canonical form raw SQL
    rewrote as text made VerifyEvent of the event it erased fail (TypeError in
    storage.erasure_records). It names nothing, as any other damaged record: the content
    is gone without a record, and the call says so."""
    receipts = append(suite, tenant, 2)
    wait_until(lambda: checkpoint_covers(suite, tenant, 2))
    second = receipts[1].event_id  # type: ignore[attr-defined]
    owner = open_store(admin_url)
    try:
        record = erase(owner, tenant, "request", "dpo", event_ids=[second]).record_id
    finally:
        owner.close()
    wait_until(lambda: checkpoint_covers(suite, tenant, 3))
    stub = integrity(suite)
    request = pb.VerifyEventRequest(log_id=tenant, event_id=second)
    assert stub.VerifyEvent(request).status == pb.VERIFY_STATUS_VERIFIED_ERASED
    _as_admin(
        admin_url,
        "UPDATE events SET canonical = CAST(canonical AS TEXT) WHERE log_id = :t AND event_id = :e",
        t=tenant,
        e=record,
    )
    verdict = stub.VerifyEvent(request)
    assert verdict.status == pb.VERIFY_STATUS_TAMPERED
    assert list(verdict.problems) == [
        "content deleted without a privacy-erasure record naming the event"
    ]


def _stored_as_text(call: object) -> tuple[str, str, dict[str, str]]:
    """A call refused for a row stored as text: its message, reason and metadata."""
    with pytest.raises(grpc.RpcError) as err:
        call()  # type: ignore[operator]
    assert err.value.code() == grpc.StatusCode.DATA_LOSS, err.value.details()
    return err.value.details() or "", *error_info(err.value)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # bytea refuses text
def test_a_node_or_checkpoint_root_stored_as_text_is_data_loss(
    suite: Running, tenant: str, admin_url: str
) -> None:
    """On SQLite a node's hash or a checkpoint's root rewritten as text read as a str: the
    proofs answered UNKNOWN (TypeError) or, for a text that is no UTF-8, UNAVAILABLE "the
    store is unavailable; retry". They answer DATA_LOSS naming the row and column;
    VerifyEvent names a root stored as text among its problems, as it names the checkpoint's
    columns changed."""
    receipts = append(suite, tenant, 20)
    wait_until(lambda: checkpoint_covers(suite, tenant, 20))
    stub = integrity(suite)
    size = stub.GetCheckpoint(pb.GetCheckpointRequest(log_id=tenant)).checkpoint.tree_size
    first = receipts[0].event_id  # type: ignore[attr-defined]
    inclusion = pb.GetInclusionProofRequest(log_id=tenant, sequence=0, tree_size=size)
    batch = pb.BatchGetInclusionProofsRequest(log_id=tenant, sequences=[0, 1], tree_size=size)
    consistency = pb.GetConsistencyProofRequest(log_id=tenant, from_size=3, to_size=size)
    verify_event = pb.VerifyEventRequest(log_id=tenant, event_id=first)
    node = "WHERE log_id = :t AND level = 2 AND idx = 1"  # on each path asked for
    _as_admin(admin_url, f"UPDATE integrity_nodes SET hash = CAST(hash AS TEXT) {node}", t=tenant)
    named = (
        f"log {tenant!r} node level 2 index 1: column integrity_nodes.hash is stored as text, "
        "not bytes (rewritten by raw SQL?); run `aiaudit verify` on the store"
    )
    column = {"column": "integrity_nodes.hash"}
    for call in (
        lambda: stub.GetInclusionProof(inclusion),
        lambda: stub.BatchGetInclusionProofs(batch),
        lambda: stub.GetConsistencyProof(consistency),
        lambda: stub.VerifyEvent(verify_event),
    ):
        assert _stored_as_text(call) == (named, "STORED_AS_TEXT", column)
    _as_admin(admin_url, f"UPDATE integrity_nodes SET hash = CAST(hash AS BLOB) {node}", t=tenant)
    assert stub.GetInclusionProof(inclusion).proof.hashes  # bytes again: served
    root = "integrity_checkpoints SET root_hash = CAST(root_hash AS TEXT) WHERE log_id = :t"
    _as_admin(admin_url, f"UPDATE {root} AND tree_size = :s", t=tenant, s=size)
    named = (
        f"log {tenant!r} stored checkpoint at size {size}: column "
        "integrity_checkpoints.root_hash is stored as text, not bytes (rewritten by raw SQL?); "
        "run `aiaudit verify` on the store"
    )
    column = {"column": "integrity_checkpoints.root_hash"}
    for call in (
        lambda: stub.GetCheckpoint(pb.GetCheckpointRequest(log_id=tenant, tree_size=size)),
        lambda: stub.GetInclusionProof(inclusion),
        lambda: stub.BatchGetInclusionProofs(batch),
        lambda: stub.GetConsistencyProof(consistency),
    ):
        assert _stored_as_text(call) == (named, "STORED_AS_TEXT", column)

    def verdict() -> pb.VerifyEventResponse | None:
        """Against the latest checkpoint, which reads (logged) make the notary sign anew."""
        _as_admin(admin_url, f"UPDATE {root} AND typeof(root_hash) = 'blob'", t=tenant)
        answer = stub.VerifyEvent(verify_event)
        return answer if answer.problems else None

    answer = wait_until(verdict)
    assert answer.status == pb.VERIFY_STATUS_TAMPERED
    assert list(answer.problems) == [
        f"stored checkpoint at size {answer.checkpoint.tree_size}: column "
        "integrity_checkpoints.root_hash is stored as text, not bytes (rewritten by raw SQL?)"
    ]


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # bytea refuses text
def test_an_event_stored_as_text_is_tampering_naming_the_column(
    suite: Running, tenant: str, admin_url: str
) -> None:
    """On SQLite an event's binary column rewritten as text read as a str in the shared
    event read: VerifyEvent answered UNKNOWN (TypeError) or, for a text that is no UTF-8 (a
    leaf hash, sealed content), UNAVAILABLE "the store is unavailable; retry". It answers
    TAMPERED naming the column, as verify names it."""
    columns = ["events.canonical", "log_entries.leaf_hash", "event_content.content"]
    columns += ["event_content.salt"]
    receipts = append(suite, tenant, len(columns))
    wait_until(lambda: checkpoint_covers(suite, tenant, len(columns)))
    stub = integrity(suite)
    for seq, column in enumerate(columns):
        store_as_text(admin_url, tenant, seq, column)
        event_id = receipts[seq].event_id  # type: ignore[attr-defined]
        verdict = stub.VerifyEvent(pb.VerifyEventRequest(log_id=tenant, event_id=event_id))
        assert verdict.status == pb.VERIFY_STATUS_TAMPERED, column
        assert list(verdict.problems) == [
            f"column {column} is stored as text, not bytes (rewritten by raw SQL?)"
        ]


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"[1]", "content is not a JSON object"),
        (b"null", "content is not a JSON object"),
        (b"not json", "content is not JSON"),
    ],
)
def test_content_that_is_not_a_json_object_is_tampering(
    suite: Running, tenant: str, admin_url: str, content: bytes, why: str
) -> None:
    """Content rewritten to JSON that is not an object (or that does not parse): until
    2026-12-06 VerifyEvent answered UNKNOWN (TypeError, JSONDecodeError), and named no
    problem for ``null`` (read as no content at all)."""
    receipts = append(suite, tenant, 1)
    wait_until(lambda: checkpoint_covers(suite, tenant, 1))
    statement = "UPDATE event_content SET content = :c WHERE log_id = :t AND seq = 0"
    _as_admin(admin_url, statement, c=content, t=tenant)
    event_id = receipts[0].event_id  # type: ignore[attr-defined]
    verdict = integrity(suite).VerifyEvent(pb.VerifyEventRequest(log_id=tenant, event_id=event_id))
    assert verdict.status == pb.VERIFY_STATUS_TAMPERED
    assert list(verdict.problems) == [why]


def _as_admin(admin_url: str, statement: str, **params: object) -> None:
    """One statement run by the store's owner, as a tamperer with the database would."""
    admin = sa.create_engine(admin_url)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(statement), params)
    finally:
        admin.dispose()
