"""The comparison report of an experiment: per arm requests, accuracy with its Wilson interval,
latency percentiles and error rate; per pair of arms the statistical tests and a verdict in
plain words. Built from the experiment observer's counts; transport-free (codec converts it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import combinations

from digits.experiments import statistics as stats
from digits.experiments.verdict import ALPHA, POWER, format_p, verdict
from digits_server.core.domain import ModelSelector
from digits_server.experiments.observer import ArmTraffic, ExperimentCounts
from digits_server.experiments.router import Experiment

LATENCY_SOURCE = (
    "server histogram digits_request_duration_seconds (in-server RPC time) since the experiment "
    "was created, interpolated within buckets like PromQL histogram_quantile"
)
__all__ = ["ALPHA", "POWER", "ArmResult", "PairResult", "Report", "build_report", "format_p", "verdict"]


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


@dataclass(frozen=True)
class Report:
    """An experiment's full report."""

    experiment: Experiment
    arms: tuple[ArmResult, ...]
    pairs: tuple[PairResult, ...]
    latency_source: str = LATENCY_SOURCE


def build_report(
    experiment: Experiment,
    counts: ExperimentCounts,
    traffic: Mapping[str, ArmTraffic],
    serving: Callable[[ModelSelector], tuple[str, int]],
) -> Report:
    """The report from the counts and the arms' traffic since creation; `serving(selector)`
    names the (model, version) an arm's selector resolves to now (version 0 if none)."""
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
            )
        )
    by_name = {arm.arm: arm for arm in arms}
    pairs = []
    for name_a, name_b in combinations(counts.arm_order, 2):
        a, b = by_name[name_a], by_name[name_b]
        pair = counts.pairs[(name_a, name_b)]
        paired = pair.paired()
        comparison = stats.compare(a.correct, a.labelled, b.correct, b.labelled, paired, alpha=ALPHA, power=POWER)
        pairs.append(
            PairResult(name_a, name_b, comparison, paired, pair.agree, pair.disagree, verdict(name_a, name_b, comparison))
        )
    return Report(experiment, tuple(arms), tuple(pairs))
