"""MNIST-style preprocessing of image files: the one implementation behind the server's
`Image.encoded` input and `digits classify --show`.

An image file (PNG, JPEG, GIF, BMP, WebP, anything Pillow decodes; any size and mode) becomes
a 28x28 uint8 digit (0 = background, 255 = ink) the way MNIST itself was made:

1. decode the first frame, apply the EXIF orientation, composite any alpha on white, grayscale;
2. invert when the background (the median of the border pixels) is light, so ink is bright;
3. subtract the background level and stretch the ink to full contrast; faint noise is dropped;
4. crop to the ink's bounding box and scale it to fit 20x20, keeping the aspect ratio;
5. place it in a 28x28 field so that its centre of mass is at the centre.

Speed (issue 14): an 8-bit image (nearly every upload) never becomes a float image. Steps 2-3
are a 256-entry lookup table computed from the border and the extreme gray level; the bounding
box of step 4 is one comparison of the uint8 pixels with the table's threshold; only the cropped
ink goes through the table to float and the LANCZOS resize. The result is the same, pixel for
pixel, as applying steps 2-5 to the whole image in float (`ink_from_gray` + `fit_and_centre`,
still the path of 16-bit and float images). JPEGs are decoded as grayscale by libjpeg, and big
ones at a reduced DCT scale (`draft`), never below MIN_DRAFT_SIDE pixels on the short side.

Pillow is imported only when an image is decoded (the client's optional extra `images`).
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np

SIDE = 28  # the model's input is SIDE x SIDE
BOX = 20  # the ink is scaled to fit BOX x BOX, as in MNIST
CENTRE = 14.0  # where the centre of mass goes (row, column): where MNIST digits have it on average
DEFAULT_MAX_PIXELS = 4096 * 4096
MIN_CONTRAST = 24.0  # ink must differ from the background by this much (0-255) to count
NOISE_FLOOR = 0.15  # after stretching, pixels fainter than this fraction of the peak are background
MIN_DRAFT_SIDE = 256  # a JPEG is decoded at 1/2, 1/4 or 1/8 scale only while its short side stays >= this
INSTALL_HINT = "pip install 'digits-client[images]'"
_LEVELS = np.arange(256, dtype=np.float32)  # the gray levels of an 8-bit image, as the float path sees them
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


class ImageError(ValueError):
    """The image cannot become a digit: undecodable, too large, blank. The message says why."""


class PillowMissing(RuntimeError):
    """Decoding an image file needs Pillow, which is not installed."""


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise PillowMissing(f"reading image files needs Pillow: {INSTALL_HINT}") from None
    return Image


def decode_grayscale(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image file to float32 gray levels [H,W] in 0..255 (alpha composited on white).

    The pixel count is checked against `max_pixels` from the header, before anything is
    decompressed, so a decompression bomb costs nothing.
    """
    return np.asarray(decode_levels(data, max_pixels), dtype=np.float32)


