"""The standard `grpc.health.v1` service: the overall status plus one service name per model.

Service names: "" (overall) and the gRPC service names are SERVING while some model has an
AVAILABLE version; each model's own name (`rnn`, `lstm`, ...) is SERVING only while one of
its versions is AVAILABLE. On shutdown everything turns NOT_SERVING first, for good, and
every Watch stream ends right after saying so: an open Watch (a load balancer's) would
otherwise hold the graceful shutdown for its whole grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio

from .manager import ModelManager, VersionSlot

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class ClosingHealthServicer(health_aio.HealthServicer):
    """grpc's health servicer, whose Watch streams end with NOT_SERVING once `close()` is called."""

    def __init__(self) -> None:
        super().__init__()
        self._closing: asyncio.Event | None = None

    def _closing_event(self) -> asyncio.Event:
        if self._closing is None:
            self._closing = asyncio.Event()  # created on the serving loop, on first use
        return self._closing

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: Any) -> None:
        """Stream status changes, until the server closes; then say NOT_SERVING and end."""
        closing = self._closing_event()
        if closing.is_set():
            await context.write(health_pb2.HealthCheckResponse(status=NOT_SERVING))
            return
        watching = asyncio.ensure_future(super().Watch(request, context))
        closed = asyncio.ensure_future(closing.wait())
        try:
            await asyncio.wait({watching, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            if not watching.done():
                watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching
        if closing.is_set():
            await context.write(health_pb2.HealthCheckResponse(status=NOT_SERVING))

    def close(self) -> None:
        """End every Watch stream (after telling it NOT_SERVING)."""
        self._closing_event().set()


class HealthReporter:
    """Keeps a grpc health servicer in line with the manager's model states."""

    def __init__(self, manager: ModelManager, service_names: list[str]) -> None:
        self.manager = manager
        self.service_names = list(service_names)
        self.servicer = ClosingHealthServicer()
        self._models: set[str] = set()
        self._pending: set[asyncio.Task] = set()

    async def refresh(self) -> None:
        """Publish the current status of every model and of the server as a whole."""
        names = set(self.manager.slots()) | self._models
        self._models = names
        any_available = False
        for name in sorted(names):
            available = self.manager.is_available(name)
            any_available = any_available or available
            await self.servicer.set(name, SERVING if available else NOT_SERVING)
        for service in ["", *self.service_names]:
            await self.servicer.set(service, SERVING if any_available else NOT_SERVING)

    def on_change(self, slot: VersionSlot) -> None:
        """A manager.on_change hook: refresh soon (on the event loop)."""
        task = asyncio.get_running_loop().create_task(self.refresh())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def shut_down(self) -> None:
        """Everything NOT_SERVING, permanently: load balancers stop sending before the port closes."""
        await self.servicer.enter_graceful_shutdown()
        self.servicer.close()
        log.info("health: NOT_SERVING (shutting down)")
