"""The A/B statistics against published worked examples (sources cited per test)."""

from __future__ import annotations

import math

import pytest
from scipy import stats as scipy_stats

from digits.experiments import statistics as stats


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [
        # Newcombe (1998), "Two-sided confidence intervals for the single proportion: comparison of
        # seven methods", Stat Med 17:857-872, Table I, method 3 (score interval without correction).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0000, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_newcombe_1998(successes: int, trials: int, low: float, high: float) -> None:
    got_low, got_high = stats.wilson_interval(successes, trials)
    assert got_low == pytest.approx(low, abs=5e-5)
    assert got_high == pytest.approx(high, abs=5e-5)


def test_wilson_interval_without_trials_is_everything() -> None:
    assert stats.wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("a", "n_a", "b", "n_b", "low", "high"),
    [
        # Newcombe (1998), "Interval estimation for the difference between independent proportions:
        # comparison of eleven methods", Stat Med 17:873-890, Table II, method 10 (hybrid score).
        (56, 70, 48, 80, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.1705, 0.8090),
        (6, 7, 2, 7, 0.0582, 0.8062),
        (5, 56, 0, 29, -0.0381, 0.1926),
    ],
)
def test_difference_interval_matches_newcombe_1998(a: int, n_a: int, b: int, n_b: int, low: float, high: float) -> None:
    got_low, got_high = stats.difference_interval(a, n_a, b, n_b)
    assert got_low == pytest.approx(low, abs=5e-5)
    assert got_high == pytest.approx(high, abs=5e-5)


def test_two_proportion_z_test_matches_agresti_aspirin_study() -> None:
    # Agresti, "Categorical Data Analysis" (2nd ed., 2002), section 3.2: Physicians' Health Study,
    # myocardial infarction in 189 of 11,034 on placebo vs 104 of 11,037 on aspirin: X^2 = 25.01.
    p = stats.two_proportion_z_test(189, 11034, 104, 11037)
    z = scipy_stats.norm.isf(p / 2)
    assert z**2 == pytest.approx(25.01, abs=0.01)
    assert p < 1e-6


def test_two_proportion_z_test_is_symmetric_and_neutral() -> None:
    assert stats.two_proportion_z_test(40, 100, 60, 100) == pytest.approx(stats.two_proportion_z_test(60, 100, 40, 100))
    assert stats.two_proportion_z_test(50, 100, 50, 100) == pytest.approx(1.0)
    assert stats.two_proportion_z_test(100, 100, 100, 100) == 1.0  # nothing to compare
    assert stats.two_proportion_z_test(1, 0, 1, 10) == 1.0


def test_mcnemar_chi_square_on_agresti_approval_ratings() -> None:
    # Agresti, "An Introduction to Categorical Data Analysis" (2nd ed., 2007), Table 8.1: approval of
    # the Prime Minister in two surveys of 1600 people, discordant pairs 150 and 86; z = 4.17
    # without continuity correction. With Edwards' correction: (|150 - 86| - 1)^2 / 236 = 16.82.
    p = stats.mcnemar_test(150, 86)
    assert scipy_stats.chi2.isf(p, df=1) == pytest.approx(63**2 / 236, rel=1e-9)
    assert scipy_stats.chi2.isf(p, df=1) == pytest.approx(16.82, abs=0.005)
    assert p < 0.001


def test_mcnemar_exact_for_few_discordant_pairs() -> None:
    # 1 vs 9 discordant pairs: two-sided exact p = 2 * P(X <= 1 | n = 10, 1/2) = 2 * 11/1024.
    assert stats.mcnemar_test(1, 9) == pytest.approx(22 / 1024, rel=1e-12)
    assert stats.mcnemar_test(9, 1) == pytest.approx(22 / 1024, rel=1e-12)
    assert stats.mcnemar_test(5, 5) == pytest.approx(1.0)
    assert stats.mcnemar_test(0, 0) == 1.0


