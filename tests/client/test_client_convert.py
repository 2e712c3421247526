"""Conversion between Python values and digits.v1 messages (no server needed)."""

from __future__ import annotations

import io

import grpc
import numpy as np
import pytest

from digits import convert, results
from digits.errors import InvalidInputError
from digits.v1 import digits_pb2


# -- model selectors ------------------------------------------------------------------
@pytest.mark.parametrize(
    "selector, expected",
    [("lstm", ("lstm", None, "")), ("lstm:3", ("lstm", 3, "")), ("gru@canary", ("gru", None, "canary")),
     ("rnn@stable:x", ("rnn", None, "stable:x"))],
)
def test_parse_model(selector, expected):
    assert convert.parse_model(selector) == expected


@pytest.mark.parametrize("selector", ["lstm:", "lstm:x", "lstm:-1", "lstm@", "lstm:1.5"])
def test_parse_model_rejects(selector):
    with pytest.raises(InvalidInputError) as info:
        convert.parse_model(selector)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert selector in info.value.details


def test_model_spec_fields():
    spec = convert.model_spec("lstm:3")
    assert (spec.name, spec.HasField("version"), spec.version, spec.version_label) == ("lstm", True, 3, "")
    spec = convert.model_spec("lstm@canary")
    assert (spec.name, spec.HasField("version"), spec.version_label) == ("lstm", False, "canary")
    spec = convert.model_spec("gru", version=0)
    assert spec.HasField("version") and spec.version == 0
    spec = convert.model_spec(None)
    assert spec == digits_pb2.ModelSpec()
    spec = convert.model_spec(experiment="cells", routing_key="user-1")
    assert (spec.name, spec.experiment, spec.routing_key) == ("", "cells", "user-1")
    spec = convert.model_spec("lstm", version_label="stable")
    assert spec.version_label == "stable"


@pytest.mark.parametrize(
    "kwargs",
    [dict(model="lstm:3", version=4), dict(model="lstm@a", version_label="b"),
     dict(model="lstm", version=1, version_label="a"), dict(model="lstm", experiment="cells")],
)
def test_model_spec_conflicts(kwargs):
    with pytest.raises(InvalidInputError):
        convert.model_spec(**kwargs)


# -- images ---------------------------------------------------------------------------
def test_uint8_array_becomes_pixels():
    image = np.arange(784, dtype=np.uint16).reshape(28, 28) % 256
    message = convert.image_to_proto(image.astype(np.uint8))
    assert message.WhichOneof("data") == "pixels"
    assert message.pixels == bytes(range(256)) * 3 + bytes(range(16))


def test_non_contiguous_array_is_row_major():
    image = np.arange(784, dtype=np.uint16).reshape(28, 28) % 251
    image = np.asfortranarray(image.astype(np.uint8))
    assert convert.image_to_proto(image).pixels == np.ascontiguousarray(image).tobytes()
    transposed = image.T
    assert convert.image_to_proto(transposed).pixels == np.ascontiguousarray(transposed).tobytes()


def test_int_array_in_range_becomes_pixels_and_out_of_range_fails():
    image = np.full((28, 28), 200, dtype=np.int64)
    assert convert.image_to_proto(image).pixels == bytes([200]) * 784
    with pytest.raises(InvalidInputError, match="0..255"):
        convert.image_to_proto(np.full((28, 28), 256, dtype=np.int64))
    with pytest.raises(InvalidInputError, match="0..255"):
        convert.image_to_proto(np.full((28, 28), -1, dtype=np.int32))


def test_float_array_becomes_float_pixels():
    image = np.linspace(0, 1, 784, dtype=np.float64).reshape(28, 28)
    message = convert.image_to_proto(image)
    assert message.WhichOneof("data") == "float_pixels"
    assert len(message.float_pixels.values) == 784
    np.testing.assert_allclose(message.float_pixels.values, image.reshape(-1).astype(np.float32))


def test_flat_784_vector_and_nested_lists_accepted():
    assert convert.image_to_proto(np.zeros(784, np.uint8)).pixels == bytes(784)
    assert convert.image_to_proto([[0.5] * 28] * 28).WhichOneof("data") == "float_pixels"


