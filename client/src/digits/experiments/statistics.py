"""The statistics of an A/B comparison of two classifiers' accuracies.

scipy.stats supplies the distributions, the Wilson interval and the exact binomial test; the
few formulas it lacks (Newcombe's difference interval, the pooled two-proportion z-test,
McNemar's chi-square, the two-proportion sample size) are written out here with their sources.
Every function is pure and works on plain counts.

scipy.stats is imported on the first call that needs it, not with this module: the server
imports this module for `PairedOutcomes`, and importing scipy.stats costs ~50 MiB of resident
memory and ~1 s, which a server that never reports an experiment should not pay (issue 14).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

# Below this many discordant pairs McNemar's test uses the exact binomial distribution: the
# chi-square approximation is poor for b + c < 25 (the usual rule, e.g. in Wikipedia's article).
EXACT_MCNEMAR_BELOW = 25


@cache
def _scipy_stats() -> Any:
    from scipy import stats

    return stats


def z_of(confidence: float) -> float:
    """The two-sided standard normal quantile, e.g. 1.95996 for 0.95."""
    return float(_scipy_stats().norm.ppf(0.5 + confidence / 2))


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion; (0, 1) when there are no trials."""
    if trials <= 0:
        return 0.0, 1.0
    ci = _scipy_stats().binomtest(successes, trials).proportion_ci(confidence, method="wilson")
    return float(ci.low), float(ci.high)


def difference_interval(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, confidence: float = 0.95
) -> tuple[float, float]:
    """Interval of p_a - p_b for independent samples: Newcombe's hybrid score method.

    Newcombe (1998), "Interval estimation for the difference between independent
    proportions", Stat Med 17:873-890, method 10: built from the two Wilson intervals; it
    keeps its coverage near the edges (accuracies close to 1) where the Wald interval fails.
    """
    if trials_a <= 0 or trials_b <= 0:
        return -1.0, 1.0
    pa, pb = successes_a / trials_a, successes_b / trials_b
    la, ua = wilson_interval(successes_a, trials_a, confidence)
    lb, ub = wilson_interval(successes_b, trials_b, confidence)
    difference = pa - pb
    low = difference - math.sqrt((pa - la) ** 2 + (ub - pb) ** 2)
    high = difference + math.sqrt((ua - pa) ** 2 + (pb - lb) ** 2)
    return max(low, -1.0), min(high, 1.0)


