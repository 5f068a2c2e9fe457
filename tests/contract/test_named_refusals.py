"""A refused batch names every event it is refused for, in one answer (SQLite and PostgreSQL).

``ALREADY_EXISTS`` (ids taken by other content) and ``DATA_LOSS`` (a subject's
data key damaged) name each event concerned in a BadRequest, after the
ErrorInfo that names the first as before: a client sets them aside together
and sends the rest again. Until 2026-12-05 a conflict named only the first
event (a batch of N taken ids cost the gateway SDK N round trips, O(N²) events
sent again), and DATA_LOSS named none, although the damage is that subject's
alone (review). Nothing of a refused batch is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from aiaudit.common import client
from aiaudit.common.store import open_store
from aiaudit.common.store.schema import content_keys
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from tests.conftest import Postgres, Running, serve_suite
from tests.contract.test_repeats_in_a_batch import copy, stored_count, stub
from tests.helpers import interaction


def named(err: grpc.RpcError) -> tuple[dict[str, str], list[str]]:
    """The ErrorInfo (reason and metadata; the first detail) and the fields the BadRequest names."""
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    fields: list[str] = []
    for detail in status.details[1:]:
        bad = error_details_pb2.BadRequest()
        assert detail.Unpack(bad)
        fields += [v.field for v in bad.field_violations]
    return {"reason": info.reason, **info.metadata}, fields


def test_every_id_taken_by_other_content_is_named_at_once(server: Running, tenant: str) -> None:
    first = [interaction(tenant, f"c-{i}", text="first") for i in range(4)]
    stub(server).Append(pb.AppendRequest(events=first))
    batch = [
        interaction(tenant, "fresh-0"),
        interaction(tenant, "c-0", text="second"),
        interaction(tenant, "fresh-1"),
        interaction(tenant, "c-1", text="second"),
        copy(first[2]),  # identical: a retry, not a conflict
        interaction(tenant, "c-3", text="second"),
    ]
    with pytest.raises(grpc.RpcError) as err:
        stub(server).Append(pb.AppendRequest(events=batch))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    info, fields = named(err.value)
    assert info == {"reason": "EVENT_ID_CONFLICT", "field": "events[1].event_id", "event_id": "c-0"}
    assert fields == ["events[1].event_id", "events[3].event_id", "events[5].event_id"]
    assert stored_count(server, tenant) == 4  # all or nothing: fresh-0, fresh-1 not written

    # The named ones set aside, the rest is stored in one more call.
    rest = [e for i, e in enumerate(batch) if i not in (1, 3, 5)]
    receipts = stub(server).Append(pb.AppendRequest(events=rest)).receipts
    assert [(r.event_id, r.duplicate) for r in receipts] == [
        ("fresh-0", False),
        ("fresh-1", False),
        ("c-2", True),
    ]

    # On a stream, the same answer.
    answers = list(
        stub(server).AppendStream(iter([pb.AppendStreamRequest(request_id=7, events=batch)]))
    )
    assert answers[0].status.code == grpc.StatusCode.ALREADY_EXISTS.value[0]
    bad = error_details_pb2.BadRequest()
    assert answers[0].status.details[1].Unpack(bad)
    assert [v.field for v in bad.field_violations] == fields


def test_conflicts_past_the_trailers_are_counted_and_named_in_the_next_answers(
    server: Running, tenant: str
) -> None:
    """As many as the trailers hold, first to last, each answer naming the next ones."""
    n = 100
    stub(server).Append(
        pb.AppendRequest(events=[interaction(tenant, f"c-{i}", text="one") for i in range(n)])
    )
    batch = [interaction(tenant, f"c-{i}", text="two") for i in range(n)]
    left, calls = list(range(n)), 0
    while left:
        calls += 1
        with pytest.raises(grpc.RpcError) as err:
            stub(server).Append(pb.AppendRequest(events=[batch[i] for i in left]))
        _, fields = named(err.value)
        assert fields[0] == "events[0].event_id"
        assert len(fields) == len(set(fields)) > 1
        if len(fields) < len(left):
            assert f"({len(fields)} of {len(left)} field violations listed)" in (
                err.value.details() or ""
            )
        shown = {int(f.split("[")[1].split("]")[0]) for f in fields}
        left = [k for j, k in enumerate(left) if j not in shown]
    assert calls <= 3
    assert stored_count(server, tenant) == n


def test_repeats_with_other_content_are_all_named(server: Running, tenant: str) -> None:
    a, b = interaction(tenant, "a", text="one"), interaction(tenant, "b", text="one")
    batch = [
        a,
        b,
        interaction(tenant, "a", text="two"),
        copy(b),
        interaction(tenant, "b", text="x"),
    ]
    with pytest.raises(grpc.RpcError) as err:
        stub(server).Append(pb.AppendRequest(events=batch))
    info, fields = named(err.value)
    assert info["field"] == "events[2].event_id"
    assert fields == ["events[2].event_id", "events[4].event_id"]
    assert stored_count(server, tenant) == 0


def test_each_copy_of_an_event_taken_by_other_content_is_named(
    server: Running, tenant: str
) -> None:
    """The store sees each event once; every copy as sent is named, or its copies come back."""
    stub(server).Append(pb.AppendRequest(events=[interaction(tenant, "a", text="stored")]))
    b, other = interaction(tenant, "b"), interaction(tenant, "a", text="other")
    with pytest.raises(grpc.RpcError) as err:
        stub(server).Append(pb.AppendRequest(events=[b, copy(other), copy(b), other]))
    info, fields = named(err.value)
    assert info["field"] == "events[1].event_id"
    assert fields == ["events[1].event_id", "events[3].event_id"]
    assert stored_count(server, tenant) == 1


@pytest.fixture(params=["sqlite", "postgresql"])
def sealed_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(the app's URL, an admin's URL) of a store of the test's own, for content keys."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'aiaudit.db'}"
        open_store(url, run_migrations=True).close()
        yield url, url
        return
    pg: Postgres = request.getfixturevalue("own_postgres")
    yield pg.app_url, pg.admin_url


def serve_sealed(
    tmp_path: Path, url: str
) -> tuple[object, pb_grpc.IngestServiceStub, grpc.Channel]:
    suite, keys = serve_suite(
        tmp_path,
        database_url=url,
        services=("ingest",),
        content_keys="file",
        content_key_file=tmp_path / "kek",
    )
    channel = client.channel(f"127.0.0.1:{suite.port}", keys["admin"])  # type: ignore[attr-defined]
    return suite, pb_grpc.IngestServiceStub(channel), channel


def test_data_loss_names_the_events_of_the_damaged_subject(
    sealed_url: tuple[str, str], tmp_path: Path, tenant: str
) -> None:
    url, admin = sealed_url
    suite, ingest, channel = serve_sealed(tmp_path, url)
    try:
        ingest.Append(pb.AppendRequest(events=[interaction(tenant, "a-0", user="alice")]))
    finally:
        channel.close()
        suite.stop()  # type: ignore[attr-defined]
    engine = sa.create_engine(admin)
    alice = (content_keys.c.log_id == tenant, content_keys.c.subject == "alice")
    with engine.begin() as conn:
        wrapped = bytes(conn.execute(sa.select(content_keys.c.wrapped).where(*alice)).scalar_one())
        conn.execute(
            sa.update(content_keys)
            .where(*alice)
            .values(wrapped=wrapped[:-1] + bytes([wrapped[-1] ^ 1]))
        )
    engine.dispose()

    suite, ingest, channel = serve_sealed(tmp_path, url)  # holds no key: reads the altered row
    try:
        batch = [
            interaction(tenant, "b-0", user="bob"),
            interaction(tenant, "a-1", user="alice"),
            interaction(tenant, "b-1", user="bob"),
            interaction(tenant, "a-2", user="alice"),
        ]
        with pytest.raises(grpc.RpcError) as err:
            ingest.Append(pb.AppendRequest(events=batch))
        assert err.value.code() == grpc.StatusCode.DATA_LOSS
        info, fields = named(err.value)
        assert info == {"reason": "DATA_KEY_DAMAGED", "field": "events[1]"}
        assert fields == ["events[1]", "events[3]"]
        assert "'alice'" in (err.value.details() or "")
        assert suite.store.log_sizes()[tenant] == 1  # type: ignore[attr-defined]

        # An event of hers already stored, sent again, cannot be told identical: named too.
        with pytest.raises(grpc.RpcError) as err:
            ingest.Append(
                pb.AppendRequest(events=[batch[0], interaction(tenant, "a-0", user="alice")])
            )
        assert err.value.code() == grpc.StatusCode.DATA_LOSS
        assert named(err.value)[1] == ["events[1]"]

        # The others, sent again without hers, are stored.
        receipts = ingest.Append(pb.AppendRequest(events=[batch[0], batch[2]])).receipts
        assert [(r.event_id, r.sequence) for r in receipts] == [("b-0", 1), ("b-1", 2)]
    finally:
        channel.close()
        suite.stop()  # type: ignore[attr-defined]


def test_a_retry_of_an_event_stored_as_text_is_named(tmp_path: Path, tenant: str) -> None:
    """SQLite: an event already stored whose canonical form raw SQL rewrote as text cannot
    be compared with its retry: the batch is DATA_LOSS naming it (STORED_EVENT_DAMAGED, as
    reads answer for it) and the column, and the others, sent again, are stored. Until
    2026-12-06 every batch of its group commit answered UNAVAILABLE "retry", for good."""
    url = f"sqlite:///{tmp_path / 'aiaudit.db'}"
    suite, keys = serve_suite(tmp_path, database_url=url, services=("ingest",))
    channel = client.channel(f"127.0.0.1:{suite.port}", keys["admin"])
    try:
        ingest = pb_grpc.IngestServiceStub(channel)
        first = [interaction(tenant, f"a-{i}") for i in range(2)]
        ingest.Append(pb.AppendRequest(events=first))
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE events SET canonical = CAST(canonical AS TEXT) "
                    "WHERE log_id = :t AND seq = 1"
                ),
                {"t": tenant},
            )
        engine.dispose()
        fresh = interaction(tenant, "b-0")
        with pytest.raises(grpc.RpcError) as err:
            ingest.Append(pb.AppendRequest(events=[fresh, copy(first[1]), copy(first[0])]))
        assert err.value.code() == grpc.StatusCode.DATA_LOSS
        info, fields = named(err.value)
        assert info == {
            "reason": "STORED_EVENT_DAMAGED",
            "field": "events[1]",
            "event_id": "a-1",
            "sequence": "1",
        }
        assert fields == ["events[1]"]
        assert "column events.canonical is stored as text" in (err.value.details() or "")
        assert suite.store.log_sizes()[tenant] == 2

        # The others, sent again without it, are stored (a-0 answered with its receipt).
        receipts = ingest.Append(pb.AppendRequest(events=[fresh, copy(first[0])])).receipts
        assert [(r.event_id, r.sequence, r.duplicate) for r in receipts] == [
            ("b-0", 2, False),
            ("a-0", 0, True),
        ]
    finally:
        channel.close()
        suite.stop()
