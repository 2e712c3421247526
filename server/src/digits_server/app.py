"""Wiring and lifecycle: build the parts from Settings, start gRPC and /metrics, stop cleanly."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

from digits.v1 import digits_pb2_grpc as pb_grpc

from .dataplane import DataPlane
from .manager import ModelManager, load_savedmodel
from .metrics import ServerMetrics
from .metrics_http import serve_metrics_endpoint
from .modeltrust import guard_loader
from .repository import ModelSource
from .runner import DirectRunner
from .security import grpc_security, metrics_endpoint
from .servicer import DigitClassifierServicer
from .settings import Settings

log = logging.getLogger(__name__)


class DigitsServer:
    """One running server: models loaded, gRPC port bound, /metrics served."""

    def __init__(self, settings: Settings, metrics: ServerMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else ServerMetrics()
        self.executor = ThreadPoolExecutor(max_workers=max(settings.compute_threads, 1), thread_name_prefix="compute")
        loader = guard_loader(load_savedmodel, settings.models, settings.allow_world_writable_models)
        self.manager = ModelManager(ModelSource(settings.models), self.executor, settings.default_model, loader)
        self.dataplane = DataPlane(self.manager, DirectRunner(self.executor))
        self.port = 0
        self.metrics_port = 0
        self._grpc: grpc.aio.Server | None = None
        self._metrics_http: object | None = None

    async def start(self) -> None:
        """Load the models, then open the gRPC and metrics ports."""
        s = self.settings
        security = grpc_security(s)
        metrics_config = metrics_endpoint(s)
        await self.manager.reload()
        options = [
            ("grpc.max_receive_message_length", s.max_message_bytes),
            ("grpc.max_send_message_length", s.max_message_bytes),
            ("grpc.so_reuseport", 0),  # a second server on a taken port must fail, not share it
        ]
        self._grpc = grpc.aio.server(options=options, interceptors=security.interceptors)
        pb_grpc.add_DigitClassifierServicer_to_server(
            DigitClassifierServicer(self.dataplane, self.metrics, s), self._grpc
        )
        self.port = security.add_port(self._grpc, f"{s.host}:{s.port}")
        if self.port == 0:
            raise OSError(f"could not bind the gRPC port {s.host}:{s.port}")
        if s.metrics_port >= 0:
            self._metrics_http, self.metrics_port = serve_metrics_endpoint(self.metrics.registry, metrics_config)
        await self._grpc.start()
        log.info(
            "serving gRPC (%s) on %s:%d, metrics on %s:%d",
            security.transport, s.host, self.port, s.metrics_host, self.metrics_port,
        )

    async def stop(self, grace: float | None = None) -> None:
        """Refuse new calls, let in-flight ones finish within `grace` seconds, then release everything."""
        if self._grpc is not None:
            await self._grpc.stop(self.settings.grace_seconds if grace is None else grace)
        if self._metrics_http is not None:
            self._metrics_http.shutdown()  # type: ignore[attr-defined]
            self._metrics_http.server_close()  # type: ignore[attr-defined]
        await self.manager.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def wait(self) -> None:
        """Until the gRPC server terminates."""
        if self._grpc is not None:
            await self._grpc.wait_for_termination()


def write_ready_file(path: Path, server: DigitsServer) -> None:
    """Atomically write the bound ports, so a supervisor or test knows the server is up."""
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps({"port": server.port, "metrics_port": server.metrics_port}))
    os.replace(partial, path)


async def run(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT, then shut down gracefully."""
    server = DigitsServer(settings)
    await server.start()
    if settings.ready_file is not None:
        write_ready_file(settings.ready_file, server)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log.info("shutting down (grace %.1fs)", settings.grace_seconds)
    await server.stop()
