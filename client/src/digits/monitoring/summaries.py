"""Input summaries: a few numbers per image that move when the inputs change (covariate shift).

The same function runs in the trainer (on the held-out digits, for the reference profile) and
in the server (on every served image), so the two are comparable by construction. It is
vectorised over a batch of uint8 images [N, 28, 28] (0 = background, 255 = ink, MNIST's
convention) and costs a handful of numpy calls per batch.
"""

from __future__ import annotations

from functools import cache

import numpy as np

#: Pixels at or above this level are ink (half of 255).
INK_LEVEL = 128
#: Pixels above this level count towards the mean ink intensity (faint anti-aliasing excluded).
FAINT_LEVEL = 26
#: The frame of this many pixels around the image is where the background level is read.
BORDER = 2

#: The summaries, in the column order of `summarise`.
SUMMARY_NAMES = (
    "background",       # mean level of the border frame, 0..1 (inverted colours: ~1)
    "ink_fraction",     # share of pixels that are ink (>= INK_LEVEL)
    "ink_intensity",    # mean level of the non-faint pixels, 0..1
    "box_height",       # rows spanned by the ink's bounding box, 0..28 (0: no ink)
    "box_width",        # columns spanned by the ink's bounding box
    "box_row",          # the box centre's row, 0..27 (-1: no ink)
    "box_column",       # the box centre's column
)


@cache
def _frame_index(height: int, width: int) -> np.ndarray:
    """The flat indices of the BORDER-pixel frame of a height x width image."""
    mask = np.ones((height, width), dtype=bool)
    mask[BORDER:height - BORDER, BORDER:width - BORDER] = False
    index = np.flatnonzero(mask)
    index.flags.writeable = False
    return index


def _extent(any_ink: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last index holding ink along axis 1 of a bool [N, L] array (0, -1 when none)."""
    length = any_ink.shape[1]
    first = any_ink.argmax(axis=1)
    last = length - 1 - any_ink[:, ::-1].argmax(axis=1)
    empty = ~any_ink.any(axis=1)
    first[empty], last[empty] = 0, -1
    return first, last


def summarise(images: np.ndarray) -> np.ndarray:
    """The SUMMARY_NAMES of each uint8 image [N, H, W] (or one [H, W]), as float64 [N, 7]."""
    images = np.asarray(images)
    if images.ndim == 2:
        images = images[None]
    if images.ndim != 3:
        raise ValueError(f"images: expected [N, H, W], got shape {images.shape}")
    n, height, width = images.shape
    flat = images.reshape(n, -1)
    frame = _frame_index(height, width)
    out = np.empty((n, len(SUMMARY_NAMES)), dtype=np.float64)
    out[:, 0] = np.take(flat, frame, axis=1, mode="clip").sum(axis=1, dtype=np.uint32) / (255.0 * len(frame))
    ink = (images >= INK_LEVEL).astype(np.float32)  # float: matmuls sum rows and columns fast
    rows, columns = ink @ np.ones(width, np.float32), np.ones(height, np.float32) @ ink
    out[:, 1] = rows.sum(axis=1) / (height * width)
    visible = flat > FAINT_LEVEL
    counts = visible.view(np.uint8).sum(axis=1, dtype=np.uint32)  # a bool view: no copy, unlike count_nonzero
    out[:, 2] = (flat * visible).sum(axis=1, dtype=np.uint32) / np.maximum(counts, 1) / 255.0
    top, bottom = _extent(rows > 0)
    left, right = _extent(columns > 0)
    out[:, 3] = bottom - top + 1
    out[:, 4] = right - left + 1
    out[:, 5] = (top + bottom) / 2.0
    out[:, 6] = (left + right) / 2.0
    empty = out[:, 3] == 0
    out[empty, 5:] = -1.0
    return out
