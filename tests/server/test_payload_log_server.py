"""Payload logging on a real server under load, with a sink that is down for part of the run.

10,000 requests at 200/s (digits.v1 pixels, digits.v1 PNG uploads, ClassifyBatch, Open Inference
Protocol v2) are logged as CloudEvents to a real local HTTP receiver that is stopped for 15 s in
the middle and started again; then 2,000 requests to JSON Lines files whose directory vanishes
for 3 s. Every request succeeds, and the records the sink holds plus the records the server
counted as dropped equal the requests sent.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import shutil
import time
import urllib.request
from collections import Counter
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc
from digits_server.observability.payload_records import CE_REQUEST, CE_RESPONSE
from digits_server.protocols import kserve_v2_requests as v2
from tests.cloudevents_receiver import CloudEventsReceiver
from tests.serverproc import ServerProcess, start_server

RATE = 200.0


def payload_counts(server: ServerProcess) -> dict[str, float]:
    """{"written": n, "dropped": n} from the server's /metrics, summed over labels."""
    with urllib.request.urlopen(server.metrics_url, timeout=10) as response:
        text = response.read().decode()
    out = {"written": 0.0, "dropped": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "digits_payload_log_written_total":
                out["written"] += sample.value
            elif sample.name == "digits_payload_log_dropped_total":
                out["dropped"] += sample.value
    return out


def settled(server: ServerProcess, sent: int, timeout: float = 60.0) -> dict[str, float]:
    """The counts once every record is accounted for (the writer may still be flushing)."""
    end = time.monotonic() + timeout
    counts = payload_counts(server)
    while counts["written"] + counts["dropped"] < sent and time.monotonic() < end:
        time.sleep(0.2)
        counts = payload_counts(server)
    return counts


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(255 - image).save(buffer, format="PNG")  # dark ink on white, like a scan
    return buffer.getvalue()


class Traffic:
    """Requests of four kinds built once, sent in turn: request i is kind i % 4."""

    def __init__(self, target: str, digits: np.ndarray) -> None:
        self.target = target
        images = digits[:40]
        self.pngs = [png(image) for image in images]
        self.requests = [
            [pb.ClassifyRequest(image=pb.Image(pixels=image.tobytes())) for image in images],
            [pb.ClassifyRequest(image=pb.Image(encoded=data)) for data in self.pngs],
            [pb.ClassifyBatchRequest(images=[pb.Image(pixels=images[i].tobytes()), pb.Image(encoded=self.pngs[i - 1])])
             for i in range(len(images))],
            [v2.infer_request("lstm", images[i: i + 1]) for i in range(len(images))],
        ]
        self.ids: list[str] = []
        self.codes: Counter[str] = Counter()

    async def send(self, i: int) -> None:
        kind, request = i % 4, self.requests[i % 4][(i // 4) % 40]
        call = (self.classifier.Classify, self.classifier.Classify, self.classifier.ClassifyBatch,
                self.inference.ModelInfer)[kind]
        try:
            response = await call(request, timeout=30)
        except grpc.aio.AioRpcError as error:
            self.codes[error.code().name] += 1
            return
        self.codes["OK"] += 1
        self.ids.append(response.id if kind == 3 else response.request_id)

    async def run(self, total: int, at: dict[int, object]) -> None:
        """Send `total` requests at RATE per second (open loop); call at[i]() before request i."""
        channel = grpc.aio.insecure_channel(self.target)
        self.classifier = pb_grpc.DigitClassifierStub(channel)
        self.inference = v2.stub(channel)
        loop = asyncio.get_running_loop()
        start, tasks = loop.time(), []
        for i in range(total):
            if i in at:
                await asyncio.to_thread(at[i])
            delay = start + i / RATE - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.send(i)))
        await asyncio.gather(*tasks)
        await channel.close()


def test_10000_requests_at_200_per_second_with_the_http_sink_down_for_15_seconds(
    model_repo: Path, digits: np.ndarray
) -> None:
    total = 10_000
    receiver = CloudEventsReceiver()
    receiver.start()
    server = start_server(model_repo, "--payload-log", receiver.url, "--payload-log-queue", "400",
                          "--payload-log-attempts", "3")
    try:
        traffic = Traffic(server.target, digits)
        # down from request 2,000 (10 s in) to request 5,000 (25 s in)
        asyncio.run(traffic.run(total, {2_000: receiver.stop, 5_000: receiver.start}))
        counts = settled(server, total)
        log = server.log()
    finally:
        server.stop()
        receiver.stop()
    print(f"payload log under load: {counts}")  # -s shows the figures docs/observability.md quotes
    assert traffic.codes == {"OK": total}
    responses = {event.id for event in receiver.of_type(CE_RESPONSE)}
    assert counts["written"] + counts["dropped"] == total
    assert counts["written"] == len(responses)
    assert counts["dropped"] >= 1_000  # the outage was seen...
    assert counts["written"] >= 5_000  # ...and the sink was used again after it
    assert responses <= set(traffic.ids)
    requests = {event.id: event for event in receiver.of_type(CE_REQUEST)}
    protocols = Counter(event.body["protocol"] for event in requests.values())
    assert set(protocols) == {"digits.v1", "kserve.v2"}
    uploads = [e for e in requests.values() if e.body["method"] == "Classify" and "file" in e.body["inputs"][0]]
    assert uploads and all(base64.b64decode(e.body["inputs"][0]["file"]) in traffic.pngs for e in uploads)
    batches = [e for e in requests.values() if e.body["method"] == "ClassifyBatch"]
    assert batches and all([next(iter(item)) for item in e.body["inputs"]] == ["pixels", "file"] for e in batches)
    assert "Traceback" not in log


def test_2000_requests_with_the_json_lines_directory_gone_for_3_seconds(
    model_repo: Path, digits: np.ndarray, tmp_path: Path
) -> None:
    total = 2_000
    directory, aside = tmp_path / "payloads", tmp_path / "payloads-aside"
    server = start_server(model_repo, "--payload-log", str(directory), "--payload-log-attempts", "3",
                          "--payload-log-queue", "200", "--payload-log-file-bytes", "1000000")

    def vanish() -> None:  # the directory moves away and a file takes its place: every append fails
        directory.rename(aside)
        directory.write_text("not a directory")

    def come_back() -> None:
        directory.unlink()
        aside.rename(directory)

    try:
        traffic = Traffic(server.target, digits)
        asyncio.run(traffic.run(total, {600: vanish, 1_200: come_back}))
        counts = settled(server, total)
    finally:
        server.stop()
    assert traffic.codes == {"OK": total}
    files = sorted(directory.glob("payloads-*.jsonl"))
    records = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert len(files) >= 2  # rotated at ~1 MB
    assert counts["written"] + counts["dropped"] == total
    assert counts["written"] == len(records) == len({r["id"] for r in records})
    assert counts["dropped"] >= 200
    assert {r["id"] for r in records} <= set(traffic.ids)
    shutil.rmtree(directory)


@pytest.mark.parametrize("sample", [0.25])
def test_sampling_and_feedback_events_on_a_real_server(model_repo: Path, digits: np.ndarray, tmp_path: Path,
                                                       sample: float) -> None:
    directory = tmp_path / "payloads"
    server = start_server(model_repo, "--payload-log", str(directory), "--payload-log-sample", str(sample))

    async def run() -> tuple[list[str], int]:
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = pb_grpc.DigitClassifierStub(channel)
            ids = []
            for image in digits[:400]:
                ids.append((await stub.Classify(pb.ClassifyRequest(image=pb.Image(pixels=image.tobytes())))).request_id)
            for request_id in ids:
                await stub.Feedback(pb.FeedbackRequest(request_id=request_id, index=0, true_label=1))
            return ids, len(ids)

    try:
        ids, sent = asyncio.run(run())
    finally:
        server.stop()  # SIGTERM: the queue is flushed
    records = [json.loads(line) for f in directory.glob("*.jsonl") for line in f.read_text().splitlines()]
    predictions = {r["id"] for r in records if r["event"] == "prediction"}
    feedback = {r["id"] for r in records if r["event"] == "feedback"}
    assert predictions == feedback  # a request's feedback is logged exactly when its prediction was
    assert predictions <= set(ids)
    assert 0.15 * sent < len(predictions) < 0.35 * sent  # binomial(400, 0.25): sd 8.7, bounds > 4 sd
