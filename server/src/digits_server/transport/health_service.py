"""The standard `grpc.health.v1` service: the overall status plus one service name per model.

Service names: "" (overall) and the gRPC service names are SERVING while some model has an
AVAILABLE version; each model's own name (`rnn`, `lstm`, ...) is SERVING only while one of
its versions is AVAILABLE. On shutdown everything turns NOT_SERVING first, for good, and
every Watch stream ends right after saying so: an open Watch (a load balancer's) would
otherwise hold the graceful shutdown for its whole grace period.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from digits_server.core.manager import ModelManager, VersionSlot

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


class ClosingHealthServicer(health_pb2_grpc.HealthServicer):
    """The `grpc.health.v1.Health` service, whose Watch streams end (after NOT_SERVING) on shutdown.

    Written out rather than wrapping grpc's aio HealthServicer: ending a Watch from outside meant
    cancelling it, and a Watch cancelled in the middle of a write left the call unusable for
    the final NOT_SERVING message (grpc core: TOO_MANY_OPERATIONS).
    """

    def __init__(self) -> None:
        self._status: dict[str, int] = {"": SERVING}
        self._changed: asyncio.Condition | None = None
        self._shutting_down = False
        self._generation = 0  # bumped on every change

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()  # created on the serving loop, on first use
        return self._changed

    async def Check(self, request: health_pb2.HealthCheckRequest, context: Any) -> health_pb2.HealthCheckResponse:
        """The service's status now; NOT_FOUND for a service name never set."""
        status = self._status.get(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"service: no health status for {request.service[:256]!r}")
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: Any) -> None:
        """Send the status, then every change of it; on shutdown send NOT_SERVING and end."""
        changed = self._condition()
        last_sent: int | None = None
        while True:
            seen = self._generation
            status = self._status.get(request.service, SERVICE_UNKNOWN)
            if status != last_sent:
                await context.write(health_pb2.HealthCheckResponse(status=status))
                last_sent = status
            if self._shutting_down:
                return
            async with changed:  # a change made during the write is not missed: generation moved
                await changed.wait_for(lambda: self._generation != seen)

    async def set(self, service: str, status: int) -> None:
        """Set one service's status (ignored once shutting down) and wake the watchers."""
        if self._shutting_down:
            return
        self._status[service] = status
        await self._notify()

    async def enter_graceful_shutdown(self) -> None:
        """Every service NOT_SERVING for good; every Watch says so and ends."""
        self._shutting_down = True
        self._status = dict.fromkeys(self._status, NOT_SERVING)
        await self._notify()

    async def _notify(self) -> None:
        changed = self._condition()
        async with changed:
            self._generation += 1
            changed.notify_all()


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
        log.info("health: NOT_SERVING (shutting down)")
