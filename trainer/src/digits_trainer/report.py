"""Run reports: the training-curves PNG, the reliability-diagrams PNG and the comparison table.

Both work from the ``metadata.json`` dicts written next to each exported model, so a report can
be redrawn later from the model repository alone. Matplotlib is used without pyplot (no global
backend switch, no display needed).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

CURVES_NAME = "training-curves.png"
RELIABILITY_NAME = "reliability.png"


def _stamped(folder: Path, stem: str, timestamp: datetime | None) -> Path:
    """``<folder>/<stem>-<UTC stamp>.png``, suffixed ``-2``, ``-3``... if taken."""
    stamp = (timestamp or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    target = folder / f"{stem}-{stamp}.png"
    suffix = 2
    while target.exists():
        target = folder / f"{stem}-{stamp}-{suffix}.png"
        suffix += 1
    return target


def _refresh_stable(target: Path, stable: Path) -> None:
    """Copy ``target`` over ``stable`` atomically (temp file + ``os.replace``)."""
    temp = stable.with_name(f".{stable.name}.{secrets.token_hex(4)}")
    temp.write_bytes(target.read_bytes())
    os.replace(temp, stable)


def plot_reliability_report(
    runs: Sequence[dict[str, Any]],
    out_dir: str | os.PathLike[str],
    *,
    timestamp: datetime | None = None,
) -> Path:
    """Reliability diagrams of the run's cells side by side (before / after temperature).

    Writes ``<out_dir>/reliability-<UTC timestamp>.png`` and refreshes the stable copy
    ``<out_dir>/reliability.png``; returns the timestamped path. Drawn from each
    ``metadata.json``'s ``calibration`` bins, so it can be redrawn from the repository alone.
    """
    from .calibration import panel_from_metadata, plot_reliability

    if not runs:
        raise ValueError("nothing to plot: no runs")
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    target = _stamped(folder, "reliability", timestamp)
    plot_reliability([panel_from_metadata(meta) for meta in runs], target)
    _refresh_stable(target, folder / RELIABILITY_NAME)
    return target


def plot_curves(
    runs: Sequence[dict[str, Any]],
    out_dir: str | os.PathLike[str],
    *,
    timestamp: datetime | None = None,
) -> Path:
    """Draw accuracy (top) and loss (bottom) per epoch, train vs validation, one column per run.

    Writes ``<out_dir>/training-curves-<UTC timestamp>.png`` and refreshes the stable copy
    ``<out_dir>/training-curves.png``; returns the timestamped path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not runs:
        raise ValueError("nothing to plot: no runs")
    columns = len(runs)
    figure = Figure(figsize=(4.6 * columns, 7.2), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(2, columns, squeeze=False)
    for column, meta in enumerate(runs):
        history: dict[str, list[float]] = meta.get("history", {})
        hyper = meta.get("hyperparameters", {})
        validation = "held-out" if hyper.get("validation_split", 0) else "test split"
        for row, (metric, label) in enumerate((("accuracy", "accuracy"), ("loss", "loss"))):
            axis = axes[row][column]
            train = history.get(metric, [])
            val = history.get(f"val_{metric}", [])
            epochs = range(1, len(train) + 1)
            axis.plot(epochs, train, marker="o", markersize=3, label="train")
            if val:
                axis.plot(
                    range(1, len(val) + 1), val, marker="s", markersize=3,
                    label=f"validation ({validation})",
                )
            best = hyper.get("best_epoch")
            if best:
                axis.axvline(best, color="grey", linestyle=":", linewidth=1, label="kept weights")
            axis.set_xlabel("epoch")
            axis.set_ylabel(label)
            axis.grid(True, alpha=0.3)
            if row == 0:
                axis.set_title(
                    f"{meta['cell'].upper()} ({meta['recipe']}) - test acc "
                    f"{meta['test_accuracy']:.4f}",
                    fontsize=11,
                )
                axis.legend(loc="lower right", fontsize=8)
    figure.suptitle("digits: training curves", fontsize=13)

    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    target = _stamped(folder, "training-curves", timestamp)
    figure.savefig(target, dpi=110)
    _refresh_stable(target, folder / CURVES_NAME)
    return target


def format_table(runs: Sequence[dict[str, Any]]) -> str:
    """Fixed-width table: cell, recipe, params, test accuracy, ECE, temperature, epochs, seconds,
    version. ECE is that of the served probabilities (``before->after`` when a temperature was
    fitted); T is the temperature inside the graph (``-`` = none)."""
    headers = ("cell", "recipe", "params", "test acc", "ECE (15 bins)", "T", "epochs", "seconds",
               "version")

    def ece(meta: dict[str, Any]) -> str:
        cal = meta.get("calibration") or {}
        if "ece" not in cal:
            return "-"
        if cal.get("temperature") is None:
            return f"{cal['ece']:.4f}"
        return f"{cal['ece_before']:.4f}->{cal['ece']:.4f}"

    rows = [
        (
            str(meta["cell"]),
            str(meta["recipe"]),
            f"{meta['parameters']:,}",
            f"{meta['test_accuracy']:.4f}",
            ece(meta),
            f"{meta['temperature']:.3f}" if meta.get("temperature") is not None else "-",
            str(meta.get("hyperparameters", {}).get("epochs_run", "")),
            f"{meta['training_seconds']:.1f}",
            str(meta["version"]),
        )
        for meta in runs
    ]
    widths = [max(len(cells[i]) for cells in (headers, *rows)) for i in range(len(headers))]
    right = {2, 3, 4, 5, 6, 7, 8}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths))
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])
