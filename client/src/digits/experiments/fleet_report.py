"""The A/B report of a whole fleet, from Prometheus: the same numbers and statistics as the
server's GetExperimentReport — fixed-horizon and always-valid, with the same verdict words —
computed from every replica's counters summed over instances.

Without `since`, every increase since the experiment was created (`created_unix_time`, recorded in
the shared config file), exact and across counter resets, from the raw samples (counter_history.py):
a replica restarted mid-experiment keeps the counts it had. With `since` (a PromQL duration such as
`1h`), `increase(...[since])` summed over instances: a sliding window, and increase() extrapolates to
the window's edges, so counts are rounded to integers.
The experiment's arms and their order (arm A is listed first) come from ListExperiments.

Always-valid figures (always_valid.py, the server's code): each fleet report is one look at the summed
counts. The CLI's report keeps no state between looks, so the p-values are this look's 1/Lambda, not
running minima, and the confidence sequences this look's interval: valid at any look, never sharper
than running state. The rollout controller (`digits ab rollout --prometheus`, fleet_rollout.py) folds its
looks into its own running state (`fold`). With `since` the window slides, so repeated looks are not one
growing sample (said in the report's `method`).
The arms' numbers, tests and verdicts are computed by comparison.py, as in the server's report.
Needs scipy (`pip install 'digits-client[stats]'`) for the statistics.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import combinations

from digits.experiments import always_valid as av
from digits.experiments import comparison
from digits.experiments.comparison import PairTally
from digits.experiments.counter_history import (
    PrometheusError,
    RangeQuery,
    process_starts,
    prometheus_api,
    prometheus_range,
    totals_since,
)
from digits.experiments.label_free import ArmEstimate
from digits.experiments.report_message import comparison_fields
from digits.experiments.statistics import PairedOutcomes
from digits.v1 import digits_pb2

__all__ = ["OUTCOMES", "FleetCounts", "PrometheusError", "build_fleet_report", "exact_sums", "fetch_counts",
           "fleet_report", "prometheus_query", "window_sums"]

OUTCOMES = ("both_right", "only_a_right", "only_b_right", "both_wrong")
# An arm's label-free CBPE sums (server experiment_metrics.py), in ArmEstimate's field order.
ESTIMATE_SERIES = ("digits_experiment_estimated_predictions_total", "digits_experiment_calibrated_probability_sum_total",
                   "digits_experiment_calibrated_variance_sum_total", "digits_experiment_uncalibrated_predictions_total")
_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
_LABEL_VALUE = re.compile(r'^[^"\\\n]*$')

Query = Callable[[str], list[tuple[dict[str, str], float]]]
# (series selector, labels to sum by) -> {label values: total}
Sums = Callable[[str, Sequence[str]], dict[tuple[str, ...], float]]


def prometheus_query(url: str, timeout: float = 10.0) -> Query:
    """An instant-query function against Prometheus at `url` (http://host:9090)."""

    def query(expr: str) -> list[tuple[dict[str, str], float]]:
        return [(r["metric"], float(r["value"][1])) for r in prometheus_api(url, expr, timeout)["result"]]

    return query


def window_sums(query: Query, since: str) -> Sums:
    """Sums of `increase(selector[since])` over instances (PromQL; extrapolated at the window's edges)."""
    if not _DURATION.match(since):
        raise ValueError(f"--since: {since!r} is not a Prometheus duration such as 30m, 1h or 1h30m")

    def sums(selector: str, by: Sequence[str]) -> dict[tuple[str, ...], float]:
        found = query(f"sum by ({', '.join(by)}) (increase({selector}[{since}]))")
        return {tuple(labels.get(name, "") for name in by): value for labels, value in found}

    return sums


def exact_sums(query: RangeQuery, start: float) -> Sums:
    """Every increase since `start` (Unix seconds), exact and across counter resets, summed over instances."""

    starts = process_starts(query, start)  # each scrape's process start time: restarts are resets

    def sums(selector: str, by: Sequence[str]) -> dict[tuple[str, ...], float]:
        return totals_since(query, selector, start, by, starts)

    return sums


@dataclass
class FleetCounts:
    """What the replicas counted for one experiment, summed over instances."""

    labelled: dict[str, int] = field(default_factory=dict)
    correct: dict[str, int] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    served: dict[str, tuple[str, int]] = field(default_factory=dict)  # arm -> (model, version) most served
    buckets: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    latency_sum: dict[str, float] = field(default_factory=dict)  # seconds, the histograms' _sum
    agreement: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (primary, shadow, agree|disagree)
    paired: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (arm_a, arm_b, outcome)
    estimates: dict[str, ArmEstimate] = field(default_factory=dict)  # label-free CBPE sums per arm

    def pair_tally(self, arm_a: str, arm_b: str) -> PairTally:
        """Arms a and b's paired outcomes, and shadow agreement whichever of them was primary."""
        agreed = {kind: sum(self.agreement.get((primary, shadow, kind), 0)
                            for primary, shadow in ((arm_a, arm_b), (arm_b, arm_a)))
                  for kind in ("agree", "disagree")}
        outcomes = PairedOutcomes(**{o: self.paired.get((arm_a, arm_b, o), 0) for o in OUTCOMES})
        return PairTally(outcomes, agreed["agree"], agreed["disagree"])

    def traffic(self) -> dict[str, av.ArmTraffic]:
        """Each arm's requests, errors and latency histogram, as the guardrails read them."""
        return {arm: av.ArmTraffic(self.requests.get(arm, 0), self.errors.get(arm, 0),
                                tuple(self.buckets.get(arm, ())), self.latency_sum.get(arm, 0.0))
                for arm in set(self.requests) | set(self.buckets)}


def fetch_counts(sums: Sums, experiment: str) -> FleetCounts:
    """Sum the experiment's counters over every instance Prometheus scrapes."""
    if not _LABEL_VALUE.match(experiment):
        raise ValueError(f"name: {experiment!r} cannot be used in a PromQL label matcher")
    match = f'{{experiment="{experiment}"}}'

    def summed(metric: str, *by: str) -> list[tuple[tuple[str, ...], int]]:
        return [(key, round(value)) for key, value in sums(metric + match, by).items()]

    counts = FleetCounts()
    for (arm,), value in summed("digits_experiment_labelled_predictions_total", "arm"):
        counts.labelled[arm] = value
    for (arm,), value in summed("digits_experiment_correct_predictions_total", "arm"):
        counts.correct[arm] = value
    most: dict[str, int] = {}
    for (arm, model, version, code), value in summed("digits_requests_total", "arm", "model", "version", "code"):
        counts.requests[arm] = counts.requests.get(arm, 0) + value
        if code != "OK":
            counts.errors[arm] = counts.errors.get(arm, 0) + value
        if value > most.get(arm, -1) and version.isdigit():
            most[arm] = value
            counts.served[arm] = (model, int(version))
    for (arm, le), value in summed("digits_request_duration_seconds_bucket", "arm", "le"):
        counts.buckets.setdefault(arm, []).append((float(le), float(value)))
    for bucket in counts.buckets.values():
        bucket.sort()
    for (arm,), total in sums(f"digits_request_duration_seconds_sum{match}", ("arm",)).items():
        counts.latency_sum[arm] = total
    for (primary, shadow, agreement), value in summed("digits_shadow_agreement_total", "primary_arm", "shadow_arm",
                                                      "agreement"):
        counts.agreement[(primary, shadow, agreement)] = value
    for (arm_a, arm_b, outcome), value in summed("digits_paired_outcomes_total", "arm_a", "arm_b", "outcome"):
        counts.paired[(arm_a, arm_b, outcome)] = value
    estimated = [{arm: total for (arm,), total in sums(metric + match, ("arm",)).items()} for metric in ESTIMATE_SERIES]
    for arm in estimated[0]:
        n, total, variance, raw = (column.get(arm, 0.0) for column in estimated)
        counts.estimates[arm] = ArmEstimate(round(n), total, variance, round(raw))
    return counts


def build_fleet_report(
    experiment: digits_pb2.Experiment, counts: FleetCounts, source: str, verdict_basis: str = "always-valid",
    window: str | None = None, fold: av.Fold = av.one_look, looks: str = av.ONE_LOOK,
    extra_guardrails: Sequence[av.Guardrail] = (),
) -> digits_pb2.ExperimentReport:
    """The ExperimentReport GetExperimentReport would give if one server had seen the whole fleet's
    traffic: at its first look with the default `fold`, or with the running state `fold` keeps (the
    rollout controller's; `looks` says how in `method`; `extra_guardrails`: its sample-ratio test). `verdict_basis`: "always-valid" or
    "fixed-horizon"; `window`: the --since duration the counts cover, if any (said in `method`)."""
    comparison.check_basis(verdict_basis)
    how = "one look" if fold is av.one_look else "the controller's running looks"
    method = f"{av.describe(looks)}. Fleet: {how} at the counters summed over the replicas in Prometheus"
    if window:
        method += (f"; --since {window}: increase() over a sliding window, so repeated looks are different samples "
                   "and the always-valid guarantee across looks holds only without --since")
    traffic = counts.traffic()
    arms = [
        comparison.ArmTally(arm.name, *counts.served.get(arm.name, (arm.model.name, 0)),
                            counts.labelled.get(arm.name, 0), counts.correct.get(arm.name, 0),
                            traffic.get(arm.name, av.ArmTraffic()), counts.estimates.get(arm.name, ArmEstimate()))
        for arm in experiment.arms
    ]
    names = [arm.name for arm in experiment.arms]
    pairs = {(a, b): counts.pair_tally(a, b) for a, b in combinations(names, 2)}
    found = comparison.compare(arms, pairs, verdict_basis, fold=fold, extra_guardrails=extra_guardrails)
    return digits_pb2.ExperimentReport(experiment=experiment, latency_source=source, method=method,
                                       **comparison_fields(found))


def fleet_counts(prometheus: str, experiment: digits_pb2.Experiment, since: str | None = None) -> FleetCounts:
    """The fleet's counts of `experiment`: exact since its creation, or increase() over `since`."""
    if since is not None:
        return fetch_counts(window_sums(prometheus_query(prometheus), since), experiment.name)
    return fetch_counts(exact_sums(prometheus_range(prometheus), experiment.created_unix_time), experiment.name)


def counts_source(experiment: digits_pb2.Experiment, since: str | None = None) -> str:
    """The report's `latency_source`: where the fleet's counts come from."""
    if since:
        window = f"increase over the last {since}"
    elif experiment.created_unix_time:
        window = "every increase since the experiment was created, exact across replica restarts"
    else:
        window = "every increase Prometheus kept (the experiment's creation time is unknown)"
    return (f"fleet: server histograms digits_request_duration_seconds summed over instances in Prometheus, "
            f"{window}, interpolated within buckets like PromQL histogram_quantile")


def fleet_report(
    prometheus: str, experiment: digits_pb2.Experiment, since: str | None = None,
    verdict_basis: str = "always-valid",
) -> digits_pb2.ExperimentReport:
    """The fleet's report of `experiment` from Prometheus at `prometheus` (a URL), one look."""
    counts = fleet_counts(prometheus, experiment, since)
    return build_fleet_report(experiment, counts, counts_source(experiment, since), verdict_basis, since)
