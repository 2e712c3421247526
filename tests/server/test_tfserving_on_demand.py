"""TF Serving's API in a server that started without TensorFlow (every version on LiteRT, TensorFlow
installed): TensorFlow is not loaded until the first TF Serving call, which then gets its answer;
a first call whose bytes do not parse gets INVALID_ARGUMENT, like on a server that started with it.
The REST port's TF Serving routes do the same on their first REST call."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest

from tests.modelrepo import private_repo
from tests.serverproc import ServerProcess, start_server


def tensorflow_mapped(server: ServerProcess) -> bool:
    maps = Path(f"/proc/{server.process.pid}/maps").read_text()
    return "/tensorflow/" in maps or "libtensorflow" in maps


@pytest.fixture()
def lite_server(model_repo: Path, tmp_path: Path):
    server = start_server(private_repo(model_repo, tmp_path / "models", ("gru",)), "--poll-seconds", "0",
                          "--http-port", "0")
    yield server
    assert server.stop() == 0, server.log()


def test_the_first_tf_serving_call_loads_tensorflow_and_is_answered(lite_server: ServerProcess,
                                                                     test_digit: np.ndarray) -> None:
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    from digits_server.apis import tensorflow_serving_pb2 as tfs
    from digits_server.apis import tensorflow_serving_pb2_grpc as tfs_grpc

    assert not tensorflow_mapped(lite_server)  # auto, every version with its LiteRT twin
    tensor = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_UINT8, tensor_content=test_digit.tobytes(),
        tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s)
                                                            for s in (1, 28, 28)]))
    request = tfs.PredictRequest(model_spec=tfs.ModelSpec(name="gru"), inputs={"images": tensor})
    with grpc.insecure_channel(lite_server.target) as channel:
        stub = tfs_grpc.PredictionServiceStub(channel)
        first, second = stub.Predict(request, timeout=120), stub.Predict(request, timeout=30)
        status = tfs_grpc.ModelServiceStub(channel).GetModelStatus(
            tfs.GetModelStatusRequest(model_spec=tfs.ModelSpec(name="gru")), timeout=30)
    assert tensorflow_mapped(lite_server)
    probabilities = np.frombuffer(first.outputs["probabilities"].tensor_content, dtype=np.float32)
    assert probabilities.shape == (10,) and abs(probabilities.sum() - 1) < 1e-5
    assert second.outputs["probabilities"].tensor_content == first.outputs["probabilities"].tensor_content
    assert [s.state for s in status.model_version_status] == [tfs.ModelVersionStatus.AVAILABLE]


def test_a_first_tf_serving_call_that_does_not_parse_gets_invalid_argument(lite_server: ServerProcess) -> None:
    with grpc.insecure_channel(lite_server.target) as channel:
        predict = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
        with pytest.raises(grpc.RpcError) as refused:
            predict(b"\xff\xff\xff", timeout=120)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not valid protobuf" in refused.value.details()
    assert "Traceback" not in lite_server.log()


def post_json(url: str, body: object) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as answer:
        assert answer.status == 200
        return json.loads(answer.read())


def test_the_first_tf_serving_rest_call_loads_tensorflow_and_is_answered(lite_server: ServerProcess,
                                                                          test_digit: np.ndarray) -> None:
    v2 = post_json(f"{lite_server.http_url}/v2/models/gru/infer", {"inputs": [
        {"name": "images", "datatype": "UINT8", "shape": [1, 28, 28], "data": test_digit.tolist()}]})
    assert not tensorflow_mapped(lite_server)  # v2 REST needs no TensorFlow
    url = f"{lite_server.http_url}/v1/models/gru:predict"
    first, second = post_json(url, {"instances": [test_digit.tolist()]}), post_json(url, {"instances": [test_digit.tolist()]})
    with urllib.request.urlopen(f"{lite_server.http_url}/v1/models/gru", timeout=30) as answer:
        status = json.loads(answer.read())
    assert tensorflow_mapped(lite_server)
    outputs = {o["name"]: o["data"] for o in v2["outputs"]}
    (prediction,) = first["predictions"]
    assert prediction["digit"] == outputs["digit"][0]
    np.testing.assert_allclose(prediction["probabilities"], outputs["probabilities"], atol=1e-6, rtol=0)
    assert second == first
    assert [v["state"] for v in status["model_version_status"]] == ["AVAILABLE"]
    assert "Traceback" not in lite_server.log()
