"""Real MNIST digits as scanned-looking uploads, and the float reference of the image preprocessing."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from digits import imaging


def scanned(
    digit: np.ndarray, rng: np.random.Generator, size: int = 200, light: bool = True, noise: float = 6.0
) -> Image.Image:
    """A real digit the way bench/pictures.py makes an upload: enlarged, off-centre on a noisy page."""
    side = int(rng.integers(size // 3, size * 3 // 4))
    glyph = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC), np.float64) / 255
    paper = rng.normal(232 if light else 20, noise, (size, size))
    ink = 25 if light else 240
    top, left = (int(rng.integers(0, size - side)) for _ in range(2))
    window = paper[top:top + side, left:left + side]
    paper[top:top + side, left:left + side] = window * (1 - glyph) + ink * glyph
    return Image.fromarray(np.clip(paper, 0, 255).astype(np.uint8))


def float_reference(data: bytes) -> np.ndarray:
    """The preprocessing as it was before the uint8 fast path: the whole image in float32."""
    gray = np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.float32)
    return imaging.fit_and_centre(imaging.ink_from_gray(gray))

