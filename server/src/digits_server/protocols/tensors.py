"""Input tensors of the ecosystem protocols -> the models' images, transport-free.

The Open Inference Protocol v2 and TensorFlow Serving both carry an input as an element
type, a shape and a flat run of elements. This module checks those against what the models
take and turns them into uint8 [N,28,28] with imaging.py's rules. Accepted element kinds:
uint8 pixels [N,28,28], float pixels in [0,1] [N,28,28], and encoded image files [N] (or
[N,1]), one file per element.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from digits_server.core import imaging
from digits_server.core.errors import InvalidInput

IMAGE_SHAPE = (imaging.SIDE, imaging.SIDE)


def element_count(shape: Sequence[int], field: str) -> int:
    """The number of elements a shape holds; negative dimensions are INVALID_ARGUMENT."""
    if any(d < 0 for d in shape):
        raise InvalidInput(f"{field}.shape: dimensions must be >= 0, got {list(shape)}")
    return math.prod(int(d) for d in shape)


def check_batch(count: int, field: str, limit: int) -> None:
    """A batch must hold 1..limit images."""
    if count == 0:
        raise InvalidInput(f"{field}: no images in the request (the first dimension is 0)")
    if count > limit:
        raise InvalidInput(f"{field}: {count} images is more than the limit of {limit} per request")


def pixel_images(values: np.ndarray, shape: Sequence[int], field: str, limit: int) -> np.ndarray:
    """uint8 or float32 elements with shape [N,28,28] as uint8 images [N,28,28].

    `values` is the flat run of elements (any length: checked against the shape here).
    """
    if len(shape) != 3 or tuple(shape[1:]) != IMAGE_SHAPE:
        raise InvalidInput(f"{field}.shape: expected [N,28,28], got {list(shape)}")
    expected = element_count(shape, field)
    if values.size != expected:
        raise InvalidInput(f"{field}: shape {list(shape)} holds {expected} elements but {values.size} were sent")
    check_batch(int(shape[0]), field, limit)
    if values.dtype == np.uint8:
        return values.reshape(-1, *IMAGE_SHAPE)
    per_image = values.reshape(-1, imaging.PIXELS)
    return np.stack([imaging.from_floats(image, f"{field}[{i}]") for i, image in enumerate(per_image)])


def encoded_images(
    files: Sequence[bytes], shape: Sequence[int], field: str, limit: int, limits: imaging.ImageLimits
) -> np.ndarray:
    """Encoded image files, shape [N] or [N,1], as uint8 images [N,28,28] (within the size limits)."""
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        raise InvalidInput(f"{field}.shape: expected [N] or [N,1] (one encoded image per element), got {list(shape)}")
    expected = element_count(shape, field)
    if len(files) != expected:
        raise InvalidInput(f"{field}: shape {list(shape)} holds {expected} elements but {len(files)} were sent")
    check_batch(expected, field, limit)
    return np.stack([imaging.from_encoded(data, f"{field}[{i}]", limits) for i, data in enumerate(files)])


def uint8_values(values: Sequence[int], field: str) -> np.ndarray:
    """Typed integer elements (wider on the wire) as uint8, refusing values outside 0..255."""
    array = np.asarray(values, dtype=np.int64)
    if array.size and (array.min() < 0 or array.max() > 255):
        raise InvalidInput(f"{field}: uint8 elements must lie in 0..255, got [{array.min()}, {array.max()}]")
    return array.astype(np.uint8)


def to_images(
    values: "np.ndarray | Sequence[bytes]",
    shape: Sequence[int],
    field: str,
    limit: int,
    limits: imaging.ImageLimits = imaging.ImageLimits(),
) -> np.ndarray:
    """Pixels (a uint8 or float32 array) or encoded files (a sequence of bytes) as uint8 images [N,28,28]."""
    if isinstance(values, np.ndarray):
        return pixel_images(values, shape, field, limit)
    return encoded_images(values, shape, field, limit, limits)
