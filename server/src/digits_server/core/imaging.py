"""Turn uploaded images into the model's input: uint8 [28,28], 0 = background, 255 = ink.

Transport-free: callers pass the raw payload and the name of the field it came from, which
every error message names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from digits import imaging as mnist_imaging
from digits_server.core import png
from digits_server.core.errors import InvalidInput
from digits_server.core.png import decoded_bytes as png_decoded_bytes

SIDE = 28
PIXELS = SIDE * SIDE
# Decoding on the event loop instead of in a worker thread saves the hop (~0.2 ms of CPU here) but
# stalls the loop meanwhile, so only cheap files are: files of at most INLINE_FILE_BYTES in all, or
# PNGs whose headers say they decode to at most INLINE_DECODED_BYTES of scanlines in all, each file
# counting at least MIN_FILE_COST_BYTES for its fixed cost (~0.1 ms). That is one 200x200 grayscale
# scan (40 KB, ~0.35 ms to decode and preprocess here with png.prepare, 0.5 ms with Pillow alone) or
# five small PNGs (~0.7 ms).
INLINE_FILE_BYTES = 2048
INLINE_DECODED_BYTES = 64 * 1024
MIN_FILE_COST_BYTES = 12 * 1024

T = TypeVar("T")


def from_pixels(data: bytes, field: str) -> np.ndarray:
    """784 bytes of row-major uint8 pixels."""
    if len(data) != PIXELS:
        raise InvalidInput(f"{field}: expected {PIXELS} bytes (28x28 uint8, row-major), got {len(data)}")
    return np.frombuffer(data, dtype=np.uint8).reshape(SIDE, SIDE)


def from_floats(values: "np.ndarray | list[float]", field: str) -> np.ndarray:
    """784 float pixels in [0, 1], scaled to uint8 the way the trainer's pixels/255 inverts."""
    array = np.asarray(values, dtype=np.float32)
    if array.size != PIXELS:
        raise InvalidInput(f"{field}: expected {PIXELS} float values (28x28 in [0, 1]), got {array.size}")
    if not np.all(np.isfinite(array)):
        raise InvalidInput(f"{field}: values must be finite (found NaN or infinity)")
    if array.min() < 0.0 or array.max() > 1.0:
        raise InvalidInput(f"{field}: values must lie in [0, 1], got [{array.min():g}, {array.max():g}]")
    return np.rint(array * 255.0).astype(np.uint8).reshape(SIDE, SIDE)


@dataclass(frozen=True)
class ImageLimits:
    """Caps on encoded images: file size, and decoded pixel count (against decompression bombs)."""

    max_bytes: int = 4 * 1024 * 1024
    max_pixels: int = 4096 * 4096


def from_encoded(data: bytes, field: str, limits: ImageLimits = ImageLimits()) -> np.ndarray:
    """An encoded image file (PNG, JPEG, GIF, BMP, WebP, ...) turned into an MNIST-like digit.

    The preprocessing is `digits.imaging.preprocess`, shared with `digits classify --show`; a PNG's
    image data is inflated by ISA-L first, a plain gray or RGB one decoded by libspng (`png.prepare`:
    the same pixels for less CPU).
    """
    if not data:
        raise InvalidInput(f"{field}: the image file is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise InvalidInput(f"{field}: {len(data)} bytes is more than the limit of {limits.max_bytes} per image file")
    try:
        prepared = png.prepare(data, limits.max_pixels)
        if isinstance(prepared, np.ndarray):
            return mnist_imaging.from_levels(prepared)
        return mnist_imaging.preprocess(prepared, limits.max_pixels)
    except mnist_imaging.ImageError as exc:
        raise InvalidInput(f"{field}: {exc}") from None


def cheap_to_decode(files: Iterable[bytes]) -> bool:
    """Whether decoding these image files together is cheap enough for the event loop: at most
    INLINE_FILE_BYTES of files in all, or only PNGs decoding to at most INLINE_DECODED_BYTES in all
    (each counting at least MIN_FILE_COST_BYTES)."""
    encoded = decoded = 0
    for data in files:
        encoded += len(data)
        if decoded <= INLINE_DECODED_BYTES:
            size = png_decoded_bytes(data)
            decoded = INLINE_DECODED_BYTES + 1 if size is None else decoded + max(size, MIN_FILE_COST_BYTES)
    return encoded <= INLINE_FILE_BYTES or decoded <= INLINE_DECODED_BYTES


async def converted(encoded: bool, conversion: Callable[[], T]) -> T:
    """Run an image conversion; one that decodes image files runs in a worker thread, off the event loop."""
    return await asyncio.to_thread(conversion) if encoded else conversion()
