"""google.rpc.Status with details (AIP-193), shared by every service."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from aiaudit.common.keys.kek import KekError
from aiaudit.common.keys.seal import SealError

if TYPE_CHECKING:
    from aiaudit.common.restore import DamagedStoredEventError

DOMAIN = "aiaudit.dev"

MESSAGE_BYTES = 400
"""Longest message (UTF-8 bytes). A status travels in the trailers, which clients cap at
8 KiB (16 KiB hard): ``grpc-message`` percent-encodes the message (up to 3 bytes a byte),
``grpc-status-details-bin`` holds it again with the details, base64-encoded. Errors that
echoed the input (a filter of 4,000 characters) came back as RESOURCE_EXHAUSTED "received
metadata size exceeds limit" instead of themselves."""
VALUE_BYTES = 256
"""Longest field path, description or metadata value."""
DETAILS_BYTES = 3500
"""Field violations past this many bytes of details are counted in the message, not listed."""


def clip(text: str, most: int = VALUE_BYTES) -> str:
    """``text`` cut to ``most`` UTF-8 bytes, saying how much was left out."""
    raw = text.encode()
    if len(raw) <= most:
        return text
    kept = raw[:most].decode(errors="ignore")
    return f"{kept}… ({len(text) - len(kept)} more characters)"


def bad_request(message: str, violations: Iterable[tuple[str, str]]) -> status_pb2.Status:
    """INVALID_ARGUMENT naming each bad field (as many as the trailers hold; the rest counted).

    The first violation of each item (``events[3]`` of ``events[3].model.name``)
    comes first: a client that drops the items named and sends the rest again
    (the gateway SDK) then learns of as many items as fit in one reply, not of
    one item's many fields (a batch of 990 bad events then took 990 replies, and
    the SDK's recursion over them passed Python's limit: review, 2026-12-04).
    """
    detail = error_details_pb2.BadRequest()
    every = _items_first(list(violations))
    for field, description in every:
        shown = error_details_pb2.BadRequest.FieldViolation(
            field=clip(field), description=clip(description)
        )
        if detail.ByteSize() + shown.ByteSize() > DETAILS_BYTES and detail.field_violations:
            message += f" ({len(detail.field_violations)} of {len(every)} field violations listed)"
            break
        detail.field_violations.append(shown)
    return _status(code_pb2.INVALID_ARGUMENT, message, detail)


_ITEM = re.compile(r"[^.\[]*(\[\d+\])?")


def _items_first(violations: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Each item's first violation, in order, then the others, in order."""
    firsts: list[tuple[str, str]] = []
    others: list[tuple[str, str]] = []
    seen: set[str] = set()
    for violation in violations:
        item = _ITEM.match(violation[0])
        head = item.group(0) if item else violation[0]
        (others if head in seen else firsts).append(violation)
        seen.add(head)
    return firsts + others


def error(code: int, message: str, reason: str, **metadata: str) -> status_pb2.Status:
    """Any other error, with an ErrorInfo naming the reason."""
    info = error_details_pb2.ErrorInfo(
        reason=reason, domain=DOMAIN, metadata={k: clip(v) for k, v in metadata.items()}
    )
    return _status(code, message, info)


def _status(code: int, message: str, detail: object) -> status_pb2.Status:
    packed = any_pb2.Any()
    packed.Pack(detail)  # type: ignore[arg-type]
    return status_pb2.Status(code=code, message=clip(message, MESSAGE_BYTES), details=[packed])


def abort(context: grpc.ServicerContext, status: status_pb2.Status) -> None:
    """Ends the call with a rich status (never returns)."""
    context.abort_with_status(rpc_status.to_status(status))


def sealing(exc: KekError | SealError) -> status_pb2.Status:
    """Stored content that does not open: damage (DATA_LOSS), or no KEK to reach (retry)."""
    if isinstance(exc, SealError):
        return error(
            code_pb2.DATA_LOSS,
            f"{exc}; `aiaudit verify` names every such event",
            "SEALED_CONTENT_DAMAGED",
        )
    return error(
        code_pb2.UNAVAILABLE, "the content keys are unavailable; retry", "KEYS_UNAVAILABLE"
    )


def damaged_event(exc: DamagedStoredEventError) -> status_pb2.Status:
    """A stored event that no longer parses: DATA_LOSS naming it and its sequence.

    Never the parser's message, which quotes the damaged bytes past any redaction.
    """
    return error(
        code_pb2.DATA_LOSS,
        str(exc),
        "STORED_EVENT_DAMAGED",
        event_id=exc.event_id,
        sequence=str(exc.sequence),
    )
