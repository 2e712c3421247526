"""The comparison report: per-arm numbers, pair statistics, verdict words, and its wire form."""

from __future__ import annotations

import math

import pytest

from digits.v1 import digits_pb2 as pb
from digits_server.core.domain import ModelSelector
from digits_server.core.errors import InvalidInput
from digits.experiments import statistics as stats
from digits_server.experiments.observer import ArmTraffic, ExperimentCounts
from digits_server.experiments.report import build_report, format_p, verdict
from digits_server.experiments.router import Arm, Experiment
from digits_server.transport import codec

EXPERIMENT = Experiment(
    "cells",
    (Arm("rnn", ModelSelector("rnn"), 1), Arm("lstm", ModelSelector("lstm"), 1), Arm("gru", ModelSelector("gru", 2), 0)),
    shadow_percent=10,
)


def counts(rnn: tuple[int, int], lstm: tuple[int, int], gru: tuple[int, int] = (0, 0)) -> ExperimentCounts:
    result = ExperimentCounts.start(EXPERIMENT)
    for arm, (correct, labelled) in {"rnn": rnn, "lstm": lstm, "gru": gru}.items():
        result.arms[arm].correct, result.arms[arm].labelled = correct, labelled
    return result


def serving(selector: ModelSelector) -> tuple[str, int]:
    return selector.name, selector.version or 1


def test_report_per_arm_numbers() -> None:
    traffic = {
        "rnn": ArmTraffic(100, 4, ((0.001, 10), (0.0025, 90), (0.005, 100), (math.inf, 100))),
        "lstm": ArmTraffic(50, 0, ((0.001, 0), (0.0025, 0), (0.005, 50), (math.inf, 50))),
    }
    report = build_report(EXPERIMENT, counts((80, 96), (48, 50)), traffic, serving)
    rnn, lstm, gru = report.arms
    assert (rnn.arm, rnn.model, rnn.version, rnn.requests, rnn.errors) == ("rnn", "rnn", 1, 100, 4)
    assert rnn.error_rate == pytest.approx(0.04)
    assert (rnn.labelled, rnn.correct, rnn.accuracy) == (96, 80, pytest.approx(80 / 96))
    assert (rnn.accuracy_low, rnn.accuracy_high) == pytest.approx(stats.wilson_interval(80, 96))
    assert rnn.latency_p50 == pytest.approx(0.001 + 0.0015 * 40 / 80)
    assert rnn.latency_p99 == pytest.approx(0.0025 + 0.0025 * 9 / 10)
    assert lstm.latency_p50 == pytest.approx(0.0025 + 0.0025 * 25 / 50)
    assert (gru.version, gru.requests, gru.error_rate, gru.accuracy, gru.latency_p95) == (2, 0, 0.0, 0.0, 0.0)
    assert "digits_request_duration_seconds" in report.latency_source
    assert [(p.arm_a, p.arm_b) for p in report.pairs] == [("rnn", "lstm"), ("rnn", "gru"), ("lstm", "gru")]


def test_significant_pair_has_a_verdict_in_the_right_direction() -> None:
    report = build_report(EXPERIMENT, counts((800, 1000), (950, 1000)), {}, serving, verdict_basis="fixed-horizon")
    pair = report.pairs[0]
    assert pair.comparison.significant and pair.comparison.difference == pytest.approx(-0.15)
    assert pair.verdict == "lstm beats rnn by 15.0 points, p < 0.001 (z-test)"
    assert pair.comparison.more_needed_per_arm == 0


def test_insignificant_pair_says_how_many_more_are_needed() -> None:
    report = build_report(EXPERIMENT, counts((90, 100), (92, 100)), {}, serving, verdict_basis="fixed-horizon")
    pair = report.pairs[0]
    more = pair.comparison.more_needed_per_arm
    assert more == stats.sample_size_per_arm(0.90, 0.92) - 100
    assert pair.verdict == (
        f"no significant difference yet (p = {pair.comparison.p_value:.3f}, z-test); "
        f"about {more:,} more labelled requests per arm needed for 80% power"
    )


def test_shadow_only_arm_is_judged_on_paired_outcomes() -> None:
    data = counts((0, 0), (300, 320))
    data.pairs[("lstm", "gru")].outcomes.update(both_right=280, only_a_right=30, only_b_right=5, both_wrong=5)
    data.pairs[("lstm", "gru")].agree, data.pairs[("lstm", "gru")].disagree = 290, 30
    report = build_report(EXPERIMENT, data, {}, serving, verdict_basis="fixed-horizon")
    pair = report.pairs[2]
    assert pair.paired == stats.PairedOutcomes(280, 30, 5, 5)
    assert pair.comparison.test == "McNemar"
    assert pair.verdict.startswith("lstm beats gru by 7.8 points, p < 0.001 (McNemar)")
    assert (pair.shadow_agree, pair.shadow_disagree) == (290, 30)
    assert report.pairs[0].verdict.startswith("no labelled traffic yet")


def test_p_value_words() -> None:
    assert format_p(0.0004) == "p < 0.001"
    assert format_p(0.0123) == "p = 0.012"
    assert verdict("a", "b", stats.compare(0, 0, 0, 0)).startswith("no labelled traffic")


def test_report_wire_form() -> None:
    report = build_report(EXPERIMENT, counts((800, 1000), (950, 1000)), {"rnn": ArmTraffic(3, 1, ())}, serving)
    message = codec.experiment_report(report)
    assert message.experiment.name == "cells" and message.experiment.shadow_percent == 10
    assert [a.arm for a in message.arms] == ["rnn", "lstm", "gru"]
    assert message.arms[0].requests == 3 and message.arms[0].error_rate == pytest.approx(1 / 3)
    assert message.arms[1].accuracy == pytest.approx(0.95)
    assert message.pairs[0].verdict.startswith("lstm beats rnn")
    assert message.pairs[0].z_test_p_value < 0.001
    assert message.latency_source == report.latency_source


def test_experiment_wire_round_trip_and_arm_name_default() -> None:
    message = codec.experiment_message(EXPERIMENT)
    assert message.arms[2].model.version == 2 and not message.arms[0].model.HasField("version")
    assert codec.experiment(message) == EXPERIMENT
    unnamed = pb.Experiment(name="x", arms=[pb.Arm(model=pb.ModelSpec(name="gru", version_label="stable"), weight=2)])
    assert codec.experiment(unnamed).arms == (Arm("gru", ModelSelector("gru", None, "stable"), 2.0),)
    nested = pb.Experiment(name="x", arms=[pb.Arm(model=pb.ModelSpec(experiment="y"))])
    with pytest.raises(InvalidInput, match=r"arms\[0\].model: an arm is a model"):
        codec.experiment(nested)
