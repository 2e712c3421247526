"""Wiring and lifecycle: build the parts from Settings, start gRPC, REST and /metrics, stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from digits.monitoring.profile import CalibrationTable
from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc
from digits_server.core.batching import BatchingOptions, BatchingRunner
from digits_server.core.dataplane import DataPlane
from digits_server.core.feedback import FeedbackStore
from digits_server.core.litert_model import needs_tensorflow
from digits_server.core.manager import END, ModelManager, VersionSlot, prepare_runtime, savedmodel_loader
from digits_server.core.model_config import ServingConfig, config_hash
from digits_server.core.model_runner import DirectRunner, ModelRunner
from digits_server.core.model_trust import guard_loader
from digits_server.core.reloader import Reloader
from digits_server.core.repository import ModelSource
from digits_server.core.request_ids import RequestIds, feedback_key
from digits_server.core.runtimes import parse_buckets
from digits_server.core.tensorflow_startup import native_startup_notices_dropped
from digits_server.experiments.observer import ExperimentObserver
from digits_server.experiments.router import ExperimentRouter
from digits_server.experiments.service import ExperimentService
from digits_server.observability.experiment_metrics import ExperimentMetrics
from digits_server.observability.http_endpoint import serve_metrics_endpoint
from digits_server.observability.metrics import ServerMetrics
from digits_server.observability.monitor import LabelFreeMonitor
from digits_server.observability.monitoring_metrics import MonitoringMetrics
from digits_server.observability.observers import MetricsObserver, ModelStateObserver, describe_server
from digits_server.observability.payload_logger import payload_logger
from digits_server.protocols import add_protocols, rest_server
from digits_server.protocols.rest_server import RestServer
from digits_server.security.credentials import grpc_security, metrics_endpoint, rest_ssl_context
from digits_server.settings import Settings
from digits_server.transport.admin_servicer import DigitsAdminServicer
from digits_server.transport.classifier_servicer import DigitClassifierServicer
from digits_server.transport.drain import Drain
from digits_server.transport.guarded_handlers import GuardedHandlers
from digits_server.transport.health_service import HealthReporter
from digits_server.transport.wire_guard import guard_decoding

log = logging.getLogger(__name__)


class DigitsServer:
    """One running server: models loaded, gRPC port bound, /metrics served."""

    def __init__(self, settings: Settings, metrics: ServerMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else ServerMetrics()
        self.executor = ThreadPoolExecutor(max_workers=max(settings.compute_threads, 1), thread_name_prefix="compute")
        self.manager = ModelManager(
            ModelSource(settings.models),
            settings.default_model,
            loader=guard_loader(
                savedmodel_loader(
                    batching_options(settings).warm_up_sizes(),
                    runtime=settings.runtime,
                    xla_buckets=parse_buckets(settings.xla_buckets),
                ),
                settings.models,
                settings.allow_world_writable_models,
            ),
            load_timeout=settings.load_timeout_seconds,
            unload_grace=max(settings.grace_seconds, 1.0),
        )
        self.reloader = Reloader(self.manager, settings.model_config, settings.poll_seconds)
        self.reloader.read_config()  # a bad config file stops the server here, with the key at fault
        self.runner: ModelRunner = (
            BatchingRunner(batching_options(settings), self.executor, self.metrics)
            if settings.batching
            else DirectRunner(self.executor)
        )
        self.manager.on_change.append(ModelStateObserver(self.metrics))
        observer = MetricsObserver(self.metrics)
        router = ExperimentRouter()
        experiment_observer = ExperimentObserver(ExperimentMetrics(self.metrics.registry), self.metrics,
                                                 calibration=self._calibration)
        self.experiments = ExperimentService(
            router, experiment_observer, self.manager,
            # With a config file, admin RPCs write it (the source every replica reads); without, memory only.
            change_config=self.reloader.change_config if settings.model_config is not None else None,
        )
        request_ids = RequestIds(feedback_key(settings.feedback_key_file))  # shared key: any replica takes feedback
        # Label-free monitoring (docs/monitoring.md): estimated accuracy and drift per version.
        self.monitor = (
            LabelFreeMonitor(MonitoringMetrics(self.metrics.registry),
                             images_per_request=settings.monitoring_images_per_request)
            if settings.monitoring else None
        )
        monitors = [self.monitor] if self.monitor is not None else []
        if self.monitor is not None:
            self.manager.on_change.append(self.monitor)
        self.feedback = FeedbackStore(
            settings.feedback_max_predictions, settings.feedback_max_age_seconds,
            [observer, experiment_observer, *monitors], self.metrics, request_ids=request_ids,
        )
        self.dataplane = DataPlane(
            self.manager, self.runner, router, observers=[observer, self.feedback, experiment_observer, *monitors],
            request_ids=request_ids,
        )
        self.payload_log = payload_logger(settings, self.metrics.registry)  # --payload-log; None when off
        if self.payload_log is not None:  # hears what the metrics hear: every protocol, every feedback
            self.dataplane.observers.append(self.payload_log)
            self.feedback.listeners.append(self.payload_log)
            self.payload_log.configure(self.reloader.config)
            self.reloader.listeners.append(self.payload_log.configure)
        self.health = HealthReporter(self.manager, list(SERVICE_NAMES))
        self.manager.on_change.append(self.health.on_change)
        self.manager.on_change.append(self._forget_unloaded)
        self.port = 0
        self.metrics_port = 0
        self.http_port = 0
        self._rest: RestServer | None = None
        self._grpc: grpc.aio.Server | None = None
        self.drain = Drain()
        self._metrics_http: object | None = None
        self._background: set[asyncio.Task] = set()
        self._looks: asyncio.Task | None = None

    async def start(self) -> None:
        """Load the models, then open the gRPC and metrics ports."""
        s = self.settings
        security = grpc_security(s, self.metrics.count_auth_rejection)
        metrics_config = metrics_endpoint(s)
        rest_tls = rest_ssl_context(s) if s.http_port >= 0 else None
        versions = [path for found in self.manager.source.desired().values() for path in found.values()]
        if needs_tensorflow(s.runtime, versions):  # else TensorFlow is never imported (core/litert_model.py)
            await asyncio.get_running_loop().run_in_executor(self.executor, prepare_runtime)
        describe_server(self.metrics, s)
        # LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." from C++ once per
        # process, at the first interpreter's allocation (no log level reaches it): the first load
        # runs with that line dropped; every other line is written back when it is done.
        with native_startup_notices_dropped(LITERT_NOISE):
            await self.manager.reload()
        await self.health.refresh()
        if self.payload_log is not None:
            self.payload_log.start()
        self.experiments.sync(self.reloader.config)  # a bad experiments list stops the server here
        self.reloader.listeners += [self.experiments.sync, self._publish_config_hash]
        self.experiments.router.on_change.append(lambda *_: self._publish_config_hash(self.reloader.config))
        self._publish_config_hash(self.reloader.config)
        options = [
            ("grpc.max_receive_message_length", s.max_message_bytes),
            ("grpc.max_send_message_length", s.max_message_bytes),
            ("grpc.so_reuseport", 0),  # a second server on a taken port must fail, not share it
        ]
        self._grpc = grpc.aio.server(options=options)
        # Every service behind one generic handler that guards each method once (see guarded_handlers).
        guards = [self.drain.guard, security.auth.wrap, guard_decoding]
        services = GuardedHandlers(guards, fallback=security.auth.refuse_unknown)
        pb_grpc.add_DigitClassifierServicer_to_server(
            DigitClassifierServicer(self.dataplane, self.metrics, s, feedback=self.feedback, experiments=self.experiments,
                                    monitor=self.monitor),
            services,
        )
        pb_grpc.add_DigitsAdminServicer_to_server(DigitsAdminServicer(self.reloader, self.metrics, self.experiments), services)
        # KServe v2 / Triton and TF Serving on the same port; their repository calls reload like ReloadModels.
        protocols = add_protocols(services, self.dataplane, self.metrics, s, self.reloader.reload_now)
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, services)
        reflected = [*SERVICE_NAMES, *protocols, HEALTH_SERVICE, reflection.SERVICE_NAME]
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(reflection.aio.ReflectionServicer(reflected), services)
        self._grpc.add_generic_rpc_handlers((self.drain, services))  # drain first: it refuses once closed
        self.port = security.add_port(self._grpc, f"{s.host}:{s.port}")
        if self.port == 0:
            raise OSError(f"could not bind the gRPC port {s.host}:{s.port}")
        self.drain.add_port(self._grpc)
        if s.http_port >= 0:  # the REST port: same servicers, auth and TLS as the gRPC port
            self._rest = rest_server(
                self.dataplane, self.metrics, s, self.reloader.reload_now, security.auth.authorizer, rest_tls
            )
            self.http_port = await self._rest.start(s.host, s.http_port)
        if s.metrics_port >= 0:
            self._metrics_http, self.metrics_port = serve_metrics_endpoint(self.metrics.registry, metrics_config)
        await self._grpc.start()
        self.reloader.start()
        if s.poll_seconds > 0:  # an always-valid look at every experiment, for the dashboard's gauges
            self._looks = asyncio.get_running_loop().create_task(self.experiments.look_every(s.poll_seconds))
        log.info(
            "serving gRPC (%s) on %s:%d, REST on %s, metrics on %s:%d",
            security.transport, s.host, self.port, f"{s.host}:{self.http_port}" if self._rest else "no port",
            s.metrics_host, self.metrics_port,
        )

    async def stop(self, grace: float | None = None) -> None:
        """Health NOT_SERVING, refuse new calls, let every call already received (even one grpc
        core has not handed to Python yet) finish within `grace` seconds, then release all."""
        await self.health.shut_down()
        await self.reloader.stop()
        if self._looks is not None:
            self._looks.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._looks
        grace = self.settings.grace_seconds if grace is None else grace
        # Both ports drain at once: new calls refused (UNAVAILABLE / 503), admitted ones finish.
        draining = [self._rest.stop(grace)] if self._rest is not None else []
        if self._grpc is not None:  # not a bare server.stop(grace): see transport/drain.py
            draining.append(self.drain.stop_server(self._grpc, grace))
        await asyncio.gather(*draining)
        if self._metrics_http is not None:
            self._metrics_http.shutdown()  # type: ignore[attr-defined]
            self._metrics_http.server_close()  # type: ignore[attr-defined]
        await self.dataplane.close()  # shadow predictions still running use the runner
        if self.payload_log is not None:  # flush what is queued (what is left at the deadline: counted dropped)
            await asyncio.to_thread(self.payload_log.close, self.settings.grace_seconds)
        if isinstance(self.runner, BatchingRunner):
            await self.runner.close()
        await self.manager.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    def _publish_config_hash(self, config: ServingConfig) -> None:
        """digits_config_info{hash}: the models' config and the experiments in force."""
        self.metrics.set_config_hash(config_hash(config, self.experiments.config_entries()))

    def _calibration(self, model: str, version: int) -> CalibrationTable | None:
        """A served version's calibration table for the A/B label-free estimate (its reference profile,
        loaded by the monitor); None when monitoring is off or the version has no profile."""
        watched = self.monitor.versions.get((model, version)) if self.monitor is not None else None
        return watched.profile.calibration if watched is not None else None

    def _forget_unloaded(self, slot: VersionSlot) -> None:
        """Close the batcher of a version once it is unloaded."""
        if slot.state == END and slot.model is not None and isinstance(self.runner, BatchingRunner):
            task = asyncio.get_running_loop().create_task(self.runner.forget(slot.model))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def wait(self) -> None:
        """Until the gRPC server terminates."""
        if self._grpc is not None:
            await self._grpc.wait_for_termination()


