"""Back-pressure: OpenSearch answering bulk requests with HTTP 429 (whole or per document).

A real HTTP proxy in front of the real node turns the first bulk requests away
with 429, as a node with a full write queue does, and refuses the first
document of the next bulk with a per-document 429 (that document does not reach
the node). The indexer must retry both and index every event exactly once.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.helpers import interaction
from tests.search.conftest import indexed_directly, start_suite

REJECTED = json.dumps(
    {
        "error": {"type": "rejected_execution_exception", "reason": "write queue is full"},
        "status": 429,
    }
).encode()


class Throttle:
    """What the proxy does to bulk requests: how many to refuse, and what it saw."""

    def __init__(self, refuse: int) -> None:
        self.refuse = refuse
        self.bulks = 0
        self.refused_documents = 0
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
            if bulk:
                with throttle.lock:
                    throttle.bulks += 1
                    turn = throttle.bulks
                if turn <= throttle.refuse:
                    self._answer(429, REJECTED)
                    return
                mark_document = turn == throttle.refuse + 1
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
