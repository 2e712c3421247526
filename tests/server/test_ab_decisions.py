"""The report's always-valid half (experiments/decisions.py): Holm over three arms, guardrails
reported as breaches (not as accuracy losses), looks folded into running state, and the
fixed-horizon verdict shown beside the always-valid one."""

from __future__ import annotations

import math

import pytest

from digits.experiments import sequential as seq
from digits_server.core.domain import ModelSelector
from digits_server.experiments import decisions
from digits_server.experiments.observer import ArmTraffic, ExperimentCounts
from digits_server.experiments.report import build_report
from digits_server.experiments.router import Arm, Experiment
from digits_server.transport import codec

THREE = Experiment("three", tuple(Arm(name, ModelSelector(name), 1) for name in ("stable", "b", "c")))
TWO = Experiment("two", (Arm("stable", ModelSelector("lstm"), 90), Arm("canary", ModelSelector("gru"), 10)))


def serving(selector: ModelSelector) -> tuple[str, int]:
    return selector.name, 1


def counts(experiment: Experiment, **arms: tuple[int, int]) -> ExperimentCounts:
    result = ExperimentCounts.start(experiment)
    for arm, (correct, labelled) in arms.items():
        result.arms[arm].correct, result.arms[arm].labelled = correct, labelled
    return result


def latency(seconds: float, n: int, errors: int = 0) -> ArmTraffic:
    """n requests all in the bucket whose midpoint is `seconds` (buckets 0-2s, 2s-4s ... in ms)."""
    bounds = [0.001 * k for k in range(1, 21)] + [math.inf]
    return ArmTraffic(n, errors, tuple((b, float(n) if b >= seconds else 0.0) for b in bounds), seconds * n)


def test_three_arms_are_holm_adjusted() -> None:
    data = counts(THREE, stable=(9300, 10000), b=(9180, 10000), c=(9290, 10000))
    report = build_report(THREE, data, {}, serving)
    raw = [p.always_valid.p_value for p in report.pairs]
    assert [(p.arm_a, p.arm_b) for p in report.pairs] == [("stable", "b"), ("stable", "c"), ("b", "c")]
    assert [p.always_valid.p_holm for p in report.pairs] == pytest.approx(seq.holm(raw))
    # Holm by hand: the smallest p times 3, the next times 2 (never below the previous), the largest times 1.
    order = sorted(range(3), key=raw.__getitem__)
    assert report.pairs[order[0]].always_valid.p_holm == pytest.approx(min(1, 3 * raw[order[0]]))
    assert all(p.always_valid.confidence == pytest.approx(1 - 0.05 / 3) for p in report.pairs)


def test_holm_can_withhold_what_one_pair_alone_would_claim() -> None:
    # stable vs b alone: always-valid p just under 0.05; with three pairs it must clear 0.05 / 3.
    two = Experiment("pair", THREE.arms[:2])
    for correct_b in range(9300, 8000, -5):
        alone = build_report(two, counts(two, stable=(9300, 10000), b=(correct_b, 10000)), {}, serving).pairs[0]
        if alone.always_valid.p_value < 0.05:
            break
    assert 0.05 / 3 < alone.always_valid.p_value < 0.05 and alone.verdict.startswith("stable beats b")
    three = build_report(THREE, counts(THREE, stable=(9300, 10000), b=(correct_b, 10000), c=(9300, 10000)), {}, serving)
    assert three.pairs[0].always_valid.p_holm > 0.05
    assert three.pairs[0].verdict.startswith("no difference shown yet")


def test_fixed_horizon_and_always_valid_side_by_side() -> None:
    # 2.8 points at 1,000 per arm: the z-test says significant (p ~ 0.006), the always-valid test is not sure yet.
    report = build_report(TWO, counts(TWO, stable=(930, 1000), canary=(902, 1000)), {}, serving)
    pair = report.pairs[0]
    assert pair.comparison.significant and pair.fixed_horizon_verdict.startswith("stable beats canary by 2.8 points")
    assert pair.verdict_basis == "always-valid" and pair.verdict.startswith("no difference shown yet")
    assert pair.always_valid.p_value > 0.05 and pair.always_valid.low < 0 < pair.always_valid.high
    fixed = build_report(TWO, counts(TWO, stable=(930, 1000), canary=(902, 1000)), {}, serving, "fixed-horizon")
    assert fixed.pairs[0].verdict == fixed.pairs[0].fixed_horizon_verdict
    message = codec.experiment_report(report)
    assert message.pairs[0].always_valid_test == decisions.INDEPENDENT
    assert message.pairs[0].verdict_basis == "always-valid"
    assert message.pairs[0].sequence_low == pytest.approx(pair.always_valid.low) and "Johari" in message.method


