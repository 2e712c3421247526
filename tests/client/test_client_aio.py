"""AsyncDigitsClient (grpc.aio) against a real fake server."""

from __future__ import annotations

import asyncio
import itertools

import numpy as np
import pytest

from digits import AsyncDigitsClient, DeadlineExceededError, InvalidInputError, ModelInfo, UnavailableError

pytestmark = pytest.mark.asyncio


def digit_image(first_pixel: int) -> np.ndarray:
    image = np.zeros((28, 28), np.uint8)
    image[0, 0] = first_pixel
    return image


async def test_classify(fake_server, servicer):
    async with AsyncDigitsClient(fake_server.target, token="tok") as client:
        result = await client.classify(digit_image(8), model="gru:2", true_label=8)
    assert (result.digit, result.model, result.version) == (8, "gru", 2)
    (request,) = servicer.requests("Classify")
    assert request.true_label == 8 and request.image.pixels == digit_image(8).tobytes()
    assert servicer.metadata[0]["authorization"] == "Bearer tok"


async def test_concurrent_calls_keep_their_answers(fake_server):
    async with AsyncDigitsClient(fake_server.target) as client:
        results = await asyncio.gather(*(client.classify(digit_image(i)) for i in range(40)))
    assert [r.digit for r in results] == [i % 10 for i in range(40)]


async def test_batch_and_models(fake_server, servicer):
    async with AsyncDigitsClient(fake_server.target) as client:
        batch = await client.classify_batch([digit_image(2), digit_image(9)], true_labels=[2, 9])
        models = await client.list_models()
        status = await client.model_status("lstm")
        reloaded = await client.reload_models()
        feedback = await client.feedback("r1", 4, index=1)
    assert batch.digits == [2, 9]
    assert list(servicer.requests("ClassifyBatch")[0].true_labels) == [2, 9]
    assert isinstance(models[0], ModelInfo) and models[0].is_default and status.name == "lstm"
    assert reloaded == models
    assert feedback.correct and servicer.requests("Feedback")[0].index == 1


async def test_stream_in_order_from_sync_and_async_iterables(fake_server, servicer):
    async def produce():
        for i in range(20):
            await asyncio.sleep(0)
            yield digit_image(i)

    async with AsyncDigitsClient(fake_server.target) as client:
        from_async = [r.digit async for r in client.classify_stream(produce(), model="rnn")]
        from_sync = [r.digit async for r in client.classify_stream([digit_image(i) for i in range(20)],
                                                                   true_labels=range(10))]
    assert from_async == from_sync == [i % 10 for i in range(20)]
    messages = servicer.requests("ClassifyStream.message")
    assert [m.image.pixels[0] for m in messages] == list(range(20)) * 2
    assert [m.HasField("true_label") for m in messages] == [False] * 20 + [True] * 10 + [False] * 10


async def test_stream_bad_image(fake_server):
    async with AsyncDigitsClient(fake_server.target) as client:
        got = []
        with pytest.raises(InvalidInputError):
            async for result in client.classify_stream([digit_image(1), b"", np.zeros(5, np.uint8)]):
                got.append(result.digit)
        with pytest.raises(FileNotFoundError):
            async for result in client.classify_stream(["missing.npy"]):
                pass
    assert got == [1, 0]  # b"" is sent (encoded, empty): the server judges it


async def test_stream_early_exit_cancels(fake_server, servicer):
    async with AsyncDigitsClient(fake_server.target) as client:
        stream = client.classify_stream(digit_image(i % 10) for i in itertools.count())
        first = [(await stream.__anext__()).digit for _ in range(3)]
        await stream.aclose()
        ended = await asyncio.get_running_loop().run_in_executor(None, servicer.stream_ended.wait, 5)
    assert first == [0, 1, 2] and ended


async def test_experiments(fake_server):
    async with AsyncDigitsClient(fake_server.target) as client:
        await client.create_experiment("ab", [("lstm", 1), ("gru", 1)])
        await client.update_experiment("ab", [("lstm", 2), ("gru", 1)])
        assert [e.arms[0].weight for e in await client.list_experiments()] == [2.0]
        assert (await client.experiment_report("ab")).latency_source == "reservoir"
        await client.delete_experiment("ab")
        assert await client.list_experiments() == []


async def test_deadline_and_unreachable(fake_server, servicer, free_port_target):
    servicer.delay = 1.0
    async with AsyncDigitsClient(fake_server.target, timeout=0.2) as client:
        with pytest.raises(DeadlineExceededError):
            await client.classify(bytes(784))
    async with AsyncDigitsClient(free_port_target, timeout=2) as client:
        with pytest.raises(UnavailableError):
            await client.list_models()
        with pytest.raises(UnavailableError, match="no connection"):
            await client.wait_for_server(timeout=0.3)


async def test_close_is_idempotent_and_channel_lazy(fake_server):
    client = AsyncDigitsClient(fake_server.target)
    assert client._channel is None
    assert (await client.classify(bytes(784))).digit == 0
    await client.close()
    await client.close()
