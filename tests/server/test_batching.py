"""Dynamic batching on an in-process server with real SavedModels and a real gRPC channel.

A recording observer sees each request's Timings (batch size, queue wait), which proves
batching; the queue metrics are read from the server's Prometheus registry.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import grpc
import numpy as np
import pytest

from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc
from digits_server.app import DigitsServer
from digits_server.core.domain import ModelSelector, PredictionEvent
from digits_server.settings import Settings
from tests.modelrepo import private_repo

pytestmark = pytest.mark.asyncio


class Recorder:
    """A PredictionObserver that keeps every event."""

    def __init__(self) -> None:
        self.events: list[PredictionEvent] = []

    def observe(self, event: PredictionEvent) -> None:
        self.events.append(event)


@pytest.fixture(scope="module")
def repo(model_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return private_repo(model_repo, tmp_path_factory.mktemp("batching") / "models")


@pytest.fixture(scope="module")
def digits(tiny_npz: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(tiny_npz) as data:
        return data["x_test"][:96], data["y_test"][:96]


async def serve(repo: Path, **overrides) -> tuple[DigitsServer, Recorder]:
    settings = dataclasses.replace(
        Settings(), models=repo, port=0, metrics_port=-1, default_model="gru", poll_seconds=0, **overrides
    )
    server = DigitsServer(settings)
    recorder = Recorder()
    server.dataplane.observers.append(recorder)
    await server.start()
    return server, recorder


def request(image: np.ndarray, label: int | None = None) -> pb.ClassifyRequest:
    message = pb.ClassifyRequest(image=pb.Image(pixels=image.tobytes()))
    if label is not None:
        message.true_label = label
    return message


def count_computed_rows(server: DigitsServer) -> list[int]:
    """Wrap the served version's predict to record the size of every model call (the real call still runs)."""
    model = server.manager.resolve(ModelSelector("gru"))
    real_predict, sizes = model.predict, []

    def predict(images: np.ndarray) -> np.ndarray:
        sizes.append(len(images))
        return real_predict(images)

    model.predict = predict  # type: ignore[method-assign]
    return sizes


def metric(server: DigitsServer, name: str) -> float:
    return server.metrics.registry.get_sample_value(name, {"model": "gru", "version": "1"}) or 0.0


async def test_concurrent_requests_are_batched_and_each_caller_gets_its_own_answer(repo, digits) -> None:
    images, labels = digits
    server, recorder = await serve(repo, batch_timeout_us=50_000, max_batch_size=32)
    expected = server.manager.resolve(ModelSelector("gru")).predict(images)  # the model alone, unbatched
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.DigitClassifierStub(channel)
            replies = await asyncio.gather(
                *(stub.Classify(request(image, int(label)), timeout=60) for image, label in zip(images, labels))
            )
    finally:
        await server.stop(grace=1)
    answered = np.array([reply.digit for reply in replies])
    probabilities = np.array([reply.probabilities for reply in replies])
    # every caller got the row of its own image: the model's own answer for it, never a neighbour's
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    assert (answered == expected.argmax(axis=1)).all()
    # known labels: the observers (live accuracy) saw each caller's own label beside its own prediction
    observed = {event.request_id: event for event in recorder.events}
    for reply, label in zip(replies, labels):
        event = observed[reply.request_id]
        assert (event.true_labels, event.digits.tolist()) == ([int(label)], [reply.digit])
    sizes = [event.timings.batch_size for event in recorder.events]
    assert len(sizes) == len(images) and max(sizes) > 1 and max(sizes) <= 32
    assert sum(1 for s in sizes if s > 1) >= len(images) // 2  # most requests shared a model call


async def test_a_full_queue_rejects_at_once_with_resource_exhausted(repo, digits) -> None:
    images, _ = digits
    server, _ = await serve(repo, batch_timeout_us=3_000_000, max_batch_size=64, max_queued=4)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.DigitClassifierStub(channel)
            queued = [stub.Classify(request(images[i]), timeout=60) for i in range(4)]
            while metric(server, "digits_queue_depth") < 4:
                await asyncio.sleep(0.01)
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(grpc.aio.AioRpcError) as rejected:
                await stub.Classify(request(images[5]), timeout=60)
            rejected_after = loop.time() - started
            replies = await asyncio.gather(*queued)  # the queued ones are still served, as one batch
    finally:
        await server.stop(grace=1)
    assert rejected.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "queue full" in rejected.value.details()
    assert rejected_after < 2.0  # at once, not after the 3 s batch timeout
    assert len(replies) == 4 and metric(server, "digits_rejected_total") == 1


async def test_a_deadline_that_passes_while_queued_is_dropped_not_computed(repo, digits) -> None:
    images, _ = digits
    server, recorder = await serve(repo, batch_timeout_us=2_500_000)
    calls = count_computed_rows(server)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.DigitClassifierStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as expired:
                await stub.Classify(request(images[0]), timeout=0.3)
            for _ in range(100):  # its place is freed when the server sees the deadline pass (not at batching)
                if metric(server, "digits_queue_depth") == 0:
                    break
                await asyncio.sleep(0.01)
            assert metric(server, "digits_queue_depth") == 0
            reply = await stub.Classify(request(images[1]), timeout=60)
    finally:
        await server.stop(grace=1)
    assert expired.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert reply.served_by.model == "gru"
    assert [event.timings.batch_size for event in recorder.events] == [1]
    assert calls == [1]  # one model call, for the second request: the expired one was never computed


async def test_a_cancelled_call_frees_its_queue_slot(repo, digits) -> None:
    images, _ = digits
    server, recorder = await serve(repo, batch_timeout_us=1_000_000, max_queued=2)
    calls = count_computed_rows(server)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.DigitClassifierStub(channel)
            doomed = [stub.Classify(request(images[i]), timeout=60) for i in range(2)]
            while metric(server, "digits_queue_depth") < 2:
                await asyncio.sleep(0.01)
            for call in doomed:
                call.cancel()
            while metric(server, "digits_queue_depth") > 0:
                await asyncio.sleep(0.01)
            replies = await asyncio.gather(*(stub.Classify(request(images[i]), timeout=60) for i in (2, 3)))
    finally:
        await server.stop(grace=1)
    assert len(replies) == 2 and metric(server, "digits_rejected_total") == 0
    assert [event.timings.batch_size for event in recorder.events] == [2, 2]
    assert calls == [2]  # one model call for the two live requests; the cancelled ones were never computed


async def test_batching_can_be_disabled(repo, digits) -> None:
    images, _ = digits
    server, recorder = await serve(repo, batching=False)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.DigitClassifierStub(channel)
            await asyncio.gather(*(stub.Classify(request(image), timeout=60) for image in images[:16]))
    finally:
        await server.stop(grace=1)
    assert [event.timings.batch_size for event in recorder.events] == [1] * 16
