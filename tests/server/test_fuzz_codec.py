"""Property tests of request validation (codec.py): any request either converts to valid domain
values or raises InvalidInput naming a field — never another exception. A large-budget variant
of each property is marked slow."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digits.v1 import digits_pb2 as pb
from digits_server.core.domain import ModelSelector
from digits_server.core.errors import InvalidInput
from digits_server.transport import codec
from tests.fuzzing import batch_requests, classify_requests, images, model_specs

FIELDS = ("model_spec", "image", "images", "true_label", "request_id")
QUICK = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LARGE = settings(max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_selector(spec: pb.ModelSpec) -> None:
    try:
        chosen = codec.selector(spec)
    except InvalidInput as error:
        assert str(error).startswith("model_spec"), error
        return
    assert isinstance(chosen, ModelSelector)
    assert chosen.version is None or chosen.version > 0
    assert not (chosen.version is not None and chosen.version_label)
    assert not (chosen.experiment and (chosen.name or chosen.version is not None or chosen.version_label))
    assert max(len(chosen.name), len(chosen.version_label), len(chosen.experiment)) <= codec.MAX_TEXT_CHARS


def check_image(image: pb.Image) -> None:
    try:
        pixels = codec.image(image, "image")
    except InvalidInput as error:
        assert str(error).startswith("image"), error
        return
    assert pixels.dtype == np.uint8 and pixels.shape == (28, 28)


def check_classify_request(request: pb.ClassifyRequest) -> None:
    """What the Classify servicer does before the model runs."""
    try:
        codec.selector(request.model_spec)
        codec.short_text(request.request_id, "request_id")
        pixels = codec.image(request.image, "image")
        label = codec.true_label(request)
    except InvalidInput as error:
        assert str(error).startswith(FIELDS), error
        return
    assert pixels.shape == (28, 28) and (label is None or 0 <= label <= 9)


def check_batch_request(request: pb.ClassifyBatchRequest, limit: int = 4) -> None:
    """What the ClassifyBatch servicer does before the model runs."""
    try:
        codec.selector(request.model_spec)
        pixels = codec.images(request.images, "images", limit)
        labels = codec.true_labels(request.true_labels, len(pixels))
    except InvalidInput as error:
        assert str(error).startswith(FIELDS + ("true_labels",)), error
        return
    assert pixels.dtype == np.uint8 and pixels.shape == (len(request.images), 28, 28)
    assert 1 <= len(pixels) <= limit and len(labels) == len(pixels)
    assert all(label is None or 0 <= label <= 9 for label in labels)


@QUICK
@given(model_specs())
def test_any_selector_is_valid_or_invalid_argument(spec: pb.ModelSpec) -> None:
    check_selector(spec)


@QUICK
@given(images())
def test_any_image_is_28x28_uint8_or_invalid_argument(image: pb.Image) -> None:
    check_image(image)


@QUICK
@given(classify_requests())
def test_any_classify_request_validates_cleanly(request: pb.ClassifyRequest) -> None:
    check_classify_request(request)


@QUICK
@given(batch_requests())
def test_any_batch_request_validates_cleanly(request: pb.ClassifyBatchRequest) -> None:
    check_batch_request(request)


@QUICK
@given(st.binary(max_size=4096))
def test_any_bytes_parse_as_a_request_or_not_at_all(data: bytes) -> None:
    """What gRPC hands the servicer is whatever protobuf made of the wire bytes."""
    try:
        request = pb.ClassifyRequest.FromString(data)
    except Exception as error:  # the DecodeError gRPC turns into INTERNAL before our code runs
        assert type(error).__name__ == "DecodeError"
        return
    check_classify_request(request)


@pytest.mark.parametrize(
    "spec, message",
    [
        (pb.ModelSpec(version=0), "model_spec.version: must be a positive integer"),
        (pb.ModelSpec(version=-(2**63)), "model_spec.version: must be a positive integer"),
        (pb.ModelSpec(version=3, version_label="stable"), "set version or version_label, not both"),
        (pb.ModelSpec(name="lstm", experiment="ab"), "an experiment chooses the model"),
        (pb.ModelSpec(name="x" * 20_000), "model_spec.name: 20000 characters is more than the limit"),
        (pb.ModelSpec(routing_key="k" * 257), "model_spec.routing_key: 257 characters"),
    ],
)
def test_selector_errors_name_the_field(spec: pb.ModelSpec, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        codec.selector(spec)


@pytest.mark.parametrize(
    "values, message",
    [
        ([float("nan")] * 784, "finite"),
        ([float("inf")] + [0.0] * 783, "finite"),
        ([1.0000001] + [0.0] * 783, r"\[0, 1\]"),
        ([-1e-30] + [0.0] * 783, r"\[0, 1\]"),
        ([0.5] * 783, "784 float values"),
        ([], "784 float values"),
    ],
)
def test_float_pixel_errors(values: list[float], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        codec.image(pb.Image(float_pixels=pb.FloatPixels(values=values)), "image")


def test_minus_zero_and_exact_bounds_are_accepted() -> None:
    values = [-0.0, 1.0] + [0.0] * 782
    assert codec.image(pb.Image(float_pixels=pb.FloatPixels(values=values)), "image")[0, 1] == 255


@pytest.mark.slow
@LARGE
@given(classify_requests())
def test_large_budget_classify_requests(request: pb.ClassifyRequest) -> None:
    check_classify_request(request)


@pytest.mark.slow
@LARGE
@given(batch_requests(max_images=10))
def test_large_budget_batch_requests(request: pb.ClassifyBatchRequest) -> None:
    check_batch_request(request, limit=8)
