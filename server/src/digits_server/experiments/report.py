"""The comparison report of an experiment: per arm requests, accuracy with its Wilson interval,
latency percentiles and error rate; per pair of arms the fixed-horizon tests and the always-valid
ones (decisions.py) side by side, and a verdict in plain words resting on one of them (the
always-valid one unless asked otherwise); the candidates' guardrails; the rollout decisions.
Built from the experiment observer's counts; transport-free (codec converts it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from digits.experiments import comparison, sample_ratio
from digits.experiments.comparison import ArmResult, PairResult
from digits.experiments.verdict import ALPHA, ALWAYS_VALID, FIXED_HORIZON, POWER, format_p, verdict
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
    server_id: str = ""  # the answering process (random per start)


def build_report(
    experiment: Experiment,
    counts: ExperimentCounts,
    traffic: Mapping[str, ArmTraffic],
    serving: Callable[[ModelSelector], tuple[str, int]],
    verdict_basis: str = ALWAYS_VALID,
    recorded: Sequence[RolloutDecision] = (),
    server_id: str = "",
) -> Report:
    """The report from the counts and the arms' traffic since creation; `serving(selector)`
    names the (model, version) an arm's selector resolves to now (version 0 if none). Each call
    is a look of the always-valid statistics, folded into the experiment's running state.
    `verdict_basis`: ALWAYS_VALID or FIXED_HORIZON."""
    try:
        basis = comparison.check_basis(verdict_basis or ALWAYS_VALID)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    arms = [
        comparison.ArmTally(arm.name, *serving(arm.model), counts.arms[arm.name].labelled,
                            counts.arms[arm.name].correct, traffic.get(arm.name, ArmTraffic()),
                            counts.arms[arm.name].estimate)
        for arm in experiment.arms
    ]
    pairs = {
        pair: comparison.PairTally(seen.paired(), seen.agree, seen.disagree) for pair, seen in counts.pairs.items()
    }
    srm = sample_ratio.guardrail(counts.sample_ratio, experiment.arms[0].name,
                                 {arm.name: arm.weight for arm in experiment.arms},
                                 {arm.name: counts.arms[arm.name].labelled for arm in experiment.arms},
                                 experiment.paused, time.monotonic())
    found = comparison.compare(arms, pairs, basis, fold=decisions.running_fold(counts), extra_guardrails=[srm])
    return Report(experiment, found.arms, found.pairs, guardrails=found.guardrails, decisions=tuple(recorded),
                  server_id=server_id)
