"""A stored event whose canonical form no longer parses: DATA_LOSS naming it, never the parser.

Raw SQL (or a disk) can alter a stored row after it was indexed. ``GetEvent``,
a ``SearchEvents`` page and an export that read it answered UNKNOWN with the
parser's message, which quotes the damaged bytes: here an ``actor.ip_address``,
to a caller without ``pii.read`` (review, 2026-12-05). They answer as alerting's
dry run does: ``DATA_LOSS`` ``STORED_EVENT_DAMAGED`` naming the event and its
sequence.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa

from aiaudit.search.v1 import search_service_pb2 as pb
from aiaudit.search.v1 import search_service_pb2_grpc as pb_grpc
from tests.helpers import interaction
from tests.integrity.test_entries_outside_log import error_info
from tests.search.conftest import backend_settings, start_suite

ADDRESS = "198.51.100.23"


def _damage(url: str, tenant: str, seq: int) -> None:
    """Rewrites the event's canonical form so that its event type quotes its address."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            where = {"t": tenant, "s": seq}
            stored = conn.execute(
                sa.text("SELECT canonical FROM events WHERE log_id = :t AND seq = :s"), where
            ).scalar_one()
            node = json.loads(stored)
            node["eventType"] = "EVENT_TYPE_" + node["actor"]["ipAddress"]
            conn.execute(
                sa.text("UPDATE events SET canonical = :c WHERE log_id = :t AND seq = :s"),
                {**where, "c": json.dumps(node).encode()},
            )
    finally:
        engine.dispose()


def _reads(tenant: str) -> dict[str, Callable[[pb_grpc.SearchServiceStub], object]]:
    """Every read that rebuilds the event from the store."""

    def export(fmt: pb.ExportFormat.ValueType) -> Callable[[pb_grpc.SearchServiceStub], object]:
        request = pb.ExportRequest(tenant_id=tenant, filter='event_id = "m-1"', format=fmt)
        return lambda stub: b"".join(c.data for c in stub.Export(request))

    return {
        "GetEvent": lambda stub: stub.GetEvent(
            pb.GetEventRequest(tenant_id=tenant, event_id="m-1")
        ),
        "SearchEvents": lambda stub: stub.SearchEvents(
            pb.SearchEventsRequest(tenant_id=tenant, filter='event_id = "m-1"')
        ),
        "Export-JSONL": export(pb.EXPORT_FORMAT_JSONL),
        "Export-CSV": export(pb.EXPORT_FORMAT_CSV),
    }


def every_read_names_the_damage(
    auditor: pb_grpc.SearchServiceStub, tenant: str, seq: int, cause: str
) -> None:
    """Each of :func:`_reads` of event ``m-1`` at ``seq`` is DATA_LOSS naming it and ``cause``."""
    for read, call in _reads(tenant).items():
        with pytest.raises(grpc.RpcError) as caught:
            call(auditor)
        details = caught.value.details() or ""
        assert caught.value.code() == grpc.StatusCode.DATA_LOSS, (read, details)
        assert details == (
            f"the stored event 'm-1' (log {tenant!r}, sequence {seq}) cannot be read: "
            f"{cause}; run `aiaudit verify` on the store"
        ), read
        info = error_info(caught.value)
        assert info.reason == "STORED_EVENT_DAMAGED"
        assert dict(info.metadata) == {"event_id": "m-1", "sequence": str(seq)}


@pytest.mark.parametrize("read", list(_reads("")))
@pytest.mark.parametrize("backend", ["sqlite", "opensearch"])
def test_a_damaged_stored_event_is_data_loss_naming_it(
    tmp_path: Path, tenant: str, backend: str, read: str, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path / 'aiaudit.db'}"
    running = start_suite(tmp_path, backend, backend_settings(backend, request), store_url=url)
    try:
        damaged = interaction(tenant, "m-1")
        damaged.actor.ip_address = ADDRESS
        _, seq = running.append([interaction(tenant, "m-0"), damaged])
        running.wait_indexed(tenant, 2)  # indexed before the damage: the index finds it
        _damage(url, tenant, seq)
        auditor = running.as_role("auditor")  # content.read, no pii.read
        with pytest.raises(grpc.RpcError) as caught:
            _reads(tenant)[read](auditor)
        details = caught.value.details() or ""
        assert caught.value.code() == grpc.StatusCode.DATA_LOSS, details
        assert ADDRESS not in details
        assert "'m-1'" in details and f"sequence {seq}" in details, details
        info = error_info(caught.value)
        assert info.reason == "STORED_EVENT_DAMAGED"
        assert dict(info.metadata) == {"event_id": "m-1", "sequence": str(seq)}
        # The log's other events are still read.
        (kept,) = running.find(tenant, 'event_id = "m-0"').results
        assert kept.event.event_id == "m-0"
    finally:
        running.channel.close()
        running.suite.stop()
