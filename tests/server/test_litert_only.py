"""The server as `pip install digits-server` installs it, without TensorFlow (`make setup-lite` makes
.venv-lite: the client and the server, no [tensorflow] extra): the real server runs from that venv on
the trainer's models, serves every cell with the standalone LiteRT runtime, and never loads
TensorFlow (no file of a `tensorflow` package is mapped into the process, and none is importable).
What it cannot serve fails clearly: a SavedModel without a LiteRT twin, LiteRT files that disagree
with the SavedModel, a TensorFlow runtime asked for, TF Serving's API (gRPC and REST). The REST
port (--http-port) serves the Open Inference Protocol v2 without TensorFlow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest

from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc
from digits_server.core.litert_model import REFERENCE_FILE
from digits_server.core.loaded_model import LoadedModel
from digits_server.core.runtimes import TFLITE_BATCH_FILE, TFLITE_FILE
from tests.serverproc import REPO, ServerProcess, run_server_until_exit, start_server

LITE_PYTHON = REPO / ".venv-lite" / "bin" / "python"
CELLS = ("rnn", "lstm", "gru")
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def lite_python() -> str:
    """.venv-lite's interpreter (`make setup-lite`; `make test` and .ci/run build it); in CI a missing
    venv fails instead of skipping."""
    if not LITE_PYTHON.exists():
        message = f"{LITE_PYTHON} is missing: run `make setup-lite`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return str(LITE_PYTHON)


def tensorflow_files_mapped(server: ServerProcess) -> list[str]:
    """Files of a `tensorflow` package (its shared libraries) mapped into the server process."""
    maps = Path(f"/proc/{server.process.pid}/maps").read_text().splitlines()
    return sorted({line.split()[-1] for line in maps if "/tensorflow/" in line or "libtensorflow" in line})


def listed(server: ServerProcess) -> dict[str, tuple[str, str, str]]:
    """{model: (state, runtime, error)} of each model's newest version, from ListModels."""
    with grpc.insecure_channel(server.target) as channel:
        reply = pb_grpc.DigitClassifierStub(channel).ListModels(pb.ListModelsRequest(), timeout=30)
    return {m.name: (pb.ModelState.Name(m.versions[0].state).removeprefix("MODEL_STATE_"),
                     m.versions[0].info.runtime, m.versions[0].error) for m in reply.models}


def test_the_lite_venv_has_the_litert_runtime_and_no_tensorflow(lite_python: str) -> None:
    found = subprocess.run(
        [lite_python, "-c", "import importlib.util as u; print(u.find_spec('tensorflow'), u.find_spec('ai_edge_litert'))"],
        capture_output=True, text=True, check=True, env={"PATH": os.environ["PATH"]},
    ).stdout.split(" ", 1)
    assert found[0] == "None" and "ai_edge_litert" in found[1]


@pytest.mark.parametrize("runtime", ["auto", "litert"])
def test_the_server_serves_every_cell_without_tensorflow(
    lite_python: str, model_repo: Path, digits: np.ndarray, runtime: str
) -> None:
    server = start_server(model_repo, "--runtime", runtime, "--poll-seconds", "0", python=lite_python)
    images = digits[:70]  # 70: one LiteRT chunk of 64 and a rest
    answers: dict[str, np.ndarray] = {}
    try:
        models = listed(server)
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.DigitClassifierStub(channel)
            for cell in CELLS:
                spec = pb.ModelSpec(name=cell)
                batch = stub.ClassifyBatch(pb.ClassifyBatchRequest(
                    model_spec=spec, images=[pb.Image(pixels=i.tobytes()) for i in images]), timeout=60)
                one = stub.Classify(pb.ClassifyRequest(model_spec=spec, image=pb.Image(pixels=images[0].tobytes())),
                                    timeout=30)
                answers[cell] = np.array([p.probabilities for p in batch.predictions], dtype=np.float32)
                np.testing.assert_allclose(one.probabilities, answers[cell][0], atol=TOLERANCE, rtol=0)
        mapped = tensorflow_files_mapped(server)
    finally:
        assert server.stop() == 0, server.log()
    assert models == {cell: ("AVAILABLE", "litert", "") for cell in CELLS}
    assert mapped == []
    assert "Traceback" not in server.log()
    for cell in CELLS:  # the SavedModel signature, computed here with TensorFlow, is the source of truth
        signature = LoadedModel(cell, 1, model_repo / cell / "1", runtime="savedmodel")
        signature.load()
        np.testing.assert_allclose(answers[cell], signature.reference(images), atol=TOLERANCE, rtol=0)


