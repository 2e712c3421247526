"""Fixtures for the client tests: a real, tiny grpc.aio server on 127.0.0.1 port 0.

The server runs its own event loop in a background thread, so both the blocking
DigitsClient and the AsyncDigitsClient (on the test's loop) can talk to it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import grpc.aio
import pytest

from digits.v1 import digits_pb2, digits_pb2_grpc

MAX_MESSAGE = 64 * 1024 * 1024


def fake_digit(image: digits_pb2.Image) -> int:
    """The fake model: first pixel mod 10, round(first float*9), or encoded length mod 10."""
    kind = image.WhichOneof("data")
    if kind == "pixels":
        return image.pixels[0] % 10 if image.pixels else 0
    if kind == "float_pixels":
        values = image.float_pixels.values
        return int(round(values[0] * 9)) % 10 if values else 0
    if kind == "encoded":
        return len(image.encoded) % 10
    return 0


def fake_probabilities(digit: int) -> list[float]:
    """0.91 for the digit, 0.01 for the others."""
    return [0.91 if d == digit else 0.01 for d in range(10)]


def served_by(spec: digits_pb2.ModelSpec) -> digits_pb2.ServedBy:
    """Echo the selector: name (default "lstm"), version (default 7), experiment with arm "a"."""
    if spec.experiment:
        return digits_pb2.ServedBy(model="gru", version=2, experiment=spec.experiment, arm="a")
    version = spec.version if spec.HasField("version") else (5 if spec.version_label else 7)
    return digits_pb2.ServedBy(model=spec.name or "lstm", version=version)


def fake_models() -> list[digits_pb2.ModelStatus]:
    """lstm (default; v3 AVAILABLE labelled stable, v2 FAILED) and gru (v1 AVAILABLE)."""
    info = digits_pb2.ModelInfo(cell="lstm", recipe="tuned", parameters=24586, test_accuracy=0.9812, test_ece=0.0123,
                                tensorflow_version="2.21.0", training_seconds=12.5,
                                created_at="2025-01-01T00:00:00Z", runtime="savedmodel")
    lstm = digits_pb2.ModelStatus(name="lstm", is_default=True, versions=[
        digits_pb2.ModelVersionStatus(version=3, state=digits_pb2.MODEL_STATE_AVAILABLE,
                                      labels=["stable", "canary"], info=info),
        digits_pb2.ModelVersionStatus(version=2, state=digits_pb2.MODEL_STATE_FAILED,
                                      error="no serving signature"),
    ])
    gru = digits_pb2.ModelStatus(name="gru", versions=[
        digits_pb2.ModelVersionStatus(version=1, state=digits_pb2.MODEL_STATE_AVAILABLE,
                                      info=digits_pb2.ModelInfo(cell="gru", test_accuracy=0.97)),
    ])
    return [lstm, gru]


class FakeDigits(digits_pb2_grpc.DigitClassifierServicer, digits_pb2_grpc.DigitsAdminServicer):
    """Answers every RPC predictably and records what it received.

    Set ``abort`` to (code, details) to make every call fail; ``delay`` (seconds) to
    slow every call down; ``abort_stream_after`` to fail a stream after N responses.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.metadata: list[dict[str, str]] = []
        self.abort: tuple[grpc.StatusCode, str] | None = None
        self.delay = 0.0
        self.abort_stream_after: int | None = None
        self.stream_ended = threading.Event()
        self.model_error_text = ""  # put into every FAILED version's error (e.g. megabytes of it)
        self.experiments: dict[str, digits_pb2.Experiment] = {}
        self._ids = 0

    def requests(self, method: str) -> list[Any]:
        """The requests received by ``method``, in order."""
        return [request for name, request in self.calls if name == method]

    async def _enter(self, method: str, request: Any, context: grpc.aio.ServicerContext) -> None:
        self.calls.append((method, request))
        self.metadata.append({k: v for k, v in context.invocation_metadata()})
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.abort is not None:
            await context.abort(*self.abort)

    def _respond(self, request: digits_pb2.ClassifyRequest) -> digits_pb2.ClassifyResponse:
        digit = fake_digit(request.image)
        self._ids += 1
        return digits_pb2.ClassifyResponse(
            digit=digit, probabilities=fake_probabilities(digit),
            served_by=served_by(request.model_spec),
            request_id=request.request_id or f"srv-{self._ids}",
        )

    async def Classify(self, request, context):  # noqa: N802 (gRPC names)
        await self._enter("Classify", request, context)
        return self._respond(request)

    async def ClassifyBatch(self, request, context):  # noqa: N802
        await self._enter("ClassifyBatch", request, context)
        predictions = [digits_pb2.Prediction(digit=fake_digit(i), probabilities=fake_probabilities(fake_digit(i)))
                       for i in request.images]
        return digits_pb2.ClassifyBatchResponse(predictions=predictions, served_by=served_by(request.model_spec),
                                                request_id=request.request_id or "batch-1")

    async def ClassifyStream(self, request_iterator, context):  # noqa: N802
        await self._enter("ClassifyStream", None, context)
        sent = 0
        try:
            async for request in request_iterator:
                self.calls.append(("ClassifyStream.message", request))
                if self.abort_stream_after is not None and sent >= self.abort_stream_after:
                    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "queue full")
                yield self._respond(request)
                sent += 1
        finally:
            self.stream_ended.set()

    async def ListModels(self, request, context):  # noqa: N802
        await self._enter("ListModels", request, context)
        models = fake_models()
        if self.model_error_text:
            models[0].versions[1].error = self.model_error_text
        return digits_pb2.ListModelsResponse(models=models)

    async def GetModelStatus(self, request, context):  # noqa: N802
        await self._enter("GetModelStatus", request, context)
        for model in fake_models():
            if model.name == request.name:
                return model
        await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown model {request.name!r}; known: gru, lstm")

    async def Feedback(self, request, context):  # noqa: N802
        await self._enter("Feedback", request, context)
        return digits_pb2.FeedbackResponse(correct=request.true_label == 4, predicted=4,
                                           served_by=digits_pb2.ServedBy(model="lstm", version=3))

    async def ListExperiments(self, request, context):  # noqa: N802
        await self._enter("ListExperiments", request, context)
        return digits_pb2.ListExperimentsResponse(experiments=list(self.experiments.values()))

    async def GetExperimentReport(self, request, context):  # noqa: N802
        await self._enter("GetExperimentReport", request, context)
        if request.name not in self.experiments:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no experiment {request.name!r}")
        return digits_pb2.ExperimentReport(experiment=self.experiments[request.name],
                                           arms=[digits_pb2.ArmReport(arm="a", requests=10)],
                                           latency_source="reservoir")

    async def ReloadModels(self, request, context):  # noqa: N802
        await self._enter("ReloadModels", request, context)
        return digits_pb2.ReloadModelsResponse(models=fake_models())

    async def CreateExperiment(self, request, context):  # noqa: N802
        await self._enter("CreateExperiment", request, context)
        if request.name in self.experiments:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, f"experiment {request.name!r} exists")
        self.experiments[request.name] = request
        return request

    async def UpdateExperiment(self, request, context):  # noqa: N802
        await self._enter("UpdateExperiment", request, context)
        if request.name not in self.experiments:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no experiment {request.name!r}")
        self.experiments[request.name] = request
        return request

    async def DeleteExperiment(self, request, context):  # noqa: N802
        await self._enter("DeleteExperiment", request, context)
        if self.experiments.pop(request.name, None) is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no experiment {request.name!r}")
        return digits_pb2.DeleteExperimentResponse()


