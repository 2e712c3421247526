"""The always-valid statistics (digits/experiments/sequential.py) against `confseq`, the uniform
boundaries of Howard, Ramdas, McAuliffe & Sekhon (2021) by the methods' authors, run in .venv-oracle.
tests/server/test_sequential.py checks the same formulas by numerical integration; this checks them
against the authors' code over a grid of intrinsic time v = 1 / V, alpha and tuning (tau, prior,
confseq's alpha_opt). tests/oracle/confseq_mapping.py says how our parameters map to confseq's.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from digits.experiments import sequential as seq
from tests.oracle.confseq_mapping import normal_points, paired_points, run_confseq
from tests.tools import oracle_python

ALPHAS = (0.001, 0.01, 0.025, 0.05, 0.1, 0.2)
ALPHA_OPTS = (0.05, 0.01)  # confseq's tuning level: only changes how rho is named
RTOL = 1e-9  # closed forms on both sides (the beta-binomial boundary, a bisection, is checked looser)


def grid(*axes: Any) -> list[np.ndarray]:
    """The cartesian product of the axes, one flat array per axis."""
    return [np.asarray(column, dtype=float) for column in zip(*itertools.product(*axes))]


@pytest.fixture(scope="module")
def normal_grid() -> dict[str, np.ndarray]:
    """Variances from a proportion at n ~ 25 (1e-2) down to a latency mean over ~1e5 requests (1e-11);
    tau from the latency guardrail's 1 ms to 0.1; estimates from -6 to 6 standard errors."""
    variance, tau, alpha, alpha_opt, z = grid(np.geomspace(1e-11, 1e-2, 10), (0.001, 0.01, seq.TAU, 0.1),
                                              ALPHAS, ALPHA_OPTS, (-6.0, -1.5, 0.0, 0.7, 3.0))
    points = {"variance": variance, "estimate": z * np.sqrt(variance), "tau": tau, "alpha": alpha,
              "alpha_opt": alpha_opt}
    return points | run_confseq(oracle_python(), normal=normal_points(**points))["normal"]


def test_normal_mixture_ratio_matches_confseq(normal_grid: dict[str, np.ndarray]) -> None:
    ours = seq.log_mixture_ratio(normal_grid["estimate"], normal_grid["variance"], normal_grid["tau"])
    np.testing.assert_allclose(ours, normal_grid["log_mixture"], rtol=RTOL, atol=RTOL)
    assert np.ptp(ours) > 10  # the grid spans strong evidence for and against (log Lambda < 0 at z = 0)


def test_confidence_sequence_radius_matches_confseq_boundary(normal_grid: dict[str, np.ndarray]) -> None:
    ours = seq.mixture_radius(normal_grid["variance"], normal_grid["tau"], normal_grid["alpha"])
    np.testing.assert_allclose(ours, normal_grid["variance"] * normal_grid["bound"], rtol=RTOL)


def test_p_values_and_intervals_from_counts_match_confseq() -> None:
    """End to end from counts: the p-value is confseq's 1 / mixture at the pooled variance, the interval
    the estimate +- its boundary at the unpooled one (clipped to [-1, 1])."""
    n_a, n_b, rate_a, rate_b, tau, alpha = grid((20, 400, 20_000), (30, 5000), (0.5, 0.93, 1.0),
                                                (0.0, 0.9, 0.97), (0.01, seq.TAU), (0.05, 0.0125))
    correct_a, correct_b = np.round(rate_a * n_a), np.round(rate_b * n_b)
    difference, null_variance, variance = seq.independent_statistics(correct_a, n_a, correct_b, n_b)
    test = run_confseq(oracle_python(), normal=normal_points(null_variance, difference, tau, alpha, 0.05))
    interval = run_confseq(oracle_python(), normal=normal_points(variance, difference, tau, alpha, 0.05))
    p_value = seq.independent_p_value(correct_a, n_a, correct_b, n_b, tau=tau)
    np.testing.assert_allclose(p_value, np.minimum(1.0, np.exp(-test["normal"]["log_mixture"])),
                               rtol=RTOL, atol=1e-300)
    assert p_value.min() < 1e-100 and p_value.max() == 1.0
    low, high = seq.independent_interval(correct_a, n_a, correct_b, n_b, tau=tau, alpha=alpha)
    radius = variance * interval["normal"]["bound"]
    np.testing.assert_allclose(low, np.maximum(difference - radius, -1.0), rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(high, np.minimum(difference + radius, 1.0), rtol=RTOL, atol=1e-12)


@pytest.fixture(scope="module")
def paired_grid() -> dict[str, np.ndarray]:
    """Discordant pairs b (only a right) and c (only b right) under Beta(prior, prior) priors."""
    b, c, prior, alpha, alpha_opt = grid((0, 1, 3, 10, 40, 150, 600), (0, 2, 25, 500),
                                         (0.5, 1.0, seq.PAIRED_PRIOR, 5.0), (0.01, 0.05), ALPHA_OPTS)
    points = paired_points(b, c, prior, alpha, alpha_opt)
    return {"b": b, "c": c, "prior": prior} | points | run_confseq(oracle_python(),
                                                                   beta_binomial=points)["beta_binomial"]


def test_paired_p_value_matches_confseq_beta_binomial_mixture(paired_grid: dict[str, np.ndarray]) -> None:
    ours = seq.paired_p_value(paired_grid["b"], paired_grid["c"], paired_grid["prior"])
    np.testing.assert_allclose(ours, np.minimum(1.0, np.exp(-paired_grid["log_mixture"])), rtol=1e-8, atol=1e-300)
    assert ours.min() < 1e-50 and ours.max() == 1.0


def test_paired_p_value_is_alpha_on_confseq_beta_binomial_boundary(paired_grid: dict[str, np.ndarray]) -> None:
    """confseq's boundary s*(v, alpha) is where the mixture reaches 1 / alpha: our p-value there (b = 2v + s*,
    c = 2v - s*, real-valued) is alpha; where even b + c pairs all one way cannot reach it (s* = v / g = 2v),
    ours stays above alpha."""
    v, bound, alpha = paired_grid["v"], paired_grid["bound"], paired_grid["alpha"]
    seen = v > 0
    ours = seq.paired_p_value(2 * v + bound, 2 * v - bound, paired_grid["prior"])
    reachable = seen & (bound < 2 * v * (1 - 1e-9))
    np.testing.assert_allclose(ours[reachable], alpha[reachable], rtol=1e-7)
    assert np.all(ours[seen & ~reachable] >= alpha[seen & ~reachable])
    assert reachable.sum() > 50 and (seen & ~reachable).sum() > 5  # both branches exercised
