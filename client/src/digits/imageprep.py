"""Client-side image helpers for the CLI: check and preview image files, ASCII art.

Pillow is optional (``pip install 'digits-client[images]'``) and imported only when an
image file is actually read. The preview is :func:`digits.imaging.preprocess`, the very code
the server runs on uploaded image files, so ``--show`` prints exactly what the model sees.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from . import imaging
from .imaging import PillowMissing

__all__ = ["PillowMissing", "have_pillow", "check_image_file", "preview_image_file", "ascii_art"]

_RAMP = " .:-=+*#%@"


def have_pillow() -> bool:
    """True when Pillow can be imported."""
    try:
        import PIL  # noqa: F401
    except ImportError:
        return False
    return True


def _pil_image() -> Any:
    return imaging._pillow()


def check_image_file(path: str | os.PathLike[str]) -> None:
    """Raise ValueError when Pillow cannot decode ``path``; PillowMissing without Pillow."""
    image_mod = _pil_image()
    try:
        with image_mod.open(path) as image:
            image.verify()
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from None


def preview_image_file(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode ``path`` into the 28x28 uint8 digit (ink = 255) the server would classify.

    Raises ImageError (a ValueError) when it cannot become a digit, PillowMissing without Pillow.
    """
    return imaging.preprocess(Path(path).read_bytes())


def ascii_art(pixels: np.ndarray) -> str:
    """A 28x28 image (uint8 0..255 or float 0..1) as 28 lines of text, two chars per pixel."""
    array = np.asarray(pixels, dtype=np.float32).reshape(28, 28)
    if array.max() > 1.0:
        array = array / 255.0
    index = np.clip((array * (len(_RAMP) - 1)).round().astype(int), 0, len(_RAMP) - 1)
    return "\n".join("".join(_RAMP[i] * 2 for i in row).rstrip() for row in index)
