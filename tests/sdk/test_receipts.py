"""The gateway SDK keeps signed receipts (``receipts_dir``) that ``aiaudit verify --receipt`` reads.

Against a real server process (``aiaudit serve``, integrity in the process, so
receipts are signed; SQLite and PostgreSQL): every event logged with the option is
covered by a kept note, at the sequence, leaf hash and receive time the store holds,
through an outage, a repeat in a batch and a resend of stored events, the notes of one
log and day appended to one file; a server that
cannot sign keeps the events spooled, none set aside; a disk that refuses a receipt
holds no event up.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
from pathlib import Path

import pytest

from aiaudit.cli.main import main
from aiaudit.common import client
from aiaudit.common.store import open_store
from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.integrity.receipts import format_time
from aiaudit.integrity.v1 import integrity_service_pb2 as ipb
from aiaudit.integrity.v1 import integrity_service_pb2_grpc as ipb_grpc
from aiaudit.sdk.receipts import file_name
from tests.helpers import interaction, wait_until
from tests.sdk.test_logger import Server, rejected_lines, spooled, stored_ids

Entry = tuple[str, int, str, str]
"""(log, sequence, base64 leaf hash, receive time) as ``verify --receipt`` prints them."""


def stored(server: Server, logs: list[str], ids: set[str]) -> set[Entry]:
    """What the store holds of these events, as a receipt names it."""
    store = open_store(server.store_url)
    try:
        return {
            (
                e.log_id,
                e.sequence,
                base64.b64encode(e.leaf_hash).decode(),
                format_time(e.receive_time.replace(tzinfo=e.receive_time.tzinfo or dt.UTC)),
            )
            for log_id in logs
            for e in store.read_log(log_id, 0, 100_000, content=False)
            if e.event_id in ids
        }
    finally:
        store.close()


def receipted(
    server: Server, receipts: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[list[str], set[Entry]]:
    """Each kept file checked by ``aiaudit verify --receipt`` with the key the server publishes.

    Returns the files' names and every event they vouch for; fails if verify refuses one.
    """
    with client.channel(f"127.0.0.1:{server.port}", server.key) as channel:
        stub = ipb_grpc.IntegrityServiceStub(channel)  # type: ignore[no-untyped-call]
        published = stub.GetVerifierKey(ipb.GetVerifierKeyRequest(), timeout=10)
    keys = [arg for k in published.verifier_keys for arg in ("--verifier-key", k)]
    options = [*keys, "--origin-prefix", published.origin_prefix]
    options += ["--data-dir", str(server.data_dir / "auditor")]
    names = sorted(p.name for p in receipts.iterdir())
    entries: set[Entry] = set()
    for name in names:
        capsys.readouterr()
        assert main(["verify", "--receipt", str(receipts / name), *options]) == 0, name
        for line in capsys.readouterr().out.splitlines():
            _, log_id, _, sequence, _, leaf, _, received = line.split(" ")
            entries.add((log_id, int(sequence), leaf, received))
    return names, entries


def test_every_event_logged_is_covered_by_a_kept_receipt_that_verify_accepts(
    server: Server, tenant: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    receipts = tmp_path / "receipts"
    other = f"{tenant}-b"
    logger = server.logger(batch_size=20, receipts_dir=receipts)
    # Down from the start: spooled, then replayed once the server is up.
    ids = [logger.log(interaction((tenant, other)[i % 2], text=f"down {i}")) for i in range(30)]
    wait_until(lambda: spooled(server.spool) == 30)
    assert list(receipts.iterdir()) == []
    server.start()
    assert logger.flush(timeout=60)
    # Live, two logs a batch, one event twice in a row (one batch or two: stored once).
    ids += [logger.log(interaction((tenant, other)[i % 2], text=f"up {i}")) for i in range(50)]
    twice = interaction(tenant, text="twice")
    logger.log(twice)
    logger.log(ev.Event.FromString(twice.SerializeToString()))
    assert logger.flush(timeout=30)
    # Resent after being stored: answered as duplicates, their receipts signed again.
    again = [interaction(tenant, f"again-{i}", text="again") for i in range(5)]
    for e in again:
        logger.log(ev.Event.FromString(e.SerializeToString()))
    assert logger.flush(timeout=30)
    for e in again:
        logger.log(e)
    assert logger.flush(timeout=30)

    logged = {*ids, twice.event_id, *(e.event_id for e in again)}
    assert sorted(stored_ids(server.store_url, tenant) + stored_ids(server.store_url, other)) == (
        sorted(logged)
    )
    names, entries = receipted(server, receipts, capsys)
    assert entries == stored(server, [tenant, other], logged)  # every event, nothing else
    # Appended to one file per log and day of receipt (it was one file per batch and log).
    assert names == sorted(
        {f"{log_id}.{received[:10]}.notes" for log_id, _, _, received in entries}
    )
    assert rejected_lines(server.spool) == []


def test_a_server_that_cannot_sign_keeps_the_events_spooled_and_none_set_aside(
    server: Server,
    tenant: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Ingest without integrity in its process answers ``sign_receipts`` FAILED_PRECONDITION,
    nothing written: the events wait in the spool (never set aside) until a server that signs
    takes them. A logger without the option asks for nothing: that server stores its events."""
    receipts = tmp_path / "receipts"
    server.env = {"AIAUDIT_SERVICES": "ingest"}
    server.start()
    plain = server.logger()
    plain_ids = {plain.log(interaction(tenant, text=f"plain {i}")) for i in range(5)}
    assert plain.flush(timeout=30)
    plain.close(timeout=5)

    refused: list[str] = []
    caplog.set_level(logging.ERROR, logger="aiaudit.sdk.logger")
    kept = server.logger(receipts_dir=receipts, on_rejected=lambda e, why: refused.append(why))
    kept_ids = {kept.log(interaction(tenant, text=f"kept {i}")) for i in range(5)}
    wait_until(lambda: spooled(server.spool) == 5)
    assert any("cannot sign receipts" in r.getMessage() for r in caplog.records)
    assert refused == [] and rejected_lines(server.spool) == []
    assert sorted(stored_ids(server.store_url, tenant)) == sorted(plain_ids)
    kept.close(timeout=0.5)
    assert spooled(server.spool) == 5 and list(receipts.iterdir()) == []

    server.stop()
    server.env = {}  # every service: integrity signs in the ingest process
    server.start()
    after = server.logger(receipts_dir=receipts)
    assert after.flush(timeout=60)
    assert sorted(stored_ids(server.store_url, tenant)) == sorted(plain_ids | kept_ids)
    _, entries = receipted(server, receipts, capsys)
    assert entries == stored(server, [tenant], kept_ids)  # the plain ones were never receipted


