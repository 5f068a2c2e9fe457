"""A damaged stored event holds its own log only, at itself, with one error naming it.

Until 2026-12-05 a damaged row held its log at the start of its batch (the
healthy events before it in the batch were never indexed, and the error named
the batch's first sequence), and a damaged event named by an erasure record
stopped the indexer for every tenant (``search indexer paused``, health
NOT_SERVING). Until 2026-12-06 so did content stored in clear whose JSON does
not parse (only sealed content that did not open was damage), while a store
that fails the read is still an outage.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
import sqlalchemy as sa
import yaml
from grpc_health.v1 import health_pb2

from aiaudit.common.erasure import erase
from aiaudit.common.store import open_store
from aiaudit.common.store.prepare import prepare
from aiaudit.search.v1 import search_service_pb2 as pb
from tests.conftest import Postgres, refuse_shared, serve_suite
from tests.helpers import flip_sealed_content, holding, interaction, secret_word, wait_until
from tests.integrity.test_entries_outside_log import error_info
from tests.search.conftest import SearchSuite, building, start_suite, suite_of
from tests.search.test_damaged_events import every_read_names_the_damage
from tests.search.test_faults import health

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def junk_canonical(url: str, tenant: str, event_id: str) -> bytes:
    """Overwrites an event's canonical form with what no parser takes; returns what it was."""
    engine = sa.create_engine(url)
    where = "WHERE log_id = :t AND event_id = :e"
    try:
        with engine.begin() as conn:
            params = {"t": tenant, "e": event_id}
            was = conn.execute(sa.text(f"SELECT canonical FROM events {where}"), params)
            canonical = bytes(was.scalar_one())
            conn.execute(
                sa.text(f"UPDATE events SET canonical = :j {where}"), {**params, "j": b"not json"}
            )
    finally:
        engine.dispose()
    return canonical


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def positions(running: SearchSuite) -> dict[str, int]:
    return running.suite.components["search"].backend.positions()  # type: ignore[no-any-return]


def held_at_the_damaged_one(
    running: SearchSuite, tenant: str, names: list[str], caplog: pytest.LogCaptureFixture
) -> str:
    """Once a pass went past the log: its five events before 'bad' indexed, the log
    held at 'bad' (sequence 5); the one ERROR saying so."""
    running.append([interaction(f"{tenant}-z", "probe")])
    running.wait_indexed(f"{tenant}-z", 1)
    assert building(running, tenant) == {  # no retry: waiting does not end the hold
        "code": "FAILED_PRECONDITION",
        "reason": "INDEX_HELD",
        "indexed": "5",
        "target": str(len(names)),
        "held_at_sequence": "5",
        "retry": "",
    }
    assert positions(running)[tenant] == 5
    (held,) = errors(caplog)
    assert f"holds log {tenant} at sequence 5: event 'bad' is damaged" in held
    return held


