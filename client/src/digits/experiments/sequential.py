"""Anytime-valid ("always valid") inference for A/B comparisons: p-values and confidence sequences
that may be looked at after every request without inflating the error rate.

Pure numpy + math (no scipy, no server imports): shared by the server's report and the client's
fleet report (`digits ab report --prometheus`), like statistics.py. Every function takes scalars or
numpy arrays (the simulation in bench/ab_peeking.py runs thousands of experiments at once through
the same code).

Methods (docs/ab-decisions.md explains them with the simulated figures):

- **Independent traffic (split)**: the normal-mixture sequential probability ratio test (mSPRT) of
  Johari, Pekelis & Walsh, "Always Valid Inference" (2017, Operations Research 2022), on the
  difference of two proportions theta = p_a - p_b with a plug-in variance V. Mixing theta over
  N(0, tau^2) gives the likelihood ratio

      Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 * theta_hat^2 / (2 V (V + tau^2))),

  the always-valid p-value is the running minimum of 1 / Lambda, and the confidence sequence is
  the set of theta_0 that test does not reject (Howard, Ramdas, McAuliffe & Sekhon 2021, "Time-
  uniform, nonparametric, nonasymptotic confidence sequences", the two-sided normal-mixture
  boundary with rho = V/tau^2 in their notation):

      |theta_hat - theta_0| < sqrt(2 V (V + tau^2) / tau^2 * (log(1/alpha) + log((V + tau^2)/V) / 2)).

  The test uses the pooled variance under H0 (like the pooled z-test), the sequence the unpooled
  one; both plug in add-one-smoothed proportions ((x + 1) / (n + 2)) so V never vanishes. With a
  plug-in variance the guarantee is asymptotic (Johari et al. section 4); the simulation checks it
  at this scale. TAU = 0.03: the mixture is tuned for differences of a few accuracy points.

- **Paired traffic (shadowed requests)**: only discordant pairs carry information. Among them
  the share q where only arm a was right is 1/2 under H0. The mixture SPRT with q ~ Beta(a, a),

      Lambda = B(b + a, c + a) / B(a, a) / (1/2)^(b + c)     (b, c = only-a / only-b right),

  is a nonnegative martingale under H0 for any sequence of discordant pairs, so its p-value is
  exact (no plug-in, no asymptotics) by Ville's inequality. PAIRED_PRIOR = 2 (prior sd of q 0.22).
  The confidence sequence of the paired accuracy difference uses the normal mixture on the
  per-image difference D in {-1, 0, 1} with plug-in variance (delta - d^2) / n (smoothed).

- **Guardrails**: the same normal-mixture confidence sequence on an error-rate difference and
  on mean latency (candidate - (1 + tolerance) * baseline, variance from the histogram).

- **Several arms**: Holm's step-down adjustment over the pairs' always-valid p-values; valid
  because each is a valid p-value at any stopping time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

ALPHA = 0.05
TAU = 0.03  # mixing sd of the accuracy (or error-rate) difference, in proportion units
PAIRED_PRIOR = 2.0  # Beta(a, a) prior of the discordant share q
_MAX_LOG = 700.0  # exp() overflow guard


def _out(value: Any) -> Any:
    """A 0-d array as a float, arrays unchanged."""
    array = np.asarray(value, dtype=float)
    return float(array) if array.ndim == 0 else array


def smoothed(successes: Any, trials: Any) -> Any:
    """Add-one-smoothed proportion (x + 1) / (n + 2): never 0 or 1, so a plug-in variance never vanishes."""
    return (np.asarray(successes, dtype=float) + 1) / (np.asarray(trials, dtype=float) + 2)


def log_mixture_ratio(estimate: Any, variance: Any, tau: float = TAU) -> Any:
    """log Lambda of the normal-mixture SPRT of H0: theta = 0 (Johari et al. 2017, eq. for the
    Gaussian mSPRT with mixing N(0, tau^2)); 0 where the variance is not positive."""
    estimate, variance = np.asarray(estimate, dtype=float), np.asarray(variance, dtype=float)
    safe = np.where(variance > 0, variance, 1.0)
    ratio = tau**2 / safe
    log = -0.5 * np.log1p(ratio) + estimate**2 / safe * ratio / (2 * (1 + ratio))
    return _out(np.where(variance > 0, np.minimum(log, _MAX_LOG), 0.0))


def mixture_radius(variance: Any, tau: float = TAU, alpha: float = ALPHA) -> Any:
    """Half-width of the normal-mixture confidence sequence (Howard et al. 2021, two-sided
    normal mixture): the theta_0 with Lambda(theta_0) < 1/alpha; inf where the variance is 0."""
    variance = np.asarray(variance, dtype=float)
    safe = np.where(variance > 0, variance, 1.0)
    total = safe + tau**2
    log_inverse_alpha = np.log(1 / np.asarray(alpha, dtype=float))  # alpha may be an array, like the variance
    radius = np.sqrt(2 * safe * total / tau**2 * (log_inverse_alpha + 0.5 * np.log(total / safe)))
    return _out(np.where(variance > 0, radius, np.inf))


def independent_statistics(correct_a: Any, n_a: Any, correct_b: Any, n_b: Any) -> tuple[Any, Any, Any]:
    """(difference p_a - p_b, pooled variance under H0, unpooled variance) of two independent
    proportions, the variances from add-one-smoothed proportions; inf variance while an arm has no data."""
    correct_a, n_a = np.asarray(correct_a, dtype=float), np.asarray(n_a, dtype=float)
    correct_b, n_b = np.asarray(correct_b, dtype=float), np.asarray(n_b, dtype=float)
    both = (n_a > 0) & (n_b > 0)
    na, nb = np.where(both, n_a, 1.0), np.where(both, n_b, 1.0)
    difference = np.where(both, correct_a / na - correct_b / nb, 0.0)
    pooled = smoothed(correct_a + correct_b, n_a + n_b)
    null_variance = pooled * (1 - pooled) * (1 / na + 1 / nb)
    sa, sb = smoothed(correct_a, n_a), smoothed(correct_b, n_b)
    variance = sa * (1 - sa) / na + sb * (1 - sb) / nb
    return _out(difference), _out(np.where(both, null_variance, 0.0)), _out(np.where(both, variance, 0.0))


def independent_p_value(correct_a: Any, n_a: Any, correct_b: Any, n_b: Any, tau: float = TAU) -> Any:
    """1 / Lambda (capped at 1) of the mSPRT on p_a - p_b at this moment; the always-valid p-value
    is the running minimum of these over the looks (`Running`)."""
    difference, null_variance, _ = independent_statistics(correct_a, n_a, correct_b, n_b)
    return _out(np.minimum(1.0, np.exp(-np.asarray(log_mixture_ratio(difference, null_variance, tau)))))


def independent_interval(
    correct_a: Any, n_a: Any, correct_b: Any, n_b: Any, tau: float = TAU, alpha: float = ALPHA
) -> tuple[Any, Any]:
    """The confidence sequence of p_a - p_b at this moment (before the running intersection)."""
    difference, _, variance = independent_statistics(correct_a, n_a, correct_b, n_b)
    radius = mixture_radius(variance, tau, alpha)
    return _out(np.maximum(difference - radius, -1.0)), _out(np.minimum(difference + radius, 1.0))


_lgamma = np.frompyfunc(math.lgamma, 1, 1)


def log_beta(x: Any, y: Any) -> Any:
    """log B(x, y)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    return _out(np.asarray(_lgamma(x) + _lgamma(y) - _lgamma(x + y), dtype=float))


