"""The standard `grpc.health.v1` service: the overall status plus one service name per model.

Service names: "" (overall) and the gRPC service names are SERVING while some model has an
AVAILABLE version; each model's own name (`rnn`, `lstm`, ...) is SERVING only while one of
its versions is AVAILABLE. On shutdown everything turns NOT_SERVING first, for good.
"""

from __future__ import annotations

import asyncio
import logging

from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio

from .manager import ModelManager, VersionSlot

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthReporter:
    """Keeps a grpc health servicer in line with the manager's model states."""

    def __init__(self, manager: ModelManager, service_names: list[str]) -> None:
        self.manager = manager
        self.service_names = list(service_names)
        self.servicer = health_aio.HealthServicer()
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
