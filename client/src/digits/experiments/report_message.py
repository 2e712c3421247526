"""A `comparison.Comparison` as the fields of an ExperimentReport message: the one conversion used by
the server's GetExperimentReport and by the fleet report, so both fill every field the same way."""

from __future__ import annotations

from typing import Any

from digits.experiments.always_valid import AlwaysValid, Guardrail
from digits.experiments.comparison import ArmResult, Comparison, PairResult
from digits.experiments.label_free import METHOD as LABEL_FREE_METHOD
from digits.experiments.label_free import ArmEstimate, PairEstimate
from digits.v1 import digits_pb2 as pb


def comparison_fields(comparison: Comparison) -> dict[str, Any]:
    """`arms`, `pairs` and `guardrails` of an ExperimentReport, as keyword arguments."""
    return {
        "arms": [arm_message(arm) for arm in comparison.arms],
        "pairs": [pair_message(pair) for pair in comparison.pairs],
        "guardrails": [guardrail_message(guard) for guard in comparison.guardrails],
        "label_free_method": LABEL_FREE_METHOD,
    }


def arm_message(a: ArmResult) -> pb.ArmReport:
    """One arm's numbers as an ArmReport."""
    return pb.ArmReport(
        arm=a.arm, model=a.model, version=a.version, requests=a.requests, errors=a.errors,
        error_rate=a.error_rate, labelled=a.labelled, correct=a.correct, accuracy=a.accuracy,
        accuracy_low=a.accuracy_low, accuracy_high=a.accuracy_high, latency_p50_seconds=a.latency_p50,
        latency_p95_seconds=a.latency_p95, latency_p99_seconds=a.latency_p99, latency_mean_seconds=a.latency_mean,
        **_estimate(a.estimate),
    )


def pair_message(p: PairResult) -> pb.PairReport:
    """One pair's tests and verdicts as a PairReport."""
    return pb.PairReport(
        arm_a=p.arm_a, arm_b=p.arm_b, accuracy_difference=p.comparison.difference,
        difference_low=p.comparison.difference_low, difference_high=p.comparison.difference_high,
        z_test_p_value=p.comparison.z_test_p, both_right=p.paired.both_right,
        only_a_right=p.paired.only_a_right, only_b_right=p.paired.only_b_right,
        both_wrong=p.paired.both_wrong, mcnemar_p_value=p.comparison.mcnemar_p,
        shadow_agree=p.shadow_agree, shadow_disagree=p.shadow_disagree, verdict=p.verdict,
        more_needed_per_arm=p.comparison.more_needed_per_arm, fixed_horizon_verdict=p.fixed_horizon_verdict,
        verdict_basis=p.verdict_basis, **_always_valid(p.always_valid), **_pair_estimate(p.label_free),
    )


def guardrail_message(g: Guardrail) -> pb.GuardrailReport:
    """One guardrail as a GuardrailReport."""
    return pb.GuardrailReport(arm=g.arm, baseline_arm=g.baseline_arm, metric=g.metric, value=g.value,
                              baseline_value=g.baseline_value, tolerance=g.tolerance, excess=g.excess,
                              excess_low=g.low, excess_high=g.high, status=g.status)


def _always_valid(valid: AlwaysValid | None) -> dict[str, Any]:
    if valid is None:
        return {}
    return {"always_valid_p_value": valid.p_value, "always_valid_p_holm": valid.p_holm, "sequence_low": valid.low,
            "sequence_high": valid.high, "sequence_confidence": valid.confidence, "always_valid_test": valid.test}


def _estimate(e: ArmEstimate) -> dict[str, Any]:
    if not e.predictions:
        return {}
    low, high = e.estimate.interval() or (0.0, 0.0)
    return {"estimated_predictions": e.predictions, "estimated_accuracy": e.estimate.accuracy,
            "estimated_accuracy_low": low, "estimated_accuracy_high": high,
            "estimated_calibrated_sum": e.calibrated_sum, "estimated_variance_sum": e.variance_sum,
            "estimated_uncalibrated": e.uncalibrated, "estimate_basis": e.basis}


def _pair_estimate(e: PairEstimate | None) -> dict[str, Any]:
    if e is None:
        return {}
    return {"shadow_agreement_rate": e.agreement, "shadow_agreement_low": e.agreement_low,
            "shadow_agreement_high": e.agreement_high, "estimated_difference": e.difference,
            "estimated_sequence_low": e.low, "estimated_sequence_high": e.high,
            "estimated_sequence_confidence": e.confidence}
