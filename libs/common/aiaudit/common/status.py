"""google.rpc.Status with details (AIP-193), shared by every service."""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from aiaudit.common.keys.kek import KekError
from aiaudit.common.keys.seal import SealError

DOMAIN = "aiaudit.dev"


def bad_request(message: str, violations: Iterable[tuple[str, str]]) -> status_pb2.Status:
    """INVALID_ARGUMENT naming each bad field."""
    detail = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
            for f, d in violations
        ]
    )
    return _status(code_pb2.INVALID_ARGUMENT, message, detail)


def error(code: int, message: str, reason: str, **metadata: str) -> status_pb2.Status:
    """Any other error, with an ErrorInfo naming the reason."""
    info = error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=metadata)
    return _status(code, message, info)


def _status(code: int, message: str, detail: object) -> status_pb2.Status:
    packed = any_pb2.Any()
    packed.Pack(detail)  # type: ignore[arg-type]
    return status_pb2.Status(code=code, message=message, details=[packed])


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
