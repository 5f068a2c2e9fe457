"""A stored event whose binary column raw SQL rewrote as text (SQLite): a damaged stored event.

SQLite keeps any type in any column. The shared event read took such a column
as a ``str``: ``GetEvent``, a ``SearchEvents`` page and an export holding the
event answered UNKNOWN (TypeError), or, for a text that is no UTF-8 (a leaf
hash, sealed content), UNAVAILABLE "the store is unavailable; retry", for
good, and the indexer paused every tenant's indexing as for an outage. The
reads name the column, as ``aiaudit verify`` does, and answer as for any
damaged stored event (``DATA_LOSS`` ``STORED_EVENT_DAMAGED``); the indexer
holds that log at the event.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import grpc
import pytest

from aiaudit.common.erasure import erase
from aiaudit.common.store import open_store
from aiaudit.common.store.prepare import prepare
from aiaudit.search.v1 import search_service_pb2 as pb
from tests.helpers import holding, interaction, secret_word, store_as_text
from tests.integrity.test_entries_outside_log import error_info
from tests.search.conftest import start_suite
from tests.search.test_damaged_events import every_read_names_the_damage
from tests.search.test_damaged_logs import (
    SERVING,
    errors,
    held_at_the_damaged_one,
    positions,
)
from tests.search.test_faults import health

COLUMNS = ["events.canonical", "log_entries.leaf_hash", "event_content.content"]
"""What each read met: a TypeError (canonical form), a text that is no UTF-8 (the others)."""


def named(column: str) -> str:
    return f"column {column} is stored as text, not bytes (rewritten by raw SQL?)"


@pytest.mark.parametrize("column", COLUMNS)
def test_an_event_stored_as_text_is_data_loss_naming_the_column(
    tmp_path: Path, tenant: str, column: str
) -> None:
    url = f"sqlite:///{tmp_path / 'aiaudit.db'}"
    running = start_suite(tmp_path, "sqlite", {}, store_url=url)
    try:
        _, seq = running.append([interaction(tenant, "m-0"), interaction(tenant, "m-1")])
        running.wait_indexed(tenant, 2)  # indexed before the damage: the index finds it
        store_as_text(url, tenant, seq, column)
        auditor = running.as_role("auditor")
        every_read_names_the_damage(auditor, tenant, seq, named(column))
        (kept,) = running.find(tenant, 'event_id = "m-0"').results  # the others still read
        assert kept.event.event_id == "m-0"
    finally:
        running.channel.close()
        running.suite.stop()


def test_a_leaf_hash_stored_as_text_holds_its_log_at_it(
    tmp_path: Path, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A leaf hash that is no UTF-8 failed the indexer's read as an outage: every tenant's
    indexing paused, health NOT_SERVING. It holds its own log at the event, naming the column."""
    caplog.set_level(logging.INFO, logger="aiaudit.search")
    url = f"sqlite:///{tmp_path / 'aiaudit.db'}"
    store = open_store(url, run_migrations=True)
    names = [f"ok-{i}" for i in range(5)] + ["bad", "after"]
    store.append_group([[prepare(interaction(tenant, n), dt.datetime.now(dt.UTC)) for n in names]])
    store.close()
    store_as_text(url, tenant, 5, "log_entries.leaf_hash")
    running = start_suite(tmp_path, "sqlite", {})  # one batch holds all seven
    try:
        held = held_at_the_damaged_one(running, tenant, names, caplog)
        assert named("log_entries.leaf_hash") in held
        assert health(running.channel) == SERVING
    finally:
        running.channel.close()
        running.suite.stop()


def test_an_erasure_record_stored_as_text_holds_its_log_and_still_takes_the_text_out(
    tmp_path: Path, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The erasure record's canonical form rewritten as text before the indexer reached it:
    the log is held at the record (a damaged stored event), and the sweep of the held log
    still applies it (its text parses): the erased event's text leaves the index, and a
    count over content, which waits for the latest erasure, answers."""
    caplog.set_level(logging.INFO, logger="aiaudit.search")
    secret, kept = secret_word(), secret_word()
    url = f"sqlite:///{tmp_path / 'aiaudit.db'}"
    first = start_suite(tmp_path, "sqlite", {}, store_url=url)
    try:
        first.append(
            [
                interaction(tenant, "m-0", text=f"the {secret} plan"),
                interaction(tenant, "m-1", text=f"the {kept} plan"),
            ]
        )
        first.wait_indexed(tenant, 2)  # indexed with their text, then erased while stopped
        files = [tmp_path / "search.db", tmp_path / "search.db-wal"]
        assert holding(files, secret) != []
    finally:
        first.channel.close()
        first.suite.stop()
    store = open_store(url)
    made = erase(store, tenant, "gdpr", "dpo", event_ids=["m-0"])
    assert made.erased == ["m-0"]
    record = store.log_sizes()[tenant] - 1
    store.close()
    store_as_text(url, tenant, record, "events.canonical")
    running = start_suite(tmp_path, "sqlite", {}, store_url=url)
    try:
        running.append([interaction(f"{tenant}-z", "probe")])
        running.wait_indexed(f"{tenant}-z", 1)  # the pass went past the held log
        assert health(running.channel) == SERVING
        assert positions(running)[tenant] == record  # held at the record
        (held,) = errors(caplog)
        assert (
            f"holds log {tenant} at sequence {record}: event {made.record_id!r} is damaged" in held
        )
        assert named("events.canonical") in held
        indexer = running.suite.components["search"].indexer
        assert indexer.wait_indexed(tenant, record + 1, timeout=0)  # the record is applied
        assert not indexer.wait_indexed(tenant, record + 1, timeout=0, whole=True)  # still held

        # before any search: an access event records the query, which quotes the word
        assert holding(files, secret) == []  # the erased text left the index's files
        assert running.find(tenant, query=secret).total_size == 0
        by_event = pb.AggregateRequest(tenant_id=tenant, query=f'"{secret}"', group_by=["event_id"])
        assert list(running.as_role("auditor").Aggregate(by_event).buckets) == []
        assert running.all_ids(tenant, query=kept) == ["m-1"]  # the other event's text stays
        assert running.all_ids(tenant, 'event_id = "m-0"') == ["m-0"]  # m-0's metadata stays

        with pytest.raises(grpc.RpcError) as caught:  # the record itself reads as damaged
            running.as_role("auditor").GetEvent(
                pb.GetEventRequest(tenant_id=tenant, event_id=made.record_id)
            )
        assert caught.value.code() == grpc.StatusCode.DATA_LOSS
        assert error_info(caught.value).reason == "STORED_EVENT_DAMAGED"
        assert named("events.canonical") in (caught.value.details() or "")
    finally:
        running.channel.close()
        running.suite.stop()
