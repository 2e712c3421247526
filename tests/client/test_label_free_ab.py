"""The label-free A/B statistics (digits.experiments.label_free): the beta-binomial mixture confidence
sequence on [0, 1]-valued calibrated probabilities, checked against numerical integration (the
oracle), and its sequential validity shown by fixed-seed simulation (A/A: false "candidate worse"
at most its share of alpha whatever the looks; a fixed interval read at every look is not)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from digits.experiments import label_free as lf
from digits.experiments.always_valid import guardrail_level

integrate = pytest.importorskip("scipy.integrate")
special = pytest.importorskip("scipy.special")
stats = pytest.importorskip("scipy.stats")

# Calibrated probabilities of being right as a trained model's calibration table gives them (most
# predictions in the top bin), and a weak model's.
GOOD = (np.array([0.999, 0.99, 0.95, 0.85, 0.7, 0.5]), np.array([0.85, 0.07, 0.03, 0.025, 0.015, 0.01]))
WEAK = (np.array([0.95, 0.8, 0.6, 0.45, 0.3]), np.array([0.2, 0.2, 0.2, 0.2, 0.2]))


def _draw(rng: np.random.Generator, law: tuple[np.ndarray, np.ndarray], size: tuple[int, ...]) -> np.ndarray:
    values, weights = law
    return values[rng.choice(len(values), size=size, p=weights)]


@pytest.mark.parametrize(("total", "n", "mu"), [(7.3, 10, 0.5), (97.2, 100, 0.9), (951.5, 1000, 0.97), (0.0, 5, 0.2)])
def test_mixture_equals_numerical_integration(total: float, n: int, mu: float) -> None:
    """M_n(mu) = integral over q ~ Beta(2, 2) of prod_i (q/mu)^x_i ((1-q)/(1-mu))^(1-x_i): by quad."""
    prior = stats.beta(lf.PAIRED_PRIOR, lf.PAIRED_PRIOR)

    def integrand(q: float) -> float:
        return math.exp(total * math.log(q / mu) + (n - total) * math.log((1 - q) / (1 - mu))) * prior.pdf(q)

    numeric, _ = integrate.quad(integrand, 0, 1, points=[total / n] if 0 < total < n else None, limit=200)
    assert float(lf.log_mixture(total, n, mu)) == pytest.approx(math.log(numeric), rel=1e-6, abs=1e-6)
    closed = special.betaln(2 + total, 2 + n - total) - special.betaln(2, 2) - total * math.log(mu) \
        - (n - total) * math.log1p(-mu)
    assert float(lf.log_mixture(total, n, mu)) == pytest.approx(closed, rel=1e-9)


@pytest.mark.parametrize(("a", "b"), [(0.5, 0.5), (20.0, 1.0), (2.0, 5.0)])
def test_each_factor_is_a_supermartingale_step_for_any_law_on_the_unit_interval(a: float, b: float) -> None:
    """E[(q/mu)^X ((1-q)/(1-mu))^(1-X)] <= 1 for X ~ Beta(a, b) (mean mu), by numerical integration:
    why the sequence holds for probabilities, not only 0/1 outcomes."""
    law, mu = stats.beta(a, b), a / (a + b)
    for q in (0.01, 0.3, mu, 0.7, 0.99):
        mean, _ = integrate.quad(lambda x, q=q: (q / mu) ** x * ((1 - q) / (1 - mu)) ** (1 - x) * law.pdf(x), 0, 1,
                                 limit=200)
        assert mean <= 1 + 1e-9


def test_sequence_edges_are_where_the_mixture_reaches_one_over_alpha() -> None:
    low, high = lf.mean_sequence(951.5, 1000, 0.01)
    assert low < 0.9515 < high
    for edge in (low, high):
        assert float(lf.log_mixture(951.5, 1000, edge)) == pytest.approx(math.log(100), abs=1e-3)
    assert lf.mean_sequence(0.0, 0, 0.05) == (0.0, 1.0)
    many_low, many_high = lf.mean_sequence(np.array([951.5, 97.2]), np.array([1000, 100]), 0.01)
    assert (many_low[0], many_high[0]) == pytest.approx((low, high))  # arrays: the same sequences


def _a_a_runs(rng: np.random.Generator, runs: int, total: int, share: float, looks: np.ndarray,
              candidate_law: tuple[np.ndarray, np.ndarray] = GOOD) -> tuple[np.ndarray, ...]:
    """Cumulative (sum, count) of each arm at each look, for `runs` experiments of `total` predictions
    split at random (`share` to the candidate)."""
    to_candidate = rng.random((runs, total)) < share
    stable_p, candidate_p = _draw(rng, GOOD, (runs, total)), _draw(rng, candidate_law, (runs, total))
    sum_c = np.cumsum(np.where(to_candidate, candidate_p, 0.0), axis=1)[:, looks - 1]
    sum_s = np.cumsum(np.where(to_candidate, 0.0, stable_p), axis=1)[:, looks - 1]
    n_c = np.cumsum(to_candidate, axis=1)[:, looks - 1]
    return sum_s, looks - n_c, sum_c, n_c


def test_a_a_false_rollbacks_stay_within_the_guardrail_share_at_every_look() -> None:
    """2,000 A/A experiments of 10,000 predictions, 10% to the candidate, a look every 100: the
    guardrail "stable - candidate surely > max_drop" fires falsely in at most its share of alpha, even
    at max_drop = 0 (the hardest: any surely-lower estimate), and at a looser alpha too."""
    rng = np.random.default_rng(20261205)
    looks = np.arange(100, 10_001, 100)
    sum_s, n_s, sum_c, n_c = _a_a_runs(rng, 2000, 10_000, 0.10, looks)
    for alpha in (guardrail_level(0.05, 1), 0.2):
        low, _ = lf.difference_bounds(sum_s, n_s, sum_c, n_c, alpha)  # stable - candidate
        false = float(np.mean((low > 0).any(axis=1)))
        assert false <= alpha, (alpha, false)
    # The same looks at a fixed-horizon one-sided z-test at 5% (Welch, the per-prediction variance of
    # the law): it reads "candidate lower" far more often than 5%, so this simulation can tell a
    # valid sequence from one that is not.
    variance = float(np.dot(GOOD[1], GOOD[0] ** 2) - np.dot(GOOD[1], GOOD[0]) ** 2)
    z = (sum_s / n_s - sum_c / n_c) / np.sqrt(variance / n_s + variance / n_c)
    naive = float(np.mean((z > 1.645).any(axis=1)))
    assert naive > 0.15, naive


def test_one_arm_sequence_covers_its_mean_at_every_look() -> None:
    rng = np.random.default_rng(7)
    p = _draw(rng, GOOD, (2000, 5000))
    looks = np.arange(25, 5001, 25)
    sums = np.cumsum(p, axis=1)[:, looks - 1]
    mean = float(np.dot(*GOOD))
    low, high = lf.mean_sequence(sums, np.broadcast_to(looks, sums.shape), 0.1)
    missed = float(np.mean(((low > mean) | (high < mean)).any(axis=1)))
    assert missed <= 0.1
    # the normal interval the monitor shows (a fixed interval, right at one look) misses more when watched
    variance = np.cumsum(p * (1 - p), axis=1)[:, looks - 1]
    fixed_half = 1.645 * np.sqrt(variance) / looks
    assert float(np.mean((np.abs(sums / looks - mean) > fixed_half).any(axis=1))) > missed


def test_weak_candidate_fires_within_a_few_hundred_predictions() -> None:
    """A candidate whose calibrated probabilities average 0.62 against stable's 0.98, 10% of traffic:
    the guardrail at max_drop = 0.05 fires in every run; the median candidate predictions it took."""
    rng = np.random.default_rng(11)
    looks = np.arange(100, 10_001, 100)
    sum_s, n_s, sum_c, n_c = _a_a_runs(rng, 200, 10_000, 0.10, looks, candidate_law=WEAK)
    low, _ = lf.difference_bounds(sum_s, n_s, sum_c, n_c, guardrail_level(0.05, 1))
    fired = np.array([lf.drop_breached(v, 0.05) for v in low.ravel()]).reshape(low.shape)
    assert fired.any(axis=1).all()
    first = fired.argmax(axis=1)
    median = float(np.median(n_c[np.arange(len(first)), first]))
    assert median < 400, median


def test_arm_estimate_basis_and_sums() -> None:
    assert lf.ArmEstimate().basis == ""
    assert lf.ArmEstimate(10, 9.0, 0.5).basis == lf.CALIBRATED
    assert lf.ArmEstimate(10, 9.0, 0.5, 10).basis == lf.RAW
    both = lf.ArmEstimate(10, 9.0, 0.5) + lf.ArmEstimate(10, 9.0, 0.5, 10)
    assert both == lf.ArmEstimate(20, 18.0, 1.0, 10) and both.basis == lf.MIXED
    assert both.estimate.accuracy == pytest.approx(0.9)
    assert not lf.drop_breached(0.2, 0.0)  # off
    assert lf.difference_sequence(lf.ArmEstimate(), both, 0.05) == (-1.0, 1.0)
