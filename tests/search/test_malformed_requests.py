"""A search request that is not protobuf is INVALID_ARGUMENT, not gRPC's own INTERNAL.

An ``ExportRequest`` whose filter held invalid UTF-8 was answered INTERNAL
"Exception deserializing request!" (review, 2026-12-06): the servicer's
deserializer raised before any handler ran, and the client was told the
server had failed. The server's interceptor parses it now
(``aiaudit.common.request_parsing``); the backend plays no part (SQLite here).
"""

from __future__ import annotations

from pathlib import Path

from aiaudit.search.v1 import search_service_pb2 as pb
from tests.helpers import assert_not_protobuf, assert_unauthenticated, not_protobuf, refused_raw
from tests.search.conftest import start_suite


def test_a_request_that_is_not_protobuf_is_invalid_argument(tmp_path: Path, tenant: str) -> None:
    """A search and an export alike; nothing is recorded in the tenant's log (no access
    record), and a caller without a key hears UNAUTHENTICATED, nothing of the parse."""
    running = start_suite(tmp_path, "sqlite", {})
    try:
        calls = [
            (
                "SearchEvents",
                not_protobuf(pb.SearchEventsRequest(tenant_id=tenant, filter="AAAA"), "AAAA"),
                False,
            ),
            (
                "Export",
                not_protobuf(
                    pb.ExportRequest(tenant_id=tenant, filter="AAAA", format=pb.EXPORT_FORMAT_CSV),
                    "AAAA",
                ),
                True,
            ),
        ]
        for name, raw, streaming in calls:
            method = f"/aiaudit.search.v1.SearchService/{name}"
            err = refused_raw(running.channel, method, raw, response_streaming=streaming)
            assert_not_protobuf(err, f"aiaudit.search.v1.{name}Request")
            assert_unauthenticated(running.address, method, raw, response_streaming=streaming)
        assert running.suite.store.log_sizes().get(tenant, 0) == 0
    finally:
        running.channel.close()
        running.suite.stop()
