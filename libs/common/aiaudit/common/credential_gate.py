"""Calls without a known key or token are refused before they take an RPC thread.

grpcio's synchronous server waits for a call's request message in one of its
RPC threads, and handlers authenticate only once it has arrived: a client
with no credentials that opened 64 calls and never sent their messages held
every thread, so a gateway's ``Append`` timed out (review, 2026-12-05), and a
64 MiB message was read whole before it was refused. Interceptors run on the
server's own dispatching thread, before a handler is chosen: there the gate
checks the call's metadata and, for a caller it does not know, answers with a
handler that reads nothing and ends the call UNAUTHENTICATED at once.

The handlers still authenticate as before (a cached lookup): the gate only
decides earlier that a call goes no further. Neither keeps an API key's caller
between calls: each call is judged by the keys file as last read
(:class:`aiaudit.common.auth.KeysFile`), so a key revoked there is refused
here too, before the call takes a thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc

from aiaudit.common.auth import Authenticator, UnknownCallerError, refuse_unauthenticated

if TYPE_CHECKING:  # generic in the stubs only
    _Interceptor = grpc.ServerInterceptor[Any, Any]
else:
    _Interceptor = grpc.ServerInterceptor


class CredentialGate(_Interceptor):
    """Lets through calls whose metadata names a caller; refuses the others unread."""

    def __init__(self, auth: Authenticator) -> None:
        """The same authenticator the handlers use."""
        self._auth = auth

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        """The method's handler, or one that refuses the call without reading it."""
        try:
            self._auth.identify(handler_call_details.invocation_metadata)
        except UnknownCallerError as exc:
            return _refusal(str(exc))
        return continuation(handler_call_details)


def _refusal(message: str) -> grpc.RpcMethodHandler[Any, Any]:
    # Streaming requests whatever the method's kind: grpcio then reads no message
    # before the handler runs, and this one never asks for any.
    def refuse(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        refuse_unauthenticated(context, message)

    return grpc.stream_stream_rpc_method_handler(refuse)