def paired_p_value(only_a_right: Any, only_b_right: Any, prior: float = PAIRED_PRIOR) -> Any:
    """1 / Lambda (capped at 1) of the beta-binomial mixture SPRT of H0: q = 1/2 on the discordant
    pairs b, c (exact: a nonnegative martingale under H0)."""
    b, c = np.asarray(only_a_right, dtype=float), np.asarray(only_b_right, dtype=float)
    log = np.asarray(log_beta(b + prior, c + prior)) - log_beta(prior, prior) + (b + c) * math.log(2)
    return _out(np.minimum(1.0, np.exp(-np.minimum(log, _MAX_LOG))))


def paired_interval(
    only_a_right: int, only_b_right: int, pairs: int, tau: float = TAU, alpha: float = ALPHA
) -> tuple[float, float]:
    """Confidence sequence of the paired accuracy difference d = (b - c) / n: normal mixture on the
    per-image difference with plug-in variance (delta - d^2) / n from smoothed
    shares ((b + c + 1) / (n + 2) and (b - c) / (n + 2)), which is always positive."""
    if pairs <= 0:
        return -1.0, 1.0
    d = (only_a_right - only_b_right) / pairs
    smoothed_d = (only_a_right - only_b_right) / (pairs + 2)  # |smoothed_d| < delta <= 1: variance > 0
    delta = (only_a_right + only_b_right + 1) / (pairs + 2)
    radius = float(mixture_radius((delta - smoothed_d**2) / pairs, tau, alpha))
    return max(d - radius, -1.0), min(d + radius, 1.0)


def mean_excess_interval(
    mean_c: float, var_c: float, n_c: float, mean_b: float, var_b: float, n_b: float,
    tolerance: float, tau: float, alpha: float = ALPHA,
) -> tuple[float, float, float]:
    """(estimate, low, high) of mu_c - (1 + tolerance) mu_b: a normal-mixture confidence sequence on
    the excess of a candidate's mean over the tolerated multiple of the baseline's; (0, -inf, inf)
    while either side has no observations."""
    if n_c <= 0 or n_b <= 0:
        return 0.0, -math.inf, math.inf
    estimate = mean_c - (1 + tolerance) * mean_b
    variance = var_c / n_c + (1 + tolerance) ** 2 * var_b / n_b
    radius = float(mixture_radius(variance, tau, alpha)) if variance > 0 else 0.0
    return estimate, estimate - radius, estimate + radius


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979): reject pair i at level alpha when its adjusted
    p <= alpha; controls the family-wise error rate over all pairs."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


@dataclass
class Running:
    """An always-valid p-value and confidence sequence across looks: the running minimum of the
    p-values and the running intersection of the intervals (each look narrows, never widens).
    An empty intersection (only possible when the plug-in approximation fails) restarts from
    the current interval."""

    p_value: float = 1.0
    low: float = -math.inf
    high: float = math.inf
    looks: int = 0

    def update(self, p_value: float, low: float, high: float) -> "Running":
        """Fold in one look; returns self."""
        self.p_value = min(self.p_value, p_value)
        new_low, new_high = max(self.low, low), min(self.high, high)
        self.low, self.high = (new_low, new_high) if new_low <= new_high else (low, high)
        self.looks += 1
        return self