def test_each_report_is_a_look_the_running_state_never_forgets() -> None:
    data = counts(TWO, stable=(960, 1000), canary=(880, 1000))
    first = build_report(TWO, data, {}, serving).pairs[0].always_valid
    assert first.p_value < 0.001 and first.low > 0
    data.arms["canary"].correct, data.arms["canary"].labelled = 880 + 950, 2000  # the next 1,000 differ less
    data.arms["stable"].correct, data.arms["stable"].labelled = 960 + 940, 2000
    later = build_report(TWO, data, {}, serving).pairs[0].always_valid
    assert later.p_value == first.p_value  # the running minimum
    now = seq.independent_interval(1900, 2000, 1830, 2000)
    assert now[0] < first.low  # this look alone would lower the lower end...
    assert (later.low, later.high) == (first.low, now[1])  # ...the running intersection does not


def test_paired_traffic_uses_the_discordant_pairs() -> None:
    data = counts(TWO, stable=(40, 50), canary=(30, 50))
    pair = data.pairs[("stable", "canary")]
    pair.outcomes.update(both_right=800, only_a_right=60, only_b_right=20, both_wrong=120)
    valid = build_report(TWO, data, {}, serving).pairs[0].always_valid
    assert valid.test == decisions.PAIRED
    assert valid.p_value == pytest.approx(seq.paired_p_value(60, 20))
    assert valid.low > 0 and valid.significant


def test_latency_guardrail_breach_is_reported_as_such() -> None:
    data = counts(TWO, stable=(600, 1000), canary=(950, 1000))  # the canary is far MORE accurate...
    traffic = {"stable": latency(0.0015, 2000), "canary": latency(0.0055, 400)}  # ...but 3.7x slower
    report = build_report(TWO, data, traffic, serving)
    (pair,) = report.pairs
    assert pair.verdict.startswith("guardrail breached: latency"), pair.verdict
    lat, err, _ = report.guardrails  # and the sample-ratio test
    assert (lat.arm, lat.baseline_arm, lat.metric, lat.status) == ("canary", "stable", "latency", "breached")
    assert lat.value == pytest.approx(0.0055) and lat.baseline_value == pytest.approx(0.0015)
    assert lat.excess == pytest.approx(0.0055 - 1.5 * 0.0015) and lat.low > 0
    assert err.status == "holds"  # no errors on either side, 400 and 2000 requests
    assert report.arms[1].latency_mean == pytest.approx(0.0055)


def test_latency_within_tolerance_holds_and_error_guardrail_breaks() -> None:
    data = counts(TWO, stable=(900, 1000), canary=(900, 1000))
    traffic = {"stable": latency(0.0015, 2000), "canary": latency(0.0015, 1000, errors=200)}
    report = build_report(TWO, data, traffic, serving)
    lat, err, _ = report.guardrails  # and the sample-ratio test
    assert lat.status == "holds" and err.status == "breached" and err.value == pytest.approx(0.2)
    assert report.pairs[0].verdict.startswith("guardrail breached: errors")


def test_guardrails_are_undecided_without_traffic() -> None:
    report = build_report(TWO, counts(TWO), {}, serving)
    assert {g.status for g in report.guardrails} == {"undecided"}
    assert report.pairs[0].verdict.startswith("no labelled traffic yet")


def test_latency_variance_counts_the_spread_inside_buckets() -> None:
    count, mean, variance = decisions.latency_moments(latency(0.0015, 100))  # all in the (1 ms, 2 ms] bucket
    assert (count, mean) == (100, pytest.approx(0.0015))
    assert variance == pytest.approx(0.001**2 / 12)  # uniform over one 1 ms bucket, never 0


def test_a_handful_of_requests_never_decides_a_latency_guardrail() -> None:
    data = counts(TWO, stable=(9, 10), canary=(9, 10))
    traffic = {"stable": latency(0.0015, 29), "canary": latency(0.0095, 29)}  # 6x slower, but 29 requests
    lat, *_ = build_report(TWO, data, traffic, serving).guardrails
    assert lat.status == "undecided" and lat.excess > 0
    traffic = {"stable": latency(0.0015, 30), "canary": latency(0.0095, 30)}
    lat, *_ = build_report(TWO, counts(TWO, stable=(9, 10), canary=(9, 10)), traffic, serving).guardrails
    assert lat.status == "breached"


def test_a_difference_needs_the_p_value_and_the_sequence_to_agree() -> None:
    both = decisions.AlwaysValid(decisions.INDEPENDENT, 0.01, 0.01, 0.02, 0.2, 0.95, 0.05)
    p_only = decisions.AlwaysValid(decisions.INDEPENDENT, 0.01, 0.01, -0.025, 1.0, 0.95, 0.05)
    sequence_only = decisions.AlwaysValid(decisions.INDEPENDENT, 0.06, 0.06, 0.02, 0.2, 0.95, 0.05)
    assert both.significant and not p_only.significant and not sequence_only.significant
