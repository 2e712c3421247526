"""The single-image fast path: with a LiteRT runtime and batch timeout 0, a lone image is computed
on the event loop (no thread hop); `--no-inline-single` sends it through the batcher's threads.
Either way the answer is the SavedModel's."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import grpc
import numpy as np
import pytest

from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc
from digits_server.app import DigitsServer
from digits_server.core.domain import ModelSelector
from digits_server.core.loaded_model import LoadedModel
from digits_server.settings import Settings
from tests.modelrepo import private_repo

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def repo(model_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return private_repo(model_repo, tmp_path_factory.mktemp("fastpath") / "models", ("rnn",))


@pytest.fixture(scope="module")
def digits(tiny_npz: Path) -> np.ndarray:
    with np.load(tiny_npz) as data:
        return data["x_test"][:8]


async def classify_each(repo: Path, images: np.ndarray, **overrides) -> tuple[np.ndarray, set[str], str, np.ndarray]:
    """(probabilities, names of the threads that ran the model, reported runtime, reference)."""
    settings = dataclasses.replace(
        Settings(), models=repo, port=0, metrics_port=-1, default_model="rnn", poll_seconds=0, xla_buckets="1,8",
        **overrides,
    )
    server = DigitsServer(settings)
    await server.start()
    model = server.manager.resolve(ModelSelector("rnn"))
    real_predict, threads = model.predict, set()

    def predict(batch: np.ndarray) -> np.ndarray:
        threads.add(threading.current_thread().name)
        return real_predict(batch)

    model.predict = predict  # type: ignore[method-assign]
    signature = LoadedModel("rnn", 1, model.path, runtime="savedmodel")  # the source of truth
    signature.load()
    reference = signature.reference(images)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.DigitClassifierStub(channel)
            replies = [await stub.Classify(pb.ClassifyRequest(image=pb.Image(pixels=i.tobytes())), timeout=30)
                       for i in images]
            listed = await stub.ListModels(pb.ListModelsRequest(), timeout=30)
    finally:
        await server.stop(grace=1)
    runtime = listed.models[0].versions[0].info.runtime
    return np.array([r.probabilities for r in replies]), threads, runtime, reference


@pytest.mark.parametrize(("runtime", "served_by"), [("auto", "litert"), ("tflite", "savedmodel+tflite")])
async def test_a_lone_image_is_computed_on_the_event_loop(
    repo: Path, digits: np.ndarray, runtime: str, served_by: str
) -> None:
    probabilities, threads, served, reference = await classify_each(repo, digits, runtime=runtime)
    assert threads == {threading.current_thread().name}  # the loop's thread: no hop
    assert served.startswith(served_by)
    np.testing.assert_allclose(probabilities, reference, atol=1e-5)


async def test_without_inline_single_the_batcher_threads_compute(repo: Path, digits: np.ndarray) -> None:
    probabilities, threads, _, reference = await classify_each(repo, digits, inline_single=False)
    assert threads and all(name.startswith("compute") for name in threads)
    np.testing.assert_allclose(probabilities, reference, atol=1e-5)


async def test_a_batch_timeout_turns_the_fast_path_off(repo: Path, digits: np.ndarray) -> None:
    _, threads, _, _ = await classify_each(repo, digits[:2], batch_timeout_us=100)
    assert threads and all(name.startswith("compute") for name in threads)
