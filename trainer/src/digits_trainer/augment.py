"""In-graph augmentation of float ``[B, 28, 28]`` digit batches for :func:`digits_trainer.loop.fit_loop`.

* :func:`affine_augment`: random shift / rotation / scaling (one projective warp, bilinear).
* :func:`warp_augment`: the same affine map composed with an **elastic distortion** (Simard et
  al. 2003: a uniform random displacement field in ``[-1, 1]`` per pixel and axis, smoothed by a
  Gaussian of standard deviation ``sigma`` pixels and scaled by ``alpha``), resampled once,
  bilinear, zero fill. Everything is batched tensor ops (a separable Gaussian as two depthwise
  convolutions and one gather), so it runs inside the training step at little cost.
* :func:`random_erase`: with probability ``p`` per digit, blank a random rectangle (2-15% of
  the image, aspect 1/3-3) to zero.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf

SIZE = 28
CENTRE = (SIZE - 1) / 2.0


def _affine_parts(
    batch: tf.Tensor, generator: tf.random.Generator, max_shift: float,
    max_rotation_degrees: float, max_scale: float,
) -> tuple[tf.Tensor, ...]:
    """Random per-digit rows ``(a0, a1, a2), (b0, b1, b2)``: output ``(x, y)`` -> input ``(a.p, b.p)``."""
    import tensorflow as tf

    angle = generator.uniform([batch], -1.0, 1.0) * (max_rotation_degrees * math.pi / 180.0)
    scale = 1.0 + generator.uniform([batch], -1.0, 1.0) * max_scale
    dx = generator.uniform([batch], -1.0, 1.0) * max_shift
    dy = generator.uniform([batch], -1.0, 1.0) * max_shift
    # Output pixel p maps to input pixel M (p - c - t) + c, M = rotation(-angle) / scale.
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    c = CENTRE
    a0, a1 = cos, sin
    b0, b1 = -sin, cos
    a2 = c - a0 * (c + dx) - a1 * (c + dy)
    b2 = c - b0 * (c + dx) - b1 * (c + dy)
    return a0, a1, a2, b0, b1, b2


def affine_augment(
    images: tf.Tensor,
    generator: tf.random.Generator,
    *,
    max_shift: float,
    max_rotation_degrees: float,
    max_scale: float,
) -> tf.Tensor:
    """Random shift / rotation / scaling of float ``[B, 28, 28]`` images (bilinear, zero fill)."""
    import tensorflow as tf

    a0, a1, a2, b0, b1, b2 = _affine_parts(
        tf.shape(images)[0], generator, max_shift, max_rotation_degrees, max_scale)
    zeros = tf.zeros_like(a0)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=images[..., None], transforms=transforms, output_shape=tf.constant([SIZE, SIZE]),
        fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT",
    )
    return out[..., 0]


def gaussian_kernel(sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian of standard deviation ``sigma`` (radius ``ceil(3 sigma)``)."""
    radius = max(math.ceil(3.0 * sigma), 1)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    return (taps / taps.sum()).astype(np.float32)


def elastic_field(
    batch: tf.Tensor, generator: tf.random.Generator, *, alpha: float, sigma: float
) -> tf.Tensor:
    """Smooth random displacements ``[B, 28, 28, 2]`` (``dx``, ``dy`` in pixels)."""
    import tensorflow as tf

    noise = generator.uniform(tf.stack([batch, SIZE, SIZE, 2]), -1.0, 1.0)
    taps = gaussian_kernel(sigma)
    across = tf.constant(np.tile(taps[None, :, None, None], (1, 1, 2, 1)))  # [1, K, 2, 1]
    down = tf.constant(np.tile(taps[:, None, None, None], (1, 1, 2, 1)))  # [K, 1, 2, 1]
    field = tf.nn.depthwise_conv2d(noise, across, [1, 1, 1, 1], "SAME")
    field = tf.nn.depthwise_conv2d(field, down, [1, 1, 1, 1], "SAME")
    return field * alpha


def bilinear_sample(images: tf.Tensor, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """``images[b]`` read at float coordinates ``(x, y)`` ``[B, 28, 28]``, bilinear, zero outside."""
    import tensorflow as tf

    x = tf.clip_by_value(x, -1.0, float(SIZE))
    y = tf.clip_by_value(y, -1.0, float(SIZE))
    x0, y0 = tf.floor(x), tf.floor(y)
    wx, wy = x - x0, y - y0
    side = SIZE + 2  # one ring of zeros around the image: index = coordinate + 1
    flat = tf.reshape(tf.pad(images, [[0, 0], [1, 1], [1, 1]]), [-1, side * side])

    def at(xs: tf.Tensor, ys: tf.Tensor) -> tf.Tensor:
        col = tf.clip_by_value(tf.cast(xs, tf.int32) + 1, 0, side - 1)
        row = tf.clip_by_value(tf.cast(ys, tf.int32) + 1, 0, side - 1)
        return tf.gather(flat, row * side + col, batch_dims=1)

    top = at(x0, y0) * (1.0 - wx) + at(x0 + 1.0, y0) * wx
    bottom = at(x0, y0 + 1.0) * (1.0 - wx) + at(x0 + 1.0, y0 + 1.0) * wx
    return top * (1.0 - wy) + bottom * wy


def warp_augment(
    images: tf.Tensor,
    generator: tf.random.Generator,
    *,
    max_shift: float,
    max_rotation_degrees: float,
    max_scale: float,
    elastic_alpha: float,
    elastic_sigma: float,
) -> tf.Tensor:
    """Elastic distortion composed with the random affine map, one bilinear resampling."""
    import tensorflow as tf

    batch = tf.shape(images)[0]
    a0, a1, a2, b0, b1, b2 = (v[:, None, None] for v in _affine_parts(
        batch, generator, max_shift, max_rotation_degrees, max_scale))
    grid = tf.range(SIZE, dtype=tf.float32)
    px, py = grid[None, None, :], grid[None, :, None]
    field = elastic_field(batch, generator, alpha=elastic_alpha, sigma=elastic_sigma)
    qx, qy = px + field[..., 0], py + field[..., 1]
    return bilinear_sample(images, a0 * qx + a1 * qy + a2, b0 * qx + b1 * qy + b2)


def random_erase(images: tf.Tensor, generator: tf.random.Generator, *, probability: float) -> tf.Tensor:
    """Blank one random rectangle (2-15% of the area, aspect 1/3-3) in a ``probability`` share of digits."""
    import tensorflow as tf

    batch = tf.shape(images)[0]
    area = generator.uniform([batch], 0.02, 0.15) * SIZE * SIZE
    aspect = tf.exp(generator.uniform([batch], math.log(1 / 3), math.log(3.0)))
    height = tf.clip_by_value(tf.round(tf.sqrt(area * aspect)), 1.0, SIZE)
    width = tf.clip_by_value(tf.round(tf.sqrt(area / aspect)), 1.0, SIZE)
    top = tf.floor(generator.uniform([batch]) * (SIZE - height + 1.0))
    left = tf.floor(generator.uniform([batch]) * (SIZE - width + 1.0))
    chosen = generator.uniform([batch]) < probability
    grid = tf.range(SIZE, dtype=tf.float32)
    rows = (grid[None, :] >= top[:, None]) & (grid[None, :] < (top + height)[:, None])
    cols = (grid[None, :] >= left[:, None]) & (grid[None, :] < (left + width)[:, None])
    mask = rows[:, :, None] & cols[:, None, :] & chosen[:, None, None]
    return tf.where(mask, tf.zeros_like(images), images)
