"""Back-pressure: OpenSearch answering bulk requests with HTTP 429 (whole or per document),
or with 413 (a request larger than the cluster takes).

A real HTTP proxy in front of the real node turns the first bulk requests away
with 429, as a node with a full write queue does, and refuses the first
document of the next bulk with a per-document 429 (that document does not reach
the node). The indexer must retry both and index every event exactly once.

The same proxy answers 413 with an empty body to bulk requests over a size, as
a node's HTTP layer does past ``http.max_content_length`` (100 MB by default,
10 MiB on small managed domains; a proxy's body limit in front of the node
likewise). Until 2026-12-06 the 413 counted as an outage: the indexer sent the
same 50 MB-at-most bulk again and again, no log was indexed again, and health
stayed NOT_SERVING.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from grpc_health.v1 import health_pb2
from opensearchpy import OpenSearch

from aiaudit.common.store import open_store
from aiaudit.common.store.prepare import prepare
from aiaudit.search import indexer
from aiaudit.search.backends.base import BackendUnavailableError, SearchSpec
from aiaudit.search.backends.opensearch import OpenSearchBackend, connect
from aiaudit.search.language import parse_order_by
from tests.helpers import interaction, wait_until
from tests.search.conftest import indexed_directly, start_suite
from tests.search.test_faults import health

REJECTED = json.dumps(
    {
        "error": {"type": "rejected_execution_exception", "reason": "write queue is full"},
        "status": 429,
    }
).encode()

FORBIDDEN = json.dumps(
    {"error": {"type": "security_exception", "reason": "no permissions"}, "status": 403}
).encode()

FAILED_REFRESH = json.dumps(
    {
        "error": {"type": "refresh_failed_engine_exception", "reason": "refresh failed"},
        "status": 500,
    }
).encode()


class Throttle:
    """What the proxy does to bulk requests: how many to refuse, and what it saw."""

    def __init__(
        self,
        refuse: int,
        refuse_document: bool = True,
        limit: int = 0,
        forbid: str = "",
        refuse_refreshes: int = 0,
        hold_searches: threading.Event | None = None,
    ) -> None:
        """``refuse`` bulks answered 429, then (``refuse_document``) one document of the next;
        ``limit``: bulk bodies over it are answered 413 (0: none); ``forbid``: GETs of this
        path answered 403, as to a login without the permission; ``refuse_refreshes``
        refreshes answered 500, as by a node failing them; ``hold_searches``: searches held
        until it is set, as by a node busy with them (each counted in ``searches``)."""
        self.refuse = refuse
        self.refuse_document = refuse_document
        self.limit = limit
        self.forbid = forbid
        self.refuse_refreshes = refuse_refreshes
        self.hold_searches = hold_searches
        self.searches = 0
        self.bulks = 0
        self.refused_documents = 0
        self.too_large: list[int] = []
        """The documents of each bulk answered 413, in order."""
        self.lock = threading.Lock()


def _proxy(target: str, throttle: Throttle) -> ThreadingHTTPServer:
    upstream = urlsplit(target)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            bulk = self.command == "POST" and self.path.split("?")[0].endswith("/_bulk")
            mark_document = False
            if (
                self.command == "GET"
                and throttle.forbid
                and self.path.split("?")[0] == throttle.forbid
            ):
                self._answer(403, FORBIDDEN)
                return
            if self.path.split("?")[0].endswith("/_refresh") and throttle.refuse_refreshes:
                with throttle.lock:
                    throttle.refuse_refreshes -= 1
                self._answer(500, FAILED_REFRESH)
                return
            if throttle.hold_searches and self.path.split("?")[0].endswith("/_search"):
                with throttle.lock:
                    throttle.searches += 1
                throttle.hold_searches.wait(60)
            if bulk and throttle.limit and len(body) > throttle.limit:
                with throttle.lock:
                    throttle.too_large.append(body.count(b"\n") // 2)
                self._answer(413, b"")
                return
            if bulk:
                with throttle.lock:
                    throttle.bulks += 1
                    turn = throttle.bulks
                if turn <= throttle.refuse:
                    self._answer(429, REJECTED)
                    return
                mark_document = throttle.refuse_document and turn == throttle.refuse + 1
            dropped = b""
            if mark_document:  # the first document never reaches the node: it is refused
                action, _source, rest = body.split(b"\n", 2)
                dropped, body = action, rest
            conn = http.client.HTTPConnection(upstream.hostname or "", upstream.port, timeout=30)
            headers = {
                k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
            }
            conn.request(self.command, self.path, body=body or None, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
            conn.close()
            if dropped and answer.status == 200:
                result = json.loads(data)
                (kind,) = json.loads(dropped)
                refusal = {"status": 429, "error": {"type": "rejected_execution_exception"}}
                result["items"].insert(0, {kind: refusal})
                result["errors"] = True
                data = json.dumps(result).encode()
                throttle.refused_documents += 1
            self._answer(answer.status, data, answer.getheader("Content-Type"))

        def _answer(self, status: int, data: bytes, kind: str | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind or "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward  # noqa: N815

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def throttled(opensearch_url: str) -> Iterator[tuple[str, Throttle]]:
    throttle = Throttle(refuse=2)
    server = _proxy(opensearch_url, throttle)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", throttle
    finally:
        server.shutdown()
        server.server_close()


def test_bulk_429s_are_retried_and_every_event_is_indexed_once(
    tmp_path: Path,
    tenant: str,
    opensearch_url: str,
    index_prefix: str,
    throttled: tuple[str, Throttle],
) -> None:
    proxy_url, throttle = throttled
    running = start_suite(
        tmp_path,
        "opensearch",
        {"opensearch_url": proxy_url, "index_prefix": index_prefix, "refresh_interval": "100ms"},
    )
    try:
        events = [interaction(tenant, f"throttled-{i}") for i in range(12)]
        running.append(events)
        running.wait_indexed(tenant, len(events), timeout=60)
        ids = running.all_ids(tenant, order_by="sequence")
        assert sorted(ids) == sorted(e.event_id for e in events) and len(ids) == len(set(ids))
    finally:
        running.channel.close()
        running.suite.stop()
    # Two whole bulks refused, one document refused: all were sent again.
    assert throttle.bulks >= 4 and throttle.refused_documents == 1
    assert indexed_directly(opensearch_url, index_prefix, tenant) == len(events)


LIMIT = 200_000
"""The bulk body the proxy takes at most (bytes)."""


def test_a_bulk_over_the_size_limit_is_sent_in_halves_and_a_document_over_it_holds_its_log(
    tmp_path: Path, opensearch_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Twelve events of ~60 KB as documents (each fits, together they do not) and one of
    ~240 KB (over the limit alone), then another tenant's: the bulk is sent in halves,
    the large event holds its own log (one WARNING naming it and the limit), the other
    tenant is indexed, health stays SERVING; later bulks are sent at the smaller size
    at once; once the limit is raised the held log goes on."""
    caplog.set_level(logging.INFO, logger="aiaudit.search")
    throttle = Throttle(refuse=0, refuse_document=False, limit=LIMIT)
    server = _proxy(opensearch_url, throttle)
    prefix = f"aiaudit-test-{uuid.uuid4().hex[:8]}"
    held, later, other = (f"{c}{uuid.uuid4().hex[:8]}" for c in "abz")
    running = start_suite(
        tmp_path,
        "opensearch",
        {
            "opensearch_url": f"http://127.0.0.1:{server.server_address[1]}",
            "index_prefix": prefix,
            "refresh_interval": "100ms",
        },
    )
    direct = OpenSearch(hosts=[opensearch_url])
    try:
        events = [interaction(held, f"a-{i}", text="w " * 15_000) for i in range(12)]
        events.insert(5, interaction(held, "a-huge", text="w " * 60_000))
        running.append(events)
        running.append([interaction(other, f"z-{i}") for i in range(3)])
        running.wait_indexed(other, 3)
        backend = running.suite.components["search"].backend
        wait_until(lambda: backend.positions().get(held) == 5)  # a-0 .. a-4 indexed
        assert health(running.channel) == health_pb2.HealthCheckResponse.SERVING
        assert {f"a-{i}" for i in range(5)} <= set(running.all_ids(held))
        assert "a-huge" not in running.all_ids(held)
        assert any(n > 1 for n in throttle.too_large)  # the whole batch, at first

        def warned() -> list[str]:
            return [
                r.getMessage()
                for r in caplog.records
                if r.levelno == logging.WARNING and "a-huge" in r.getMessage()
            ]

        assert len(warned()) == 1, warned()
        assert "413" in warned()[0] and "http.max_content_length" in warned()[0]
        assert f"log {held}, sequence 5" in warned()[0]

        # The smaller size is kept: the next tenant's batch of the same events takes no 413.
        halved = sum(1 for n in throttle.too_large if n > 1)
        running.append([interaction(later, f"b-{i}", text="w " * 15_000) for i in range(12)])
        running.wait_indexed(later, 12)
        assert sum(1 for n in throttle.too_large if n > 1) == halved

        throttle.limit = 0  # the cluster takes larger requests: the held log goes on
        wait_until(lambda: len(running.all_ids(held)) == 13)
        assert len(warned()) == 1
        assert health(running.channel) == health_pb2.HealthCheckResponse.SERVING
    finally:
        running.channel.close()
        running.suite.stop()
        server.shutdown()
        server.server_close()
        direct.indices.delete(index=f"{prefix}-*", params={"ignore_unavailable": "true"})
        direct.indices.delete_index_template(name=prefix, params={"ignore": 404})
        direct.close()


