"""The protocol codecs in process: edge cases of tensor decoding that the real clients never send."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from google.protobuf import wrappers_pb2

from digits_server.apis import inference_v2_pb2 as v2
from digits_server.apis import tensorflow_serving_pb2 as tfs
from digits_server.core import imaging
from digits_server.core.domain import BatchOutcome, ModelSelector, ServedBy
from digits_server.core.errors import InvalidInput
from digits_server.protocols import kserve_v2_codec, kserve_v2_requests, naming, tensors, tfserving_codec
from tests.ecosystem.ours import png_files

LIMIT = 16
MODELS = ("rnn", "lstm", "gru")


def digits(count: int = 2) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(count, 28, 28), dtype=np.uint8)


def outcome(count: int = 2) -> BatchOutcome:
    probabilities = np.random.default_rng(1).dirichlet(np.ones(10), size=count).astype(np.float32)
    return BatchOutcome(probabilities.argmax(axis=1), probabilities, ServedBy("lstm", 3), "id-1")


@pytest.mark.parametrize(
    ("name", "version", "want"),
    [
        ("lstm", "", ModelSelector("lstm")),
        ("lstm", "3", ModelSelector("lstm", 3)),
        ("lstm", "stable", ModelSelector("lstm", None, "stable")),
        ("", "", ModelSelector("")),
        ("canary-test", "", ModelSelector(experiment="canary-test")),
        ("typo", "2", ModelSelector("typo", 2)),  # a version means a model: NOT_FOUND later, not an experiment
    ],
)
def test_v2_names_and_versions(name: str, version: str, want: ModelSelector) -> None:
    assert kserve_v2_codec.selector(name, version, MODELS) == want


@pytest.mark.parametrize("version", ["0", "-1"])
def test_v2_version_must_be_positive(version: str) -> None:
    with pytest.raises(InvalidInput, match="model_version"):
        kserve_v2_codec.selector("lstm", version, MODELS)


def test_no_experiment_reading_where_it_makes_no_sense() -> None:
    assert naming.selector("typo", None, "", MODELS, experiments=False) == ModelSelector("typo")


@pytest.mark.parametrize("raw", [True, False])
@pytest.mark.parametrize("kind", ["uint8", "float32", "encoded"])
def test_v2_requests_round_trip_through_the_codec(kind: str, raw: bool) -> None:
    images = digits(3)
    given: "np.ndarray | list[bytes]" = images
    want = images
    if kind == "float32":
        given = (images / 255.0).astype(np.float32)
    if kind == "encoded":
        given = png_files(images)
        want = np.stack([imaging.from_encoded(data, "file") for data in given])  # the server's own decoding
    decoded, was_raw = kserve_v2_codec.images(kserve_v2_requests.infer_request("lstm", given, raw=raw), LIMIT)
    assert was_raw is raw
    np.testing.assert_array_equal(decoded, want)


def test_v2_bytes_accepts_n_by_1_and_honours_the_file_limits() -> None:
    request = kserve_v2_requests.infer_request("lstm", png_files(digits(2)), raw=False)
    request.inputs[0].shape[:] = [2, 1]
    assert kserve_v2_codec.images(request, LIMIT)[0].shape == (2, 28, 28)
    with pytest.raises(InvalidInput, match=r"inputs\[0\]\[0\]: \d+ bytes is more than the limit of 10"):
        kserve_v2_codec.images(request, LIMIT, imaging.ImageLimits(max_bytes=10))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x05\x00\x00", "truncated BYTES element length at offset 0"),
        (b"\x05\x00\x00\x00abc", "claims 5 bytes, 3 remain"),
    ],
)
def test_v2_raw_bytes_must_be_length_prefixed(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        kserve_v2_codec.split_bytes(raw, "raw_input_contents[0]")
    assert kserve_v2_codec.split_bytes(kserve_v2_codec.join_bytes([b"", b"xyz"]), "f") == [b"", b"xyz"]


def test_v2_fp32_raw_must_be_whole_floats() -> None:
    request = kserve_v2_requests.infer_request("lstm", (digits(1) / 255.0).astype(np.float32))
    request.raw_input_contents[0] = request.raw_input_contents[0][:-1]
    with pytest.raises(InvalidInput, match="not a whole number of FP32 elements"):
        kserve_v2_codec.images(request, LIMIT)


def test_v2_contents_and_raw_are_exclusive() -> None:
    request = kserve_v2_requests.infer_request("lstm", digits(1))
    request.inputs[0].contents.uint_contents.append(1)
    with pytest.raises(InvalidInput, match="contents or raw_input_contents, not both"):
        kserve_v2_codec.images(request, LIMIT)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.inputs.add(name="images"), "exactly one input"),
        (lambda r: r.raw_input_contents.append(b""), "one entry"),
        (lambda r: r.inputs[0].shape.__setitem__(0, 3), "holds 2352 elements but 1568 were sent"),
        (lambda r: r.inputs[0].shape.__setitem__(0, -2), "must be >= 0"),
        (lambda r: r.inputs[0].shape.__setitem__(slice(None), [0, 28, 28]), "no images"),
    ],
)
def test_v2_malformed_inputs(change, message: str) -> None:
    request = kserve_v2_requests.infer_request("lstm", digits(2))
    change(request)
    if len(request.raw_input_contents) == 1 and request.inputs[0].shape[0] == 0:
        request.raw_input_contents[0] = b""
    with pytest.raises(InvalidInput, match=message):
        kserve_v2_codec.images(request, LIMIT)


def test_batch_limit_and_float_range() -> None:
    with pytest.raises(InvalidInput, match="17 images is more than the limit of 16"):
        kserve_v2_codec.images(kserve_v2_requests.infer_request("lstm", digits(17)), LIMIT)
    floats = np.full((1, 28, 28), 2.0, dtype=np.float32)
    with pytest.raises(InvalidInput, match=r"inputs\[0\]\[0\]: values must lie in \[0, 1\]"):
        kserve_v2_codec.images(kserve_v2_requests.infer_request("lstm", floats), LIMIT)


@pytest.mark.parametrize("raw", [True, False])
def test_v2_response_round_trip(raw: bool) -> None:
    result = outcome(3)
    response = kserve_v2_codec.infer_response(result, "id-1", ["digit", "probabilities"], raw)
    assert [o.name for o in response.outputs] == ["digit", "probabilities"]
    assert response.model_name == "lstm" and response.model_version == "3" and response.id == "id-1"
    got_digits, got_probabilities = kserve_v2_requests.read_infer_response(response)
    np.testing.assert_array_equal(got_digits, result.digits)
    np.testing.assert_array_equal(got_probabilities, result.probabilities)


def test_v2_response_names_the_experiment() -> None:
    result = BatchOutcome(np.array([1]), np.eye(10, dtype=np.float32)[[1]], ServedBy("gru", 2, "cells", "b"), "x")
    response = kserve_v2_codec.infer_response(result, "x", ["digit"], False)
    assert response.parameters["experiment"].string_param == "cells"
    assert response.parameters["arm"].string_param == "b"


def tf_request_tensor(**fields) -> "tfserving_codec.tensor_pb2.TensorProto":
    shape = fields.pop("shape", [1, 28, 28])
    tensor = tfserving_codec.tensor_pb2.TensorProto(**fields)
    tensor.tensor_shape.dim.extend(tfserving_codec.tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in shape)
    return tensor


def test_tf_typed_values_follow_tensorflow_fill_rule() -> None:
    tensor = tf_request_tensor(dtype=tfserving_codec.types_pb2.DT_UINT8, int_val=[0, 7])
    images, packed = tfserving_codec.images({"images": tensor}, LIMIT)
    assert not packed and images.shape == (1, 28, 28)
    assert images[0, 0, 0] == 0 and np.all(images.ravel()[1:] == 7)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"dtype": 4, "int_val": [256]}, "0..255"),
        ({"dtype": 4, "tensor_content": b"\x00" * 10}, "holds 784 elements but 10 were sent"),
        ({"dtype": 1, "tensor_content": b"\x00" * 7}, "not whole floats"),
        ({"dtype": 9, "int64_val": [1]}, "DT_INT64 is not accepted"),
        ({"dtype": 7, "string_val": [b"x"], "shape": [1, 28]}, "expected [N] or [N,1]"),
    ],
)
def test_tf_malformed_tensors(fields: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("]", r"\]")):
        tfserving_codec.images({"images": tf_request_tensor(**fields)}, LIMIT)


def test_tf_unknown_rank_and_names() -> None:
    tensor = tfserving_codec.tensor_pb2.TensorProto(dtype=4)
    tensor.tensor_shape.unknown_rank = True
    with pytest.raises(InvalidInput, match="must be known"):
        tfserving_codec.images({"images": tensor}, LIMIT)
    with pytest.raises(InvalidInput, match=r"expected exactly the input 'images', got \['images', 'more'\]"):
        tfserving_codec.images({"images": tensor, "more": tensor}, LIMIT)


def test_tf_spec_rules() -> None:
    spec = tfs.ModelSpec(name="gru", version=wrappers_pb2.Int64Value(value=2))
    assert tfserving_codec.selector(spec, MODELS) == ModelSelector("gru", 2)
    assert tfserving_codec.selector(tfs.ModelSpec(name="ab"), MODELS) == ModelSelector(experiment="ab")
    with pytest.raises(InvalidInput, match="model_spec.version: must be a positive integer"):
        tfserving_codec.selector(tfs.ModelSpec(name="gru", version=wrappers_pb2.Int64Value(value=0)), MODELS)


def test_tf_failed_version_is_end_with_an_error() -> None:
    from digits_server.core.manager import VersionSlot

    slot = VersionSlot("gru", 4, Path("gru/4"), state="FAILED", error="ValueError: bad")
    status = tfserving_codec.version_status(slot)
    assert status.state == tfs.ModelVersionStatus.END
    assert status.status.error_code == tfserving_codec.error_codes_pb2.UNKNOWN and "bad" in status.status.error_message


def test_element_count_is_exact_for_huge_shapes() -> None:
    assert tensors.element_count([2**40, 2**40, 28], "x") == 2**80 * 28


def test_file_decoding_runs_in_a_worker_thread() -> None:
    import asyncio
    import threading

    async def where(encoded: bool) -> bool:
        return await imaging.converted(encoded, lambda: threading.current_thread() is threading.main_thread())

    assert asyncio.run(where(False)) is True
    assert asyncio.run(where(True)) is False