def test_what_it_cannot_serve_fails_naming_the_version_and_the_runtime(
    lite_python: str, model_repo: Path, tmp_path: Path, test_digit: np.ndarray
) -> None:
    """gru: complete twin, serves; lstm: no reference predictions (an older export), needs TensorFlow;
    rnn: the GRU's flatbuffers (valid, wrong), refused. TF Serving's API answers UNIMPLEMENTED."""
    repo = tmp_path / "models"
    for cell in CELLS:
        shutil.copytree(model_repo / cell, repo / cell)
    (repo / "lstm" / "1" / REFERENCE_FILE).unlink()
    for name in (TFLITE_FILE, TFLITE_BATCH_FILE):
        shutil.copy(model_repo / "gru" / "1" / name, repo / "rnn" / "1" / name)
    server = start_server(repo, "--default-model", "gru", "--poll-seconds", "0", python=lite_python)
    try:
        models = listed(server)
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.DigitClassifierStub(channel)
            image = pb.Image(pixels=test_digit.tobytes())
            assert stub.Classify(pb.ClassifyRequest(image=image), timeout=30).probabilities  # gru serves
            with pytest.raises(grpc.RpcError) as refused:
                stub.Classify(pb.ClassifyRequest(model_spec=pb.ModelSpec(name="rnn"), image=image), timeout=30)
            predict = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
            with pytest.raises(grpc.RpcError) as tf_serving:
                predict(b"", timeout=30)
        mapped = tensorflow_files_mapped(server)
    finally:
        assert server.stop() == 0, server.log()
    assert models["gru"] == ("AVAILABLE", "litert", "")
    state, _, error = models["lstm"]
    assert state == "FAILED" and "lstm:1: has no LiteRT twin (missing assets.extra/litert_reference.npz)" in error
    assert "TensorFlow is not installed" in error and "digits-server[tensorflow]" in error
    state, _, error = models["rnn"]
    assert state == "FAILED" and "disagrees with the SavedModel's reference predictions" in error
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE  # never served
    assert tf_serving.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "pip install 'digits-server[tensorflow]'" in tf_serving.value.details()
    assert mapped == []


def test_a_tensorflow_runtime_without_tensorflow_stops_at_start(lite_python: str, model_repo: Path) -> None:
    result = run_server_until_exit(model_repo, "--runtime", "xla", python=lite_python)
    assert result.returncode == 2
    assert "runtime: xla needs TensorFlow, which is not installed (pip install 'digits-server[tensorflow]'" in result.stderr
    assert "Traceback" not in result.stderr


def post_json(url: str, body: object) -> tuple[int, dict, dict]:
    """POST a JSON body: (HTTP status, answer, response headers), error statuses included."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read()), dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


def get_json(url: str) -> tuple[int, dict]:
    """GET a JSON answer: (HTTP status, answer), error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_rest_port_serves_v2_and_refuses_tf_serving_without_tensorflow(
    lite_python: str, model_repo: Path, digits: np.ndarray
) -> None:
    """--http-port without TensorFlow: v2 REST classifies (answers equal digits.v1's on the gRPC port),
    TF Serving's REST routes answer 501 naming the extra to install, and TensorFlow is still not loaded."""
    server = start_server(model_repo, "--poll-seconds", "0", "--http-port", "0", python=lite_python)
    images = digits[:5]
    body = {"inputs": [{"name": "images", "datatype": "UINT8", "shape": [len(images), 28, 28], "data": images.tolist()}]}
    try:
        v2_status, v2, _ = post_json(f"{server.http_url}/v2/models/lstm/infer", body)
        with grpc.insecure_channel(server.target) as channel:
            batch = pb_grpc.DigitClassifierStub(channel).ClassifyBatch(pb.ClassifyBatchRequest(
                model_spec=pb.ModelSpec(name="lstm"), images=[pb.Image(pixels=i.tobytes()) for i in images]), timeout=60)
        predict_status, predict, predict_headers = post_json(
            f"{server.http_url}/v1/models/lstm:predict", {"instances": images.tolist()})
        status_status, status = get_json(f"{server.http_url}/v1/models/lstm")
        mapped = tensorflow_files_mapped(server)
    finally:
        assert server.stop() == 0, server.log()
    assert v2_status == 200 and v2["model_name"] == "lstm", v2
    outputs = {o["name"]: o["data"] for o in v2["outputs"]}
    np.testing.assert_allclose(np.reshape(outputs["probabilities"], (-1, 10)),
                               [p.probabilities for p in batch.predictions], atol=TOLERANCE, rtol=0)
    assert outputs["digit"] == [p.digit for p in batch.predictions]
    for code, answer in ((predict_status, predict), (status_status, status)):
        assert code == 501, answer
        assert "TensorFlow is not installed" in answer["error"], answer
        assert "pip install 'digits-server[tensorflow]'" in answer["error"], answer
    kind = {k.lower(): v for k, v in predict_headers.items()}.get("digits-error")
    assert kind == "NotSupported", predict_headers  # the error's kind, as every REST error names it
    assert mapped == []
    assert "Traceback" not in server.log()
