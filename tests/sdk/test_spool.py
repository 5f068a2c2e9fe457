"""The SDK's disk spool: whole batches, oldest first, across reopenings."""

from __future__ import annotations

import stat
from pathlib import Path

from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.sdk.spool import Spool
from tests.helpers import interaction


def batch(*ids: str) -> pb.AppendRequest:
    return pb.AppendRequest(events=[interaction("t", i) for i in ids])


def ids(request: pb.AppendRequest) -> list[str]:
    return [e.event_id for e in request.events]


def test_batches_come_back_whole_and_oldest_first_after_reopening(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    assert stat.S_IMODE((tmp_path / "spool").stat().st_mode) == 0o700
    first = spool.put(batch("a", "b"))
    for n in range(2, 12):
        spool.put(batch(f"e{n}"))
    (tmp_path / "spool" / "00000000000000000099.tmp").write_bytes(b"torn")  # a crash mid-write
    again = Spool(tmp_path / "spool")
    assert not list((tmp_path / "spool").glob("*.tmp"))
    pending = again.pending()
    assert pending[0] == first and ids(Spool.read(first)) == ["a", "b"]
    assert [ids(Spool.read(p)) for p in pending[1:]] == [[f"e{n}"] for n in range(2, 12)]
    latest = again.put(batch("z"))  # numbered after what it found
    assert again.pending()[-1] == latest
    again.remove(first)
    again.remove(first)  # removing twice is harmless (a resend already removed it)
    assert first not in again.pending() and len(again.pending()) == 11