def two_proportion_z_test(successes_a: int, trials_a: int, successes_b: int, trials_b: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test (= Pearson's chi-square on the 2x2 table).

    1.0 when either sample is empty or the pooled proportion is 0 or 1 (nothing to compare).
    """
    if trials_a <= 0 or trials_b <= 0:
        return 1.0
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    variance = pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b)
    if variance <= 0:
        return 1.0
    z = (successes_a / trials_a - successes_b / trials_b) / math.sqrt(variance)
    return float(2 * _scipy_stats().norm.sf(abs(z)))


def mcnemar_test(only_a_right: int, only_b_right: int) -> float:
    """Two-sided p-value of McNemar's test on the discordant pairs of paired outcomes.

    Exact binomial test (b ~ Bin(b + c, 1/2)) below EXACT_MCNEMAR_BELOW discordant pairs,
    otherwise the chi-square statistic with continuity correction (|b - c| - 1)^2 / (b + c)
    on one degree of freedom (McNemar 1947; Edwards 1948). 1.0 with no discordant pairs.
    """
    discordant = only_a_right + only_b_right
    if discordant == 0:
        return 1.0
    if discordant < EXACT_MCNEMAR_BELOW:
        return float(_scipy_stats().binomtest(only_a_right, discordant, 0.5).pvalue)
    statistic = (abs(only_a_right - only_b_right) - 1) ** 2 / discordant
    return float(_scipy_stats().chi2.sf(statistic, df=1))


def sample_size_per_arm(p_a: float, p_b: float, power: float = 0.8, alpha: float = 0.05) -> int:
    """Labelled requests per arm for a two-sided two-proportion test to detect p_a != p_b.

    Fleiss, Levin & Paik (2003), "Statistical Methods for Rates and Proportions", ch. 4,
    without continuity correction (the formula R's power.prop.test solves):
    n = (z_{1-alpha/2} sqrt(2 pbar qbar) + z_power sqrt(p_a q_a + p_b q_b))^2 / (p_a - p_b)^2.
    """
    if not 0 < power < 1 or not 0 < alpha < 1:
        raise ValueError("power and alpha must be in (0, 1)")
    difference = abs(p_a - p_b)
    if difference == 0:
        raise ValueError("the two proportions must differ")
    mean = (p_a + p_b) / 2
    z_alpha = z_of(1 - alpha)
    z_power = float(_scipy_stats().norm.ppf(power))
    root = z_alpha * math.sqrt(2 * mean * (1 - mean)) + z_power * math.sqrt(p_a * (1 - p_a) + p_b * (1 - p_b))
    return math.ceil(root**2 / difference**2)


@dataclass(frozen=True)
class PairedOutcomes:
    """Both arms' outcomes on the same labelled images (primary + shadow): McNemar's 2x2 table."""

    both_right: int = 0
    only_a_right: int = 0
    only_b_right: int = 0
    both_wrong: int = 0

    @property
    def total(self) -> int:
        """Number of paired labelled images."""
        return self.both_right + self.only_a_right + self.only_b_right + self.both_wrong


def paired_difference_interval(paired: PairedOutcomes, confidence: float = 0.95) -> tuple[float, float]:
    """Wald interval of accuracy(a) - accuracy(b) on paired outcomes.

    Agresti (2013), "Categorical Data Analysis", 3rd ed., section 11.1:
    var(d) = [(b + c)/n - ((b - c)/n)^2] / n with b, c the discordant counts.
    """
    n = paired.total
    if n == 0:
        return -1.0, 1.0
    b, c = paired.only_a_right / n, paired.only_b_right / n
    half = z_of(confidence) * math.sqrt(max(b + c - (b - c) ** 2, 0.0) / n)
    return max(b - c - half, -1.0), min(b - c + half, 1.0)


@dataclass(frozen=True)
class Comparison:
    """Everything the report says about two arms' accuracies."""

    difference: float  # accuracy(a) - accuracy(b), on the traffic the verdict rests on
    difference_low: float
    difference_high: float
    z_test_p: float
    mcnemar_p: float
    test: str  # "z-test" (independent traffic), "McNemar" (paired traffic) or "" (no labelled traffic)
    p_value: float  # of that test
    significant: bool
    more_needed_per_arm: int


def compare(
    correct_a: int,
    labelled_a: int,
    correct_b: int,
    labelled_b: int,
    paired: PairedOutcomes = PairedOutcomes(),
    alpha: float = 0.05,
    power: float = 0.8,
    smallest_effect: float = 0.005,
) -> Comparison:
    """Compare two arms' accuracies.

    The verdict rests on McNemar's test when there are at least as many paired (shadow)
    outcomes as the smaller arm has labelled requests of its own (heavy shadowing: pairing
    removes the noise of which images each arm happened to get), else on the z-test on the
    arms' independent traffic; the choice depends on counts only, never on the outcomes. When not
    significant, `more_needed_per_arm` is how many more labelled requests per arm a
    two-proportion test needs for `power` to detect the observed difference (at least
    `smallest_effect`); for paired data that is conservative (pairing needs fewer).
    """
    z_p = two_proportion_z_test(correct_a, labelled_a, correct_b, labelled_b)
    mc_p = mcnemar_test(paired.only_a_right, paired.only_b_right)
    if labelled_a > 0 and labelled_b > 0 and paired.total < min(labelled_a, labelled_b):
        test, p_value, have = "z-test", z_p, min(labelled_a, labelled_b)
        p_a, p_b = correct_a / labelled_a, correct_b / labelled_b
        low, high = difference_interval(correct_a, labelled_a, correct_b, labelled_b)
    elif paired.total > 0:
        test, p_value, have = "McNemar", mc_p, paired.total
        p_a = (paired.both_right + paired.only_a_right) / paired.total
        p_b = (paired.both_right + paired.only_b_right) / paired.total
        low, high = paired_difference_interval(paired)
    else:
        return Comparison(0.0, -1.0, 1.0, z_p, mc_p, "", 1.0, False, 0)
    significant = p_value < alpha
    more = 0
    if not significant:
        effect = max(abs(p_a - p_b), smallest_effect)
        centre = min(max((p_a + p_b) / 2, effect / 2), 1 - effect / 2)
        more = max(sample_size_per_arm(centre + effect / 2, centre - effect / 2, power, alpha) - have, 0)
    return Comparison(p_a - p_b, low, high, z_p, mc_p, test, p_value, significant, more)


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """The q-quantile of a cumulative histogram [(upper bound, count <= bound), ..., (+Inf, total)].

    Linear interpolation inside the bucket that holds it, like PromQL's histogram_quantile
    (first bucket from 0; a quantile in the +Inf bucket gives the highest finite bound).
    0.0 for an empty histogram.
    """
    if not buckets or buckets[-1][1] <= 0:
        return 0.0
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank and count > lower_count:
            if math.isinf(bound):
                return lower_bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound
