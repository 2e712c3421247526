"""Soak: steady mixed traffic against a real server for a while, with hot reloads (a new GRU
version published and ReloadModels called every few seconds), feedback, an A/B experiment and
deliberate bad inputs. Reports requests, errors, p99 per window and resident memory at start
and end; fails on any error other than the deliberate bad inputs' INVALID_ARGUMENT.

The quick variant (45 s) is in the default run; the 10-minute one is marked slow:
`pytest -m slow tests/server/test_soak.py -s`. DIGITS_SOAK_SECONDS overrides the slow one's length.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import uuid
from pathlib import Path

import grpc
import numpy as np
import pytest

from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc
from tests.loadgen import Recorder, TrafficKind, closed_loop, percentile
from tests.modelrepo import private_repo, publish_version
from tests.serverproc import ServerProcess, start_server

CELLS = ("rnn", "lstm", "gru")
WORKERS = 4
BAD_INPUT = "bad-input"  # the one kind whose calls must fail, with INVALID_ARGUMENT


def png_of(digit: np.ndarray) -> bytes:
    """The digit drawn large, dark on white, as a PNG file (what a user would upload)."""
    from PIL import Image

    picture = Image.fromarray(255 - digit).resize((112, 112))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def traffic(channel: grpc.aio.Channel, digits: np.ndarray, labels: np.ndarray) -> list[TrafficKind]:
    """The mix: every inference call, feedback, an experiment, listing, and bad inputs."""
    stub = pb_grpc.DigitClassifierStub(channel)
    pick = itertools.count()

    def image_and_label() -> tuple[pb.Image, int]:
        i = next(pick) % len(digits)
        return pb.Image(pixels=digits[i].tobytes()), int(labels[i])

    def classify(model: str = "", experiment: str = "") -> pb.ClassifyRequest:
        image, label = image_and_label()
        spec = pb.ModelSpec(experiment=experiment, routing_key=uuid.uuid4().hex) if experiment else pb.ModelSpec(name=model)
        return pb.ClassifyRequest(model_spec=spec, image=image, request_id=uuid.uuid4().hex)

    async def single():
        return await stub.Classify(classify(CELLS[next(pick) % 3]), timeout=30)

    async def encoded():
        i = next(pick) % len(digits)
        return await stub.Classify(pb.ClassifyRequest(image=pb.Image(encoded=png_of(digits[i]))), timeout=30)

    async def batch():
        images = [image_and_label()[0] for _ in range(16)]
        return await stub.ClassifyBatch(pb.ClassifyBatchRequest(model_spec=pb.ModelSpec(name="lstm"), images=images), timeout=30)

    async def stream():
        requests = [classify("gru") for _ in range(8)]
        return [answer async for answer in stub.ClassifyStream(iter(requests), timeout=30)]

    async def feedback():
        image, label = image_and_label()
        answer = await stub.Classify(pb.ClassifyRequest(image=image, request_id=uuid.uuid4().hex), timeout=30)
        return await stub.Feedback(pb.FeedbackRequest(request_id=answer.request_id, true_label=label), timeout=30)

    async def experiment():
        return await stub.Classify(classify(experiment="soak"), timeout=30)

    async def listing():
        await stub.ListModels(pb.ListModelsRequest(), timeout=30)
        return await stub.GetExperimentReport(pb.GetExperimentReportRequest(name="soak"), timeout=30)

    async def bad_input():
        return await stub.Classify(pb.ClassifyRequest(image=pb.Image(pixels=b"\x00" * 783)), timeout=30)

    return [
        TrafficKind("classify", 6, single),
        TrafficKind("classify-png", 1, encoded),
        TrafficKind("batch", 1, batch),
        TrafficKind("stream", 1, stream),
        TrafficKind("feedback", 1, feedback),
        TrafficKind("experiment", 1, experiment),
        TrafficKind("list", 0.5, listing),
        TrafficKind(BAD_INPUT, 0.5, bad_input),
    ]


async def drive(proc: ServerProcess, repo: Path, seconds: float, reload_every: float, digits, labels) -> dict:
    """Run the mix for `seconds` while publishing a new GRU version every `reload_every` seconds."""
    recorder, memory, versions = Recorder(), [proc.memory()], []
    async with grpc.aio.insecure_channel(proc.target) as channel:
        admin = pb_grpc.DigitsAdminStub(channel)
        arms = [pb.Arm(name=cell, model=pb.ModelSpec(name=cell), weight=1) for cell in ("lstm", "gru")]
        await admin.CreateExperiment(pb.Experiment(name="soak", arms=arms, shadow_percent=10), timeout=30)
        stop = asyncio.Event()
        load = asyncio.ensure_future(closed_loop(traffic(channel, digits, labels), WORKERS, stop, recorder))
        loop = asyncio.get_running_loop()
        started = loop.time()
        for version in itertools.count(2):
            await asyncio.sleep(min(reload_every, max(0.0, started + seconds - loop.time())))
            if loop.time() - started >= seconds:
                break
            await asyncio.to_thread(publish_version, repo, "gru", 1, version)
            reloaded = await admin.ReloadModels(pb.ReloadModelsRequest(), timeout=120)
            versions.append([v.version for m in reloaded.models if m.name == "gru" for v in m.versions])
            memory.append(proc.memory())
        stop.set()
        await load
        memory.append(proc.memory())
    return {"recorder": recorder, "memory": memory, "versions": versions}


def soak(model_repo: Path, tmp_path: Path, tiny_npz: Path, seconds: float, reload_every: float) -> None:
    repo = private_repo(model_repo, tmp_path / "models", CELLS)
    with np.load(tiny_npz) as data:
        digits, labels = data["x_test"][:200], data["y_test"][:200]
    proc = start_server(repo, "--default-model", "lstm", "--poll-seconds", "1", "--grace-seconds", "30")
    try:
        result = asyncio.run(drive(proc, repo, seconds, reload_every, digits, labels))
    finally:
        exit_code = proc.stop()
    recorder: Recorder = result["recorder"]
    codes = {kind: dict(recorder.codes(kind)) for kind in sorted({o.kind for o in recorder.outcomes})}
    errors = [o for o in recorder.outcomes if (o.code != "OK") != (o.kind == BAD_INPUT)]
    good = {o.kind for o in recorder.outcomes} - {BAD_INPUT}
    windows = recorder.windows(seconds / 10, kinds=good)
    rss_mb = [m["rss"] / 2**20 for m in result["memory"]]
    start_mb, end_mb = rss_mb[0], rss_mb[-1]
    print(
        f"\nsoak {seconds:.0f} s: {len(recorder.outcomes)} calls ({len(recorder.outcomes) / seconds:.0f}/s), "
        f"errors {len(errors)}, by kind {codes}; {len(result['versions'])} hot reloads, gru versions after each "
        f"{result['versions']}; p50/p99 of all good calls {1000 * percentile(recorder.latencies(code='OK'), 50):.1f}/"
        f"{1000 * percentile(recorder.latencies(code='OK'), 99):.1f} ms; p99 per {seconds / 10:.0f} s window (ms): "
        + " ".join(f"{1000 * w.p99:.0f}" for w in windows)
        + f"; RSS {start_mb:.0f} MiB at start, {end_mb:.0f} MiB at the end "
        f"(at each reload: {' '.join(f'{mb:.0f}' for mb in rss_mb)})"
    )
    assert exit_code == 0, proc.log()
    assert "Traceback" not in proc.log(), proc.log()
    assert not errors, errors[:10]
    assert all(kind in codes for kind in ("classify", "classify-png", "batch", "stream", "feedback", "experiment"))
    assert set(codes[BAD_INPUT]) == {"INVALID_ARGUMENT"}
    assert result["versions"] and all(v[0] == n + 2 for n, v in enumerate(result["versions"])), result["versions"]
    assert all(w.errors == 0 for w in windows)
    return start_mb, end_mb


def test_soak_quick(model_repo: Path, tmp_path: Path, tiny_npz: Path) -> None:
    soak(model_repo, tmp_path, tiny_npz, seconds=45, reload_every=8)


@pytest.mark.slow
def test_soak_ten_minutes(model_repo: Path, tmp_path: Path, tiny_npz: Path) -> None:
    seconds = float(os.environ.get("DIGITS_SOAK_SECONDS", 600))
    start_mb, end_mb = soak(model_repo, tmp_path, tiny_npz, seconds=seconds, reload_every=20)
    assert end_mb < start_mb + 300, "resident memory kept growing"
