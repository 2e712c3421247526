"""digits.imaging: the MNIST-style preprocessing shared by the server and `digits classify --show`."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digits import imaging
from tests.scans import float_reference, scanned
from tests.serverproc import source_env


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def centre_of_mass(digit: np.ndarray) -> tuple[float, float]:
    rows, cols = np.indices(digit.shape)
    total = digit.astype(float).sum()
    return (rows * digit).sum() / total, (cols * digit).sum() / total


def bar_on_paper(width: int = 300, height: int = 400) -> Image.Image:
    """A dark vertical bar (3x taller than wide) on a light background, off-centre."""
    paper = np.full((height, width), 235, np.uint8)
    paper[40:340, 30:130] = 20
    return Image.fromarray(paper)


def test_dark_ink_on_light_paper_is_inverted_cropped_fitted_and_centred() -> None:
    digit = imaging.preprocess(encode(bar_on_paper()))
    assert digit.shape == (28, 28) and digit.dtype == np.uint8
    assert digit.max() == 255 and digit[0, 0] == 0  # ink bright, background black, like MNIST
    rows = np.flatnonzero(digit.any(axis=1))
    cols = np.flatnonzero(digit.any(axis=0))
    assert len(rows) == 20  # the longer side fits 20 pixels
    assert 6 <= len(cols) <= 8  # aspect ratio kept (300:100 -> 20:~7)
    row, col = centre_of_mass(digit)
    assert abs(row - imaging.CENTRE) <= 0.5 and abs(col - imaging.CENTRE) <= 0.5


def test_light_ink_on_dark_background_is_not_inverted() -> None:
    inverted = Image.fromarray(255 - np.asarray(bar_on_paper()))
    assert (imaging.preprocess(encode(inverted)) == imaging.preprocess(encode(bar_on_paper()))).all()


def test_alpha_is_composited_on_white() -> None:
    rgba = np.zeros((100, 100, 4), np.uint8)  # fully transparent...
    rgba[20:80, 45:55] = (0, 0, 0, 255)  # ...except an opaque black stroke
    digit = imaging.preprocess(encode(Image.fromarray(rgba, "RGBA")))
    assert digit.max() == 255 and np.flatnonzero(digit.any(axis=1)).size == 20
    with pytest.raises(imaging.ImageError, match="blank"):
        imaging.preprocess(encode(Image.fromarray(np.zeros((50, 50, 4), np.uint8), "RGBA")))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"])
def test_every_common_format_and_mode_decodes_to_the_same_digit(fmt: str) -> None:
    reference = imaging.preprocess(encode(bar_on_paper()))
    image = bar_on_paper().convert("RGB" if fmt in ("JPEG", "WEBP") else "P" if fmt == "GIF" else "L")
    digit = imaging.preprocess(encode(image, fmt))
    assert np.abs(digit.astype(int) - reference).mean() < 3


def test_sixteen_bit_grayscale_is_scaled_not_clipped() -> None:
    deep = (np.asarray(bar_on_paper(), np.uint16) * 257).astype(np.uint16)
    digit = imaging.preprocess(encode(Image.fromarray(deep)))  # a 16-bit PNG
    assert np.abs(digit.astype(int) - imaging.preprocess(encode(bar_on_paper()))).mean() < 3


def test_limits_and_undecodable_input_raise_image_error_saying_why() -> None:
    with pytest.raises(imaging.ImageError, match="empty"):
        imaging.preprocess(b"")
    with pytest.raises(imaging.ImageError, match="cannot decode|Pillow can decode"):
        imaging.preprocess(b"GIF89a but not really an image")
    with pytest.raises(imaging.ImageError, match="300x400 is 120000 pixels, more than the limit of 100000"):
        imaging.preprocess(encode(bar_on_paper()), max_pixels=100_000)
    with pytest.raises(imaging.ImageError, match="truncated or corrupt"):
        imaging.preprocess(encode(bar_on_paper())[:400])
    with pytest.raises(imaging.ImageError, match="blank"):
        imaging.preprocess(encode(Image.new("L", (64, 64), 200)))


def test_a_decompression_bomb_is_refused_from_its_header() -> None:
    bomb = encode(Image.new("1", (20_000, 20_000), 1))  # 400 M pixels in a few tens of kilobytes
    assert len(bomb) < 1_000_000
    with pytest.raises(imaging.ImageError, match="more pixels than the limit"):
        imaging.preprocess(bomb)
    bomb = encode(Image.new("1", (8_000, 8_000), 1))  # under Pillow's own cap, over ours
    with pytest.raises(imaging.ImageError, match="8000x8000 is 64000000 pixels, more than the limit"):
        imaging.preprocess(bomb)


def test_classify_show_prints_what_the_model_sees(tmp_path: Path) -> None:
    picture = tmp_path / "bar.png"
    bar_on_paper().save(picture)
    completed = subprocess.run(
        [sys.executable, "-c", "from digits.imageprep import preview_image_file, ascii_art; import sys; "
         "print(ascii_art(preview_image_file(sys.argv[1])))", str(picture)],
        capture_output=True, text=True, env=source_env(), timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert len(lines) == 28 and sum("@" in line for line in lines) == 20


def test_the_uint8_fast_path_gives_the_float_path_s_digit_pixel_for_pixel(mnist_npz: Path) -> None:
    with np.load(mnist_npz) as data:
        digits = data["x_test"][:120]
    rng = np.random.default_rng(14)
    for index, digit in enumerate(digits):
        picture = scanned(digit, rng, size=int(rng.integers(60, 260)), light=index % 3 != 0)
        if index % 4 == 1:
            picture = picture.convert("RGB")
        data = encode(picture)
        np.testing.assert_array_equal(imaging.preprocess(data), float_reference(data), err_msg=f"digit {index}")
        ink = imaging.ink_from_gray(np.asarray(picture.convert("L"), np.float32))
        rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
        cropped = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        np.testing.assert_array_equal(imaging.ink_crop(np.asarray(picture.convert("L"))), cropped)


def test_a_big_jpeg_decoded_at_a_reduced_scale_gives_nearly_the_same_digit(mnist_npz: Path) -> None:
    with np.load(mnist_npz) as data:
        digits = data["x_test"][:10]
    rng = np.random.default_rng(7)
    for digit in digits:  # (less noise: 4 M pixels of sigma 6 hold specks that pass for ink at full scale)
        page = scanned(digit, rng, size=2000, noise=2.0).convert("RGB")
        full = float_reference(encode(page, "PNG"))
        drafted = imaging.preprocess(encode(page, "JPEG", quality=90))  # decoded at 1/4 scale: 500x500
        assert np.abs(drafted.astype(int) - full).mean() < 3
        assert np.corrcoef(drafted.ravel(), full.ravel())[0, 1] > 0.97
    assert imaging.decode_levels(encode(scanned(digits[0], rng, size=2000), "JPEG")).shape == (500, 500)
    assert imaging.decode_levels(encode(scanned(digits[0], rng, size=300), "JPEG")).shape == (300, 300)
