"""A media part's SHA-256 is shown only with its bytes: it is unsalted, so it confirms guesses.

Found by a review (2026-12-04): an analyst (no content.read) got the hash of an
image it could not see, and an auditor still got it after the image was erased:
whoever holds a candidate file could confirm it was sent.
"""

from __future__ import annotations

import hashlib

from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.ingest.v1 import ingest_service_pb2 as ipb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as ipb_grpc
from aiaudit.search.v1 import search_service_pb2 as pb
from tests.helpers import interaction
from tests.search.conftest import SearchSuite

PHOTO = b"\x89PNG a photo of someone"


def hashes(suite: SearchSuite, role: str, tenant: str) -> list[str]:
    got = suite.as_role(role).GetEvent(pb.GetEventRequest(tenant_id=tenant, event_id="img"))
    return [p.media.sha256 for m in got.event.input.messages for p in m.parts if p.media.mime_type]


def test_a_media_hash_goes_with_its_bytes(search_suite: SearchSuite, tenant: str) -> None:
    event = interaction(tenant, "img")
    digest = hashlib.sha256(PHOTO).hexdigest()
    media = ev.Media(mime_type="image/png", size_bytes=len(PHOTO), sha256=digest, data=PHOTO)
    event.input.messages[0].parts.append(ev.Part(media=media))
    search_suite.append([event])
    assert hashes(search_suite, "auditor", tenant) == [digest]
    assert hashes(search_suite, "analyst", tenant) == [""]
    ipb_grpc.IngestServiceStub(search_suite.channel).EraseEvents(
        ipb.EraseEventsRequest(tenant_id=tenant, event_ids=["img"], reason="request")
    )
    assert hashes(search_suite, "auditor", tenant) == [""]
    assert hashes(search_suite, "compliance_officer", tenant) == [""]
