"""Signed receipts on ingest acks: format, forgery, the whole suite, offline CLI check."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa

from aiaudit.cli.main import main
from aiaudit.common import client
from aiaudit.common.store.sql import Receipt
from aiaudit.ingest.v1 import ingest_service_pb2 as ingest_pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from aiaudit.integrity import merkle, note, receipts
from aiaudit.integrity.note import NoteError
from aiaudit.integrity.receipts import ReceiptLine, ReceiptNotary
from aiaudit.integrity.signers import FileKeys
from aiaudit.integrity.v1 import integrity_service_pb2 as pb
from tests.conftest import serve_suite
from tests.helpers import interaction, wait_until
from tests.integrity.conftest import ORIGIN_PREFIX, start_suite
from tests.integrity.test_service import checkpoint_covers, integrity

T0 = dt.datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)


def _receipt(log_id: str, seq: int, t: dt.datetime = T0) -> Receipt:
    leaf = merkle.leaf_hash(b"event %d" % seq)
    return Receipt(f"e{seq}", log_id, seq, leaf, t + dt.timedelta(microseconds=seq))


def test_one_note_per_log_verifies_and_names_each_receipt(tmp_path: Path) -> None:
    keys = FileKeys(ORIGIN_PREFIX, tmp_path / "k.pem")
    batch = [_receipt("t1", 7), _receipt("t2", 0), _receipt("t1", 8)]
    notes = ReceiptNotary(keys, ORIGIN_PREFIX).sign(batch)
    assert len(notes) == 2  # one signature per log of the batch, not per event
    first = receipts.open_receipts(notes[0], keys.verifier_keys(), ORIGIN_PREFIX)
    assert first.log_id == "t1"
    assert first.origin == f"{ORIGIN_PREFIX}/t1"
    assert [(r.sequence, r.leaf_hash, r.receive_time) for r in first.receipts] == [
        (r.sequence, r.leaf_hash, r.receive_time) for r in (batch[0], batch[2])
    ]
    second = receipts.open_receipts(notes[1], keys.verifier_keys(), ORIGIN_PREFIX)
    assert (second.log_id, [r.sequence for r in second.receipts]) == ("t2", [0])
    text = notes[0].split("\n\n")[0]
    assert text.split("\n")[0] == "aiaudit.receipt/v1"
    assert text.split("\n")[2] == (
        f"7 {base64.b64encode(batch[0].leaf_hash).decode()} 2025-03-01T12:00:00.123463Z"
    )


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t.replace("\n7 ", "\n6 ", 1),  # another sequence
        lambda t: t.replace("12:00:00.123463Z", "12:00:01.123463Z"),  # another time
        lambda t: t.replace(f"{ORIGIN_PREFIX}/t1", f"{ORIGIN_PREFIX}/t2"),  # another log
        lambda t: t.replace("aiaudit.receipt/v1\n", "aiaudit.receipt/v2\n"),
    ],
)
def test_a_modified_receipt_fails(tmp_path: Path, change: object) -> None:
    keys = FileKeys(ORIGIN_PREFIX, tmp_path / "k.pem")
    signed = ReceiptNotary(keys, ORIGIN_PREFIX).sign([_receipt("t1", 7)])[0]
    forged = change(signed)  # type: ignore[operator]
    assert forged != signed
    with pytest.raises(NoteError):
        receipts.open_receipts(forged, keys.verifier_keys(), ORIGIN_PREFIX)


def test_forged_key_wrong_prefix_and_checkpoint_confusion_fail(tmp_path: Path) -> None:
    keys = FileKeys(ORIGIN_PREFIX, tmp_path / "k.pem")
    other = FileKeys(ORIGIN_PREFIX, tmp_path / "other.pem")
    signed = ReceiptNotary(other, ORIGIN_PREFIX).sign([_receipt("t1", 1)])[0]
    with pytest.raises(NoteError, match="no signature from a trusted key"):
        receipts.open_receipts(signed, keys.verifier_keys(), ORIGIN_PREFIX)
    with pytest.raises(NoteError, match="origin"):
        receipts.open_receipts(signed, other.verifier_keys(), "elsewhere/log")
    # A receipt is never a checkpoint, and a checkpoint never a receipt, under the same key.
    with pytest.raises(NoteError):
        note.open_checkpoint(signed, other.verifier_keys())
    cp = note.sign_checkpoint(
        note.Checkpoint(f"{ORIGIN_PREFIX}/t1", 3, b"\x00" * 32), [other.active().signer]
    )
    with pytest.raises(NoteError, match=r"not a aiaudit\.receipt/v1"):
        receipts.open_receipts(cp, other.verifier_keys(), ORIGIN_PREFIX)


def test_format_refuses_what_it_cannot_write() -> None:
    line = ReceiptLine(1, b"\x01" * 32, T0)
    with pytest.raises(NoteError):
        receipts.format_receipts("has space/t", [line])
    with pytest.raises(NoteError):
        receipts.format_receipts("o/t", [ReceiptLine(1, b"short", T0)])
    with pytest.raises(NoteError):
        receipts.format_receipts("o/t", [])


def test_signed_receipts_on_acks_prove_inclusion_later(
    store_url: str, notary_url: str, tenant: str, tmp_path: Path
) -> None:
    running = start_suite(store_url, notary_url, tmp_path)
    try:
        stub = ingest_grpc.IngestServiceStub(running.channel)
        plain = stub.Append(ingest_pb.AppendRequest(events=[interaction(tenant, text="p")]))
        assert not plain.signed_receipts  # opt-in: plain appends pay nothing
        reply = stub.Append(
            ingest_pb.AppendRequest(
                events=[interaction(tenant, text=f"s{i}") for i in range(4)], sign_receipts=True
            )
        )
        assert len(reply.signed_receipts) == 1
        published = integrity(running).GetVerifierKey(pb.GetVerifierKeyRequest())
        keys = [note.parse_verifier_key(k) for k in published.verifier_keys]
        opened = receipts.open_receipts(reply.signed_receipts[0], keys, ORIGIN_PREFIX)
        assert opened.log_id == tenant
        assert [(r.sequence, r.leaf_hash, r.receive_time) for r in opened.receipts] == [
            (r.sequence, r.leaf_hash, r.receive_time.ToDatetime(dt.UTC)) for r in reply.receipts
        ]

        # Stream: per request, in order.
        stream = stub.AppendStream(
            iter(
                [
                    ingest_pb.AppendStreamRequest(
                        request_id=1, events=[interaction(tenant)], sign_receipts=True
                    ),
                    ingest_pb.AppendStreamRequest(request_id=2, events=[interaction(tenant)]),
                ]
            )
        )
        answers = {a.request_id: a for a in stream}
        assert len(answers[1].signed_receipts) == 1 and not answers[2].signed_receipts
        streamed = receipts.open_receipts(answers[1].signed_receipts[0], keys, ORIGIN_PREFIX)
        assert streamed.receipts[0].sequence == answers[1].receipts[0].sequence

        # Later: prove each receipted leaf is in a signed checkpoint.
        last = max(r.sequence for r in opened.receipts)
        wait_until(lambda: checkpoint_covers(running, tenant, last + 1))
        for r in opened.receipts:
            proof = integrity(running).GetInclusionProof(
                pb.GetInclusionProofRequest(log_id=tenant, sequence=r.sequence)
            )
            cp = note.open_checkpoint(
                proof.checkpoint.signed_note, keys, f"{ORIGIN_PREFIX}/{tenant}"
            )
            merkle.verify_inclusion(
                r.sequence, cp.size, r.leaf_hash, proof.proof.hashes, cp.root_hash
            )
            with pytest.raises(merkle.ProofError):
                merkle.verify_inclusion(
                    r.sequence,
                    cp.size,
                    merkle.leaf_hash(b"forged"),
                    proof.proof.hashes,
                    cp.root_hash,
                )
    finally:
        running.channel.close()
        running.suite.stop()  # type: ignore[attr-defined]


def test_ingest_without_integrity_refuses_sign_receipts_and_writes_nothing(
    store_url: str, tenant: str, tmp_path: Path
) -> None:
    suite, keys = serve_suite(tmp_path, database_url=store_url, services=("ingest",))
    try:
        with client.channel(f"127.0.0.1:{suite.port}", keys["admin"]) as ch:
            stub = ingest_grpc.IngestServiceStub(ch)
            with pytest.raises(grpc.RpcError) as err:
                stub.Append(
                    ingest_pb.AppendRequest(events=[interaction(tenant)], sign_receipts=True)
                )
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "sign_receipts" in (err.value.details() or "")
            engine = sa.create_engine(store_url)
            with engine.connect() as conn:
                n = conn.execute(
                    sa.text("SELECT count(*) FROM log_entries WHERE log_id = :t"), {"t": tenant}
                ).scalar()
            engine.dispose()
            assert n == 0
            assert stub.Append(ingest_pb.AppendRequest(events=[interaction(tenant)])).receipts
    finally:
        suite.stop()


def test_cli_checks_a_receipt_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = FileKeys(ORIGIN_PREFIX, tmp_path / "k.pem")
    signed = ReceiptNotary(keys, ORIGIN_PREFIX).sign([_receipt("t1", 4), _receipt("t1", 5)])[0]
    path = tmp_path / "receipt.note"
    path.write_text(signed)
    key = keys.verifier_keys()[0].encode()
    check = ["verify", "--receipt", str(path), "--verifier-key", key]
    check += ["--origin-prefix", ORIGIN_PREFIX, "--data-dir", str(tmp_path)]
    capsys.readouterr()
    assert main(check) == 0
    out = capsys.readouterr().out.splitlines()
    leaf = base64.b64encode(merkle.leaf_hash(b"event 4")).decode()
    assert out == [
        f"log t1 sequence 4 leaf {leaf} received 2025-03-01T12:00:00.123460Z",
        f"log t1 sequence 5 leaf {base64.b64encode(merkle.leaf_hash(b'event 5')).decode()} "
        "received 2025-03-01T12:00:00.123461Z",
    ]
    path.write_text(signed.replace("\n4 ", "\n3 "))
    assert main(check) == 1
    assert "invalid signature" in capsys.readouterr().out
