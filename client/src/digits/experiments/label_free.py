"""A/B without labels (docs/ab-decisions.md "A/B without labels"): each arm's estimated accuracy
(CBPE, digits.monitoring.estimate) and, per pair, the shadow agreement rate and an always-valid
confidence sequence of the difference of the arms' estimated accuracies.

Everything here is "estimated, no labels": it rests on the arms' calibration (each version's
reference-profile calibration table, or the raw winning probability where a version has none) and
is never part of the labelled verdict. The rollout controller may use the difference's sequence as a
guardrail (`digits ab rollout --max-estimated-drop 0.05`).

The confidence sequence of one arm's mean calibrated probability mu, from only n and S = sum of the
per-prediction calibrated probabilities x_i in [0, 1] (so replicas add up exactly): for any q, the
function x -> (q / mu)^x ((1 - q) / (1 - mu))^(1 - x) is convex, so its mean under any law on [0, 1]
with mean mu is at most its value for a Bernoulli(mu), which is 1. The product over predictions is a
nonnegative supermartingale under mu, and so is its mixture over q ~ Beta(a, a):

    M_n(mu) = B(a + S, a + n - S) / B(a, a) / (mu^S (1 - mu)^(n - S)),

the beta-binomial mixture the paired A/B test uses (sequential.py), with real S. By Ville's
inequality {mu : M_n(mu) < 1/alpha} covers mu at every n at once with probability >= 1 - alpha
(Robbins 1970; the bounded-mean case in Waudby-Smith & Ramdas 2023). numpy + math, no scipy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from digits.experiments.sequential import PAIRED_PRIOR, log_beta
from digits.monitoring.estimate import AccuracyEstimate, wilson_interval

NO_LABELS = "estimated, no labels"
CALIBRATED = "calibrated (reference profile)"
RAW = "raw confidence (no reference profile loaded)"
MIXED = "partly raw confidence (some versions without a reference profile)"
METHOD = (
    f"{NO_LABELS}: per arm the CBPE estimate (mean calibrated probability of the predicted class, each "
    "version's reference-profile calibration table, raw confidence where a version has none) with a 95% "
    "normal interval assuming calibration holds; per pair the shadow agreement rate (Wilson 95%) and an "
    f"always-valid confidence sequence of the estimates' difference (beta-binomial mixture, Beta({PAIRED_PRIOR:g}, "
    f"{PAIRED_PRIOR:g}), on [0, 1]-valued probabilities, per arm at half the guardrail level). Not in any verdict; "
    "it breaks where calibration does (inverted or noisy inputs): read it beside `digits monitor`'s drift alarms"
)


@dataclass(frozen=True)
class ArmEstimate:
    """One arm's CBPE sums over its live predictions; `uncalibrated` of them used raw confidence."""

    predictions: int = 0
    calibrated_sum: float = 0.0
    variance_sum: float = 0.0
    uncalibrated: int = 0

    def __add__(self, other: ArmEstimate) -> ArmEstimate:
        return ArmEstimate(self.predictions + other.predictions, self.calibrated_sum + other.calibrated_sum,
                           self.variance_sum + other.variance_sum, self.uncalibrated + other.uncalibrated)

    @property
    def estimate(self) -> AccuracyEstimate:
        """The sums as the monitor's AccuracyEstimate (mean and interval)."""
        return AccuracyEstimate(self.predictions, self.calibrated_sum, self.variance_sum)

    @property
    def basis(self) -> str:
        """What the probabilities were calibrated by: CALIBRATED, RAW or MIXED ("" before any)."""
        if not self.predictions:
            return ""
        if not self.uncalibrated:
            return CALIBRATED
        return RAW if self.uncalibrated >= self.predictions else MIXED


def _log_mixture_constant(total: Any, n: Any, prior: float) -> tuple[Any, Any, Any]:
    n = np.asarray(n, dtype=float)
    s = np.clip(np.asarray(total, dtype=float), 0.0, n)
    return s, n, np.asarray(log_beta(prior + s, prior + n - s)) - log_beta(prior, prior)


