"""Shifted copies of test digits, the traffic label-free monitoring must notice (issue 22).

One generator per shift, shared by the tests (tests/server/test_monitoring_end_to_end.py) and
the benchmark (bench/monitoring_shifts.py). Each takes uint8 images [N, 28, 28] (and their
labels) and a seeded Generator, and returns shifted uint8 images with the labels they keep.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

Shift = Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def clean(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """No shift: the digits as they are."""
    return images, labels


def inverted(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Inverted colours: dark digits on white (a scanner set the other way)."""
    return 255 - images, labels


def gaussian_noise(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian noise of standard deviation 80 levels on every pixel, clipped."""
    noisy = images.astype(np.float64) + rng.normal(0.0, 80.0, images.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8), labels


def rotated(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rotated 20 to 30 degrees, either way."""
    angles = rng.uniform(20.0, 30.0, len(images)) * rng.choice([-1.0, 1.0], len(images))
    out = np.stack([
        ndimage.rotate(image.astype(np.float64), angle, reshape=False, order=1) for image, angle in zip(images, angles)
    ])
    return np.clip(out, 0, 255).astype(np.uint8), labels


def thick(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Thicker strokes: a 3x3 grey dilation (a wider pen)."""
    return ndimage.grey_dilation(images, size=(1, 3, 3)), labels


def half_size(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Digits drawn at half size, centred (2x2 blocks averaged into the middle 14x14)."""
    small = images.reshape(len(images), 14, 2, 14, 2).astype(np.float64).mean(axis=(2, 4))
    out = np.zeros_like(images)
    out[:, 7:21, 7:21] = np.round(small).astype(np.uint8)
    return out, labels


def three_classes(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Only 3 of the 10 classes (0, 1 and 7): label shift, the digits themselves unchanged."""
    keep = np.isin(labels, (0, 1, 7))
    return images[keep], labels[keep]


#: Every shift by name, clean first.
SHIFTS: dict[str, Shift] = {
    "clean": clean,
    "inverted": inverted,
    "gaussian_noise": gaussian_noise,
    "rotated_20_30": rotated,
    "thick_strokes": thick,
    "half_size": half_size,
    "three_classes": three_classes,
}


def shifted_stream(
    name: str, images: np.ndarray, labels: np.ndarray, length: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """`length` shifted digits: the test digits shuffled and repeated as needed, then shifted."""
    rng = np.random.default_rng(seed)
    shifted, kept = SHIFTS[name](images, labels, rng)
    order = rng.permutation(np.resize(np.arange(len(shifted)), max(length, len(shifted))))[:length]
    return shifted[order], kept[order]