@pytest.mark.parametrize("damage", ["canonical form", "sealed content"])
def test_the_events_before_a_damaged_one_in_its_batch_are_indexed_and_the_log_held_at_it(
    tmp_path: Path, tenant: str, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aiaudit.search")
    url = f"sqlite:///{tmp_path / 'aiaudit.db'}"
    store = open_store(url, run_migrations=True)  # content sealed under a KEK beside it
    now = dt.datetime.now(dt.UTC)
    names = [f"ok-{i}" for i in range(5)] + ["bad", "after"]
    store.append_group([[prepare(interaction(tenant, name), now) for name in names]])
    store.close()
    if damage == "canonical form":
        junk_canonical(url, tenant, "bad")
    else:
        flip_sealed_content(url, tenant, 5)
    running = start_suite(tmp_path, "sqlite", {})  # one batch holds all seven
    try:
        held_at_the_damaged_one(running, tenant, names, caplog)
        assert health(running.channel) == SERVING
    finally:
        running.channel.close()
        running.suite.stop()


def test_a_damaged_erased_event_holds_only_its_log_at_the_record_naming_it(
    tmp_path: Path, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The record's re-index of the events it names met one that does not parse: the
    indexer stopped for every tenant, and health went NOT_SERVING."""
    caplog.set_level(logging.INFO, logger="aiaudit.search")
    damaged, healthy = f"{tenant}-a", f"{tenant}-b"  # the damaged log's pass comes first
    url = f"sqlite:///{tmp_path / 'aiaudit.db'}"
    first = start_suite(tmp_path, "sqlite", {}, store_url=url)
    try:
        first.append([interaction(damaged, "m-0")])
        first.wait_indexed(damaged, 1)  # indexed, then erased and damaged
    finally:
        first.channel.close()
        first.suite.stop()
    store = open_store(url)
    sequence = store.log_sizes()[damaged]
    record = erase(store, damaged, "request", "dpo", event_ids=["m-0"]).record_id
    store.close()
    junk_canonical(url, damaged, "m-0")
    running = start_suite(tmp_path, "sqlite", {}, store_url=url)
    try:
        running.append([interaction(healthy, f"ok-{i}") for i in range(4)])
        running.wait_indexed(healthy, 4)  # the healthy tenant is not held up
        assert health(running.channel) == SERVING
        assert positions(running)[damaged] == sequence  # held at the record
        (held,) = errors(caplog)
        assert (
            f"holds log {damaged} at sequence {sequence}: event 'm-0', erased by the record "
            f"{record!r}, is damaged" in held
        )
    finally:
        running.channel.close()
        running.suite.stop()


def test_an_erasure_past_a_damaged_event_takes_the_text_out_of_the_index(
    tmp_path: Path, tenant: str
) -> None:
    """The log waits at the damaged event, its erasure record after it does not: the erased
    event's document is written again without its text (the index's files no longer hold
    it), and a count over content, which waits for the latest erasure, answers. Until
    2026-12-05 the record was never applied while the log was held: the text stayed
    searchable and countable, and a count over content answered UNAVAILABLE."""
    secret = secret_word()
    url = f"sqlite:///{tmp_path / 'aiaudit.db'}"
    first = start_suite(tmp_path, "sqlite", {}, store_url=url)
    try:
        first.append([interaction(tenant, "m-0", text=f"the {secret} plan", user="alice")])
        first.wait_indexed(tenant, 1)
    finally:
        first.channel.close()
        first.suite.stop()
    store = open_store(url)
    store.append_group([[prepare(interaction(tenant, "m-1", user="bob"), dt.datetime.now(dt.UTC))]])
    hold = store.log_sizes()[tenant] - 1
    assert erase(store, tenant, "gdpr", "dpo", subject_id="alice").erased == ["m-0"]
    record = store.log_sizes()[tenant] - 1
    store.close()
    canonical = junk_canonical(url, tenant, "m-1")
    running = start_suite(tmp_path, "sqlite", {"export_wait": 2.0}, store_url=url)
    try:
        running.append([interaction(f"{tenant}-z", "probe")])
        running.wait_indexed(f"{tenant}-z", 1)  # the pass went past the held log
        assert positions(running)[tenant] == hold  # still held at m-1
        assert holding([tmp_path / "search.db", tmp_path / "search.db-wal"], secret) == []
        assert running.find(tenant, query=secret).total_size == 0
        by_event = pb.AggregateRequest(tenant_id=tenant, query=f'"{secret}"', group_by=["event_id"])
        assert list(running.as_role("auditor").Aggregate(by_event).buckets) == []
        indexer = running.suite.components["search"].indexer
        assert indexer.wait_indexed(tenant, record + 1, timeout=0)  # what a count waits for
        assert not indexer.wait_indexed(tenant, record + 1, timeout=0, whole=True)  # an export

        engine = sa.create_engine(url)  # mended: the log goes on, the text does not come back
        with engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE events SET canonical = :c WHERE log_id = :t AND event_id = 'm-1'"),
                {"c": canonical, "t": tenant},
            )
        engine.dispose()
        running.wait_indexed(tenant, 3)  # m-0, m-1 and the record
        assert positions(running)[tenant] > record
        assert running.find(tenant, query=secret).total_size == 0
        assert running.all_ids(tenant, 'event_id = "m-0"') == ["m-0"]  # its metadata stays
    finally:
        running.channel.close()
        running.suite.stop()


def test_a_record_naming_a_damaged_event_still_takes_the_others_text_out(
    tmp_path: Path, tenant: str
) -> None:
    """The log is held at the record itself (one event it names does not parse): the other
    event it names loses its text all the same. The damaged one's document keeps its text,
    so a count over content still waits, and answers ERASURE_NOT_INDEXED."""
    kept, gone = secret_word(), secret_word()
    url = f"sqlite:///{tmp_path / 'aiaudit.db'}"
    first = start_suite(tmp_path, "sqlite", {}, store_url=url)
    try:
        first.append(
            [
                interaction(tenant, "m-0", text=f"the {kept} plan"),
                interaction(tenant, "m-1", text=f"the {gone} plan"),
            ]
        )
        first.wait_indexed(tenant, 2)
    finally:
        first.channel.close()
        first.suite.stop()
    store = open_store(url)
    erase(store, tenant, "gdpr", "dpo", event_ids=["m-0", "m-1"])
    record = store.log_sizes()[tenant] - 1
    store.close()
    junk_canonical(url, tenant, "m-0")
    running = start_suite(tmp_path, "sqlite", {"export_wait": 0.5}, store_url=url)
    try:
        running.append([interaction(f"{tenant}-z", "probe")])
        running.wait_indexed(f"{tenant}-z", 1)
        assert positions(running)[tenant] == record  # held at the record
        files = [tmp_path / "search.db", tmp_path / "search.db-wal"]
        assert holding(files, gone) == []
        assert holding(files, kept) != []  # m-0's document is as it was
        by_event = pb.AggregateRequest(tenant_id=tenant, query=f'"{kept}"', group_by=["event_id"])
        with pytest.raises(grpc.RpcError) as caught:
            running.as_role("auditor").Aggregate(by_event)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error_info(caught.value).reason == "ERASURE_NOT_INDEXED"
    finally:
        running.channel.close()
        running.suite.stop()


def start_in_clear(tmp_path: Path, store_url: str, extra: dict[str, Any]) -> SearchSuite:
    """:func:`start_suite` with content stored in clear (``content_keys`` none), as the
    benchmark and a PostgreSQL deployment without a KEK run."""
    refuse_shared(store_url, "a search suite")
    search: dict[str, Any] = {"backend": "sqlite", "poll_interval": 0.1, "max_backoff": 1.0}
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"search": {**search, **extra}}))
    suite, keys = serve_suite(
        tmp_path,
        cfg,
        services=("ingest", "search"),
        database_url=store_url,
        content_keys="none",
    )
    return suite_of("sqlite", suite, keys)


_IN_CLEAR_DAMAGE = {
    # content JSON that does not parse: restore.DamagedContentError from the store's read
    "content JSON": "UPDATE event_content SET content = :junk",
    # SQLite keeps the text a raw UPDATE writes: StoredAsTextEventError from the store's read
    "content as text": "UPDATE event_content SET content = 'not json'",
    # JSON that is not an object: restore.DamagedContentError from the store's read
    "content not an object": "UPDATE event_content SET content = :array",
    "canonical form as text": "UPDATE events SET canonical = 'not json'",
    # not a timestamp: ValueError from SQLite's reading of it
    "receive time": "UPDATE log_entries SET receive_time = 'not a time'",
}


def damage_in_clear(admin_url: str, tenant: str, seq: int, damage: str) -> None:
    """Damages one stored event with raw SQL, as someone with database access could."""
    engine = sa.create_engine(admin_url)
    try:
        with engine.begin() as conn:
            changed = conn.execute(
                sa.text(f"{_IN_CLEAR_DAMAGE[damage]} WHERE log_id = :t AND seq = :s"),
                {"t": tenant, "s": seq, "junk": b"not json", "array": b"[1]"},
            )
            assert changed.rowcount == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("database", "damage"),
    [
        ("sqlite", "content JSON"),
        ("sqlite", "content as text"),
        ("sqlite", "canonical form as text"),
        ("sqlite", "receive time"),
        ("sqlite", "content not an object"),
        ("postgresql", "content JSON"),
        ("postgresql", "content not an object"),
    ],
)
def test_a_damaged_row_of_content_in_clear_holds_only_its_log_at_itself(
    tmp_path: Path,
    tenant: str,
    database: str,
    damage: str,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Content not sealed (``content_keys`` none) whose stored row does not read back: the
    events before it are indexed, its log waits at it with one error naming the log, the
    sequence and the event, and the other logs go on. Until 2026-12-06 only sealed content
    that did not open was damage: the store's ValueError (content JSON that does not parse)
    or TypeError (SQLite: a binary column holding text) paused the indexer for every
    tenant, health NOT_SERVING."""
    caplog.set_level(logging.INFO, logger="aiaudit.search")
    if database == "sqlite":
        url = admin = f"sqlite:///{tmp_path / 'aiaudit.db'}"
        open_store(url, run_migrations=True, keys=None).close()
    else:
        pg: Postgres = request.getfixturevalue("own_postgres")
        url, admin = pg.app_url, pg.admin_url
    store = open_store(url, keys=None)
    names = [f"ok-{i}" for i in range(5)] + ["bad", "after"]
    now = dt.datetime.now(dt.UTC)
    store.append_group([[prepare(interaction(tenant, name), now) for name in names]])
    store.close()
    damage_in_clear(admin, tenant, 5, damage)
    running = start_in_clear(tmp_path, url, {})  # one batch holds all seven
    try:
        held = held_at_the_damaged_one(running, tenant, names, caplog)
        assert "not json" not in held  # what the row holds is not logged
        if damage == "content not an object":  # until 2026-12-06 indexed as erased content
            assert "its content is not a JSON object" in held and "[1]" not in held
        assert health(running.channel) == SERVING
    finally:
        running.channel.close()
        running.suite.stop()


@pytest.mark.parametrize(
    ("database", "content"),
    [
        ("sqlite", b"[1]"),
        ("sqlite", b'"input.messages[0].parts[0].text"'),
        ("sqlite", b"1"),
        ("sqlite", b"null"),
        ("sqlite", b'{"input.messages[0].parts[0].text": 1}'),
        ("sqlite", b"not json"),
        ("postgresql", b"[1]"),
        ("postgresql", b"null"),
    ],
)
def test_content_that_is_not_a_json_object_is_data_loss_naming_the_event(
    tmp_path: Path, tenant: str, database: str, content: bytes, request: pytest.FixtureRequest
) -> None:
    """Content rewritten (raw SQL, here in clear) to JSON that is not an object is a damaged
    stored event, as JSON that does not parse: ``GetEvent``, a ``SearchEvents`` page and an
    export answer ``DATA_LOSS`` ``STORED_EVENT_DAMAGED`` naming the event, never the row.
    Until 2026-12-06 ``[1]``, ``null`` and most strings showed the event as erased; ``1``, a
    string holding a content path and a value not a string blamed the canonical form ("its
    stored form is damaged"); and content JSON that does not parse answered UNKNOWN with the
    parser's message."""
    if database == "sqlite":
        url = admin = f"sqlite:///{tmp_path / 'aiaudit.db'}"
        open_store(url, run_migrations=True, keys=None).close()
    else:
        pg: Postgres = request.getfixturevalue("own_postgres")
        url, admin = pg.app_url, pg.admin_url
    running = start_in_clear(tmp_path, url, {})
    try:
        _, seq = running.append([interaction(tenant, "m-0"), interaction(tenant, "m-1")])
        running.wait_indexed(tenant, 2)  # indexed before the damage: the index finds it
        engine = sa.create_engine(admin)
        try:
            with engine.begin() as conn:
                conn.execute(
                    sa.text("UPDATE event_content SET content = :c WHERE log_id = :t AND seq = :s"),
                    {"c": content, "t": tenant, "s": seq},
                )
        finally:
            engine.dispose()
        why = {
            b"not json": "is not JSON",
            b'{"input.messages[0].parts[0].text": 1}': "holds a value that is not a string",
        }.get(content, "is not a JSON object")
        auditor = running.as_role("auditor")
        every_read_names_the_damage(auditor, tenant, seq, f"its content {why}")
        (kept,) = running.find(tenant, 'event_id = "m-0"').results  # the others still read
        assert kept.event.event_id == "m-0"
    finally:
        running.channel.close()
        running.suite.stop()


def test_a_store_error_reading_a_log_is_an_outage_not_damage(
    tmp_path: Path, tenant: str, own_postgres: Postgres, caplog: pytest.LogCaptureFixture
) -> None:
    """Damage holds its own log only; the store failing the read (here the indexer's login
    refused the content table, a DBAPIError as a lost connection is) is an outage: the
    indexer pauses for every tenant, health NOT_SERVING, and goes on once the store
    answers. Until 2026-12-06 the damage itself (content JSON that does not parse) was an
    outage."""
    caplog.set_level(logging.INFO, logger="aiaudit.search")
    damaged, healthy = f"{tenant}-a", f"{tenant}-b"  # the damaged log's pass comes first
    store = open_store(own_postgres.app_url, keys=None)
    now = dt.datetime.now(dt.UTC)
    store.append_group([[prepare(interaction(damaged, name), now) for name in ("ok", "bad")]])
    store.close()
    damage_in_clear(own_postgres.admin_url, damaged, 1, "content JSON")
    extra = {"database_url": own_postgres.consumer_url}  # the indexer's least-privileged login
    running = start_in_clear(tmp_path, own_postgres.app_url, extra)
    try:
        running.append([interaction(healthy, "h-0")])
        running.wait_indexed(healthy, 1)
        assert building(running, damaged) == {
            "code": "FAILED_PRECONDITION",
            "reason": "INDEX_HELD",
            "indexed": "1",
            "target": "2",
            "held_at_sequence": "1",
            "retry": "",
        }
        assert health(running.channel) == SERVING
        (held,) = errors(caplog)
        assert f"holds log {damaged} at sequence 1: event 'bad' is damaged" in held

        grant = "SELECT ON event_content {} aiaudit_reader"
        with psycopg.connect(own_postgres.admin_dsn, autocommit=True) as admin:
            admin.execute(f"REVOKE {grant.format('FROM')}")
        try:
            running.append([interaction(healthy, "h-1")])
            wait_until(lambda: health(running.channel) == NOT_SERVING)
            paused = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
            assert any("search indexer paused" in m and "permission denied" in m for m in paused)
            assert errors(caplog) == [held]  # no log held for the store's error
        finally:
            with psycopg.connect(own_postgres.admin_dsn, autocommit=True) as admin:
                admin.execute(f"GRANT {grant.format('TO')}")
        running.wait_indexed(healthy, 2)
        wait_until(lambda: health(running.channel) == SERVING)
        assert positions(running)[damaged] == 1
    finally:
        running.channel.close()
        running.suite.stop()


@pytest.mark.parametrize("record", ["junk bytes", "text"])
def test_an_erasure_record_past_a_hold_that_does_not_parse_is_not_applied(
    tmp_path: Path, tenant: str, record: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The log is held at a damaged event; an erasure record after it is damaged too: which
    events it erases is not known, so it does not count as applied (a count over content
    waits for it), with an error naming it, and the other logs go on. Until 2026-12-06 it
    counted as applied, naming none (the erased text stayed countable), and one rewritten as
    text (SQLite) stopped the indexer for every tenant (TypeError)."""
    caplog.set_level(logging.INFO, logger="aiaudit.search")
    url = f"sqlite:///{tmp_path / 'aiaudit.db'}"
    store = open_store(url, run_migrations=True)
    now = dt.datetime.now(dt.UTC)
    store.append_group([[prepare(interaction(tenant, name), now) for name in ("m-0", "m-1")]])
    erase(store, tenant, "gdpr", "dpo", event_ids=["m-0"])
    sequence = store.log_sizes()[tenant] - 1
    store.close()
    junk_canonical(url, tenant, "m-1")  # the hold, at sequence 1
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        junk = ":junk" if record == "junk bytes" else "'not json'"
        conn.execute(
            sa.text(f"UPDATE events SET canonical = {junk} WHERE log_id = :t AND seq = :s"),
            {"t": tenant, "s": sequence, "junk": b"not json"},
        )
    engine.dispose()
    running = start_suite(tmp_path, "sqlite", {})
    try:
        running.append([interaction(f"{tenant}-z", "probe")])
        running.wait_indexed(f"{tenant}-z", 1)  # the pass went past the held log
        assert health(running.channel) == SERVING
        assert positions(running)[tenant] == 1
        indexer = running.suite.components["search"].indexer
        assert not indexer.wait_indexed(tenant, sequence + 1, timeout=0)
        held, unread = errors(caplog)
        assert f"holds log {tenant} at sequence 1: event 'm-1' is damaged" in held
        assert f"record at sequence {sequence} of held log {tenant} does not parse" in unread
    finally:
        running.channel.close()
        running.suite.stop()
