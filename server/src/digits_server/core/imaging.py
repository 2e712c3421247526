"""Turn uploaded images into the model's input: uint8 [28,28], 0 = background, 255 = ink.

Transport-free: callers pass the raw payload and the name of the field it came from, which
every error message names.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from digits import imaging as mnist_imaging
from digits_server.core.errors import InvalidInput

SIDE = 28
PIXELS = SIDE * SIDE


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

    The preprocessing is `digits.imaging.preprocess`, shared with `digits classify --show`.
    """
    if not data:
        raise InvalidInput(f"{field}: the image file is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise InvalidInput(f"{field}: {len(data)} bytes is more than the limit of {limits.max_bytes} per image file")
    try:
        return mnist_imaging.preprocess(data, limits.max_pixels)
    except mnist_imaging.ImageError as exc:
        raise InvalidInput(f"{field}: {exc}") from None
