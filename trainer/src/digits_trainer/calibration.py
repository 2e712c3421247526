"""Calibration: expected calibration error, temperature scaling, reliability diagrams.

* :func:`expected_calibration_error` is the usual top-label ECE with ``bins`` equal-width
  confidence bins over ``[0, 1]``: ``sum_b |B_b| / N * |accuracy(B_b) - confidence(B_b)|``
  where the confidence of a digit is its largest probability. Bin ``b`` holds confidences in
  ``(b / bins, (b + 1) / bins]`` (the first bin also holds exactly 0).
* :func:`fit_temperature` finds the ``T > 0`` minimising the negative log-likelihood of
  ``softmax(logits / T)`` on held-out digits (a grid over ``log T`` refined by golden-section
  search; NumPy only). Dividing logits by a positive constant never changes the argmax.
* :func:`plot_reliability` draws reliability diagrams (accuracy per confidence bin against the
  diagonal, before and after temperature scaling).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: Number of confidence bins of the reported ECE.
ECE_BINS = 15


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` in float64 (numerically stable)."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def bin_statistics(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> list[dict[str, float | int]]:
    """Per confidence bin: ``lower``, ``upper``, ``count``, ``confidence`` and ``accuracy``."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    # Bin b holds (b/bins, (b+1)/bins]; ceil(c * bins) - 1, with 0 put into the first bin.
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    stats: list[dict[str, float | int]] = []
    for b in range(bins):
        mask = index == b
        count = int(mask.sum())
        stats.append({
            "lower": b / bins,
            "upper": (b + 1) / bins,
            "count": count,
            "confidence": float(confidence[mask].mean()) if count else 0.0,
            "accuracy": float(correct[mask].mean()) if count else 0.0,
        })
    return stats


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> float:
    """Top-label expected calibration error over ``bins`` equal-width bins (0 = calibrated)."""
    n = len(labels)
    if n == 0:
        return 0.0
    return float(sum(
        s["count"] / n * abs(float(s["accuracy"]) - float(s["confidence"]))
        for s in bin_statistics(probabilities, labels, bins)
    ))


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean NLL of the true labels under ``softmax(logits / temperature)``."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    return float(np.mean(log_norm - z[np.arange(len(labels)), labels]))


def fit_temperature(
    logits: np.ndarray, labels: np.ndarray, *, low: float = 0.05, high: float = 20.0
) -> float:
    """The temperature ``T`` in ``[low, high]`` minimising the NLL of ``softmax(logits / T)``."""
    if len(labels) == 0:
        return 1.0

    def loss(log_t: float) -> float:
        return negative_log_likelihood(logits, labels, math.exp(log_t))

    grid = np.linspace(math.log(low), math.log(high), 121)
    values = [loss(float(g)) for g in grid]
    best = int(np.argmin(values))
    a = float(grid[max(best - 1, 0)])
    b = float(grid[min(best + 1, len(grid) - 1)])
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = loss(c), loss(d)
    for _ in range(60):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = loss(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = loss(d)
    return float(math.exp((a + b) / 2.0))


def temperature_pays(nll_before: float, nll_after: float, min_gain: float) -> bool:
    """True when a fitted temperature lowers the validation NLL by at least ``min_gain`` (a fraction).

    With a few hundred validation digits a fitted ``T`` close to 1 is mostly noise and can raise
    the test ECE; a recipe can then keep ``T = 1`` (``Recipe.calibrate_min_gain``).
    """
    return nll_after <= nll_before * (1.0 - min_gain)


def plot_reliability(
    panels: Sequence[dict[str, Any]],
    path: str | os.PathLike[str],
    *,
    title: str = "digits: reliability diagrams (test digits)",
) -> Path:
    """Draw one reliability diagram per panel into ``path`` (PNG); returns the path.

    Each panel is ``{"title": str, "curves": [(name, bins, ece), ...]}`` where ``bins`` is the
    output of :func:`bin_statistics`: the accuracy of each non-empty confidence bin is drawn as
    a bar over the bin, against the diagonal of perfect calibration, with the ECE in the legend.
    Working from bin statistics (stored in ``metadata.json``) lets a report be redrawn later.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = max(len(panels), 1)
    figure = Figure(figsize=(4.2 * columns, 4.4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, columns, squeeze=False)[0]
    for axis, panel in zip(axes, panels):
        axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="calibrated")
        for i, (name, bins, ece) in enumerate(panel["curves"]):
            full = [b for b in bins if b["count"]]
            width = (float(bins[0]["upper"]) - float(bins[0]["lower"])) if bins else 1 / ECE_BINS
            axis.bar(
                [float(b["lower"]) + width / 2 for b in full], [b["accuracy"] for b in full],
                width=width * (0.9 if i == 0 else 0.5), alpha=0.45 if i == 0 else 0.85,
                edgecolor="black", linewidth=0.5, label=f"{name} (ECE {ece:.4f})",
            )
            axis.plot([b["confidence"] for b in full], [b["accuracy"] for b in full],
                      marker="o", markersize=3, linewidth=0.8)
        axis.set_xlim(0, 1)
        axis.set_ylim(0, 1.02)
        axis.set_xlabel("confidence (max probability)")
        axis.set_ylabel("accuracy")
        axis.set_title(panel["title"], fontsize=10)
        axis.legend(loc="upper left", fontsize=8)
        axis.grid(True, alpha=0.3)
    figure.suptitle(title, fontsize=12)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=100)
    return target


def panel_from_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """The reliability panel of one model from its ``metadata.json`` ``calibration`` entry."""
    cal = meta["calibration"]
    curves = [("before temperature", cal["bins_before"], cal["ece_before"])]
    if cal.get("temperature") is not None:
        curves.append((f"served (T={cal['temperature']:.3f})", cal["bins"], cal["ece"]))
    return {
        "title": f"{meta['cell'].upper()} ({meta['recipe']}) - acc {meta['test_accuracy']:.4f}",
        "curves": curves,
    }