def test_a_refresh_that_fails_leaves_the_position_where_its_documents_are_searchable(
    tmp_path: Path, tenant: str, opensearch_url: str, index_prefix: str
) -> None:
    """Driven pass by pass, no periodic refresh (``refresh_interval: -1``): a batch that
    reaches the head of its log is refreshed before its position moves, so a replica that
    reads the position (a standby ending a build) finds its documents. The node fails the
    first refresh: the pass fails, the position stays at 0, and the next pass sends the
    batch again, refreshes and moves it; each event is there once. Until 2026-12-06 (review)
    the failure was only logged and the position moved over three events no search found."""
    throttle = Throttle(refuse=0, refuse_document=False, refuse_refreshes=1)
    server = _proxy(opensearch_url, throttle)
    store = open_store(f"sqlite:///{tmp_path / 'aiaudit.db'}", run_migrations=True, keys=None)
    client = OpenSearch(hosts=[f"http://127.0.0.1:{server.server_address[1]}"], max_retries=0)
    backend = OpenSearchBackend(client, store.engine, index_prefix, "-1")
    running = indexer.Indexer(store, backend, 10, 0.05, 1.0, lambda _: None)
    try:
        ids = [f"e-{i}" for i in range(3)]
        store.append_group(
            [[prepare(interaction(tenant, i), dt.datetime.now(dt.UTC)) for i in ids]]
        )
        with pytest.raises(BackendUnavailableError, match="500"):
            running.run_once()
        assert throttle.refuse_refreshes == 0  # the refusal was met
        assert backend.positions().get(tenant, 0) == 0
        assert running.run_once()
        assert backend.positions()[tenant] == 3
        assert indexed_directly(opensearch_url, index_prefix, tenant, refresh=False) == 3
    finally:
        running._writer.shutdown(wait=True)  # never started: its bulk thread only
        backend.close()
        store.close()
        server.shutdown()
        server.server_close()


def test_a_search_the_node_does_not_answer_in_time_is_sent_once(
    tmp_path: Path, tenant: str, opensearch_url: str, index_prefix: str
) -> None:
    """A search past ``opensearch_timeout`` is UNAVAILABLE at once, not sent again: the node
    goes on with a search its client gave up on (a phrase of 64 repeated words against an
    event of 400,000 of them ran for over 15 minutes, its cancellation unheeded, probe
    2026-12-07). Until then each timed-out search was sent four times: four copies on the
    node, and the caller waited four timeouts (40 s by default) for its UNAVAILABLE."""
    held = threading.Event()
    throttle = Throttle(refuse=0, refuse_document=False, hold_searches=held)
    server = _proxy(opensearch_url, throttle)
    store = open_store(f"sqlite:///{tmp_path / 'aiaudit.db'}", run_migrations=True, keys=None)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    backend = OpenSearchBackend(
        connect([url], "", "", None, True, 1.0), store.engine, index_prefix, "1s"
    )
    try:
        with pytest.raises(BackendUnavailableError):
            backend.search(SearchSpec(tenant, None, parse_order_by(""), 10))
        assert throttle.searches == 1
    finally:
        held.set()
        backend.close()
        store.close()
        server.shutdown()
        server.server_close()
