"""A batch that reaches the head of its log is searchable without waiting for a periodic refresh."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from opensearchpy import OpenSearch

from tests.helpers import interaction, wait_until
from tests.search.conftest import backend_settings, start_suite


def test_live_events_are_searchable_with_periodic_refresh_off(
    request: pytest.FixtureRequest, tmp_path: Path, tenant: str
) -> None:
    settings = backend_settings("opensearch", request)
    # A prefix (and template) of its own: no periodic refresh at all on its indices.
    settings |= {
        "index_prefix": f"aiaudit-test-live-{uuid.uuid4().hex[:8]}",
        "refresh_interval": "-1",
    }
    running = start_suite(tmp_path, "opensearch", settings)
    direct = OpenSearch(hosts=[settings["opensearch_url"]])
    try:
        for batch in range(3):
            running.append([interaction(tenant, f"live-{batch}-{i}") for i in range(4)])
            wait_until(lambda batch=batch: running.find(tenant).total_size == 4 * (batch + 1))
        template = direct.indices.get_index_template(name=settings["index_prefix"])
        index_settings = template["index_templates"][0]["index_template"]["template"]["settings"]
        assert index_settings["index"]["refresh_interval"] == "-1"
    finally:
        running.channel.close()
        running.suite.stop()
        direct.indices.delete(index=f"{settings['index_prefix']}-*")
        direct.indices.delete_index_template(name=settings["index_prefix"])
        direct.close()