def test_sample_size_matches_r_power_prop_test() -> None:
    # R's documentation of power.prop.test: power.prop.test(p1 = .50, p2 = .75, power = .90) => n = 76.7.
    assert stats.sample_size_per_arm(0.50, 0.75, power=0.90) == 77
    assert stats.sample_size_per_arm(0.75, 0.50, power=0.90) == 77
    with pytest.raises(ValueError):
        stats.sample_size_per_arm(0.5, 0.5)


def test_histogram_quantile_interpolates_like_promql() -> None:
    buckets = [(0.1, 10.0), (0.2, 30.0), (0.5, 40.0), (math.inf, 40.0)]
    assert stats.histogram_quantile(0.25, buckets) == pytest.approx(0.1)  # rank 10: top of the first bucket
    assert stats.histogram_quantile(0.5, buckets) == pytest.approx(0.15)  # rank 20: halfway through (0.1, 0.2]
    assert stats.histogram_quantile(0.125, buckets) == pytest.approx(0.05)  # first bucket starts at 0
    assert stats.histogram_quantile(0.99, [(0.1, 0.0), (math.inf, 5.0)]) == pytest.approx(0.1)  # in +Inf
    assert stats.histogram_quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]) == 0.0


def test_compare_significant_difference_on_independent_traffic() -> None:
    result = stats.compare(950, 1000, 900, 1000)
    assert result.test == "z-test" and result.significant
    assert result.difference == pytest.approx(0.05)
    assert result.difference_low < 0.05 < result.difference_high
    assert result.difference_low > 0
    assert result.more_needed_per_arm == 0


def test_compare_not_significant_says_how_many_more_are_needed() -> None:
    result = stats.compare(91, 100, 89, 100)
    assert not result.significant and result.test == "z-test"
    # Needed per arm for the observed 0.91 vs 0.89 at 80% power, minus the 100 we have.
    assert result.more_needed_per_arm == stats.sample_size_per_arm(0.91, 0.89) - 100
    tied = stats.compare(90, 100, 90, 100)
    assert tied.p_value == pytest.approx(1.0)
    # No observed difference: sized for the smallest effect of interest (0.5 points) around 0.90.
    assert tied.more_needed_per_arm == stats.sample_size_per_arm(0.9025, 0.8975) - 100


def test_compare_falls_back_to_mcnemar_on_paired_traffic_only() -> None:
    paired = stats.PairedOutcomes(both_right=50, only_a_right=10, only_b_right=2, both_wrong=5)
    result = stats.compare(0, 0, 0, 0, paired)
    assert result.test == "McNemar"
    assert result.p_value == pytest.approx(stats.mcnemar_test(10, 2))
    assert result.difference == pytest.approx(8 / 67)
    assert result.difference_low < 8 / 67 < result.difference_high


def test_compare_without_labels_has_no_test() -> None:
    result = stats.compare(0, 0, 0, 0)
    assert result.test == "" and not result.significant and result.more_needed_per_arm == 0


def test_compare_prefers_mcnemar_when_most_traffic_is_paired() -> None:
    # Two copies of one model under 100% shadowing: independent traffic differs by chance
    # (p = 0.038 here), but every paired outcome agrees, and the paired test rules.
    paired = stats.PairedOutcomes(both_right=300, only_a_right=0, only_b_right=0, both_wrong=69)
    result = stats.compare(199, 250, 301, 350, paired)
    assert stats.two_proportion_z_test(199, 250, 301, 350) < 0.05
    assert result.test == "McNemar" and result.p_value == 1.0 and not result.significant
    assert result.difference == 0.0
    # Light shadowing (fewer pairs than the smaller arm's own labelled traffic): the z-test rules.
    light = stats.compare(199, 250, 301, 350, stats.PairedOutcomes(60, 0, 0, 14))
    assert light.test == "z-test" and light.significant
