"""A heavy subject's erasure: answered with counts, recorded in bounded parts, nothing lost.

Every id in one record and in the answer made the answer to a subject of ~50,000
events (ids of ~45 characters) exceed the 4 MB a gRPC client receives by default:
the erasure committed, the caller got RESOURCE_EXHAUSTED and could not learn what
it did; the one record grew ~48 bytes an id, past ``max_event_bytes`` (review,
2026-12-06).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import grpc
import pytest

from aiaudit.cli.main import main
from aiaudit.common import config
from aiaudit.common.erasure import LISTED_IDS, RECORD_IDS, erase
from aiaudit.common.store import SqlEventStore, open_store
from aiaudit.common.store.prepare import prepare_batch
from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from tests.contract.test_erasure import erase_argv, serve, stub
from tests.helpers import interaction


def heavy(store: SqlEventStore, tenant: str, n: int) -> list[str]:
    """``n`` events of subject ``svc``, ids of 45 characters, appended 10,000 a batch."""
    ids = [f"heavy-{i:06d}-{uuid.uuid4().hex}" for i in range(n)]
    now = dt.datetime.now(dt.UTC)
    for at in range(0, n, 10_000):
        batch = [interaction(tenant, e, user="svc") for e in ids[at : at + 10_000]]
        store.append_group([prepare_batch(batch, now)])
    return ids


def test_a_heavy_subjects_erasure_is_answered_with_counts_and_recorded_in_parts(
    store: SqlEventStore, store_url: str, privacy_url: str, tenant: str, tmp_path: Path
) -> None:
    ids = heavy(store, tenant, 60_000)
    suite, keys = serve(tmp_path, store_url, privacy_url if privacy_url != store_url else None)
    try:
        officer = stub(suite, keys["compliance_officer"])  # the default 4 MB receive limit
        done = officer.EraseEvents(
            pb.EraseEventsRequest(tenant_id=tenant, subject_id="svc", reason="art. 17 #12")
        )
    except grpc.RpcError as failed:  # the old answer: committed, but not received
        pytest.fail(f"{failed.code()}: {failed.details()}")
    finally:
        suite.stop()
    assert (done.erased_count, done.named_count) == (60_000, 60_000)
    assert list(done.named_event_ids) == ids[:LISTED_IDS]
    assert list(done.erased_event_ids) == sorted(ids)[:LISTED_IDS]
    assert done.event_ids_truncated
    assert len(done.record_event_ids) == 60_000 // RECORD_IDS
    assert done.record_event_id == done.record_event_ids[0]
    assert all(s.content is None for s in store.read_log(tenant, 0, 60_000))

    # The records follow the erased events, consecutive, and name every id once, in order.
    records = store.read_event_ids(tenant, list(done.record_event_ids))
    assert [r.event_id for r in records] == list(done.record_event_ids)
    assert [r.sequence for r in records] == list(range(60_000, 60_000 + len(records)))
    named: list[str] = []
    limit = config.Settings().max_event_bytes
    for part, stored in enumerate(records, 1):
        assert len(stored.canonical) < limit  # every reader fetches it whole (was 2.9 MB)
        record = stored.to_event()
        assert record.event_type == ev.EVENT_TYPE_PRIVACY_ERASURE
        assert record.privacy_action.subject_id == "svc"
        assert record.privacy_action.reason == "art. 17 #12"
        assert record.attributes["erasure.part"].int_value == part
        assert record.attributes["erasure.parts"].int_value == len(records)
        named += record.privacy_action.event_ids
    assert named == ids


def test_a_small_erasure_is_one_record_listed_whole(
    store: SqlEventStore, privacy_url: str, tenant: str
) -> None:
    ids = heavy(store, tenant, 3)
    privacy = open_store(privacy_url)
    try:
        done = erase(privacy, tenant, "r", "dpo", event_ids=[ids[1], "unknown"], subject_id="svc")
    finally:
        privacy.close()
    assert done.named == [ids[1], "unknown", ids[0], ids[2]]  # asked for, then by sequence
    assert done.erased == sorted(ids)
    (record,) = store.read_event_ids(tenant, done.record_ids)
    assert list(record.to_event().privacy_action.event_ids) == done.named
    assert record.to_event().attributes["erasure.parts"].int_value == 1


def test_the_command_prints_counts_and_says_the_records_hold_every_id(
    store: SqlEventStore,
    privacy_url: str,
    tenant: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ids = heavy(store, tenant, LISTED_IDS + 200)
    argv = erase_argv(privacy_url, tenant, tmp_path, "--subject", "svc", requested_by="dpo")
    assert main(argv) == 0
    out, err = capsys.readouterr()
    printed = json.loads(out)
    assert (printed["erased_count"], printed["named_count"]) == (len(ids), len(ids))
    assert printed["named"] == ids[:LISTED_IDS] and printed["truncated"] is True
    assert printed["records"] == [printed["record"]]
    assert err.splitlines()[-1] == (
        f"aiaudit erase: {len(ids)} erased, {len(ids)} named; the lists hold the first "
        f"{LISTED_IDS}, every id is in privacy_action.event_ids of the events listed as records"
    )
