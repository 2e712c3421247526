"""Helpers that swap or wrap a grpc method handler's behavior while keeping its shape
(unary/stream request, unary/stream response) and serializers (see guarded_handlers)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

Behavior = Callable[[Any, grpc.aio.ServicerContext], Any]
KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
# A handler that reads no message, so it can stand in for a method of any shape.
ANY_SHAPE = grpc.stream_stream_rpc_method_handler(None)

_MISSING = object()


def kind(handler: grpc.RpcMethodHandler) -> str:
    """"unary_unary", "unary_stream", "stream_unary" or "stream_stream"."""
    return KINDS[2 * bool(handler.request_streaming) + bool(handler.response_streaming)]


def behavior_of(handler: grpc.RpcMethodHandler) -> Behavior:
    """The servicer function a handler calls."""
    return getattr(handler, kind(handler))


def rebuild(
    handler: grpc.RpcMethodHandler, behavior: Behavior, request_deserializer: Any = _MISSING
) -> grpc.RpcMethodHandler:
    """A handler of the same shape and response serializer with another behavior (and, if
    given, another request deserializer; None hands the behavior raw bytes)."""
    factory = getattr(grpc, kind(handler) + "_rpc_method_handler")
    deserializer = handler.request_deserializer if request_deserializer is _MISSING else request_deserializer
    return factory(behavior, request_deserializer=deserializer, response_serializer=handler.response_serializer)


def preceded(behavior: Behavior, before: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]) -> Behavior:
    """`behavior`, called with what `before(request, context)` returns as its request (`before`
    may abort the call). Works for coroutine and async-generator behaviors alike."""
    if inspect.isasyncgenfunction(behavior):

        async def preceded_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            request = await before(request, context)
            async for response in behavior(request, context):
                yield response

        return preceded_stream

    if inspect.iscoroutinefunction(behavior):

        async def preceded_coroutine(request: Any, context: grpc.aio.ServicerContext) -> Any:
            return await behavior(await before(request, context), context)

        return preceded_coroutine

    async def preceded_call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        request = await before(request, context)
        result = behavior(request, context)
        return await result if inspect.isawaitable(result) else result

    return preceded_call


def counted(
    behavior: Behavior,
    admit: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]],
    finished: Callable[[], None],
) -> Behavior:
    """`behavior` after `admit(request, context)` (as in `preceded`), with `finished()` called
    once the behavior is over (returned, raised, was cancelled, or its response stream closed)
    whenever `admit` returned. Unlike `context.add_done_callback`, it allocates nothing per
    call and leaves no reference cycle (context -> callback -> context) for the collector."""
    if inspect.isasyncgenfunction(behavior):

        async def counted_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            request = await admit(request, context)
            try:
                async for response in behavior(request, context):
                    yield response
            finally:
                finished()

        return counted_stream

    if inspect.iscoroutinefunction(behavior):

        async def counted_coroutine(request: Any, context: grpc.aio.ServicerContext) -> Any:
            request = await admit(request, context)
            try:
                return await behavior(request, context)
            finally:
                finished()

        return counted_coroutine

    async def counted_call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        request = await admit(request, context)
        try:
            result = behavior(request, context)
            return await result if inspect.isawaitable(result) else result
        finally:
            finished()

    return counted_call
