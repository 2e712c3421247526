"""The fleet report (digits.experiments.fleet_report) against a single server's report
(GetExperimentReport: build_report + codec): with one replica the fleet's summed counts are that
server's counts, so every figure — fixed-horizon and always-valid, guardrails, verdict words — must
be the server's at its first look. After more looks the server's running state can only be sharper
than the fleet's one look, never less sharp."""

from __future__ import annotations

import math

import pytest

from digits.experiments.fleet_report import OUTCOMES, FleetCounts, build_fleet_report
from digits_server.core.domain import ModelSelector
from digits_server.experiments.observer import ArmTraffic, ExperimentCounts
from digits_server.experiments.report import build_report
from digits_server.experiments.router import Arm, Experiment
from digits_server.transport import codec

TWO = Experiment("two", (Arm("stable", ModelSelector("lstm"), 90), Arm("canary", ModelSelector("gru"), 10)),
                 shadow_percent=20)
THREE = Experiment("three", tuple(Arm(name, ModelSelector(name), 1) for name in ("stable", "b", "c")))
BOUNDS = [0.001 * k for k in range(1, 21)] + [math.inf]
ALWAYS_VALID = ("always_valid_test", "always_valid_p_value", "always_valid_p_holm", "sequence_low",
                "sequence_high", "sequence_confidence")
FIXED_HORIZON = ("accuracy_difference", "difference_low", "difference_high", "z_test_p_value", "mcnemar_p_value",
                 "more_needed_per_arm")
WORDS = ("verdict", "fixed_horizon_verdict", "verdict_basis")


def latency(seconds: float, n: int, errors: int = 0) -> ArmTraffic:
    """n requests all in the 1 ms bucket around `seconds`."""
    return ArmTraffic(n, errors, tuple((b, float(n) if b >= seconds else 0.0) for b in BOUNDS), seconds * n)


# name: (experiment, {arm: (correct, labelled)}, {(a, b): paired outcomes}, {arm: traffic})
SCENARIOS = {
    "independent, differs": (TWO, {"stable": (960, 1000), "canary": (880, 1000)}, {},
                             {"stable": latency(0.0015, 1200), "canary": latency(0.0016, 1100, errors=4)}),
    "independent, not yet": (TWO, {"stable": (930, 1000), "canary": (902, 1000)}, {}, {}),
    "paired": (TWO, {"stable": (40, 50), "canary": (30, 50)},
               {("stable", "canary"): (800, 60, 20, 120)}, {}),
    "latency breach": (TWO, {"stable": (600, 1000), "canary": (950, 1000)}, {},
                       {"stable": latency(0.0015, 2000), "canary": latency(0.0055, 400)}),
    "error breach": (TWO, {"stable": (900, 1000), "canary": (900, 1000)}, {},
                     {"stable": latency(0.0015, 2000), "canary": latency(0.0015, 1000, errors=200)}),
    "three arms, Holm": (THREE, {"stable": (9300, 10000), "b": (9180, 10000), "c": (9290, 10000)},
                         {("b", "c"): (50, 3, 1, 6)}, {}),
    "no traffic": (TWO, {}, {}, {}),
}


def server_counts(experiment: Experiment, labelled: dict, paired: dict) -> ExperimentCounts:
    counts = ExperimentCounts.start(experiment)
    for arm, (correct, n) in labelled.items():
        counts.arms[arm].correct, counts.arms[arm].labelled = correct, n
    for pair, outcomes in paired.items():
        counts.pairs[pair].outcomes.update(zip(OUTCOMES, outcomes))
        counts.pairs[pair].agree, counts.pairs[pair].disagree = outcomes[0] + outcomes[3], outcomes[1] + outcomes[2]
    return counts


def fleet_counts(labelled: dict, paired: dict, traffic: dict) -> FleetCounts:
    """What Prometheus gives, summed over one replica."""
    counts = FleetCounts()
    for arm, (correct, n) in labelled.items():
        counts.labelled[arm], counts.correct[arm] = n, correct
    for arm, flow in traffic.items():
        counts.requests[arm], counts.errors[arm] = int(flow.requests), int(flow.errors)
        counts.buckets[arm], counts.latency_sum[arm] = list(flow.buckets), flow.latency_sum
        counts.served[arm] = ("lstm" if arm == "stable" else "gru", 1)
    for (a, b), outcomes in paired.items():
        counts.paired.update({(a, b, o): n for o, n in zip(OUTCOMES, outcomes)})
        counts.agreement[(a, b, "agree")] = outcomes[0] + outcomes[3]
        counts.agreement[(b, a, "disagree")] = outcomes[1] + outcomes[2]  # shadows in either direction sum
    return counts


