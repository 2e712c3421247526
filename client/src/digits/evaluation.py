"""Accuracy, per-class accuracy, confusion and latency percentiles of an evaluation run.

Pure computation (numpy only), shared by ``digits eval`` and later commands.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["EvalReport", "latency_summary", "summarize", "top_confusions"]

NUM_CLASSES = 10


@dataclass(frozen=True)
class EvalReport:
    """The outcome of sending n labelled digits: what a user compares cells by."""

    model: str
    version: int
    n: int
    correct: int
    accuracy: float
    per_class_accuracy: list[float | None]
    per_class_count: list[int]
    confusion: list[list[int]]
    latency_ms: dict[str, float]
    served_by: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    throughput_per_second: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (field order kept)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def latency_summary(seconds: Sequence[float] | np.ndarray) -> dict[str, float]:
    """p50/p90/p99/mean/max in milliseconds (linear-interpolated percentiles)."""
    values = np.asarray(seconds, dtype=np.float64) * 1000.0
    if values.size == 0:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "mean": 0.0, "max": 0.0}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99),
            "mean": float(values.mean()), "max": float(values.max())}


def summarize(
    true_labels: Sequence[int] | np.ndarray,
    predicted: Sequence[int] | np.ndarray,
    latencies_seconds: Sequence[float] | np.ndarray,
    served: Sequence[str],
    wall_seconds: float = 0.0,
) -> EvalReport:
    """Build an EvalReport; ``served`` holds "model:version" per request.

    accuracy is exactly correct / n (Python ints divided once), so it can be compared
    bit-for-bit with an accuracy computed the same way elsewhere.
    """
    truth = np.asarray(true_labels, dtype=np.int64).reshape(-1)
    guess = np.asarray(predicted, dtype=np.int64).reshape(-1)
    if truth.shape != guess.shape:
        raise ValueError(f"{truth.size} labels but {guess.size} predictions")
    n = int(truth.size)
    if n == 0:
        raise ValueError("nothing was evaluated")
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(confusion, (np.clip(truth, 0, 9), np.clip(guess, 0, 9)), 1)
    correct = int((truth == guess).sum())
    counts = [int(c) for c in np.bincount(truth, minlength=NUM_CLASSES)[:NUM_CLASSES]]
    per_class = [
        int(((truth == d) & (guess == d)).sum()) / counts[d] if counts[d] else None
        for d in range(NUM_CLASSES)
    ]
    tally = Counter(served)
    main, _ = tally.most_common(1)[0] if tally else ("", 0)
    model, _, version = main.rpartition(":")
    return EvalReport(
        model=model,
        version=int(version) if version.isdigit() else 0,
        n=n,
        correct=correct,
        accuracy=correct / n,
        per_class_accuracy=per_class,
        per_class_count=counts,
        confusion=confusion.tolist(),
        latency_ms=latency_summary(latencies_seconds),
        served_by=dict(tally),
        seconds=float(wall_seconds),
        throughput_per_second=n / wall_seconds if wall_seconds > 0 else 0.0,
    )


def top_confusions(confusion: Sequence[Sequence[int]], k: int = 5) -> list[tuple[int, int, int]]:
    """The k most frequent mistakes as (true, predicted, count), largest first."""
    mistakes = [
        (t, p, int(confusion[t][p]))
        for t in range(len(confusion)) for p in range(len(confusion[t]))
        if t != p and confusion[t][p]
    ]
    mistakes.sort(key=lambda item: (-item[2], item[0], item[1]))
    return mistakes[:k]