def test_a_receipt_the_disk_refuses_is_logged_and_holds_no_event_up(
    server: Server,
    tenant: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    receipts = tmp_path / "receipts"
    server.start()
    logger = server.logger(receipts_dir=receipts)
    receipts.rmdir()
    receipts.write_text("")  # every receipt write fails (not a directory)
    caplog.set_level(logging.ERROR, logger="aiaudit.sdk.receipts")
    lost = {logger.log(interaction(tenant, text=f"lost {i}")) for i in range(10)}
    assert logger.flush(timeout=30)
    assert any("audit receipt not kept" in r.getMessage() for r in caplog.records)
    assert spooled(server.spool) == 0 and rejected_lines(server.spool) == []

    receipts.unlink()
    receipts.mkdir()
    later = {logger.log(interaction(tenant, text=f"later {i}")) for i in range(10)}
    assert logger.flush(timeout=30)
    assert sorted(stored_ids(server.store_url, tenant)) == sorted(lost | later)
    _, entries = receipted(server, receipts, capsys)
    assert entries == stored(server, [tenant], later)


def test_a_note_goes_to_the_file_of_its_log_and_day_or_to_the_days_file_of_odd_notes() -> None:
    leaf = base64.b64encode(b"\x01" * 32).decode()
    text = "aiaudit.receipt/v1\norigin.example/log/t-1\n"
    text += "".join(f"{n} {leaf} 2026-01-0{n % 3 + 1}T23:59:59.999999Z\n" for n in (9, 4, 7))
    note = f"{text}\n— origin.example/log c2lnbmF0dXJl\n"
    assert file_name(note) == "t-1.2026-01-01.notes"  # the day of its first receive time
    for odd in ("not a note", note.replace("/t-1\n", "/T.1\n"), note.replace(" 2026-01", " x")):
        before = dt.datetime.now(dt.UTC).date()
        name = file_name(odd)
        days = {before, dt.datetime.now(dt.UTC).date()}  # today's, midnight or not
        assert name in {f"receipt.{day.isoformat()}.notes" for day in days}
