"""One A/B comparison from counts: each arm's numbers, each pair's fixed-horizon and always-valid
tests with the verdict in words, and the candidates' guardrails.

Shared by the two reports that must say the same thing: the server's (GetExperimentReport, its
always-valid looks folded into the experiment's running state) and the fleet's (`digits ab report
--prometheus`, one look at the counters summed in Prometheus). Transport-free;
`report_message.comparison_fields` turns a `Comparison` into ExperimentReport fields.
Needs scipy for the fixed-horizon tests (`statistics` imports it on first use).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

from digits.experiments import always_valid as av
from digits.experiments import label_free
from digits.experiments import statistics as stats
from digits.experiments.label_free import ArmEstimate, PairEstimate
from digits.experiments.verdict import ALPHA, ALWAYS_VALID, FIXED_HORIZON, POWER, pair_verdicts

VERDICT_BASES = (ALWAYS_VALID, FIXED_HORIZON)


@dataclass(frozen=True)
class ArmTally:
    """What was counted for one arm: the version its selector serves, its labelled predictions
    and its RPC traffic (requests, errors, latency histogram)."""

    arm: str
    model: str
    version: int
    labelled: int
    correct: int
    traffic: av.ArmTraffic = av.ArmTraffic()
    estimate: ArmEstimate = ArmEstimate()  # label-free CBPE sums of its live predictions


@dataclass(frozen=True)
class PairTally:
    """What was counted for a pair of arms: outcomes on the same labelled images (shadow traffic)
    and how often the shadow's answer agreed with the primary's."""

    paired: stats.PairedOutcomes = stats.PairedOutcomes()
    shadow_agree: int = 0
    shadow_disagree: int = 0


@dataclass(frozen=True)
class ArmResult:
    """One arm's numbers."""

    arm: str
    model: str
    version: int
    requests: int
    errors: int
    error_rate: float
    labelled: int
    correct: int
    accuracy: float
    accuracy_low: float
    accuracy_high: float
    latency_p50: float
    latency_p95: float
    latency_p99: float
    latency_mean: float = 0.0
    estimate: ArmEstimate = ArmEstimate()  # estimated, no labels (label_free.py)


@dataclass(frozen=True)
class PairResult:
    """The comparison of arms a and b (a listed first in the experiment)."""

    arm_a: str
    arm_b: str
    comparison: stats.Comparison
    paired: stats.PairedOutcomes
    shadow_agree: int
    shadow_disagree: int
    verdict: str
    always_valid: av.AlwaysValid | None = None
    fixed_horizon_verdict: str = ""
    verdict_basis: str = FIXED_HORIZON
    label_free: PairEstimate | None = None  # estimated, no labels: never part of the verdicts


@dataclass(frozen=True)
class Comparison:
    """Every arm's numbers, every pair's tests (in combinations order of the arms) and the guardrails."""

    arms: tuple[ArmResult, ...]
    pairs: tuple[PairResult, ...]
    guardrails: tuple[av.Guardrail, ...]


def check_basis(verdict_basis: str) -> str:
    """`verdict_basis` if it names a basis, else ValueError naming the field and the choices."""
    if verdict_basis not in VERDICT_BASES:
        raise ValueError(f"verdict_basis: must be '{ALWAYS_VALID}' or '{FIXED_HORIZON}', got {verdict_basis!r}")
    return verdict_basis


def arm_result(tally: ArmTally) -> ArmResult:
    """An arm's accuracy with its Wilson interval, error rate and latency percentiles and mean."""
    flow = tally.traffic
    requests, errors = int(round(flow.requests)), int(round(flow.errors))
    low, high = stats.wilson_interval(tally.correct, tally.labelled)
    return ArmResult(
        arm=tally.arm,
        model=tally.model,
        version=tally.version,
        requests=requests,
        errors=errors,
        error_rate=errors / requests if requests else 0.0,
        labelled=tally.labelled,
        correct=tally.correct,
        accuracy=tally.correct / tally.labelled if tally.labelled else 0.0,
        accuracy_low=low,
        accuracy_high=high,
        latency_p50=stats.histogram_quantile(0.50, flow.buckets),
        latency_p95=stats.histogram_quantile(0.95, flow.buckets),
        latency_p99=stats.histogram_quantile(0.99, flow.buckets),
        latency_mean=av.latency_moments(flow)[1],
        estimate=tally.estimate,
    )


def compare(
    arms: Sequence[ArmTally],
    pairs: Mapping[tuple[str, str], PairTally],
    verdict_basis: str = ALWAYS_VALID,
    fold: av.Fold = av.one_look,
    extra_guardrails: Sequence[av.Guardrail] = (),
) -> Comparison:
    """Compare the arms (the first is the baseline). `pairs[(a, b)]` for a listed before b; a pair
    missing counts as nothing seen. `fold` keeps the always-valid state between looks (the server's
    running minima), or not (`one_look`, the fleet report). `extra_guardrails` (the sample-ratio test,
    sample_ratio.py) are reported, and count in the verdicts, after the latency and error ones."""
    basis = check_basis(verdict_basis)
    results = [arm_result(tally) for tally in arms]
    by_name = {arm.arm: arm for arm in results}
    names = [arm.arm for arm in results]
    tallies = {pair: pairs.get(pair, PairTally()) for pair in combinations(names, 2)}
    labelled = {arm.arm: (arm.correct, arm.labelled) for arm in results}
    always = av.compare_pairs(labelled, {pair: tally.paired for pair, tally in tallies.items()}, ALPHA, fold=fold)
    guards = av.guardrails(names, {tally.arm: tally.traffic for tally in arms}, alpha=ALPHA, fold=fold)
    guards = [*guards, *extra_guardrails]
    level = av.guardrail_level(ALPHA, len(names) - 1)  # the label-free guardrail's share (always_valid.py)
    found = []
    for ((name_a, name_b), tally), valid in zip(tallies.items(), always):
        a, b = by_name[name_a], by_name[name_b]
        tested = stats.compare(a.correct, a.labelled, b.correct, b.labelled, tally.paired, alpha=ALPHA, power=POWER)
        chosen, fixed = pair_verdicts(name_a, name_b, names[0], tested, valid, guards, basis)
        estimated = _label_free(a, b, tally, level, fold)
        found.append(PairResult(name_a, name_b, tested, tally.paired, tally.shadow_agree, tally.shadow_disagree,
                                chosen, valid, fixed, basis, estimated))
    return Comparison(tuple(results), tuple(found), tuple(guards))


def _label_free(a: ArmResult, b: ArmResult, tally: PairTally, level: float, fold: av.Fold) -> PairEstimate:
    """The pair's label-free figures, the estimates' difference sequence folded like the guardrails'."""
    low, high = label_free.difference_sequence(a.estimate, b.estimate, level)
    if a.estimate.predictions and b.estimate.predictions:
        _, low, high = fold(("estimated", a.arm, b.arm), 1.0, low, high)
    return label_free.pair_estimate(a.estimate, b.estimate, tally.shadow_agree, tally.shadow_disagree, level,
                                    (low, high))