@pytest.mark.parametrize("shape", [(27, 28), (28, 28, 3), (783,), (0,)])
def test_wrong_shape_rejected(shape):
    with pytest.raises(InvalidInputError, match="784"):
        convert.image_to_proto(np.zeros(shape, np.uint8))


def test_unsupported_dtype_rejected():
    with pytest.raises(InvalidInputError, match="dtype"):
        convert.image_to_proto(np.zeros((28, 28), dtype=np.complex64))
    with pytest.raises(InvalidInputError):
        convert.image_to_proto(object())


def test_bytes_of_784_are_pixels_other_bytes_encoded():
    assert convert.image_to_proto(bytes(784)).WhichOneof("data") == "pixels"
    assert convert.image_to_proto(bytearray(784)).pixels == bytes(784)
    png_like = b"\x89PNG\r\n\x1a\n" + bytes(100)
    message = convert.image_to_proto(png_like)
    assert message.WhichOneof("data") == "encoded" and message.encoded == png_like
    assert convert.image_to_proto(memoryview(bytes(783))).encoded == bytes(783)


def test_image_message_passes_through():
    message = digits_pb2.Image(encoded=b"x")
    assert convert.image_to_proto(message) is message


def test_files_npy_and_encoded(tmp_path):
    digit = (np.arange(784) % 256).astype(np.uint8).reshape(28, 28)
    np.save(tmp_path / "seven.npy", digit)
    assert convert.image_to_proto(tmp_path / "seven.npy").pixels == digit.tobytes()
    assert convert.image_to_proto(str(tmp_path / "seven.npy")).pixels == digit.tobytes()
    (tmp_path / "d.PNG").write_bytes(b"not really a png")
    assert convert.image_to_proto(tmp_path / "d.PNG").encoded == b"not really a png"


