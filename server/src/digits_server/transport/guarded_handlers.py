"""All gRPC services of the server behind one generic handler, each method's handler wrapped once
by the guards (undecodable messages, authorization) when it is first looked up.

`GuardedHandlers` stands in for the grpc.aio server in the generated
`add_<Service>Servicer_to_server` functions (and in health and reflection's). It replaces
grpc.aio server interceptors, which run a coroutine chain on every call, and it registers
no *registered* methods: grpc.aio (1.85) keeps one pending request task per registered method
and awaits all of them with `asyncio.wait` for every call, a cost that grows with the number of
methods (31 here; about a third of the Python function calls of a Classify). One generic
handler answers every method with a dictionary lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import grpc

Guard = Callable[[str, grpc.RpcMethodHandler], grpc.RpcMethodHandler]
Fallback = Callable[[grpc.HandlerCallDetails], "grpc.RpcMethodHandler | None"]


class GuardedHandlers(grpc.GenericRpcHandler):
    """The server's one generic handler: finds a method's handler among the added services and
    returns it wrapped by `guards` (the first guard's check runs first); `fallback` answers
    methods no service has (None: UNIMPLEMENTED)."""

    def __init__(self, guards: Sequence[Guard], fallback: Fallback | None = None) -> None:
        self._guards = tuple(guards)
        self._fallback = fallback
        self._services: list[grpc.GenericRpcHandler] = []
        self._guarded: dict[str, grpc.RpcMethodHandler] = {}  # known methods only: bounded

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        """What the generated add_*_to_server functions call: serve these services too."""
        self._services.extend(handlers)
        self._guarded.clear()

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler]) -> None:
        """Ignored on purpose (see the module doc): the same handlers come through
        add_generic_rpc_handlers."""

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        """The guarded handler of the called method."""
        method = handler_call_details.method
        guarded = self._guarded.get(method)
        if guarded is not None:
            return guarded
        for service in self._services:
            handler = service.service(handler_call_details)
            if handler is not None:
                for guard in reversed(self._guards):
                    handler = guard(method, handler)
                self._guarded[method] = handler
                return handler
        return self._fallback(handler_call_details) if self._fallback is not None else None
