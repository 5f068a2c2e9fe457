"""A batch of inclusion proofs is recorded with the sequences it proved, not only their range.

Each proof hands out a leaf hash, and a leaf commits to ``actor.ip_address`` in
clear (README, "Addresses"): which leaves a caller was given is what its record
must say. The record named only ``count``, ``first_sequence`` and
``last_sequence``: a batch of sequences 0 and 3 and one of 0 and 1, 2 or 3
left the same record (review, 2026-12-07).
"""

from __future__ import annotations

from aiaudit.integrity.v1 import integrity_service_pb2 as pb
from tests.conftest import Running
from tests.helpers import access_records, wait_until
from tests.integrity.test_service import append, checkpoint_covers, integrity


def _expanded(ranges: str) -> list[int]:
    """``0-2,5`` as ``[0, 1, 2, 5]``: the compact form a record names sequences in."""
    out: list[int] = []
    for part in ranges.split(","):
        first, _, last = part.partition("-")
        out += range(int(first), int(last or first) + 1)
    return out


def test_a_batch_s_record_names_every_sequence_it_proved(
    suite: Running, store_url: str, tenant: str
) -> None:
    append(suite, tenant, 6)
    wait_until(lambda: checkpoint_covers(suite, tenant, 6))
    asked = [0, 3, 4, 5]
    integrity(suite).BatchGetInclusionProofs(
        pb.BatchGetInclusionProofsRequest(log_id=tenant, sequences=asked)
    )
    (record,) = [
        r
        for r in access_records(store_url, tenant)
        if r.attributes["access.action"].string_value == "integrity.batch_get_inclusion_proofs"
    ]
    assert record.attributes["access.count"].int_value == 4
    assert record.attributes["access.sequences"].string_value == "0,3-5"
    assert _expanded(record.attributes["access.sequences"].string_value) == asked


def test_a_scattered_batch_is_named_whole_in_records_of_what_a_record_keeps(
    suite: Running, store_url: str, tenant: str
) -> None:
    """1,000 scattered sequences need more than the 4,096 characters a record keeps of a
    detail: they are named in parts, one record each, which together name them all."""
    for _ in range(4):  # an Append takes at most 500 events
        append(suite, tenant, 500)
    wait_until(lambda: checkpoint_covers(suite, tenant, 2000))
    asked = list(range(1998, -1, -2))  # 1,000 runs of one, out of order
    reply = integrity(suite).BatchGetInclusionProofs(
        pb.BatchGetInclusionProofsRequest(log_id=tenant, sequences=asked)
    )
    assert len(reply.proofs) == 1000
    records = [
        r.attributes
        for r in access_records(store_url, tenant)
        if r.attributes["access.action"].string_value == "integrity.batch_get_inclusion_proofs"
    ]
    assert len(records) > 1
    assert [r["access.part"].int_value for r in records] == list(range(1, len(records) + 1))
    assert {r["access.parts"].int_value for r in records} == {len(records)}
    assert all(len(r["access.sequences"].string_value) <= 4096 for r in records)
    named = ",".join(r["access.sequences"].string_value for r in records)
    assert _expanded(named) == sorted(asked)
