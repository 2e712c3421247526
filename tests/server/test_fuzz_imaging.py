"""Property tests of the image decoder (imaging.py): any bytes — random, or a valid PNG/JPEG/
GIF/BMP/WebP truncated or with bytes flipped — and the hand-made hostile files either decode to
uint8 [28,28] or raise InvalidInput naming the field. Never another exception."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digits import imaging as mnist_imaging
from digits_server.core import imaging
from digits_server.core.errors import InvalidInput
from tests.fuzzing import VALID_FORMATS, HostileImage, hostile_images, valid_files

QUICK = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LARGE = settings(max_examples=4000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEEDS = valid_files()


def decode(data: bytes) -> np.ndarray | None:
    """The decoder's answer: the pixels, or None for a clean InvalidInput."""
    try:
        pixels = imaging.from_encoded(data, "image.encoded")
    except InvalidInput as error:
        assert str(error).startswith("image.encoded"), error
        return None
    assert pixels.dtype == np.uint8 and pixels.shape == (28, 28)
    return pixels


@st.composite
def mutated_files(draw: st.DrawFn) -> bytes:
    """A valid image file, truncated and/or with a few bytes overwritten."""
    data = bytearray(SEEDS[draw(st.sampled_from(VALID_FORMATS))])
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        data[draw(st.integers(min_value=0, max_value=len(data) - 1))] = draw(st.integers(min_value=0, max_value=255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(min_value=0, max_value=len(data)))]
    return bytes(data)


@QUICK
@given(st.binary(max_size=2048))
def test_random_bytes_decode_cleanly(data: bytes) -> None:
    decode(data)


@QUICK
@given(mutated_files())
def test_mutated_image_files_decode_cleanly(data: bytes) -> None:
    decode(data)


@pytest.mark.parametrize("case", hostile_images(), ids=lambda case: case.name)
def test_hostile_image_files(case: HostileImage) -> None:
    pixels = decode(case.build())
    if case.outcome == "invalid":
        assert pixels is None, case.name
    if case.outcome == "ok":
        assert pixels is not None and pixels.max() > 0, case.name


def client_decode(data: bytes) -> None:
    """The client's decoder (digits classify --show) raises only its documented ImageError."""
    try:
        pixels = mnist_imaging.preprocess(data, max_pixels=4096 * 4096)
    except mnist_imaging.ImageError as error:
        assert str(error), error
        return
    assert pixels.dtype == np.uint8 and pixels.shape == (28, 28)


@QUICK
@given(mutated_files())
def test_client_decoder_on_mutated_files(data: bytes) -> None:
    client_decode(data)


@pytest.mark.parametrize("case", hostile_images(), ids=lambda case: case.name)
def test_client_decoder_on_hostile_files(case: HostileImage) -> None:
    client_decode(case.build())


@pytest.mark.parametrize(
    "data, length",
    [(b"", 0), (bytes(783), 783), (bytes(785), 785)],
)
def test_raw_pixel_lengths(data: bytes, length: int) -> None:
    with pytest.raises(InvalidInput, match=f"expected 784 bytes .* got {length}"):
        imaging.from_pixels(data, "image.pixels")


@pytest.mark.slow
@LARGE
@given(mutated_files())
def test_large_budget_mutated_image_files(data: bytes) -> None:
    decode(data)


@pytest.mark.slow
@LARGE
@given(st.binary(max_size=8192))
def test_large_budget_random_bytes(data: bytes) -> None:
    decode(data)