class ServerThread:
    """A grpc.aio server with a FakeDigits servicer, on its own loop in a thread."""

    def __init__(self, servicer: FakeDigits, credentials: grpc.ServerCredentials | None = None) -> None:
        self.servicer = servicer
        self.credentials = credentials
        self.port = 0
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fake-digits-server", daemon=True)

    @property
    def target(self) -> str:
        """host:port of the running server."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> ServerThread:
        """Start and wait until the port is bound."""
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake server did not start")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = grpc.aio.server(options=[("grpc.max_send_message_length", MAX_MESSAGE),
                                          ("grpc.max_receive_message_length", MAX_MESSAGE)])
        digits_pb2_grpc.add_DigitClassifierServicer_to_server(self.servicer, server)
        digits_pb2_grpc.add_DigitsAdminServicer_to_server(self.servicer, server)
        if self.credentials is None:
            self.port = server.add_insecure_port("127.0.0.1:0")
        else:
            self.port = server.add_secure_port("127.0.0.1:0", self.credentials)
        await server.start()
        self._ready.set()
        await self._stop.wait()
        await server.stop(None)

    def stop(self) -> None:
        """Stop the server and join its thread."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)


@pytest.fixture
def fake_server() -> Iterator[ServerThread]:
    """A running fake digits server; ``.target``, ``.servicer``."""
    server = ServerThread(FakeDigits()).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def servicer(fake_server: ServerThread) -> FakeDigits:
    """The fake server's servicer, to inspect requests or set ``abort``."""
    return fake_server.servicer


@pytest.fixture
def server_factory() -> Iterator[Any]:
    """Start extra fake servers, e.g. with TLS: ``server_factory(credentials)``; all stopped at the end."""
    started: list[ServerThread] = []

    def start(credentials: grpc.ServerCredentials | None = None) -> ServerThread:
        server = ServerThread(FakeDigits(), credentials).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def free_port_target() -> str:
    """An address where nothing listens (a port bound and released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"