def batching_options(settings: Settings) -> BatchingOptions:
    """The batching knobs of the server settings (core knows nothing of Settings)."""
    return BatchingOptions(
        max_batch_size=max(settings.max_batch_size, 1),
        batch_timeout=max(settings.batch_timeout_us, 0) / 1e6,
        max_queued=max(settings.max_queued, 1),
        concurrent_batches=max(settings.compute_threads, 1),
        enabled=settings.batching,
        inline_single=settings.inline_single,
    )


#: The native line LiteRT prints once per process when its first interpreter is allocated.
LITERT_NOISE = ("Created TensorFlow Lite XNNPACK delegate for CPU",)

SERVICE_NAMES = tuple(service.full_name for service in pb.DESCRIPTOR.services_by_name.values())
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


def write_ready_file(path: Path, server: DigitsServer) -> None:
    """Atomically write the bound ports, so a supervisor or test knows the server is up."""
    partial = path.with_name(path.name + ".part")
    ports = {"port": server.port, "metrics_port": server.metrics_port, "http_port": server.http_port}
    partial.write_text(json.dumps(ports))
    os.replace(partial, path)


async def run(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT, then shut down gracefully."""
    server = DigitsServer(settings)
    await server.start()
    # What start-up made (TensorFlow's modules, the loaded models: ~370k objects) leaves the
    # collector's generations: a full collection would scan it all, a ~200 ms pause mid-request.
    gc.collect()
    gc.freeze()
    if settings.ready_file is not None:
        write_ready_file(settings.ready_file, server)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log.info("shutting down (grace %.1fs)", settings.grace_seconds)
    await server.stop()
