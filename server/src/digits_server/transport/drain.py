"""Graceful shutdown without losing a call grpc core has already received.

`grpc.aio.Server.stop(grace)` lets the calls *Python* has started run for `grace` seconds, but
grpc core cancels at once (the client sees CANCELLED) every call it has received and not yet
handed to Python: `grpc_server_shutdown_and_notify` "zombifies" its queue of unrequested calls.
grpc.aio asks core for one call at a time, once per turn of the event loop, so under load that
queue holds dozens of accepted calls, and a plain `stop(grace)` lost them.

`Drain` closes the door in an order that loses none:

1. a *barrier*: the server sends itself a call through a private Unix socket. Core queues calls
   in arrival order, so when the barrier reaches Python, every call received before it has been
   handed over (and is being served);
2. the gate closes: a call reaching Python from now on is refused UNAVAILABLE (no work done);
3. the calls admitted before that run to completion (bounded by the grace period);
4. refusals go on until callers pause: QUIET_SECONDS with no new call, checked by another barrier
   (so a call still queued in core counts), at most LINGER_SECONDS;
5. `server.stop(remaining grace)`: GOAWAY; whatever still runs when the grace ends is cancelled.

Only a call sent at the very instant of step 5 can still meet core's cancellation (the GOAWAY
race every gRPC server has): a caller that keeps re-sending without pause after a refusal. The
call was never started, so retrying it is safe.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

from digits_server.core.errors import PermissionDenied, ShuttingDown
from digits_server.transport.handler_shapes import ANY_SHAPE, behavior_of, counted, rebuild
from digits_server.transport.status_codes import code_of, details_of, kind_of

log = logging.getLogger(__name__)

BARRIER_METHOD = "/digits.internal.Drain/Barrier"
# Health answers NOT_SERVING until the port closes (rather than being refused with the rest).
UNGATED_PREFIXES = ("/grpc.health.v1.Health/",)
# Once the admitted calls are done, refusals go on until callers pause this long (at most
# LINGER_SECONDS): a caller re-sending at once would otherwise meet the port's closing. A barrier
# ends each pause, so a call still queued in core counts as not paused.
QUIET_SECONDS = 0.05
LINGER_SECONDS = 1.0


async def _refuse_any(request: Any, context: grpc.aio.ServicerContext) -> None:
    error = ShuttingDown("server: shutting down, the call was not started; retry on another replica")
    await context.abort(code_of(error), details_of(error), trailing_metadata=kind_of(error))


_REFUSAL = rebuild(ANY_SHAPE, _refuse_any, request_deserializer=None)


class Drain(grpc.GenericRpcHandler):
    """The shutdown's doorkeeper. Add it as the server's first generic handler (it answers the
    barrier method, and once closed refuses every other call but health checks), `guard` as the
    first guard (it counts the calls admitted while they run), and `add_port` after the real
    port; `stop_server` then runs the steps of the module doc."""

    def __init__(self) -> None:
        self._directory: Path | None = None
        self.address: str | None = None  # the private socket, once listening
        self.closed = False
        self.in_flight = 0
        self.refusals = 0  # calls refused since the gate closed
        self._idle: asyncio.Event | None = None
        self._waiting: dict[bytes, asyncio.Future[None]] = {}
        self._barrier_handler = grpc.unary_unary_rpc_method_handler(self._barrier_reached)

    def add_port(self, server: grpc.aio.Server) -> None:
        """Listen on the private socket the barrier calls come through (same core, same queue),
        in a new directory only this user can enter."""
        self._directory = Path(tempfile.mkdtemp(prefix="digits-drain-"))
        address = f"unix:{self._directory / 'barrier.sock'}"
        if server.add_insecure_port(address) == 0:
            log.warning("drain: cannot listen on %s; a shutdown may cancel calls queued in grpc core", address)
        else:
            self.address = address

    # --- serving side -------------------------------------------------------------------------

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        """The barrier's handler; once closed, a refusal for every gated method; else None (the
        services answer). Decided here, when Python takes the call from core: calls arrive here in
        core's order, so each one before the barrier is admitted, each one after it refused."""
        method = handler_call_details.method
        if method == BARRIER_METHOD:
            return self._barrier_handler
        if self.closed and not method.startswith(UNGATED_PREFIXES):
            self.refusals += 1
            return _REFUSAL
        return None

    async def _barrier_reached(self, nonce: bytes, context: grpc.aio.ServicerContext) -> bytes:
        if not self._through_private_socket(context):
            # The public port has no such method: answered as gRPC answers any unknown one, with
            # nothing done (the auth guard never sees this call, so it must not do anything here).
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        waiter = self._waiting.pop(nonce, None)  # a nonce this process did not send does nothing
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return b""

    def guard(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """`handler`, counted while it runs (refused when it comes through the private socket)."""
        if method.startswith(UNGATED_PREFIXES):
            return handler
        return rebuild(handler, counted(behavior_of(handler), self._admit, self._finished))

    async def _admit(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        if self._through_private_socket(context):
            # the private socket has neither TLS nor client certificates: it carries the barrier only
            error = PermissionDenied(f"server: the shutdown socket serves {BARRIER_METHOD} only")
            await context.abort(code_of(error), details_of(error), trailing_metadata=kind_of(error))
        self.in_flight += 1
        return request

    def _through_private_socket(self, context: grpc.aio.ServicerContext) -> bool:
        """Whether the call came through the shutdown socket (the public port is TCP only)."""
        return self.address is not None and context.peer().startswith("unix:")

    def _finished(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0 and self._idle is not None:
            self._idle.set()

    # --- shutting down ------------------------------------------------------------------------

    async def barrier(self, timeout: float) -> bool:
        """Send a call through core's queue and wait until Python receives it: every call core
        received before it has then been handed over. False when it did not arrive in time."""
        if self.address is None or timeout <= 0:
            return False
        nonce = secrets.token_bytes(16)
        arrived = asyncio.get_running_loop().create_future()
        self._waiting[nonce] = arrived
        try:
            async with grpc.aio.insecure_channel(self.address) as channel:
                call = channel.unary_unary(BARRIER_METHOD)(nonce, timeout=timeout)
                await asyncio.wait_for(asyncio.shield(arrived), timeout)
                await call
            return True
        except (TimeoutError, grpc.aio.AioRpcError) as exc:
            log.warning("drain: barrier not passed within %.1fs (%s)", timeout, type(exc).__name__)
            return False
        finally:
            self._waiting.pop(nonce, None)

    async def stop_server(self, server: grpc.aio.Server, grace: float) -> None:
        """Stop `server`: hand over what core queued, refuse the rest, let admitted calls finish
        within `grace` seconds, then close the port (and cancel what is left)."""
        deadline = time.monotonic() + grace
        await self.barrier(deadline - time.monotonic())
        self.closed = True
        log.info("drain: new calls refused; %d in flight", self.in_flight)
        if self.in_flight > 0:
            self._idle = asyncio.Event()
            try:
                await asyncio.wait_for(self._idle.wait(), max(deadline - time.monotonic(), 0))
            except TimeoutError:
                log.warning("drain: %d calls still running after the grace period", self.in_flight)
        lingering = min(deadline, time.monotonic() + LINGER_SECONDS)
        while time.monotonic() < lingering:  # until QUIET_SECONDS and a barrier pass without a new call
            refused = self.refusals
            await asyncio.sleep(QUIET_SECONDS)
            if not await self.barrier(min(deadline - time.monotonic(), 1.0)) or self.refusals == refused:
                break
        await server.stop(max(deadline - time.monotonic(), 0))
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