def _log_mixture(s: Any, n: Any, constant: Any, mu: Any) -> Any:
    mu = np.asarray(mu, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        log = constant - s * np.log(mu) - (n - s) * np.log1p(-mu)
    return np.where((mu > 0) & (mu < 1), log, np.inf)


def log_mixture(total: Any, n: Any, mu: Any, prior: float = PAIRED_PRIOR) -> Any:
    """log M_n(mu) for n observations in [0, 1] summing to `total` (module docstring); arrays broadcast."""
    return _log_mixture(*_log_mixture_constant(total, n, prior), mu)


def mean_sequence(total: Any, n: Any, alpha: float, prior: float = PAIRED_PRIOR) -> tuple[Any, Any]:
    """The always-valid confidence sequence of the mean of [0, 1]-valued observations at 1 - alpha:
    {mu : log M_n(mu) < log(1/alpha)}, an interval around total / n (log M is convex in mu and <= 0
    there), by bisection on each side (arrays: many sequences at once); (0, 1) before any observation."""
    s, n, constant = _log_mixture_constant(total, n, prior)
    centre = np.clip(s / np.maximum(n, 1), 0.0, 1.0)
    bound = math.log(1 / alpha)

    def edge(limit: float) -> Any:
        inside, outside = centre.copy(), np.full_like(centre, limit)
        for _ in range(50):
            middle = (inside + outside) / 2
            accepted = _log_mixture(s, n, constant, middle) < bound
            inside, outside = np.where(accepted, middle, inside), np.where(accepted, outside, middle)
        return np.where(n > 0, outside, limit)  # the first value rejected: conservative

    low, high = edge(0.0), edge(1.0)
    if np.ndim(low) == 0:
        return float(low), float(high)
    return low, high


def difference_bounds(total_a: Any, n_a: Any, total_b: Any, n_b: Any, alpha: float) -> tuple[Any, Any]:
    """Always-valid confidence sequence of mu_a - mu_b at 1 - alpha from the sums (arrays broadcast):
    each arm's at 1 - alpha / 2 (Bonferroni), so the arms' traffic may grow at any rates."""
    low_a, high_a = mean_sequence(total_a, n_a, alpha / 2)
    low_b, high_b = mean_sequence(total_b, n_b, alpha / 2)
    return np.subtract(low_a, high_b), np.subtract(high_a, low_b)


def difference_sequence(a: ArmEstimate, b: ArmEstimate, alpha: float) -> tuple[float, float]:
    """difference_bounds of two arms' estimates; (-1, 1) until both have predictions."""
    if not a.predictions or not b.predictions:
        return -1.0, 1.0
    low, high = difference_bounds(a.calibrated_sum, a.predictions, b.calibrated_sum, b.predictions, alpha)
    return float(low), float(high)


@dataclass(frozen=True)
class PairEstimate:
    """A pair's label-free figures: shadow agreement (Wilson) and the estimates' difference a - b."""

    agreement: float
    agreement_low: float
    agreement_high: float
    difference: float
    low: float
    high: float
    confidence: float


def pair_estimate(a: ArmEstimate, b: ArmEstimate, agree: int, disagree: int, alpha: float,
                  low_high: tuple[float, float] | None = None) -> PairEstimate:
    """The pair's figures; `low_high` overrides the difference's sequence (a running intersection)."""
    shadowed = agree + disagree
    agreement_low, agreement_high = wilson_interval(agree, shadowed) if shadowed else (0.0, 0.0)
    ea, eb = a.estimate.accuracy, b.estimate.accuracy
    difference = ea - eb if ea is not None and eb is not None else 0.0
    low, high = low_high if low_high is not None else difference_sequence(a, b, alpha)
    return PairEstimate(agree / shadowed if shadowed else 0.0, agreement_low, agreement_high, difference, low, high,
                        1 - alpha)


def drop_breached(stable_minus_candidate_low: float, max_drop: float) -> bool:
    """The label-free guardrail: the candidate's estimated accuracy is surely more than `max_drop`
    below stable's (the sequence of stable - candidate lies above max_drop)."""
    return max_drop > 0 and stable_minus_candidate_low > max_drop