def test_files_rejected(tmp_path):
    np.save(tmp_path / "big.npy", np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(InvalidInputError, match="big.npy"):
        convert.image_to_proto(tmp_path / "big.npy")
    np.savez(tmp_path / "set.npz", x_test=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(InvalidInputError, match="npz"):
        convert.image_to_proto(tmp_path / "set.npz")
    with pytest.raises(FileNotFoundError):
        convert.image_to_proto(tmp_path / "missing.png")


def test_real_png_is_sent_unchanged(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    buffer = io.BytesIO()
    pil.new("L", (64, 64), 255).save(buffer, format="PNG")
    (tmp_path / "x.png").write_bytes(buffer.getvalue())
    assert convert.image_to_proto(tmp_path / "x.png").encoded == buffer.getvalue()


# -- requests -------------------------------------------------------------------------
def test_classify_request():
    spec = convert.model_spec("lstm:2")
    request = convert.classify_request(bytes(784), spec, true_label=7, request_id="r1")
    assert request.HasField("true_label") and request.true_label == 7
    assert request.request_id == "r1" and request.model_spec.version == 2
    request = convert.classify_request(bytes(784), spec)
    assert not request.HasField("true_label") and request.request_id == ""
    assert convert.classify_request(bytes(784), spec, true_label=np.int64(0)).true_label == 0


@pytest.mark.parametrize("label", [-1, 10, 3.5, "x"])
def test_classify_request_bad_true_label(label):
    with pytest.raises(InvalidInputError, match="true label"):
        convert.classify_request(bytes(784), digits_pb2.ModelSpec(), true_label=label)


def test_batch_request_from_array_and_labels():
    images = np.zeros((3, 28, 28), np.uint8)
    images[:, 0, 0] = [1, 2, 3]
    request = convert.batch_request(images, digits_pb2.ModelSpec(), true_labels=[4, None, -1], request_id="b")
    assert [img.pixels[0] for img in request.images] == [1, 2, 3]
    assert list(request.true_labels) == [4, -1, -1]
    assert request.request_id == "b"
    flat = convert.batch_request(images.reshape(3, 784), digits_pb2.ModelSpec())
    assert len(flat.images) == 3 and list(flat.true_labels) == []


def test_batch_request_errors():
    with pytest.raises(InvalidInputError, match="true_labels.*2 labels for 3 images"):
        convert.batch_request(np.zeros((3, 28, 28), np.uint8), digits_pb2.ModelSpec(), true_labels=[1, 2])
    with pytest.raises(InvalidInputError, match="one 28x28 image"):
        convert.batch_request(np.zeros((28, 28), np.uint8), digits_pb2.ModelSpec())
    with pytest.raises(InvalidInputError):
        convert.batch_request([bytes(784)], digits_pb2.ModelSpec(), true_labels=[11])


def test_feedback_request():
    request = convert.feedback_request("abc", 7, index=2)
    assert (request.request_id, request.true_label, request.index) == ("abc", 7, 2)
    for bad in (("", 1, 0), ("a", 10, 0), ("a", 1, -1)):
        with pytest.raises(InvalidInputError):
            convert.feedback_request(*bad)


def test_experiment_building():
    experiment = convert.experiment_to_proto(
        "cells", [("lstm@stable", 0.7), ("b", "gru:2", 0.3), {"model": "rnn", "weight": 1}],
        shadow_percent=10, paused=True,
    )
    assert experiment.name == "cells" and experiment.shadow_percent == 10 and experiment.paused
    names = [(a.name, a.model.name, a.model.version_label, a.weight) for a in experiment.arms]
    assert names == [("lstm", "lstm", "stable", 0.7), ("b", "gru", "", 0.3), ("rnn", "rnn", "", 1.0)]
    assert experiment.arms[1].model.version == 2
    with pytest.raises(InvalidInputError):
        convert.experiment_to_proto("x", [("lstm",)])
    with pytest.raises(InvalidInputError):
        convert.experiment_to_proto("x", [("", 1.0)])
    with pytest.raises(InvalidInputError):
        convert.experiment_to_proto("x", [], shadow_percent=101)
    message = digits_pb2.Experiment(name="y")
    assert convert.experiment_to_proto(message) is message


# -- results --------------------------------------------------------------------------
def test_classify_result_from_response():
    response = digits_pb2.ClassifyResponse(
        digit=3, probabilities=[0.0, 0.1, 0.05, 0.8, 0.05, 0, 0, 0, 0, 0], request_id="r",
        served_by=digits_pb2.ServedBy(model="gru", version=4, experiment="e", arm="b"),
    )
    result = results.classify_result(response)
    assert (result.digit, result.model, result.version, result.experiment, result.arm, result.request_id) == (
        3, "gru", 4, "e", "b", "r")
    assert isinstance(result.probabilities, tuple) and len(result.probabilities) == 10
    assert result.confidence == pytest.approx(0.8)


def test_batch_result_and_model_info():
    response = digits_pb2.ClassifyBatchResponse(
        predictions=[digits_pb2.Prediction(digit=d, probabilities=[0.1] * 10) for d in (5, 1)],
        served_by=digits_pb2.ServedBy(model="rnn", version=1), request_id="q",
    )
    batch = results.batch_result(response)
    assert batch.digits == [5, 1] and len(batch) == 2 and (batch.model, batch.version) == ("rnn", 1)
    status = digits_pb2.ModelStatus(name="lstm", is_default=True, versions=[
        digits_pb2.ModelVersionStatus(version=2, state=digits_pb2.MODEL_STATE_AVAILABLE, labels=["stable"],
                                      info=digits_pb2.ModelInfo(cell="lstm", test_accuracy=0.5, parameters=9)),
        digits_pb2.ModelVersionStatus(version=1, state=digits_pb2.MODEL_STATE_FAILED, error="boom"),
    ])
    info = results.model_info(status)
    assert info.name == "lstm" and info.is_default
    assert [(v.version, v.state) for v in info.versions] == [(2, "AVAILABLE"), (1, "FAILED")]
    assert info.versions[0].labels == ("stable",) and info.versions[0].test_accuracy == 0.5
    assert info.versions[1].error == "boom" and [v.version for v in info.available_versions] == [2]
    assert info.version(1) is info.versions[1] and info.version(9) is None


def test_state_names():
    assert results.state_name(digits_pb2.MODEL_STATE_LOADING) == "LOADING"
    assert results.state_name(digits_pb2.MODEL_STATE_UNSPECIFIED) == "UNSPECIFIED"
    assert results.state_name(42) == "STATE_42"
