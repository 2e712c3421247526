"""Which uploads the server decodes on the event loop: small files, and PNGs whose header says they
decode to little (issue 14: the thread hop cost more than decoding a 200x200 scan)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from digits_server.core import imaging


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def noise(width: int, height: int, mode: str = "L") -> Image.Image:
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode)


def test_png_decoded_bytes_come_from_the_header() -> None:
    assert imaging.png_decoded_bytes(encode(noise(200, 200))) == 200 * 201
    assert imaging.png_decoded_bytes(encode(noise(30, 20, "RGBA"))) == 20 * (1 + 30 * 4)
    assert imaging.png_decoded_bytes(encode(Image.new("1", (17, 3)))) == 3 * (1 + 3)
    deep = Image.fromarray(np.zeros((10, 10), np.uint16))
    assert imaging.png_decoded_bytes(encode(deep)) == 10 * (1 + 20)
    assert imaging.png_decoded_bytes(encode(noise(20, 20), "JPEG")) is None
    assert imaging.png_decoded_bytes(b"\x89PNG\r\n\x1a\n") is None


def test_small_files_and_small_pngs_are_cheap_big_ones_are_not() -> None:
    scan = encode(noise(200, 200))  # ~40 KB of noise: over the byte rule, under the decoded-size rule
    assert len(scan) > imaging.INLINE_FILE_BYTES
    assert imaging.cheap_to_decode([scan])
    assert imaging.cheap_to_decode([encode(noise(28, 28))] * 3)
    assert not imaging.cheap_to_decode([encode(noise(28, 28))] * 10)  # each file has a fixed cost too
    assert not imaging.cheap_to_decode([scan, scan])  # a group's files count together
    assert not imaging.cheap_to_decode([encode(noise(300, 300))])
    assert not imaging.cheap_to_decode([encode(noise(200, 200, "RGBA"))])
    assert not imaging.cheap_to_decode([encode(noise(100, 100, "RGB"), "JPEG")])  # not a PNG: by file size
    assert imaging.cheap_to_decode([encode(Image.new("RGB", (100, 100), "white"), "JPEG")])  # ~800 bytes
    assert imaging.cheap_to_decode([])