def serving(selector: ModelSelector) -> tuple[str, int]:
    return selector.name, 1


def both(name: str, basis: str = "always-valid"):
    experiment, labelled, paired, traffic = SCENARIOS[name]
    server = codec.experiment_report(build_report(experiment, server_counts(experiment, labelled, paired), traffic,
                                                  serving, basis))
    fleet = build_fleet_report(codec.experiment_message(experiment), fleet_counts(labelled, paired, traffic),
                               "fleet", basis)
    return server, fleet


def assert_same_field(server, fleet, name: str) -> None:
    expected, got = getattr(server, name), getattr(fleet, name)
    if isinstance(expected, float):
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-15), name
    else:
        assert got == expected, name


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_one_replica_fleet_report_is_the_servers_report(name: str) -> None:
    server, fleet = both(name)
    assert [(p.arm_a, p.arm_b) for p in fleet.pairs] == [(p.arm_a, p.arm_b) for p in server.pairs]
    for s, f in zip(server.pairs, fleet.pairs):
        for field in (*ALWAYS_VALID, *FIXED_HORIZON, *WORDS, *(o for o in OUTCOMES), "shadow_agree",
                      "shadow_disagree"):
            assert_same_field(s, f, field)
    # the server's report adds its sample-ratio test; the one-look fleet report has none (the controller's has)
    assert len(fleet.guardrails) == len(server.guardrails) - 1 == 2 * (len(server.arms) - 1)
    assert server.guardrails[-1].metric == "sample-ratio"
    for s, f in zip(server.guardrails, fleet.guardrails):
        for field in ("arm", "baseline_arm", "metric", "value", "baseline_value", "tolerance", "excess",
                      "excess_low", "excess_high", "status"):
            assert_same_field(s, f, field)
    for s, f in zip(server.arms, fleet.arms):
        for field in ("labelled", "correct", "requests", "errors", "accuracy_low", "accuracy_high",
                      "latency_mean_seconds", "latency_p50_seconds", "latency_p99_seconds"):
            assert_same_field(s, f, field)


def test_the_scenarios_reach_every_kind_of_verdict() -> None:
    """The comparison above covers each verdict the single-server report can give."""
    verdicts = {name: both(name)[1].pairs[0].verdict for name in SCENARIOS}
    assert verdicts["independent, differs"].startswith("stable beats canary: a - b in [+")
    assert verdicts["independent, not yet"].startswith("no difference shown yet (always-valid p = ")
    assert "mSPRT (paired" in verdicts["paired"] and verdicts["paired"].startswith("stable beats canary")
    assert verdicts["latency breach"].startswith("guardrail breached: latency")
    assert verdicts["error breach"].startswith("guardrail breached: errors")
    assert verdicts["no traffic"].startswith("no labelled traffic yet")
    three = both("three arms, Holm")[1]
    assert three.pairs[0].always_valid_p_holm > three.pairs[0].always_valid_p_value  # adjusted over 3 pairs
    assert three.pairs[0].sequence_confidence == pytest.approx(1 - 0.05 / 3)


def test_fixed_horizon_basis_is_the_servers_too() -> None:
    server, fleet = both("independent, not yet", "fixed-horizon")
    assert fleet.pairs[0].verdict_basis == "fixed-horizon" == server.pairs[0].verdict_basis
    assert fleet.pairs[0].verdict == server.pairs[0].verdict == fleet.pairs[0].fixed_horizon_verdict
    assert fleet.pairs[0].verdict.startswith("stable beats canary by 2.8 points")  # z-test p ~ 0.006
    assert fleet.pairs[0].always_valid_p_value == pytest.approx(server.pairs[0].always_valid_p_value)


def test_after_more_looks_the_server_is_sharper_never_the_fleet() -> None:
    """The server folds looks (running minimum, intersection); the fleet report is one look."""
    experiment = TWO
    counts = server_counts(experiment, {"stable": (960, 1000), "canary": (880, 1000)}, {})
    build_report(experiment, counts, {}, serving)  # an earlier look, with a larger difference
    later = {"stable": (1900, 2000), "canary": (1830, 2000)}
    for arm, (correct, n) in later.items():
        counts.arms[arm].correct, counts.arms[arm].labelled = correct, n
    server = codec.experiment_report(build_report(experiment, counts, {}, serving)).pairs[0]
    fleet = build_fleet_report(codec.experiment_message(experiment), fleet_counts(later, {}, {}), "fleet").pairs[0]
    assert server.always_valid_p_value < fleet.always_valid_p_value  # the running minimum remembers
    assert fleet.sequence_low <= server.sequence_low and server.sequence_high <= fleet.sequence_high
    assert fleet.sequence_low < server.sequence_low  # strictly: the earlier look's lower end
