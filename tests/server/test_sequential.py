"""The anytime-valid statistics (digits/experiments/sequential.py, shared by the server and the fleet
report) against values computed independently: the mixture likelihood ratios by numerical
integration (scipy.integrate.quad over the mixing distribution), Holm's adjustment by hand, and a
fixed-seed simulation of peeking (the small version of bench/ab_peeking.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as scipy_stats

from bench.ab_peeking import simulate_aa, simulate_power, wilson
from digits.experiments import sequential as seq


def mixture_lr_by_integration(estimate: float, variance: float, tau: float) -> float:
    """Lambda = integral of N(estimate; theta, V) N(theta; 0, tau^2) dtheta / N(estimate; 0, V)."""
    sd = math.sqrt(variance)
    numerator, _ = integrate.quad(
        lambda theta: scipy_stats.norm.pdf(estimate, theta, sd) * scipy_stats.norm.pdf(theta, 0, tau),
        -12 * tau, 12 * tau, points=[estimate], limit=200,
    )
    return numerator / scipy_stats.norm.pdf(estimate, 0, sd)


@pytest.mark.parametrize(("estimate", "variance", "tau"),
                         [(0.0, 1e-4, 0.03), (0.02, 1e-4, 0.03), (-0.05, 4e-4, 0.03), (0.01, 2e-5, 0.01),
                          (0.1, 1e-3, 0.05)])
def test_normal_mixture_ratio_matches_numerical_integration(estimate: float, variance: float, tau: float) -> None:
    expected = mixture_lr_by_integration(estimate, variance, tau)
    assert math.exp(seq.log_mixture_ratio(estimate, variance, tau)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(("variance", "tau", "alpha"), [(1e-4, 0.03, 0.05), (5e-5, 0.02, 0.01), (2e-3, 0.05, 0.1)])
def test_confidence_sequence_edge_is_where_the_ratio_reaches_one_over_alpha(
    variance: float, tau: float, alpha: float
) -> None:
    radius = seq.mixture_radius(variance, tau, alpha)
    assert mixture_lr_by_integration(radius, variance, tau) == pytest.approx(1 / alpha, rel=1e-6)
    assert mixture_lr_by_integration(0.99 * radius, variance, tau) < 1 / alpha


def test_independent_p_value_uses_the_pooled_smoothed_variance() -> None:
    ca, na, cb, nb = 930, 1000, 900, 1000
    pooled = (ca + cb + 1) / (na + nb + 2)
    variance = pooled * (1 - pooled) * (1 / na + 1 / nb)
    expected = 1 / mixture_lr_by_integration(0.03, variance, seq.TAU)
    assert seq.independent_p_value(ca, na, cb, nb) == pytest.approx(expected, rel=1e-6)
    low, high = seq.independent_interval(ca, na, cb, nb)
    sa, sb = (ca + 1) / (na + 2), (cb + 1) / (nb + 2)
    radius = seq.mixture_radius(sa * (1 - sa) / na + sb * (1 - sb) / nb)
    assert (low, high) == pytest.approx((0.03 - radius, 0.03 + radius))
    assert low < 0 < 0.03 < high and seq.independent_p_value(ca, na, cb, nb) > 0.05  # 3 points at n = 1000: not yet
    assert seq.independent_interval(10 * ca, 10 * na, 10 * cb, 10 * nb)[0] > 0  # at n = 10,000: yes
    assert seq.independent_p_value(10 * ca, 10 * na, 10 * cb, 10 * nb) < 0.001
    assert seq.independent_p_value(ca, na, cb, 0) == 1.0  # an arm without data: no evidence


@pytest.mark.parametrize(("b", "c", "prior"), [(0, 0, 2.0), (5, 1, 2.0), (30, 12, 2.0), (3, 40, 1.0), (100, 100, 5.0)])
def test_paired_p_value_matches_the_integrated_beta_binomial_mixture(b: int, c: int, prior: float) -> None:
    mixture, _ = integrate.quad(lambda q: q**b * (1 - q) ** c * scipy_stats.beta.pdf(q, prior, prior), 0, 1, limit=200)
    expected = min(1.0, 0.5 ** (b + c) / mixture)
    assert seq.paired_p_value(b, c, prior) == pytest.approx(expected, rel=1e-6)


def test_paired_interval_is_centred_on_the_paired_difference() -> None:
    low, high = seq.paired_interval(40, 10, 1000)
    assert low < 0.03 < high and high - 0.03 == pytest.approx(0.03 - low)
    smoothed_d, delta = 30 / 1002, 51 / 1002
    assert high - 0.03 == pytest.approx(seq.mixture_radius((delta - smoothed_d**2) / 1000))
    assert seq.paired_interval(0, 0, 0) == (-1.0, 1.0)


def test_holm_adjusted_p_values_by_hand() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, 2*0.03, max(1*0.04, 0.06)
    assert seq.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert seq.holm([0.5, 0.9, 0.2]) == pytest.approx([1.0, 1.0, 0.6])
    assert seq.holm([]) == []


def test_mean_excess_interval() -> None:
    estimate, low, high = seq.mean_excess_interval(0.012, 1e-5, 400, 0.010, 1e-5, 400, tolerance=0.1, tau=0.001)
    assert estimate == pytest.approx(0.012 - 1.1 * 0.010)
    radius = seq.mixture_radius(1e-5 / 400 + 1.21 * 1e-5 / 400, 0.001)
    assert (low, high) == pytest.approx((estimate - radius, estimate + radius))
    assert seq.mean_excess_interval(0.01, 0, 0, 0.01, 0, 10, 0.1, 0.001)[1] == -math.inf


def test_running_keeps_the_minimum_p_and_the_intersection() -> None:
    running = seq.Running()
    running.update(0.4, -0.1, 0.2).update(0.6, -0.05, 0.3)
    assert (running.p_value, running.low, running.high, running.looks) == (0.4, -0.05, 0.2, 2)
    running.update(0.5, 0.25, 0.4)  # disjoint: restart from the current interval
    assert (running.low, running.high) == (0.25, 0.4)


def test_peeking_simulation_fixed_seed() -> None:
    """200 A/A experiments looked at every 50 labelled requests per arm up to 5,000: the always-valid
    tests stay under 5%, the fixed-horizon z-test and McNemar's test looked at every time do not."""
    aa = simulate_aa(np.random.default_rng(15), 200)
    assert aa.always_valid / aa.experiments <= 0.05, aa
    assert aa.paired_always_valid / aa.experiments <= 0.05, aa
    assert wilson(aa.z_peeking, aa.experiments)[0] > 0.05, aa  # peeking inflates it, significantly
    assert wilson(aa.mcnemar_peeking, aa.experiments)[0] > 0.05, aa


def test_power_simulation_fixed_seed() -> None:
    """95% vs 92% accuracy: found (with the right sign) in >= 80% of 200 runs by 5,000 per arm."""
    power = simulate_power(np.random.default_rng(15), 200)
    assert power.detected / power.experiments >= 0.8 and power.wrong_sign == 0, power
    assert power.fixed_n < power.n_80 <= 5000, power  # the price of looking: more data than one fixed look
