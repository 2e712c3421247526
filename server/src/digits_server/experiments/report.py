"""The comparison report of an experiment: per arm requests, accuracy with its Wilson interval,
latency percentiles and error rate; per pair of arms the fixed-horizon tests and the always-valid
ones (decisions.py) side by side, and a verdict in plain words resting on one of them (the
always-valid one unless asked otherwise); the candidates' guardrails; the rollout decisions.
Built from the experiment observer's counts; transport-free (codec converts it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

from digits.experiments import statistics as stats
from digits.experiments.verdict import ALPHA, ALWAYS_VALID, FIXED_HORIZON, POWER, format_p, pair_verdicts, verdict
from digits_server.core.domain import ModelSelector
from digits_server.core.errors import InvalidInput
from digits_server.experiments import decisions
from digits_server.experiments.observer import ArmTraffic, ExperimentCounts
from digits_server.experiments.router import Experiment

LATENCY_SOURCE = (
    "server histogram digits_request_duration_seconds (in-server RPC time) since the experiment "
    "was created, interpolated within buckets like PromQL histogram_quantile"
)

__all__ = ["ALPHA", "ALWAYS_VALID", "FIXED_HORIZON", "POWER", "ArmResult", "PairResult", "Report",
           "build_report", "format_p", "verdict"]


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
    always_valid: decisions.AlwaysValid | None = None
    fixed_horizon_verdict: str = ""
    verdict_basis: str = FIXED_HORIZON


@dataclass(frozen=True)
class RolloutDecision:
    """One recorded rollout step or decision."""

    experiment: str
    candidate_arm: str
    decision: str
    reason: str
    weight: float
    unix_time: float


@dataclass(frozen=True)
class Report:
    """An experiment's full report."""

    experiment: Experiment
    arms: tuple[ArmResult, ...]
    pairs: tuple[PairResult, ...]
    latency_source: str = LATENCY_SOURCE
    guardrails: tuple[decisions.Guardrail, ...] = ()
    method: str = decisions.METHOD
    decisions: tuple[RolloutDecision, ...] = field(default_factory=tuple)


def build_report(
    experiment: Experiment,
    counts: ExperimentCounts,
    traffic: Mapping[str, ArmTraffic],
    serving: Callable[[ModelSelector], tuple[str, int]],
    verdict_basis: str = ALWAYS_VALID,
    recorded: Sequence[RolloutDecision] = (),
) -> Report:
    """The report from the counts and the arms' traffic since creation; `serving(selector)`
    names the (model, version) an arm's selector resolves to now (version 0 if none). Each call
    is a look of the always-valid statistics. `verdict_basis`: ALWAYS_VALID or FIXED_HORIZON."""
    basis = verdict_basis or ALWAYS_VALID
    if basis not in (ALWAYS_VALID, FIXED_HORIZON):
        raise InvalidInput(f"verdict_basis: must be '{ALWAYS_VALID}' or '{FIXED_HORIZON}', got {verdict_basis!r}")
    arms = []
    for arm in experiment.arms:
        seen = counts.arms[arm.name]
        flow = traffic.get(arm.name, ArmTraffic())
        requests, errors = int(round(flow.requests)), int(round(flow.errors))
        low, high = stats.wilson_interval(seen.correct, seen.labelled)
        model, version = serving(arm.model)
        arms.append(
            ArmResult(
                arm=arm.name,
                model=model,
                version=version,
                requests=requests,
                errors=errors,
                error_rate=errors / requests if requests else 0.0,
                labelled=seen.labelled,
                correct=seen.correct,
                accuracy=seen.correct / seen.labelled if seen.labelled else 0.0,
                accuracy_low=low,
                accuracy_high=high,
                latency_p50=stats.histogram_quantile(0.50, flow.buckets),
                latency_p95=stats.histogram_quantile(0.95, flow.buckets),
                latency_p99=stats.histogram_quantile(0.99, flow.buckets),
                latency_mean=decisions.latency_moments(flow)[1],
            )
        )
    by_name = {arm.arm: arm for arm in arms}
    names = list(combinations(counts.arm_order, 2))
    paired = {pair: counts.pairs[pair].paired() for pair in names}
    always = decisions.compare_pairs(counts, {a.arm: (a.correct, a.labelled) for a in arms}, paired, ALPHA)
    guards = decisions.guardrails(counts, dict(traffic), alpha=ALPHA)
    pairs = []
    for (name_a, name_b), valid in zip(names, always):
        a, b = by_name[name_a], by_name[name_b]
        pair = counts.pairs[(name_a, name_b)]
        comparison = stats.compare(a.correct, a.labelled, b.correct, b.labelled, paired[(name_a, name_b)],
                                   alpha=ALPHA, power=POWER)
        chosen, fixed = pair_verdicts(name_a, name_b, counts.arm_order[0], comparison, valid, guards, basis)
        pairs.append(PairResult(name_a, name_b, comparison, paired[(name_a, name_b)], pair.agree, pair.disagree,
                                chosen, valid, fixed, basis))
    return Report(experiment, tuple(arms), tuple(pairs), guardrails=tuple(guards), decisions=tuple(recorded))

