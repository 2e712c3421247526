"""Accuracy without labels: confidence-based performance estimation (CBPE, as in NannyML).

Each prediction's calibrated probability of being right, c_i, is its confidence bin's accuracy
on the reference (the profile's calibration table). The estimate after n predictions is
mean(c_i). If calibration holds on the live inputs, the correctness of prediction i is a
Bernoulli(c_i) draw, independent across predictions, so the realised accuracy is a Poisson-
binomial mean with variance sum c_i (1 - c_i) / n^2: the interval is estimate +- z * sqrt(sum
c_i (1 - c_i)) / n (normal approximation; it also leaves out the calibration table's own
sampling error, see docs/monitoring.md). All three sums are plain counters, so replicas add up:
the fleet's figure is sum(calibrated) / sum(n) over every replica.

It assumes calibration holds: on inputs unlike the reference (inverted, noisy) a model can be
confidently wrong and the estimate is then far too high. Never read it without the drift
detectors beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist


def z_of(confidence: float) -> float:
    """The two-sided standard normal quantile (1.95996 for 0.95). The standard library's, not
    scipy.stats': the server reads it on every status call and should not load scipy.stats for it."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (closed form); (0, 1) without trials."""
    if trials <= 0:
        return 0.0, 1.0
    z, p = z_of(confidence), successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return max(centre - half, 0.0), min(centre + half, 1.0)


@dataclass(frozen=True)
class AccuracyEstimate:
    """CBPE sums over n predictions: sum of calibrated p and of p (1 - p)."""

    predictions: int
    calibrated_sum: float
    variance_sum: float

    @property
    def accuracy(self) -> float | None:
        """The estimated accuracy, None before any prediction."""
        return self.calibrated_sum / self.predictions if self.predictions else None

    def interval(self, confidence: float = 0.95) -> tuple[float, float] | None:
        """Two-sided interval of the realised accuracy, assuming calibration holds."""
        if not self.predictions:
            return None
        centre = self.calibrated_sum / self.predictions
        half = z_of(confidence) * math.sqrt(max(self.variance_sum, 0.0)) / self.predictions
        return max(centre - half, 0.0), min(centre + half, 1.0)

    def __add__(self, other: AccuracyEstimate) -> AccuracyEstimate:
        return AccuracyEstimate(
            self.predictions + other.predictions, self.calibrated_sum + other.calibrated_sum,
            self.variance_sum + other.variance_sum,
        )


@dataclass(frozen=True)
class LabelledAccuracy:
    """Live accuracy on the predictions whose true digit is known (request or feedback)."""

    labelled: int
    correct: int

    @property
    def accuracy(self) -> float | None:
        """Share right, None without labels."""
        return self.correct / self.labelled if self.labelled else None

    def interval(self, confidence: float = 0.95) -> tuple[float, float] | None:
        """Wilson interval, None without labels."""
        return wilson_interval(self.correct, self.labelled, confidence) if self.labelled else None


def disagree(estimate: AccuracyEstimate, labelled: LabelledAccuracy, confidence: float = 0.95) -> bool:
    """True when estimated and labelled accuracy both exist and their intervals do not overlap:
    calibration drift (the estimate's assumption no longer holds) or labels from other traffic."""
    return intervals_apart(estimate.interval(confidence), labelled.interval(confidence))


def intervals_apart(a: tuple[float, float] | None, b: tuple[float, float] | None) -> bool:
    """True when both intervals are known and do not overlap."""
    return a is not None and b is not None and (a[1] < b[0] or b[1] < a[0])
