"""The grpc.aio server interceptor that enforces `auth.Authorizer` on every call.

A call that may proceed gets its own handler back untouched (no per-message cost); a refused
call gets a handler of the same shape that reads no message and aborts with the code
`status.code_of` gives the domain error. Only the no-token mode's loopback rule needs the
peer address, which the interceptor cannot see, so only there the handler is wrapped to
decide once the call starts.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from .auth import Authorizer
from .errors import ServingError
from .handler_shapes import ANY_SHAPE, behavior_of, preceded, rebuild
from .status import code_of, details_of

log = logging.getLogger(__name__)

RejectionObserver = Callable[[str, str], None]
UNKNOWN_METHOD = "unknown"


def _metadata_value(metadata: Any, key: str) -> str | None:
    for item_key, value in metadata or ():
        if item_key == key:
            return value if isinstance(value, str) else value.decode("latin-1")
    return None


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

        if self.authorizer.depends_on_peer(method):
            if handler is None:
                return handler  # UNIMPLEMENTED

            async def check_peer(request: Any, context: grpc.aio.ServicerContext) -> Any:
                try:
                    self.authorizer.check(method, authorization, context.peer())
                except ServingError as exc:
                    await self._refuse(context, method, exc)
                return request

            return rebuild(handler, preceded(behavior_of(handler), check_peer))
        try:
            self.authorizer.check(method, authorization, peer="")
        except ServingError as exc:
            refusal = exc
            # Client-chosen names of unknown methods must not become metric labels.
            label = method if handler is not None else UNKNOWN_METHOD

            async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
                await self._refuse(context, label, refusal)

            # Unknown methods are refused too, so a client without a token cannot map the API;
            # the request is never decoded (no deserializer), so garbage cannot change the answer.
            return rebuild(handler or ANY_SHAPE, refuse, request_deserializer=None)
        return handler

    async def _refuse(self, context: grpc.aio.ServicerContext, method: str, exc: ServingError) -> None:
        code = code_of(exc)
        log.info("refused %s from %s: %s", method, context.peer(), code.name)
        if self.on_reject is not None:
            self.on_reject(method, code.name)
        await context.abort(code, details_of(exc))
