"""An index prefix whose indices another prefix's template takes (``p`` and ``p-v2``).

The settings take any such prefix (they cannot see the cluster). Until 2026-12-06
the second deployment started, then its indexer paused for good: OpenSearch
refuses an index template whose patterns overlap another's of the same priority,
and the indexer reported "OpenSearch refused the query: ... same priority [100]"
once a backoff, with health NOT_SERVING, as if the cluster were down. Now the
start is refused as a bad setting is (a ConfigError naming both prefixes and what
to do), and an indexer that meets the conflict later (the cluster did not answer
at start) reports the same.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from opensearchpy import OpenSearch

from aiaudit.common.config import ConfigError
from aiaudit.search.backends.opensearch import OpenSearchBackend
from tests.helpers import interaction
from tests.search.conftest import start_suite
from tests.search.test_backpressure import Throttle, _proxy


@pytest.fixture
def direct(opensearch_url: str) -> Iterator[OpenSearch]:
    client = OpenSearch(hosts=[opensearch_url])
    yield client
    client.close()


def _clean(direct: OpenSearch, base: str) -> None:
    """Removes the indices and templates of every prefix starting with ``base``."""
    direct.indices.delete(index=f"{base}*", params={"ignore_unavailable": "true"})
    found = direct.indices.get_index_template(params={"ignore": 404}).get("index_templates", [])
    for name in [t["name"] for t in found if t["name"].startswith(base)]:
        direct.indices.delete_index_template(name=name, params={"ignore": 404})


def test_a_prefix_extending_another_is_refused_at_start_naming_both(
    tmp_path: Path, opensearch_url: str, direct: OpenSearch
) -> None:
    """``p`` indexed, then ``p-v2`` started on the same cluster: the start fails with a
    configuration error naming both templates and the README's section; so does ``p``
    once ``p-v2``'s template is there (the other way round)."""
    old = f"aiaudit-test-{uuid.uuid4().hex[:8]}"
    new = f"{old}-v2"
    tenant = f"t{uuid.uuid4().hex[:8]}"
    try:
        (tmp_path / "old").mkdir()
        first = start_suite(
            tmp_path / "old", "opensearch", {"opensearch_url": opensearch_url, "index_prefix": old}
        )
        try:
            first.append([interaction(tenant, "e-0")])
            first.wait_indexed(tenant, 1)
        finally:
            first.channel.close()
            first.suite.stop()

        (tmp_path / "new").mkdir()
        with pytest.raises(ConfigError) as refused:
            start_suite(
                tmp_path / "new",
                "opensearch",
                {"opensearch_url": opensearch_url, "index_prefix": new},
            )
        message = str(refused.value)
        assert "search.index_prefix" in message
        assert f"{new!r}" in message and f"{old!r}" in message and f"{old}-*" in message
        assert "changing index_prefix" in message
        assert not direct.indices.exists_index_template(name=new)

        # The other way round: p-v2's template is there, p starts.
        direct.indices.delete_index_template(name=old)
        OpenSearchBackend(direct, None, new, "1s").ensure_template()  # type: ignore[arg-type]
        (tmp_path / "again").mkdir()
        with pytest.raises(ConfigError) as again:
            start_suite(
                tmp_path / "again",
                "opensearch",
                {"opensearch_url": opensearch_url, "index_prefix": old},
            )
        assert f"{new!r}" in str(again.value) and f"{old!r}" in str(again.value)
    finally:
        _clean(direct, old)


def test_the_indexer_meeting_an_overlapping_template_says_so(direct: OpenSearch) -> None:
    """The cluster did not answer at start, or the other template came later: the indexer's
    template install raises the same configuration error (not "refused the query"), and
    leaves the other template alone."""
    old = f"aiaudit-test-{uuid.uuid4().hex[:8]}"
    new = f"{old}-v2"
    try:
        OpenSearchBackend(direct, None, old, "1s").ensure_template()  # type: ignore[arg-type]
        backend = OpenSearchBackend(direct, None, new, "1s")  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="changing index_prefix") as refused:
            backend.ensure_template()
        assert f"{old!r}" in str(refused.value) and f"{new!r}" in str(refused.value)
        assert not direct.indices.exists_index_template(name=new)
        assert direct.indices.exists_index_template(name=old)
    finally:
        _clean(direct, old)


def test_a_login_not_allowed_to_list_templates_hears_opensearchs_refusal_as_the_same_error(
    opensearch_url: str, direct: OpenSearch
) -> None:
    """The templates cannot be listed (403 through a proxy): the start-up check is skipped,
    and OpenSearch's own refusal of the template (same priority) is the configuration error."""
    old = f"aiaudit-test-{uuid.uuid4().hex[:8]}"
    new = f"{old}-v2"
    server = _proxy(opensearch_url, Throttle(0, refuse_document=False, forbid="/_index_template"))
    client = OpenSearch(hosts=[f"http://127.0.0.1:{server.server_address[1]}"])
    try:
        OpenSearchBackend(direct, None, old, "1s").ensure_template()  # type: ignore[arg-type]
        backend = OpenSearchBackend(client, None, new, "1s")  # type: ignore[arg-type]
        backend.check_prefix()  # not allowed to look: nothing said
        with pytest.raises(ConfigError, match="changing index_prefix") as refused:
            backend.ensure_template()
        message = str(refused.value)
        assert "same priority" in message and f"{new!r}" in message and old in message
        assert "refused the query" not in message
    finally:
        client.close()
        server.shutdown()
        server.server_close()
        _clean(direct, old)


def test_only_templates_that_take_or_are_taken_by_the_prefixs_indices_count(
    direct: OpenSearch,
) -> None:
    """A wider template of a lower priority is layering (this prefix's wins on its indices);
    one above this priority would map this prefix's indices, and one under this prefix's
    pattern would have its indices mapped and searched by this prefix."""
    base = f"aiaudit-test-{uuid.uuid4().hex[:8]}"
    prefix = f"{base}-p"
    backend = OpenSearchBackend(direct, None, prefix, "1s")  # type: ignore[arg-type]

    def template(name: str, pattern: str, priority: int) -> None:
        body = {"index_patterns": [pattern], "priority": priority}
        direct.indices.put_index_template(name=name, body=body)

    try:
        template(f"{base}-wide", f"{base}*", 50)
        template(f"{base}-other", f"{base}-q-*", 100)
        backend.check_prefix()  # neither takes p's indices
        template(f"{base}-wide", f"{base}*", 150)
        with pytest.raises(ConfigError, match=f"{base}-wide"):
            backend.check_prefix()
        template(f"{base}-wide", f"{base}*", 50)
        template(f"{base}-under", f"{prefix}-x-*", 10)
        with pytest.raises(ConfigError, match=f"{base}-under"):
            backend.check_prefix()
    finally:
        _clean(direct, base)
