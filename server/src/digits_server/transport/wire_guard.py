"""Requests whose bytes are not a valid protobuf message get INVALID_ARGUMENT.

Left alone, grpc.aio answers them UNKNOWN with the Python exception's text and logs a
traceback. `guard_decoding` gives a handler a deserializer that never raises: a message
that does not parse becomes an `Undecodable` marker, and the call is aborted with
INVALID_ARGUMENT before the servicer sees it (for request streams, when the iterator reaches
the bad message).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from digits_server.core.errors import InvalidInput
from digits_server.transport.handler_shapes import behavior_of, preceded, rebuild
from digits_server.transport.status_codes import code_of, details_of


class Undecodable:
    """Stands in for a request message whose bytes did not parse."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def tolerant(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """`deserializer`, returning an Undecodable instead of raising."""

    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # protobuf's DecodeError, or anything a custom deserializer raises
            return Undecodable(f"{type(exc).__name__}: {exc}")

    return decode


async def _abort(context: grpc.aio.ServicerContext, method: str, marker: Undecodable) -> None:
    error = InvalidInput(f"request: the message sent to {method} is not valid protobuf of its type ({marker.reason})")
    await context.abort(code_of(error), details_of(error))


def guard_decoding(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """`handler` of the full method name `method`, answering undecodable messages INVALID_ARGUMENT."""
    if handler.request_deserializer is None:
        return handler

    if handler.request_streaming:

        async def check(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async def checked() -> AsyncIterator[Any]:
                async for request in requests:
                    if isinstance(request, Undecodable):
                        await _abort(context, method, request)
                    yield request

            return checked()

    else:

        async def check(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, Undecodable):
                await _abort(context, method, request)
            return request

    return rebuild(handler, preceded(behavior_of(handler), check), tolerant(handler.request_deserializer))
