"""A request whose bytes are not its message is INVALID_ARGUMENT, whatever the service.

grpcio parses a call's request with the method's ``request_deserializer``
before any handler runs, and answers one that raises with INTERNAL
``Exception deserializing request!`` and no detail: a client that sent a
search filter with invalid UTF-8 in it was told the server had failed
(review, 2026-12-06). Only ingest's ``Append`` and ``AppendStream``, which
take raw bytes and parse them themselves (naming the broken event), said
what was wrong.

The interceptor here gives every method that has a deserializer (the
generated servicers of search, integrity and alerting, ingest's
``EraseEvents``, health and reflection) one that does not raise: bytes that
do not parse become a :class:`NotProtobuf`, and the method's behaviour,
wrapped, ends the call ``INVALID_ARGUMENT`` with an ``ErrorInfo`` of reason
``REQUEST_NOT_PROTOBUF`` naming the message type, before the handler is
called: nothing is read from the store or written. A request stream ends at the
first such message. Methods without a deserializer (ingest's raw-bytes
appends) are left as they are.

It is installed after the credential gate, which refuses a caller it does
not know before any byte of the request is read; the caller is checked again
here before the answer (as the handlers do, before anything is said about
the request), so an unknown caller learns nothing of the parse without the
gate either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.rpc import code_pb2, status_pb2

from aiaudit.common import status, wrapping
from aiaudit.common.auth import Authenticator

REASON = "REQUEST_NOT_PROTOBUF"


@dataclass(frozen=True)
class NotProtobuf:
    """What the lenient deserializer returns for bytes that do not parse."""

    message_type: str

    def answer(self) -> status_pb2.Status:
        """INVALID_ARGUMENT naming the message type, reason :data:`REASON`."""
        return status.error(
            code_pb2.INVALID_ARGUMENT,
            f"malformed request: not a valid {self.message_type} (invalid UTF-8 in a string "
            "field, or malformed protobuf); nothing was done",
            REASON,
            message_type=self.message_type,
        )


def _message_type(deserializer: Callable[[bytes], Any], method: str) -> str:
    """The full name of the message ``deserializer`` parses (``Message.FromString``)."""
    descriptor = getattr(getattr(deserializer, "__self__", None), "DESCRIPTOR", None)
    name = getattr(descriptor, "full_name", None)
    return name if isinstance(name, str) else f"request of {method}"


def _lenient(deserializer: Callable[[bytes], Any], message_type: str) -> Callable[[bytes], Any]:
    def parse(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except Exception:  # what grpcio would answer INTERNAL
            return NotProtobuf(message_type)

    return parse


class RequestParsing(wrapping.BehaviourWrapper):
    """Answers requests that do not parse INVALID_ARGUMENT, not grpcio's INTERNAL."""

    def __init__(self, auth: Authenticator) -> None:
        """``auth``: the handlers' authenticator, checked before a malformed request is named."""
        super().__init__()
        self._auth = auth

    def applies(self, method: str, handler: wrapping.Handler) -> bool:
        """Methods with a deserializer (raw-bytes ones parse their requests later)."""
        return handler.request_deserializer is not None

    def wrap(self, handler: wrapping.Handler, method: str) -> wrapping.Handler:
        """The handler with a deserializer that does not raise, and a check of its result."""
        assert handler.request_deserializer is not None
        message_type = _message_type(handler.request_deserializer, method)
        serve = wrapping.behaviour(handler)
        checked = self._streaming(serve) if handler.request_streaming else self._unary(serve)
        return wrapping.rewrapped(
            handler, checked, _lenient(handler.request_deserializer, message_type)
        )

    def _refuse(self, context: grpc.ServicerContext, request: NotProtobuf) -> None:
        self._auth.authenticate(context)  # an unknown caller is told only that (UNAUTHENTICATED)
        status.abort(context, request.answer())

    def _unary(self, behaviour: Callable[..., Any]) -> Any:
        # A plain function for a response stream too: it returns the behaviour's iterator, or
        # nothing (health's non-blocking Watch, given its send_response_callback in ``more``).
        def checked(request: Any, context: grpc.ServicerContext, *more: Any) -> Any:
            if isinstance(request, NotProtobuf):
                self._refuse(context, request)
            return behaviour(request, context, *more)

        return checked

    def _streaming(self, behaviour: Callable[..., Any]) -> Any:
        def parsed(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
            for request in requests:
                if isinstance(request, NotProtobuf):
                    self._refuse(context, request)
                yield request

        def checked(requests: Iterator[Any], context: grpc.ServicerContext, *more: Any) -> Any:
            return behaviour(parsed(requests, context), context, *more)

        return checked
