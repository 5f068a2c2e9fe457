"""An erasure recorded in several records (one per ``RECORD_IDS`` ids): the index applies each.

A heavy subject's erasure is recorded in parts since 2026-12-06 (one record naming every
id grew past what readers fetch); every part's events lose their text, also past a log
the indexer holds at a damaged event.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from aiaudit.common.erasure import erase
from aiaudit.common.store import open_store
from aiaudit.common.store.prepare import prepare
from tests.helpers import holding, interaction, secret_word, wait_until
from tests.search.conftest import SearchSuite, start_suite
from tests.search.test_damaged_logs import junk_canonical, positions


def test_every_part_of_an_erasure_takes_its_events_text_out(
    search_suite: SearchSuite, tenant: str
) -> None:
    search_suite.append(
        [interaction(tenant, f"m-{i}", text=f"mango {i}", user="alice") for i in range(5)]
        + [interaction(tenant, "b-0", text="mango for bob", user="bob")]
    )
    search_suite.wait_indexed(tenant, 6)
    assert search_suite.find(tenant, query="mango").total_size == 6

    done = erase(search_suite.suite.store, tenant, "r", "dpo", subject_id="alice", per_record=2)
    assert len(done.record_ids) == 3

    search_suite.wait_indexed(tenant, 9)
    wait_until(lambda: search_suite.find(tenant, query="mango").total_size == 1)
    assert search_suite.all_ids(tenant, query="mango") == ["b-0"]
    records = search_suite.find(tenant, 'event_type = "EVENT_TYPE_PRIVACY_ERASURE"').results
    assert [list(r.event.privacy_action.event_ids) for r in reversed(records)] == [
        ["m-0", "m-1"],
        ["m-2", "m-3"],
        ["m-4"],
    ]


def test_every_part_of_an_erasure_past_a_held_log_takes_its_events_text_out(
    tmp_path: Path, tenant: str
) -> None:
    words = [secret_word() for _ in range(3)]
    url = f"sqlite:///{tmp_path / 'aiaudit.db'}"
    first = start_suite(tmp_path, "sqlite", {}, store_url=url)
    try:
        first.append(
            [
                interaction(tenant, f"m-{i}", text=f"the {w} plan", user="alice")
                for i, w in enumerate(words)
            ]
        )
        first.wait_indexed(tenant, 3)
    finally:
        first.channel.close()
        first.suite.stop()
    store = open_store(url)
    store.append_group([[prepare(interaction(tenant, "d-0", user="bob"), dt.datetime.now(dt.UTC))]])
    hold = store.log_sizes()[tenant] - 1
    done = erase(store, tenant, "gdpr", "dpo", subject_id="alice", per_record=1)
    assert len(done.record_ids) == 3
    store.close()
    junk_canonical(url, tenant, "d-0")  # the indexer holds the log here, before the records
    running = start_suite(tmp_path, "sqlite", {}, store_url=url)
    try:
        running.append([interaction(f"{tenant}-z", "probe")])
        running.wait_indexed(f"{tenant}-z", 1)  # a pass went past the held log
        assert positions(running)[tenant] == hold
        for word in words:
            assert running.find(tenant, query=word).total_size == 0
            assert holding([tmp_path / "search.db", tmp_path / "search.db-wal"], word) == []
    finally:
        running.channel.close()
        running.suite.stop()
