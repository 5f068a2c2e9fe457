"""A new ``index_prefix`` is built from the whole log; the old prefix's indices are named.

Until 2026-12-05 the indexer's positions were the store cursor ``search-indexer``
whatever the prefix: a new prefix (the README's way to take a new document
layout) got only the events after the switch, and the old prefix's indices
kept every text, reached by no erasure, expunge or retention again, unnamed.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
from opensearchpy import OpenSearch

from aiaudit.common import leader
from aiaudit.common.erasure import erase
from aiaudit.common.store import open_store
from aiaudit.search.backends import opensearch
from aiaudit.search.indexer import Indexer
from aiaudit.search.settings import SearchSettings
from tests.conftest import Postgres
from tests.helpers import interaction, secret_word, wait_until
from tests.search.conftest import start_suite


def test_cursor_names_keep_the_default_and_fit_the_column() -> None:
    cursor_name = opensearch.cursor_name  # type: ignore[attr-defined]  # (old code: none)
    assert cursor_name(SearchSettings.index_prefix) == opensearch.CONSUMER == "search-indexer"
    longest = "a" * 61  # the longest prefix settings take
    names = {cursor_name(p) for p in ("aiaudit-v2", longest, longest[:-1] + "b", "a" * 49)}
    assert len(names) == 4
    assert all(n.startswith("search-indexer:") and len(n) <= 64 for n in names)
    assert cursor_name("aiaudit-v2") == "search-indexer:aiaudit-v2"


def test_a_new_prefix_indexes_the_whole_log_and_names_the_old_prefixs_indices(
    tmp_path: Path, own_postgres: Postgres, opensearch_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """On PostgreSQL with the indexer's least-privileged login, and a new prefix of the
    longest length settings take (its cursor's name is shortened to fit)."""
    caplog.set_level(logging.INFO, logger="aiaudit.search")
    old = f"aiaudit-test-{uuid.uuid4().hex[:8]}"
    new = f"{old}v2".ljust(61, "x")  # not "<old>-...": the old template's pattern takes it
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    secret, kept = secret_word(), secret_word()
    direct = OpenSearch(hosts=[opensearch_url])

    def suite(prefix: str, path: Path):  # type: ignore[no-untyped-def]
        path.mkdir()
        return start_suite(
            path,
            "opensearch",
            {
                "opensearch_url": opensearch_url,
                "index_prefix": prefix,
                "refresh_interval": "100ms",
                "database_url": own_postgres.consumer_url,
            },
            store_url=own_postgres.app_url,
        )

    try:
        first = suite(old, tmp_path / "old")
        try:
            first.append(
                [
                    interaction(tenant, "m-0", text=f"the {kept} plan", user="bob"),
                    interaction(tenant, "m-1", text=f"the {secret} plan", user="alice"),
                ]
            )
            first.wait_indexed(tenant, 2)
        finally:
            first.channel.close()
            first.suite.stop()
        privacy = open_store(own_postgres.privacy_url)
        try:  # while no indexer runs: the new prefix learns of it from the store alone
            assert erase(privacy, tenant, "gdpr", "dpo", subject_id="alice").erased == ["m-1"]
        finally:
            privacy.close()

        second = suite(new, tmp_path / "new")
        try:
            second.append([interaction(tenant, "m-2", user="carol")])
            second.wait_indexed(tenant, 4)  # three events and the erasure record
            assert sorted(second.all_ids(tenant, "event_type = INTERACTION")) == [
                "m-0",
                "m-1",
                "m-2",
            ]
            assert second.all_ids(tenant, query=kept) == ["m-0"]
            assert second.all_ids(tenant, query=secret) == []  # built from the store: erased
            positions = second.suite.components["search"].backend.positions()
            assert positions[tenant] >= 4  # three events and the erasure record
            old_indices = sorted(direct.indices.get_alias(index=f"{old}-*"))

            def warned() -> list[str]:
                return [
                    r.getMessage()
                    for r in caplog.records
                    if r.levelno == logging.WARNING and f"index prefix '{old}'" in r.getMessage()
                ]

            wait_until(warned)
            assert all(name in warned()[0] for name in old_indices)
        finally:
            second.channel.close()
            second.suite.stop()
    finally:
        for prefix in (old, new):
            direct.indices.delete(index=f"{prefix}-*", params={"ignore_unavailable": "true"})
            direct.indices.delete_index_template(name=prefix, params={"ignore": 404})
        direct.close()


def test_two_deployments_with_prefixes_of_their_own_on_one_store_both_index(
    tmp_path: Path, own_postgres: Postgres, opensearch_url: str
) -> None:
    """Each prefix has its cursor, and its indexer its lock: until 2026-12-05 every prefix
    took the one ``search.indexer`` lock, so the second deployment stood by for ever and
    its index stayed empty. The default prefix keeps the old lock (replicas of a rolling
    upgrade still take turns)."""
    assert Indexer.leader_job(SearchSettings.index_prefix) == leader.INDEXER
    one, two = (f"aiaudit-test-{uuid.uuid4().hex[:8]}" for _ in range(2))
    assert len({Indexer.leader_job(p) for p in (one, two, "a" * 61, "a" * 60 + "b")}) == 4
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    direct = OpenSearch(hosts=[opensearch_url])
    suites = []
    try:
        for prefix in (one, two):
            (tmp_path / prefix).mkdir()
            settings = {
                "opensearch_url": opensearch_url,
                "index_prefix": prefix,
                "refresh_interval": "100ms",
                "database_url": own_postgres.consumer_url,
            }
            suites.append(
                start_suite(tmp_path / prefix, "opensearch", settings, own_postgres.app_url)
            )
        suites[0].append([interaction(tenant, f"e-{i}") for i in range(3)])
        for running in suites:  # each deployment's own index gets the events
            running.wait_indexed(tenant, 3)
            assert running.suite.components["search"].indexer.leading
    finally:
        for running in suites:
            running.channel.close()
            running.suite.stop()
        for prefix in (one, two):
            direct.indices.delete(index=f"{prefix}-*", params={"ignore_unavailable": "true"})
            direct.indices.delete_index_template(name=prefix, params={"ignore": 404})
        direct.close()
