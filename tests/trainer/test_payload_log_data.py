"""A logged-and-labelled run trains the next version: a real server logs its traffic (raw pixels,
PNG uploads, a batch) to JSON Lines, Feedback labels most of it, and `digits-train --data <log
directory>` trains a model on exactly the labelled images, decoded as the server decoded them."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image

from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc
from digits_server.core.imaging import from_encoded
from digits_trainer.payload_logs import PayloadLogError, read_labelled, split
from tests.serverproc import source_env, start_server

COUNT = 300
STREAMED = 8  # ClassifyStream messages, never labelled


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(255 - image).resize((84, 84)).save(buffer, format="PNG")  # a dark-on-white scan, 3x
    return buffer.getvalue()


@pytest.fixture(scope="module")
def logged(model_repo: Path, mnist_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run the traffic through a real server with --payload-log; what was sent, and the log directory."""
    directory = tmp_path_factory.mktemp("logged") / "payloads"
    with np.load(mnist_npz) as data:
        x, y = data["x_test"][:COUNT], data["y_test"][:COUNT].astype(int)
    uploads = {i: png(x[i]) for i in range(0, COUNT, 3)}
    server = start_server(model_repo, "--payload-log", str(directory), "--payload-log-file-bytes", "100000")

    async def run() -> tuple[list[str], str]:
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = pb_grpc.DigitClassifierStub(channel)
            ids = []
            for i in range(COUNT):
                image = pb.Image(encoded=uploads[i]) if i in uploads else pb.Image(pixels=x[i].tobytes())
                request = pb.ClassifyRequest(image=image, **({"true_label": int(y[i])} if i % 10 == 9 else {}))
                ids.append((await stub.Classify(request)).request_id)
            for i, request_id in enumerate(ids):
                if i % 10 < 8:  # i % 10 == 8: never labelled; == 9: labelled in the request
                    await stub.Feedback(pb.FeedbackRequest(request_id=request_id, index=0, true_label=int(y[i])))
            batch = await stub.ClassifyBatch(pb.ClassifyBatchRequest(
                images=[pb.Image(pixels=x[i].tobytes()) for i in range(4)], true_labels=[int(y[0]), -1, int(y[2]), -1]))
            await stub.Feedback(pb.FeedbackRequest(request_id=batch.request_id, index=1, true_label=int(y[1])))
            stream = [pb.ClassifyRequest(image=pb.Image(encoded=uploads[i]) if i in uploads else pb.Image(
                pixels=x[i].tobytes()), request_id=f"stream-{i}") for i in range(STREAMED)]  # unlabelled
            async for _ in stub.ClassifyStream(iter(stream)):
                pass
            return ids, batch.request_id

    try:
        ids, batch_id = asyncio.run(run())
    finally:
        server.stop()  # SIGTERM flushes the log
    return {"directory": directory, "x": x, "y": y, "uploads": uploads, "ids": ids, "batch_id": batch_id}


def test_the_log_reads_back_as_the_labelled_images_the_server_computed_on(logged: dict) -> None:
    labelled = read_labelled(logged["directory"])
    counts = labelled.counts
    assert counts.files >= 2  # rotated at 100 KB
    assert (counts.predictions, counts.images) == (COUNT + 1 + STREAMED, COUNT + 4 + STREAMED)
    assert counts.labelled_by_feedback == COUNT * 8 // 10 + 1
    assert counts.labelled_in_request == COUNT // 10 + 2
    assert counts.skipped_unlabelled == COUNT // 10 + 1 + STREAMED
    assert (counts.feedback, counts.orphan_feedback, counts.undecodable, counts.bad_lines) == (COUNT * 8 // 10 + 1, 0, 0, 0)
    index_of = {request_id: i for i, request_id in enumerate(logged["ids"])}
    x, y, uploads = logged["x"], logged["y"], logged["uploads"]
    for image, label, (request_id, index) in zip(labelled.images, labelled.labels, labelled.keys):
        if request_id == logged["batch_id"]:
            assert index in (0, 1, 2) and np.array_equal(image, x[index]) and label == y[index]
            continue
        i = index_of[request_id]
        assert i % 10 != 8 and label == y[i]
        expected = from_encoded(uploads[i], "image.encoded") if i in uploads else x[i]  # the server's decode
        assert np.array_equal(image, expected), f"request {i}"
    streamed = [json.loads(line) for f in sorted(logged["directory"].glob("*.jsonl")) for line in f.open()]
    streamed = {r["id"]: r for r in streamed if r["id"].startswith("stream-")}
    assert sorted(streamed) == sorted(f"stream-{i}" for i in range(STREAMED))
    for i in range(STREAMED):  # each stream message is its own record, its upload kept as sent
        sent = streamed[f"stream-{i}"]["inputs"]
        assert sent == ([{"file": base64.b64encode(uploads[i]).decode()}] if i in uploads
                        else [{"pixels": base64.b64encode(x[i].tobytes()).decode()}])
        assert streamed[f"stream-{i}"]["method"] == "ClassifyStream"
    arrays = split(labelled)
    assert len(arrays["x_train"]) + len(arrays["x_test"]) == len(labelled.labels)
    assert 0.1 < len(arrays["x_test"]) / len(labelled.labels) < 0.3


def test_digits_train_data_trains_a_model_on_the_log(logged: dict, tmp_path: Path) -> None:
    out = tmp_path / "models"
    result = subprocess.run(
        [sys.executable, "-m", "digits_trainer", "--data", str(logged["directory"]), "--cells", "gru",
         "--epochs", "1", "--out", str(out), "--no-plot", "--seed", "0"],
        check=False, capture_output=True, text=True, env=source_env(), timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{COUNT * 8 // 10 + 1} labelled by feedback, {COUNT // 10 + 2} in the request" in result.stderr
    assert f"{COUNT // 10 + 1 + STREAMED} skipped (no label)" in result.stderr
    metadata = json.loads((out / "gru" / "1" / "metadata.json").read_text())
    data = metadata["data"]
    assert data["source"] == f"payload-log:{logged['directory']}"
    assert data["n_train"] + data["n_test"] == COUNT * 9 // 10 + 3
    assert (out / "gru" / "1" / "saved_model.pb").is_file()


def test_a_log_without_labels_or_files_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"event": "prediction", "id": "a", "inputs": [{"pixels": ""}], "true_labels": [null]}\nnot json\n')
    with pytest.raises(PayloadLogError, match=r"0 labelled image\(s\), at least 2 are needed .*1 skipped \(no label\)"):
        split(read_labelled(empty))
    with pytest.raises(PayloadLogError, match="payload log not found"):
        read_labelled(tmp_path / "missing.jsonl")
