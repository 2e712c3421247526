"""ClassifyStream answered in groups: `ordered_streams.grouped` keeps order and ids, and on a real
server a grouped stream gives each message its own id and the same answer unary Classify gives."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image

from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc
from digits_server.core.ordered_streams import grouped
from tests.modelrepo import private_repo
from tests.server.test_faults_clients import metric
from tests.serverproc import start_server


async def slowly(count: int, fail_at: int | None = None) -> AsyncIterator[int]:
    for i in range(count):
        if i == fail_at:
            raise RuntimeError("reader broke")
        yield i
        if i % 7 == 0:
            await asyncio.sleep(0.001)  # a gap: the consumer takes what arrived so far


def test_groups_keep_every_item_in_order_within_the_cap() -> None:
    async def run() -> list:
        return [group async for group in grouped(slowly(200), cap=8)]

    groups = asyncio.run(run())
    assert [item for g in groups for item in g.items] == list(range(200))
    assert all(1 <= len(g.items) <= 8 and len(g.arrived) == len(g.items) for g in groups)
    assert [g.first for g in groups] == [sum(len(h.items) for h in groups[:i]) for i in range(len(groups))]
    assert max(len(g.items) for g in groups) > 1  # items that arrived together were grouped


def test_a_read_failure_comes_after_the_items_read_before_it() -> None:
    async def run() -> tuple[list[int], BaseException | None]:
        seen: list[int] = []
        try:
            async for group in grouped(slowly(50, fail_at=30), cap=4):
                seen += group.items
        except RuntimeError as exc:
            return seen, exc
        return seen, None

    seen, error = asyncio.run(run())
    assert seen == list(range(30)) and str(error) == "reader broke"


@pytest.fixture(scope="module")
def server(model_repo: Path, tmp_path_factory: pytest.TempPathFactory):
    repo = private_repo(model_repo, tmp_path_factory.mktemp("groups") / "models", ("rnn", "lstm"))
    proc = start_server(repo, "--default-model", "lstm", "--poll-seconds", "0")
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture(scope="module")
def digits(tiny_npz: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(tiny_npz) as data:
        return data["x_test"][:200], data["y_test"][:200]


def png(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(255 - image).save(out, format="PNG")  # dark ink on white, as scanned
    return out.getvalue()


def stream_requests(images: np.ndarray, labels: np.ndarray) -> list[pb.ClassifyRequest]:
    """Mixed: two models alternating in runs, every third message without a request id, a few PNGs."""
    requests = []
    for i, (image, label) in enumerate(zip(images, labels)):
        name = "rnn" if (i // 10) % 2 else "lstm"
        picture = pb.Image(encoded=png(image)) if i % 25 == 0 else pb.Image(pixels=image.tobytes())
        requests.append(pb.ClassifyRequest(model_spec=pb.ModelSpec(name=name), image=picture, true_label=int(label),
                                           request_id="" if i % 3 == 0 else f"msg-{i}"))
    return requests


def test_a_grouped_stream_answers_like_unary_calls_with_ids_in_order(server, digits) -> None:
    images, labels = digits
    requests = stream_requests(images, labels)
    before = metric(server, "digits_requests_total", method="ClassifyStream", code="OK")

    async def run() -> tuple[list[pb.ClassifyResponse], list[pb.ClassifyResponse]]:
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = pb_grpc.DigitClassifierStub(channel)

            async def feed() -> AsyncIterator[pb.ClassifyRequest]:
                for request in requests:  # all at once: the server reads ahead and groups
                    yield request

            streamed = [reply async for reply in stub.ClassifyStream(feed(), timeout=120)]
            unary = [await stub.Classify(request, timeout=30) for request in requests]
            return streamed, unary

    streamed, unary = asyncio.run(run())
    assert len(streamed) == len(requests)
    for i, (got, want) in enumerate(zip(streamed, unary)):
        if requests[i].request_id:
            assert got.request_id == requests[i].request_id
        assert got.digit == want.digit and got.served_by == want.served_by, i
        assert np.allclose(got.probabilities, want.probabilities, atol=1e-5), i
    made = [r.request_id for r, q in zip(streamed, requests) if not q.request_id]
    assert len(set(made)) == len(made) and all(m.startswith("d1.") for m in made)  # server-made (signed) ids, each its own
    assert metric(server, "digits_requests_total", method="ClassifyStream", code="OK") - before == len(requests)

    with grpc.insecure_channel(server.target) as channel:  # each message remembered under its own id
        with pytest.raises(grpc.RpcError) as known:  # (with the label it carried: unknown ids are NOT_FOUND)
            pb_grpc.DigitClassifierStub(channel).Feedback(
                pb.FeedbackRequest(request_id=made[1], index=0, true_label=3), timeout=10)
    assert known.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_a_bad_message_mid_group_ends_the_stream_after_the_earlier_answers(server, digits) -> None:
    images, labels = digits
    requests = stream_requests(images[:40], labels[:40])
    requests[17] = pb.ClassifyRequest(image=pb.Image(encoded=b"not a picture"))
    with grpc.insecure_channel(server.target) as channel:
        received = []
        with pytest.raises(grpc.RpcError) as error:
            for reply in pb_grpc.DigitClassifierStub(channel).ClassifyStream(iter(requests), timeout=60):
                received.append(reply)
    assert len(received) == 17
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith("stream message 17: image.encoded")
