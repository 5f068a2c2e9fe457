"""An index prefix whose indices another prefix's template takes (``p`` and ``p-v2``).

The settings take any such prefix (they cannot see the cluster). Until 2026-12-06
the second deployment started, then its indexer paused for good: OpenSearch
refuses an index template whose patterns overlap another's of the same priority,
and the indexer reported "OpenSearch refused the query: ... same priority [100]"
once a backoff, with health NOT_SERVING, as if the cluster were down. Now the
start is refused as a bad setting is (a ConfigError naming both prefixes and what
to do), and an indexer that meets the conflict later (the cluster did not answer
at start) reports the same: once, at ERROR, as a configuration problem that
retrying will not fix (until 2026-12-06, "search indexer paused" at WARNING, as
of an outage), while it goes on trying, so that deleting the other template
needs no restart.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2
from opensearchpy import OpenSearch

from aiaudit.common.config import ConfigError
from aiaudit.search.backends.opensearch import OpenSearchBackend
from tests.helpers import interaction, wait_until
from tests.search.conftest import start_suite
from tests.search.test_backpressure import Throttle, _proxy
from tests.search.test_faults import health

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


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


def sent(caplog: pytest.LogCaptureFixture, method: str, path: str) -> int:
    """How many requests of this method and path opensearch-py logged (the ``opensearch``
    logger at INFO: answered or not)."""
    return sum(
        1
        for r in caplog.records
        if r.name == "opensearch"
        and r.getMessage().startswith(f"{method} ")
        and f"{path} [status" in r.getMessage()
    )


def said(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    """What the search service logged at exactly this level."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("aiaudit.search") and r.levelno == level
    ]


def test_an_indexer_meeting_an_overlapping_template_logs_one_configuration_error_and_retries(
    tmp_path: Path, opensearch_url: str, direct: OpenSearch, caplog: pytest.LogCaptureFixture
) -> None:
    """The other template came after the start's check: the indexer's template install
    meets the conflict. It says once, at ERROR, that this is a configuration problem that
    retrying will not fix (not once a retry), goes on trying with its backoff, and indexes
    as soon as the other template is deleted, with no restart. Until 2026-12-06 it said
    ``WARNING search indexer paused: setting 'search.index_prefix': ...``, as of an outage."""
    caplog.set_level(logging.INFO, logger="aiaudit.search")
    caplog.set_level(logging.INFO, logger="opensearch")  # each request sent, the retries too
    old = f"aiaudit-test-{uuid.uuid4().hex[:8]}"
    new = f"{old}-v2"
    tenant = f"t{uuid.uuid4().hex[:8]}"
    settings = {"opensearch_url": opensearch_url, "index_prefix": new, "refresh_interval": "100ms"}
    running = start_suite(tmp_path, "opensearch", settings)
    try:
        OpenSearchBackend(direct, None, old, "1s").ensure_template()  # type: ignore[arg-type]
        before = sent(caplog, "GET", "/_index_template")
        running.append([interaction(tenant, "e-0")])
        # The first try and three retries (the template is listed before each put).
        wait_until(lambda: sent(caplog, "GET", "/_index_template") >= before + 4)
        assert health(running.channel) == NOT_SERVING
        (error,) = said(caplog, logging.ERROR)
        assert "stopped by a configuration problem, not an outage" in error
        assert "retrying will not fix it until the configuration or the cluster changes" in error
        assert f"setting 'search.index_prefix': {new!r}" in error and f"{old!r}" in error
        assert not [m for m in said(caplog, logging.WARNING) if "search indexer paused" in m]

        direct.indices.delete_index_template(name=old)  # the cluster changes: no restart
        running.wait_indexed(tenant, 1)
        wait_until(lambda: health(running.channel) == SERVING)
        assert said(caplog, logging.ERROR) == [error]
        assert direct.indices.exists_index_template(name=new)
    finally:
        running.channel.close()
        running.suite.stop()
        _clean(direct, old)


def test_retention_meeting_an_overlapping_template_logs_one_configuration_error(
    tmp_path: Path, opensearch_url: str, direct: OpenSearch, caplog: pytest.LogCaptureFixture
) -> None:
    """Retention installs the template first (its sweep runs at start): with the templates
    not listed to this login, the start's check is skipped and OpenSearch refuses the
    template. Said once, at ERROR, as the writes' conflict is, while the sweep is tried
    again; once the other template is deleted, indexing goes on. Until 2026-12-06
    ``WARNING search retention not applied (retried later)``, at every try."""
    caplog.set_level(logging.INFO, logger="aiaudit.search")
    caplog.set_level(logging.INFO, logger="opensearch")
    old = f"aiaudit-test-{uuid.uuid4().hex[:8]}"
    new = f"{old}-v2"
    tenant = f"t{uuid.uuid4().hex[:8]}"
    OpenSearchBackend(direct, None, old, "1s").ensure_template()  # type: ignore[arg-type]
    server = _proxy(opensearch_url, Throttle(0, refuse_document=False, forbid="/_index_template"))
    settings = {
        "opensearch_url": f"http://127.0.0.1:{server.server_address[1]}",
        "index_prefix": new,
        "refresh_interval": "100ms",
        "retention_days": 30,
        "retention_sweep_interval": 0.2,
    }
    try:
        running = start_suite(tmp_path, "opensearch", settings)
        try:
            # The first sweep's template install and three more.
            wait_until(lambda: sent(caplog, "PUT", f"/_index_template/{new}") >= 4)
            (error,) = said(caplog, logging.ERROR)
            assert "stopped by a configuration problem, not an outage" in error
            assert "same priority" in error and f"{new!r}" in error
            assert not [m for m in said(caplog, logging.WARNING) if "retention not applied" in m]

            direct.indices.delete_index_template(name=old)  # the cluster changes
            running.append([interaction(tenant, "e-0")])
            running.wait_indexed(tenant, 1)
            assert said(caplog, logging.ERROR) == [error]
        finally:
            running.channel.close()
            running.suite.stop()
    finally:
        server.shutdown()
        server.server_close()
        _clean(direct, old)
