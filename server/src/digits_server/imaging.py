"""Turn uploaded images into the model's input: uint8 [28,28], 0 = background, 255 = ink.

Transport-free: callers pass the raw payload and the name of the field it came from, which
every error message names.
"""

from __future__ import annotations

import numpy as np

from .errors import InvalidInput

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


def from_encoded(data: bytes, field: str) -> np.ndarray:
    """An encoded image file (PNG, JPEG, ...) turned into an MNIST-like digit."""
    raise InvalidInput(f"{field}: encoded images are not supported by this server yet; send 784 raw pixels")
