"""digits.experiments.comparison: the computation both A/B reports share (the server's
GetExperimentReport and the fleet report), and its conversion to ExperimentReport fields.
tests/server/test_fleet_report_one_replica.py checks that the two reports agree end to end."""

from __future__ import annotations

import pytest

from digits.experiments import always_valid as av
from digits.experiments import comparison
from digits.experiments.report_message import comparison_fields
from digits.experiments.statistics import PairedOutcomes
from digits.v1 import digits_pb2 as pb

BUCKETS = ((0.001, 0.0), (0.002, 40.0), (0.005, 95.0), (float("inf"), 100.0))


def tally(arm: str, correct: int, labelled: int, requests: float = 100.0, errors: float = 0.0) -> comparison.ArmTally:
    return comparison.ArmTally(arm, arm, 3, labelled, correct, av.ArmTraffic(requests, errors, BUCKETS, 0.25))


def test_arms_pairs_and_guardrails_in_order() -> None:
    arms = [tally("rnn", 80, 100), tally("lstm", 97, 100), tally("gru", 95, 100)]
    found = comparison.compare(arms, {}, comparison.FIXED_HORIZON)
    assert [a.arm for a in found.arms] == ["rnn", "lstm", "gru"]
    assert [(p.arm_a, p.arm_b) for p in found.pairs] == [("rnn", "lstm"), ("rnn", "gru"), ("lstm", "gru")]
    assert [(g.arm, g.metric) for g in found.guardrails] == [("lstm", "latency"), ("lstm", "errors"),
                                                              ("gru", "latency"), ("gru", "errors")]
    rnn = found.arms[0]
    assert (rnn.accuracy, rnn.requests, rnn.errors, rnn.version) == (0.8, 100, 0, 3)
    assert rnn.accuracy_low < 0.8 < rnn.accuracy_high
    assert 0.002 < rnn.latency_p50 <= 0.005 and rnn.latency_mean == pytest.approx(0.0025)
    assert found.pairs[0].verdict.startswith("lstm beats rnn by 17.0 points")
    assert found.pairs[0].paired == PairedOutcomes()  # a pair nobody counted: nothing paired, independent test


def test_paired_outcomes_and_shadow_agreement_are_carried() -> None:
    arms = [tally("a", 900, 1000), tally("b", 950, 1000)]
    pair = comparison.PairTally(PairedOutcomes(880, 20, 70, 30), shadow_agree=910, shadow_disagree=90)
    (result,) = comparison.compare(arms, {("a", "b"): pair}).pairs
    assert result.paired == pair.paired and (result.shadow_agree, result.shadow_disagree) == (910, 90)
    assert result.comparison.test == "McNemar" and result.always_valid.test == av.PAIRED
    assert result.verdict_basis == comparison.ALWAYS_VALID and result.verdict.startswith("b beats a")


def test_each_always_valid_look_goes_through_the_fold() -> None:
    seen: list[tuple[str, ...]] = []

    def fold(key: tuple[str, ...], p: float, low: float, high: float) -> tuple[float, float, float]:
        seen.append(key)
        return min(p, 0.5), low, high

    found = comparison.compare([tally("a", 90, 100), tally("b", 91, 100)], {}, fold=fold)
    assert ("accuracy", "a", "b", "independent") in seen and ("latency", "b") in seen and ("errors", "b") in seen
    assert found.pairs[0].always_valid.p_value <= 0.5


def test_an_unknown_verdict_basis_names_the_field() -> None:
    with pytest.raises(ValueError, match="verdict_basis: must be 'always-valid' or 'fixed-horizon', got 'bayes'"):
        comparison.compare([tally("a", 1, 2), tally("b", 1, 2)], {}, "bayes")


def test_the_message_carries_every_number() -> None:
    arms = [tally("a", 900, 1000), tally("b", 950, 1000, errors=30.0)]
    found = comparison.compare(arms, {("a", "b"): comparison.PairTally(PairedOutcomes(880, 20, 70, 30), 910, 90)})
    message = pb.ExperimentReport(**comparison_fields(found))
    assert [a.arm for a in message.arms] == ["a", "b"] and message.arms[1].errors == 30
    assert message.arms[0].latency_mean_seconds == pytest.approx(0.0025)
    (pair,) = message.pairs
    assert (pair.both_right, pair.only_a_right, pair.only_b_right, pair.both_wrong) == (880, 20, 70, 30)
    assert pair.always_valid_test == av.PAIRED and pair.sequence_low == pytest.approx(found.pairs[0].always_valid.low)
    assert pair.verdict == found.pairs[0].verdict and pair.fixed_horizon_verdict.endswith("(McNemar)")
    assert [g.status for g in message.guardrails] == [g.status for g in found.guardrails]
    assert message.guardrails[1].metric == "errors" and message.guardrails[1].value == pytest.approx(0.3)