def decode_levels(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Like `decode_grayscale`, but 8-bit images stay uint8 [H,W] (16-bit and float ones are float32)."""
    pil = _pillow()
    from PIL import ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pil.DecompressionBombWarning)
            image = pil.open(io.BytesIO(data))
    except (pil.DecompressionBombWarning, pil.DecompressionBombError):  # beyond Pillow's own, higher cap
        raise ImageError(f"the image has more pixels than the limit of {max_pixels}") from None
    except Exception:  # UnidentifiedImageError, or whatever a malformed header makes a plugin raise
        raise ImageError("not an image file Pillow can decode (PNG, JPEG, GIF, BMP, WebP, ...)") from None
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError(f"the image is empty ({width}x{height} pixels)")
    if width * height > max_pixels:
        raise ImageError(f"{width}x{height} is {width * height} pixels, more than the limit of {max_pixels}")
    try:
        if image.format == "JPEG":
            scale = max(1, min(width, height) // MIN_DRAFT_SIDE)
            image.draft("L", (width // scale, height // scale))  # gray from libjpeg, big files at a DCT scale
        image.load()
        image = ImageOps.exif_transpose(image) or image
        return _gray_levels(image, pil)
    except Exception as exc:  # Pillow's plugins raise many kinds (OSError, SyntaxError, struct.error, ...)
        raise ImageError(f"the image file is truncated or corrupt ({type(exc).__name__}: {exc})"[:300]) from None


def _gray_levels(image: Any, pil: Any) -> np.ndarray:
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        values = np.asarray(image, dtype=np.float64)
        top = 1.0 if image.mode == "F" and values.max() <= 1.0 else 65535.0 if values.max() > 255 else 255.0
        return np.clip(values * (255.0 / top), 0, 255).astype(np.float32)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = pil.alpha_composite(pil.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    if image.mode != "L":
        image = image.convert("L")
    return np.asarray(image)


def _border(gray: np.ndarray) -> np.ndarray:
    return np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])


def ink_from_gray(gray: np.ndarray) -> np.ndarray:
    """Gray levels -> ink intensity in 0..255 (bright = ink), background removed and contrast stretched."""
    gray = np.asarray(gray, dtype=np.float32)
    border = _border(gray)
    if np.median(border) > 127:  # a light background: dark ink on paper
        gray = 255.0 - gray
        border = 255.0 - border
    ink = np.clip(gray - np.median(border), 0.0, None)
    peak = float(ink.max())
    if peak < MIN_CONTRAST:
        raise ImageError("the image is blank: no ink stands out from the background")
    ink = ink * (255.0 / peak)
    ink[ink < NOISE_FLOOR * 255.0] = 0.0
    return ink


def _median(values: np.ndarray) -> float:
    """np.median of integer levels, exactly (the mean of the two middle values), by partition."""
    middle = (len(values) - 1) // 2
    if len(values) % 2:
        return float(np.partition(values, middle)[middle])
    low, high = np.partition(values, (middle, middle + 1))[middle: middle + 2]
    return (float(low) + float(high)) / 2


def ink_crop(gray: np.ndarray) -> np.ndarray:
    """uint8 gray levels [H,W] -> `ink_from_gray(gray)` cropped to its bounding box (float32), exactly,
    without a float copy of the whole image.

    The float32 operations of `ink_from_gray` run on the 256 levels instead of every pixel: a table
    with `table[gray] == ink_from_gray(gray)`. The ink is monotone in the level (rising on a dark
    background, falling on a light one), so the inked pixels are those beyond one threshold level,
    and the rows and columns holding ink are found from each row's and column's extreme level.
    """
    background = _median(_border(gray))
    light = background > 127  # a light background: dark ink on paper
    levels = 255.0 - _LEVELS if light else _LEVELS
    if light:
        background = 255.0 - background
        row_extremes, col_extremes = gray.min(axis=1), gray.min(axis=0)
    else:
        row_extremes, col_extremes = gray.max(axis=1), gray.max(axis=0)
    raw = np.maximum(levels - np.float32(background), 0.0)
    extreme = row_extremes.min() if light else row_extremes.max()
    peak = float(raw[extreme])  # the brightest ink, ink_from_gray's ink.max()
    if peak < MIN_CONTRAST:
        raise ImageError("the image is blank: no ink stands out from the background")
    table = raw * (255.0 / peak)
    table[table < NOISE_FLOOR * 255.0] = 0.0
    inked = np.flatnonzero(table)  # a contiguous run of levels; never empty (the peak's level is 255)
    if light:
        rows, cols = np.flatnonzero(row_extremes <= inked[-1]), np.flatnonzero(col_extremes <= inked[-1])
    else:
        rows, cols = np.flatnonzero(row_extremes >= inked[0]), np.flatnonzero(col_extremes >= inked[0])
    return table[gray[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]]


def fit_and_centre(ink: np.ndarray) -> np.ndarray:
    """Crop to the ink, scale to fit BOX x BOX keeping the aspect ratio, centre by centre of mass in SIDE x SIDE."""
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    return _fit_cropped(ink[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1])


def _fit_cropped(crop: np.ndarray) -> np.ndarray:
    pil = _pillow()
    crop = np.ascontiguousarray(crop, dtype=np.float32)
    scale = BOX / max(crop.shape)
    height, width = (max(1, round(side * scale)) for side in crop.shape)
    glyph_image = pil.fromarray(crop).resize((width, height), pil.Resampling.LANCZOS)
    glyph = np.clip(np.asarray(glyph_image, dtype=np.float32), 0.0, 255.0)
    total = float(glyph.sum())
    if total <= 0:
        raise ImageError("the image is blank: no ink left after scaling to 20x20")
    grid_rows, grid_cols = np.indices(glyph.shape)
    top = int(round(CENTRE - (grid_rows * glyph).sum() / total))
    left = int(round(CENTRE - (grid_cols * glyph).sum() / total))
    canvas = np.zeros((SIDE, SIDE), dtype=np.float32)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + height, SIDE), min(left + width, SIDE)
    canvas[y0:y1, x0:x1] = glyph[y0 - top: y1 - top, x0 - left: x1 - left]
    return np.rint(canvas).astype(np.uint8)


def preprocess(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An encoded image file as an MNIST-like uint8 [28,28] digit; ImageError says why it cannot be."""
    if not data:
        raise ImageError("the image file is empty (0 bytes)")
    return from_levels(decode_levels(data, max_pixels))


def from_levels(gray: np.ndarray) -> np.ndarray:
    """Decoded gray levels (`decode_levels`' result) as the MNIST-like uint8 [28,28] digit: steps 2-5."""
    return _fit_cropped(ink_crop(gray)) if gray.dtype == np.uint8 else fit_and_centre(ink_from_gray(gray))
