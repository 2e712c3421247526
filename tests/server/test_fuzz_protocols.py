"""Fuzzing the ecosystem protocols on a real server: Open Inference Protocol v2 ModelInfer and
TensorFlow Serving Predict with every element type, shapes that do and do not match their
contents, raw and typed contents, NaN/inf, odd model names and versions. Every call ends in a
documented code with a message, never INTERNAL/UNKNOWN; the server keeps serving."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digits_server.apis import inference_v2_pb2 as v2
from digits_server.apis import inference_v2_pb2_grpc as v2_grpc
from tests.fuzzing import DOCUMENTED_CODES
from tests.serverproc import ServerProcess, start_server

ROUND_TRIPS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LARGE = settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CODES = DOCUMENTED_CODES | {grpc.StatusCode.UNIMPLEMENTED}  # e.g. an input kind a protocol does not take

DATATYPES = ["UINT8", "FP32", "FP64", "FP16", "INT8", "INT32", "INT64", "UINT32", "BYTES", "BOOL", "", "NOPE"]
DIMENSIONS = st.sampled_from([-1, 0, 1, 2, 28, 784, 2**31, 2**62])
MODEL_NAMES = st.sampled_from(["lstm", "gru", "rnn", "", "nope", "LSTM", "x" * 300])
VERSIONS = st.sampled_from(["", "1", "2", "0", "-1", "one", "99999999999999999999", " 1"])
FLOATS = st.one_of(st.floats(0, 1, width=32), st.sampled_from([math.nan, math.inf, -math.inf, 2.0, -0.5]))


@pytest.fixture(scope="module")
def server(model_repo: Path) -> Iterator[ServerProcess]:
    proc = start_server(model_repo, "--max-batch-images", "8")
    yield proc
    assert proc.stop() == 0, proc.log()
    assert "Traceback" not in proc.log(), proc.log()


@pytest.fixture(scope="module")
def channel(server: ServerProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.target) as ch:
        yield ch


@st.composite
def contents(draw: st.DrawFn) -> v2.InferTensorContents:
    """Typed contents of any kind, usually of a plausible length."""
    count = draw(st.sampled_from([0, 1, 783, 784, 785, 1568]))
    kind = draw(st.sampled_from(["uint", "fp32", "fp64", "int", "int64", "bytes", "bool"]))
    if kind == "fp32":
        return v2.InferTensorContents(fp32_contents=[draw(FLOATS)] * count)
    if kind == "fp64":
        return v2.InferTensorContents(fp64_contents=[draw(FLOATS)] * count)
    if kind == "bytes":
        return v2.InferTensorContents(bytes_contents=[draw(st.binary(max_size=64))] * min(count, 3))
    if kind == "bool":
        return v2.InferTensorContents(bool_contents=[True] * count)
    value = draw(st.integers(min_value=-300, max_value=300))
    field = {"uint": "uint_contents", "int": "int_contents", "int64": "int64_contents"}[kind]
    return v2.InferTensorContents(**{field: [abs(value) if kind == "uint" else value] * count})


@st.composite
def infer_requests(draw: st.DrawFn) -> v2.ModelInferRequest:
    """A ModelInferRequest with 0-2 inputs of any type and shape, raw or typed contents."""
    request = v2.ModelInferRequest(model_name=draw(MODEL_NAMES), model_version=draw(VERSIONS), id=draw(st.text(max_size=8)))
    raw = draw(st.booleans())
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        tensor = request.inputs.add(
            name=draw(st.sampled_from(["images", "input", ""])),
            datatype=draw(st.sampled_from(DATATYPES)),
            shape=draw(st.lists(DIMENSIONS, max_size=4)),
        )
        if raw:
            size = draw(st.sampled_from([0, 3, 784, 784 * 4, 1568]))
            request.raw_input_contents.append(bytes(draw(st.binary(min_size=1, max_size=8))) * (size // 8 + 1))
        else:
            tensor.contents.CopyFrom(draw(contents()))
    for name in draw(st.lists(st.sampled_from(["probabilities", "digit", "nope"]), max_size=2)):
        request.outputs.add(name=name)
    return request


def call(channel: grpc.Channel, method: str, request) -> tuple[grpc.StatusCode, str]:
    try:
        channel.unary_unary(method)(request.SerializeToString(), timeout=60)
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def check(code: grpc.StatusCode, details: str) -> None:
    assert code in CODES, (code, details)
    assert "Traceback" not in details and "Unexpected <class" not in details, details
    if code != grpc.StatusCode.OK:
        assert details, code


@ROUND_TRIPS
@given(infer_requests())
def test_random_v2_infer_requests(channel: grpc.Channel, request: v2.ModelInferRequest) -> None:
    check(*call(channel, "/inference.GRPCInferenceService/ModelInfer", request))


def predict_request(draw: st.DrawFn):
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    from digits_server.apis import tensorflow_serving_pb2 as tfs

    request = tfs.PredictRequest()
    request.model_spec.name = draw(MODEL_NAMES)
    if draw(st.booleans()):
        request.model_spec.version.value = draw(st.sampled_from([0, 1, 2, -1, 2**62]))
    request.model_spec.signature_name = draw(st.sampled_from(["", "serving_default", "predict", "nope"]))
    for name in draw(st.lists(st.sampled_from(["images", "x", ""]), max_size=2, unique=True)):
        dims = draw(st.lists(DIMENSIONS, max_size=4))
        tensor = tensor_pb2.TensorProto(
            dtype=draw(st.sampled_from(sorted(types_pb2.DataType.values()))),
            tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]),
        )
        filler = draw(st.sampled_from(["content", "float_val", "int_val", "string_val", "none"]))
        count = draw(st.sampled_from([1, 784, 785]))
        if filler == "content":
            tensor.tensor_content = draw(st.binary(min_size=1, max_size=8)) * (count // 8 + 1)
        elif filler == "float_val":
            tensor.float_val.extend([draw(FLOATS)] * count)
        elif filler == "int_val":
            tensor.int_val.extend([draw(st.integers(-300, 300))] * count)
        elif filler == "string_val":
            tensor.string_val.append(draw(st.binary(max_size=64)))
        request.inputs[name].CopyFrom(tensor)
    request.output_filter.extend(draw(st.lists(st.sampled_from(["probabilities", "classes", "nope"]), max_size=2)))
    return request


@ROUND_TRIPS
@given(st.data())
def test_random_tf_serving_predict_requests(channel: grpc.Channel, data: st.DataObject) -> None:
    request = predict_request(data.draw)
    check(*call(channel, "/tensorflow.serving.PredictionService/Predict", request))


def test_valid_requests_still_work_after_the_fuzzing(channel: grpc.Channel, tiny_npz: Path) -> None:
    with np.load(tiny_npz) as data:
        images = data["x_test"][:2]
    request = v2.ModelInferRequest(model_name="lstm")
    request.inputs.add(name="images", datatype="UINT8", shape=[2, 28, 28])
    request.raw_input_contents.append(images.tobytes())
    answer = v2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=60)
    assert answer.model_name == "lstm" and answer.outputs


@pytest.mark.slow
@LARGE
@given(infer_requests())
def test_large_budget_v2_infer_requests(channel: grpc.Channel, request: v2.ModelInferRequest) -> None:
    check(*call(channel, "/inference.GRPCInferenceService/ModelInfer", request))
