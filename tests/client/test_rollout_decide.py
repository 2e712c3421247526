"""The rollout controller's decision rule (digits.experiments.rollout.decide) on hand-made reports:
guardrails first, then better / not worse by the margin / worse, then the horizon, then steps."""

from __future__ import annotations

import pytest

from digits.experiments.rollout import Policy, decide
from digits.v1 import digits_pb2 as pb

POLICY = Policy(steps=(5, 25, 50), step_labelled=100, margin=0.0, horizon=1000)


def report(low: float, high: float, p: float, labelled: int = 300, guardrail: str = "",
           order: tuple[str, str] = ("stable", "canary")) -> pb.ExperimentReport:
    """A report of stable vs canary; low/high/p describe arm_a - arm_b of `order`."""
    return pb.ExperimentReport(
        arms=[pb.ArmReport(arm="stable", labelled=5000), pb.ArmReport(arm="canary", labelled=labelled)],
        pairs=[pb.PairReport(arm_a=order[0], arm_b=order[1], sequence_low=low, sequence_high=high,
                             always_valid_p_value=p, always_valid_p_holm=p,
                             always_valid_test="mSPRT (independent traffic)",
                             sequence_confidence=0.95, verdict_basis="always-valid")],
        guardrails=[pb.GuardrailReport(arm="canary", baseline_arm="stable", metric=m,
                                       status="breached" if m == guardrail else "undecided")
                    for m in ("latency", "errors")],
    )


def test_guardrail_breach_rolls_back_even_when_the_candidate_is_better() -> None:
    decision = decide(report(-0.08, -0.02, 0.001, guardrail="latency"), "stable", "canary", POLICY, 0, 0)
    assert (decision.decision, decision.reason, decision.weight) == ("rollback", "guardrail breached: latency", 0.0)


@pytest.mark.parametrize("order", [("stable", "canary"), ("canary", "stable")])
def test_better_candidate_is_promoted_whichever_arm_is_listed_first(order: tuple[str, str]) -> None:
    sign = -1 if order == ("stable", "canary") else 1  # a - b of (stable, canary) is stable - canary
    low, high = sorted((sign * 0.02, sign * 0.08))
    decision = decide(report(low, high, 0.001, order=order), "stable", "canary", POLICY, 1, 0)
    assert decision.decision == "promote" and decision.reason.startswith("better: always-valid p = 0.001")
    assert "candidate - stable in [+2.0, +8.0] points" in decision.reason


def test_worse_candidate_is_rolled_back() -> None:
    decision = decide(report(0.02, 0.08, 0.002), "stable", "canary", POLICY, 0, 0)
    assert decision.decision == "rollback" and decision.reason.startswith("worse:") and decision.weight == 0


def test_non_inferiority_margin() -> None:
    undecided = report(-0.005, 0.008, 0.6)  # candidate - stable in [-0.8, +0.5] points
    assert decide(undecided, "stable", "canary", POLICY, 0, 0).decision == "step"
    with_margin = Policy(steps=POLICY.steps, step_labelled=100, margin=0.01, horizon=1000)
    decision = decide(undecided, "stable", "canary", with_margin, 0, 0)
    assert decision.decision == "promote" and "not worse than the 1-point margin" in decision.reason


def test_steps_wait_for_their_quota_and_stop_at_the_last_weight() -> None:
    undecided = report(-0.03, 0.03, 0.5, labelled=300)
    assert decide(undecided, "stable", "canary", POLICY, 0, 250).decision == "hold"  # 50 < 100 since the step
    step = decide(undecided, "stable", "canary", POLICY, 0, 200)
    assert (step.decision, step.weight) == ("step", 25.0)
    last = decide(undecided, "stable", "canary", POLICY, 2, 0)
    assert (last.decision, last.weight) == ("hold", 50.0)


def test_horizon_ends_with_no_difference() -> None:
    decision = decide(report(-0.01, 0.01, 0.7, labelled=1000), "stable", "canary", POLICY, 2, 0)
    assert decision.decision == "no-difference" and "horizon 1000" in decision.reason and decision.weight == 0


def test_no_decision_while_the_sequence_still_contains_zero() -> None:
    # p = 0.028 with the sequence at [-2.5, +100] points (seen on a tiny sample): not yet "worse".
    decision = decide(report(-0.025, 1.0, 0.028), "stable", "canary", POLICY, 0, 250)
    assert decision.decision == "hold", decision


@pytest.mark.parametrize("order", [("stable", "canary"), ("canary", "stable")])
def test_label_free_guardrail_rolls_back_only_when_enabled_and_surely_beyond_the_drop(order) -> None:
    """stable - canary estimated accuracy in [+6, +30] points: beyond a 5-point drop, within a 10-point one."""
    sign = 1 if order == ("stable", "canary") else -1  # a - b of (stable, canary) is stable - canary
    undecided = report(-0.005, 0.008, 0.6, labelled=0, order=order)
    pair = undecided.pairs[0]
    pair.estimated_sequence_low, pair.estimated_sequence_high = sorted((sign * 0.06, sign * 0.30))
    undecided.arms[0].estimated_accuracy, undecided.arms[1].estimated_accuracy = 0.97, 0.80
    assert decide(undecided, "stable", "canary", POLICY, 0, 0).decision == "hold"  # off by default
    on = Policy(steps=POLICY.steps, step_labelled=100, horizon=1000, max_estimated_drop=0.05)
    decision = decide(undecided, "stable", "canary", on, 0, 0)
    assert (decision.decision, decision.weight) == ("rollback", 0.0)
    assert decision.reason == ("guardrail breached: estimated accuracy (estimated, no labels): canary 80.0% vs "
                               "stable 97.0%, stable - candidate in [+6.0, +30.0] points, more than the allowed 5")
    wider = Policy(steps=POLICY.steps, step_labelled=100, horizon=1000, max_estimated_drop=0.10)
    assert decide(undecided, "stable", "canary", wider, 0, 0).decision == "hold"
