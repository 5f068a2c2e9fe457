"""Server interceptors that wrap some methods' behaviour, keeping each method's kind.

Three interceptors do this (request parsing, the client-name check, the caps on
reflection and health streams): each wraps a method's handler once, with the same
request and response kinds and (de)serialisers, and answers the wrapped handler for
every later call of the method.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:  # generic in the stubs only
    _Interceptor = grpc.ServerInterceptor[Any, Any]
    Handler = grpc.RpcMethodHandler[Any, Any]
else:
    _Interceptor = grpc.ServerInterceptor
    Handler = grpc.RpcMethodHandler


def kind(handler: Handler) -> str:
    """``unary_unary``, ``unary_stream``, ``stream_unary`` or ``stream_stream``."""
    requests = "stream" if handler.request_streaming else "unary"
    return f"{requests}_{'stream' if handler.response_streaming else 'unary'}"


def behaviour(handler: Handler) -> Callable[[Any, grpc.ServicerContext], Any]:
    """The function that serves the method's calls."""
    found: Callable[[Any, grpc.ServicerContext], Any] = getattr(handler, kind(handler))
    return found


def rewrapped(
    handler: Handler,
    serve: Callable[[Any, grpc.ServicerContext], Any],
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> Handler:
    """A handler of the same kind serving with ``serve`` (and another deserializer, if given)."""
    made: Handler = getattr(grpc, f"{kind(handler)}_rpc_method_handler")(
        serve,
        request_deserializer=request_deserializer or handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
    return made


class BehaviourWrapper(_Interceptor):
    """Wraps the handlers of the methods :meth:`applies` to, once a method (not a call)."""

    def __init__(self) -> None:
        """No method wrapped yet."""
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}
        """Method -> (the handler met, that handler wrapped)."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        """The method's handler, wrapped where :meth:`applies`."""
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not self.applies(method, handler):
            return handler
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self.wrap(handler, method)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    @abc.abstractmethod
    def applies(self, method: str, handler: Handler) -> bool:
        """Whether this method's handler is wrapped."""

    @abc.abstractmethod
    def wrap(self, handler: Handler, method: str) -> Handler:
        """The handler wrapped."""
