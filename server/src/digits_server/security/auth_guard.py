"""Enforces `auth.Authorizer` on every call, by wrapping each method handler once at start.

A method open to everyone (health, reflection), and with no tokens configured every inference
method, keeps its handler untouched: no per-call cost. Otherwise the handler is wrapped so the
decision is made when the call starts, before any servicer code runs (for request streams,
before the first message is read); a refused call ends with the code `status.code_of` gives
the domain error. Calls to methods that do not exist are refused the same way by
`refuse_unknown`, so a client without a token cannot map the API.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc

from digits_server.core.errors import ServingError
from digits_server.security.auth import Authorizer, required_scope
from digits_server.transport.handler_shapes import ANY_SHAPE, behavior_of, preceded, rebuild
from digits_server.transport.status_codes import code_of, details_of

log = logging.getLogger(__name__)

RejectionObserver = Callable[[str, str], None]
UNKNOWN_METHOD = "unknown"


def _metadata_value(metadata: Any, key: str) -> str | None:
    for item_key, value in metadata or ():
        if item_key == key:
            return value if isinstance(value, str) else value.decode("latin-1")
    return None


class AuthGuard:
    """Wraps method handlers so the authorizer's decision is applied to every call."""

    def __init__(self, authorizer: Authorizer, on_reject: RejectionObserver | None = None) -> None:
        self.authorizer = authorizer
        self.on_reject = on_reject

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """`handler` of the full method name `method`, checked on every call when it needs to be."""
        if required_scope(method) is None:
            return handler
        if not self.authorizer.enabled and not self.authorizer.depends_on_peer(method):
            return handler

        async def check(request: Any, context: grpc.aio.ServicerContext) -> Any:
            authorization = _metadata_value(context.invocation_metadata(), "authorization")
            try:
                self.authorizer.check(method, authorization, context.peer())
            except ServingError as exc:
                await self._refuse(context, method, exc)
            return request

        return rebuild(handler, preceded(behavior_of(handler), check))

    def refuse_unknown(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        """For a method no service has: a handler refusing the call when the caller may not
        call admin methods (as an unknown method would need), else None (UNIMPLEMENTED)."""
        authorization = _metadata_value(details.invocation_metadata, "authorization")
        try:
            self.authorizer.check(details.method, authorization, peer="")
        except ServingError as exc:
            refusal = exc

            async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
                # Client-chosen names of unknown methods must not become metric labels.
                await self._refuse(context, UNKNOWN_METHOD, refusal)

            # The request is never decoded (no deserializer), so garbage cannot change the answer.
            return rebuild(ANY_SHAPE, refuse, request_deserializer=None)
        return None

    async def _refuse(self, context: grpc.aio.ServicerContext, method: str, exc: ServingError) -> None:
        code = code_of(exc)
        log.info("refused %s from %s: %s", method, context.peer(), code.name)
        if self.on_reject is not None:
            self.on_reject(method, code.name)
        await context.abort(code, details_of(exc))
