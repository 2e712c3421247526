"""Client-side image helpers for the CLI: check and preview image files, ASCII art.

Pillow is optional (``pip install 'digits-client[images]'``) and imported only when an
image file is actually read. The preview follows the MNIST recipe the server documents
(grayscale with alpha on white, inverted when the background is light, cropped to the ink,
scaled to fit 20x20, centred by centre of mass in 28x28); the server's preprocessing is the
authority on what the model sees, this is a preview of it.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ["PillowMissing", "have_pillow", "check_image_file", "preview_image_file", "ascii_art"]

_RAMP = " .:-=+*#%@"
INSTALL_HINT = "pip install 'digits-client[images]'"


class PillowMissing(RuntimeError):
    """Raised when an operation needs Pillow and it is not installed."""


def have_pillow() -> bool:
    """True when Pillow can be imported."""
    try:
        import PIL  # noqa: F401
    except ImportError:
        return False
    return True


def _pil_image() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise PillowMissing(f"reading image files needs Pillow: {INSTALL_HINT}") from None
    return Image


def check_image_file(path: str | os.PathLike[str]) -> None:
    """Raise ValueError when Pillow cannot decode ``path``; PillowMissing without Pillow."""
    image_mod = _pil_image()
    try:
        with image_mod.open(path) as image:
            image.verify()
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from None


def preview_image_file(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode ``path`` and turn it into an MNIST-like 28x28 uint8 array (ink = 255)."""
    image_mod = _pil_image()
    with image_mod.open(path) as image:
        image.load()
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            rgba = image.convert("RGBA")
            white = image_mod.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = image_mod.alpha_composite(white, rgba)
        gray = np.asarray(image.convert("L"), dtype=np.float32)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if border.mean() > 127:
        gray = 255.0 - gray
    gray -= gray.min()
    if gray.max() <= 0:
        return np.zeros((28, 28), np.uint8)
    ys, xs = np.nonzero(gray > gray.max() * 0.2)
    crop = gray[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
    scale = 20.0 / max(crop.shape)
    height, width = (max(1, round(side * scale)) for side in crop.shape)
    small = image_mod.fromarray(crop.astype(np.uint8)).resize((width, height), image_mod.LANCZOS)
    digit = np.asarray(small, dtype=np.float32)
    canvas = np.zeros((28, 28), np.float32)
    top, left = (28 - height) // 2, (28 - width) // 2
    canvas[top: top + height, left: left + width] = digit
    total = canvas.sum()
    if total > 0:
        rows, cols = np.indices(canvas.shape)
        dy = int(round(13.5 - (rows * canvas).sum() / total))
        dx = int(round(13.5 - (cols * canvas).sum() / total))
        canvas = _shift(canvas, dy, dx)
    return np.clip(canvas / canvas.max() * 255.0, 0, 255).astype(np.uint8)


def _shift(array: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Shift without wrap-around (zeros come in)."""
    out = np.zeros_like(array)
    h, w = array.shape
    src = array[max(0, -dy): h - max(0, dy), max(0, -dx): w - max(0, dx)]
    out[max(0, dy): max(0, dy) + src.shape[0], max(0, dx): max(0, dx) + src.shape[1]] = src
    return out


def ascii_art(pixels: np.ndarray) -> str:
    """A 28x28 image (uint8 0..255 or float 0..1) as 28 lines of text, two chars per pixel."""
    array = np.asarray(pixels, dtype=np.float32).reshape(28, 28)
    if array.max() > 1.0:
        array = array / 255.0
    index = np.clip((array * (len(_RAMP) - 1)).round().astype(int), 0, len(_RAMP) - 1)
    return "\n".join("".join(_RAMP[i] * 2 for i in row).rstrip() for row in index)
