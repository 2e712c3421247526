"""Observing many values into a prometheus_client histogram at once."""

from __future__ import annotations

from typing import Any

import numpy as np


def observe_many(histogram: Any, values: np.ndarray) -> None:
    """`histogram.observe(v)` for every value, in one pass: the bucket counts come from numpy and
    each bucket is incremented once (a 512-image batch otherwise makes 512 observe calls, ~2 ms).
    Uses prometheus_client's histogram internals (`_upper_bounds`, `_buckets`, `_sum`; checked
    against observe() by tests/server/test_histograms.py)."""
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        return
    # observe() counts a value in the first bucket whose upper bound is >= it
    counts = np.bincount(np.searchsorted(histogram._upper_bounds, values, side="left"),
                         minlength=len(histogram._upper_bounds) + 1)
    histogram._sum.inc(float(values.sum()))
    for bucket, count in zip(histogram._buckets, counts.tolist()):
        if count:
            bucket.inc(count)
