"""Server interceptors that wrap some methods' behaviour, keeping each method's kind.

Four interceptors do this (request parsing, the client-name check, the caps on
reflection and health streams, the callers' share of the RPC threads): each wraps a
method's handler once, with the same (de)serialisers and, but for the share's, the same
request and response kinds, and answers the wrapped handler for every later call of the
method.

A wrapper keeps grpcio's non-blocking mark too. grpc_health's ``Watch`` is marked
``experimental_non_blocking``: grpcio then calls it with a third argument, a
``send_response_callback``, and it returns at once, answering each status change from
that callback, so an open watch holds no RPC thread. A wrapper without the mark was
called as a blocking generator, and each watch waited in its thread for the next status
for as long as it was open (review, 2026-12-06).
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


_MARKS = ("experimental_non_blocking", "experimental_thread_pool")
"""What grpcio reads on a behaviour before it calls it."""


def kind(handler: Handler, request_streaming: bool | None = None) -> str:
    """``unary_unary``, ``unary_stream``, ``stream_unary`` or ``stream_stream``.

    ``request_streaming``, if given, in place of the handler's.
    """
    if request_streaming is None:
        request_streaming = handler.request_streaming
    requests = "stream" if request_streaming else "unary"
    return f"{requests}_{'stream' if handler.response_streaming else 'unary'}"


def behaviour(handler: Handler) -> Callable[[Any, grpc.ServicerContext], Any]:
    """The function that serves the method's calls."""
    found: Callable[[Any, grpc.ServicerContext], Any] = getattr(handler, kind(handler))
    return found


def non_blocking(handler: Handler) -> bool:
    """Whether grpcio calls the behaviour with a ``send_response_callback`` (it holds no thread)."""
    return bool(getattr(behaviour(handler), "experimental_non_blocking", False))


def rewrapped(
    handler: Handler,
    serve: Callable[..., Any],
    request_deserializer: Callable[[bytes], Any] | None = None,
    request_streaming: bool | None = None,
) -> Handler:
    """A handler of the same kind serving with ``serve`` (and another deserializer, if given).

    ``serve`` takes the arguments the handler's behaviour takes and passes them on:
    ``(request, context)``, and a ``send_response_callback`` after them when the behaviour
    is non-blocking; it is given the behaviour's marks, so grpcio calls it the same way.
    ``request_streaming``: the kind's, if given (``serve`` then takes the request iterator).
    """
    inner = behaviour(handler)
    for mark in _MARKS:
        if hasattr(inner, mark):
            setattr(serve, mark, getattr(inner, mark))
    made: Handler = getattr(grpc, f"{kind(handler, request_streaming)}_rpc_method_handler")(
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
