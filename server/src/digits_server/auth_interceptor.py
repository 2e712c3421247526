"""The grpc.aio server interceptor that enforces `auth.Authorizer` on every call.

A call that may proceed gets its own handler back untouched (no per-message cost); a refused
call gets a handler of the same shape that aborts with the code `status.code_of` gives the
domain error. Only the no-token mode's loopback rule needs the peer address, which the
interceptor cannot see, so only there the handler is wrapped to decide once the call starts.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from .auth import Authorizer
from .errors import ServingError
from .status import code_of

log = logging.getLogger(__name__)

Behavior = Callable[[Any, grpc.aio.ServicerContext], Any]
RejectionObserver = Callable[[str, str], None]
_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
UNKNOWN_METHOD = "unknown"
# Refusing needs no message, so a raw-bytes streaming handler can refuse a call of any shape.
_ANY_SHAPE = grpc.stream_stream_rpc_method_handler(None)


def _metadata_value(metadata: Any, key: str) -> str | None:
    for item_key, value in metadata or ():
        if item_key == key:
            return value if isinstance(value, str) else value.decode("latin-1")
    return None


def _kind(handler: grpc.RpcMethodHandler) -> str:
    return _KINDS[2 * bool(handler.request_streaming) + bool(handler.response_streaming)]


def _rebuild(handler: grpc.RpcMethodHandler, behavior: Behavior) -> grpc.RpcMethodHandler:
    """A handler of the same shape and (de)serializers with another behavior."""
    factory = getattr(grpc, _kind(handler) + "_rpc_method_handler")
    return factory(
        behavior, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
    )


def _guarded(behavior: Behavior, check: Callable[[grpc.aio.ServicerContext], Awaitable[None]]) -> Behavior:
    """`behavior`, preceded by `check` (which aborts the call when it refuses)."""
    if inspect.isasyncgenfunction(behavior):

        async def guarded_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            await check(context)
            async for response in behavior(request, context):
                yield response

        return guarded_stream

    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await check(context)
        result = behavior(request, context)
        return await result if inspect.isawaitable(result) else result

    return guarded


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Applies the authorizer's decision before any servicer code runs."""

    def __init__(self, authorizer: Authorizer, on_reject: RejectionObserver | None = None) -> None:
        self.authorizer = authorizer
        self.on_reject = on_reject

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """See grpc.aio.ServerInterceptor."""
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        authorization = _metadata_value(handler_call_details.invocation_metadata, "authorization")

        async def check(context: grpc.aio.ServicerContext) -> None:
            try:
                self.authorizer.check(method, authorization, context.peer())
            except ServingError as exc:
                await self._refuse(context, method, exc)

        if self.authorizer.depends_on_peer(method):
            if handler is None:
                return handler  # UNIMPLEMENTED
            behavior = getattr(handler, _kind(handler))
            return _rebuild(handler, _guarded(behavior, check))
        try:
            self.authorizer.check(method, authorization, peer="")
        except ServingError as exc:
            refusal = exc

            # Client-chosen names of unknown methods must not become metric labels.
            label = method if handler is not None else UNKNOWN_METHOD

            async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
                await self._refuse(context, label, refusal)

            # Unknown methods are refused too, so a client without a token cannot map the API.
            return _rebuild(handler or _ANY_SHAPE, refuse)
        return handler

    async def _refuse(self, context: grpc.aio.ServicerContext, method: str, exc: ServingError) -> None:
        code = code_of(exc)
        log.info("refused %s from %s: %s", method, context.peer(), code.name)
        if self.on_reject is not None:
            self.on_reject(method, code.name)
        await context.abort(code, str(exc))
