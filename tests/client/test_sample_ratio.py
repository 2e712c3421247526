"""The sample-ratio mismatch test (digits.experiments.sample_ratio): its Bayes factor equals the
method's authors' package (savvi, Lindon & Malek 2022) on the same counts; its false-alarm rate under
H0, looked at every batch and across a weight change, stays under its alpha (fixed seed); it finds a
10% loss of one arm; and a breach holds a rollout instead of promoting it (`decide`)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from digits.experiments.rollout import Policy, decide
from digits.experiments.sample_ratio import SRM_ALPHA, SampleRatio, guardrail, log_bayes_factor
from digits.v1 import digits_pb2 as pb


@pytest.mark.parametrize(("counts", "shares"), [
    ([50, 50], [0.5, 0.5]),
    ([30, 70], [0.5, 0.5]),
    ([5, 95], [0.05, 0.95]),
    ([400, 380, 220], [0.4, 0.4, 0.2]),
    ([0, 0], [0.5, 0.5]),
])
def test_the_bayes_factor_is_the_authors_multinomial_test(counts: list[int], shares: list[float]) -> None:
    savvi = pytest.importorskip("savvi.multinomial")  # tests/requirements.txt pins it
    theirs = savvi.Multinomial(0.05, np.array(shares), k=100)
    rng = np.random.default_rng(1)
    left = np.array(counts)
    while left.sum():  # the same counts in random batches: their odds multiply batch by batch
        batch = np.array([rng.integers(0, n + 1) for n in left])
        theirs.update(batch)
        left = left - batch
    assert log_bayes_factor(counts, shares) == pytest.approx(math.log(theirs.odds), abs=1e-9)


def test_false_alarms_under_h0_stay_under_alpha_with_a_look_after_every_batch() -> None:
    rng = np.random.default_rng(0)
    runs, alarms = 400, 0
    for _ in range(runs):
        state, counts, now = SampleRatio(), {"a": 0, "b": 0}, 0.0
        for look in range(60):
            weights = {"a": 90, "b": 10} if look < 20 else {"a": 50, "b": 50}  # a rollout step
            share_b = weights["b"] / 100
            b = int(rng.binomial(50, share_b))
            counts["a"] += 50 - b
            counts["b"] += b
            now += 1
            p = state.look(weights, counts, False, now)
        alarms += p <= SRM_ALPHA
    assert alarms / runs <= SRM_ALPHA, alarms  # observed: 1 of 400


def test_a_tenth_of_one_arm_lost_is_found() -> None:
    rng = np.random.default_rng(0)
    state, counts = SampleRatio(), {"a": 0, "b": 0}
    for look in range(100):
        b = int(rng.binomial(100, 0.5))
        counts["a"] += 100 - b
        counts["b"] += int(rng.binomial(b, 0.9))  # 10% of b's lost
        p = state.look({"a": 50, "b": 50}, counts, False, float(look))
    assert p < SRM_ALPHA


def test_a_weight_change_starts_a_new_period_after_settling() -> None:
    state = SampleRatio(settle=5.0)
    state.look({"a": 50, "b": 50}, {"a": 100, "b": 100}, False, 0.0)
    state.look({"a": 80, "b": 20}, {"a": 150, "b": 150}, False, 1.0)  # the change seen: settling
    assert state.baseline is None
    state.look({"a": 80, "b": 20}, {"a": 190, "b": 160}, False, 6.0)  # settled: the baseline
    assert state.baseline == {"a": 190, "b": 160}
    state.look({"a": 80, "b": 20}, {"a": 270, "b": 180}, False, 7.0)
    assert state.period == {"a": 80, "b": 20}  # only what came after the baseline
    paused = SampleRatio()
    assert paused.look({"a": 50, "b": 50}, {"a": 1000, "b": 0}, True, 0.0) == 1.0  # paused: all to a, not tested


def rollout_report(srm_breached: bool) -> pb.ExperimentReport:
    """stable vs canary, the canary surely not worse than 1 point, with or without an SRM breach."""
    counts = {"stable": 900, "canary": 500 if srm_breached else 900}
    state = SampleRatio()
    state.look({"stable": 50, "canary": 50}, {}, False, 0.0)  # a period's baseline is its first look
    guard = guardrail(state, "stable", {"stable": 50, "canary": 50}, counts, False, 1.0)
    return pb.ExperimentReport(
        arms=[pb.ArmReport(arm=arm, labelled=n) for arm, n in counts.items()],
        pairs=[pb.PairReport(arm_a="stable", arm_b="canary", sequence_low=-0.005, sequence_high=0.002,
                             always_valid_p_value=0.5, always_valid_p_holm=0.5,
                             always_valid_test="mSPRT (independent traffic)")],
        guardrails=[pb.GuardrailReport(arm=guard.arm, baseline_arm=guard.baseline_arm, metric=guard.metric,
                                       value=guard.value, baseline_value=guard.baseline_value, status=guard.status)],
    )


def test_a_sample_ratio_breach_holds_a_rollout_that_would_promote() -> None:
    policy = Policy(steps=(50,), margin=0.01)
    assert decide(rollout_report(False), "stable", "canary", policy, 0, 0).decision == "promote"
    held = decide(rollout_report(True), "stable", "canary", policy, 0, 0)
    assert held.decision == "hold" and held.weight == 50
    assert held.reason == "sample-ratio mismatch: canary has 35.7% of the labelled requests, its weight says 50.0%"
