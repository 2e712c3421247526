"""TensorFlow Serving's API in a server that runs without TensorFlow (the LiteRT runtime).

TF Serving's messages are TensorFlow's own (`tensorflow.core.framework.tensor_pb2`, ...): importing
them imports all of TensorFlow (3-4 s, ~540 MiB). A server whose versions all run on LiteRT does not
pay that at start: `TensorFlowServingOnDemand` stands for the two services until their first call,
which imports TensorFlow's messages in a thread (the event loop keeps serving), adds the real
servicers, and answers; later calls go straight to them. Where TensorFlow is not installed, every
call gets UNIMPLEMENTED saying what to install; digits.v1 and the Open Inference Protocol v2 serve
either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc

from digits_server.core.errors import NotSupported
from digits_server.transport.status_codes import code_of, details_of
from digits_server.transport.wire_guard import guard_decoding

#: The services of digits_server/apis/tensorflow_serving.proto (tests/server check it against the descriptor).
SERVICES = ("tensorflow.serving.PredictionService", "tensorflow.serving.ModelService")
PREFIX = "/tensorflow.serving."
NOT_INSTALLED = ("TensorFlow Serving's API needs TensorFlow's messages, and TensorFlow is not installed "
                 "here (pip install 'digits-server[tensorflow]'); digits.v1 and the Open Inference "
                 "Protocol v2 serve the same models")


class TensorFlowServingOnDemand(grpc.GenericRpcHandler):
    """Answers TF Serving's methods: through a raw-bytes stand-in until `make_services` (which imports
    TensorFlow's messages and returns the real services' generic handler) has run, then with the
    real handlers; `on_ready` runs once they are there (the server drops the stand-ins it cached).
    `installed` is False where TensorFlow is not: UNIMPLEMENTED, saying what to install."""

    def __init__(
        self, make_services: Callable[[], grpc.GenericRpcHandler], installed: bool, on_ready: Callable[[], None]
    ) -> None:
        self._make_services = make_services
        self._installed = installed
        self._on_ready = on_ready
        self._real: grpc.GenericRpcHandler | None = None
        self._adding: asyncio.Future | None = None

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        """The handler of a TF Serving method (a raw-bytes stand-in until the real one is there); None for others."""
        method = handler_call_details.method
        if not method.startswith(PREFIX):
            return None
        if self._real is not None:
            return self._real.service(handler_call_details)
        if not self._installed:
            return grpc.unary_unary_rpc_method_handler(self._refuse)

        async def call(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            real = await self._services()
            handler = real.service(handler_call_details)
            if handler is None:
                raise NotSupported(f"{method}: no such method")
            handler = guard_decoding(method, handler)
            reply = handler.unary_unary(handler.request_deserializer(request), context)
            if asyncio.iscoroutine(reply):
                reply = await reply
            return handler.response_serializer(reply)

        return grpc.unary_unary_rpc_method_handler(call)

    async def _services(self) -> grpc.GenericRpcHandler:
        if self._adding is None:  # the first caller starts the import; the others wait for it
            self._adding = asyncio.ensure_future(asyncio.get_running_loop().run_in_executor(None, self._make_services))
        real = await asyncio.shield(self._adding)
        if self._real is None:
            self._real = real
            self._on_ready()
        return real

    @staticmethod
    async def _refuse(request: bytes, context: grpc.aio.ServicerContext) -> Any:
        error = NotSupported(f"tensorflow.serving: {NOT_INSTALLED}")
        await context.abort(code_of(error), details_of(error))
