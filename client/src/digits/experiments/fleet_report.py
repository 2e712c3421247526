"""The A/B report of a whole fleet, from Prometheus: the same numbers and statistics as the
server's GetExperimentReport — fixed-horizon and always-valid, with the same verdict words —
computed from every replica's counters summed over instances.

Without `since`, instant sums (counts since each replica started counting; a restarted replica's
counts restart from 0, so they can only be missing, never double). With `since` (a PromQL duration
such as `1h`), `increase(...[since])` summed over instances: counter resets are tolerated by
PromQL, and increase() extrapolates to the window's edges, so counts are rounded to integers.
The experiment's arms and their order (arm A is listed first) come from ListExperiments.

Always-valid figures (always_valid.py, the server's code): each fleet report is one look at the summed
counts. No state is kept between looks (the CLI is stateless and replicas share none), so the
p-values are this look's 1/Lambda, not running minima, and the confidence sequences this look's
interval, not running intersections: valid at any look, never sharper than a single server's
running state, and equal to a single server's first look on the same counts. With `since` the
window slides, so repeated looks are not one growing sample (said in the report's `method`).
The arms' numbers, tests and verdicts are computed by comparison.py, as in the server's report.
Needs scipy (`pip install 'digits-client[stats]'`) for the statistics.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import combinations

from digits.experiments import always_valid as av
from digits.experiments import comparison
from digits.experiments.comparison import PairTally
from digits.experiments.report_message import comparison_fields
from digits.experiments.statistics import PairedOutcomes
from digits.v1 import digits_pb2

OUTCOMES = ("both_right", "only_a_right", "only_b_right", "both_wrong")
_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
_LABEL_VALUE = re.compile(r'^[^"\\\n]*$')

Query = Callable[[str], list[tuple[dict[str, str], float]]]


class PrometheusError(Exception):
    """Prometheus could not be asked, or refused the query; the message says which."""


def prometheus_query(url: str, timeout: float = 10.0) -> Query:
    """An instant-query function against Prometheus at `url` (http://host:9090)."""
    base = url.rstrip("/")

    def query(expr: str) -> list[tuple[dict[str, str], float]]:
        address = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        try:
            with urllib.request.urlopen(address, timeout=timeout) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            body = json.load(exc)
        except (OSError, ValueError) as exc:
            raise PrometheusError(f"--prometheus {url}: {exc}") from None
        if body.get("status") != "success":
            raise PrometheusError(f"--prometheus {url}: {body.get('errorType')}: {body.get('error')} ({expr})")
        return [(r["metric"], float(r["value"][1])) for r in body["data"]["result"]]

    return query


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


def fetch_counts(query: Query, experiment: str, since: str | None = None) -> FleetCounts:
    """Sum the experiment's counters over every instance Prometheus scrapes."""
    if not _LABEL_VALUE.match(experiment):
        raise ValueError(f"name: {experiment!r} cannot be used in a PromQL label matcher")
    if since is not None and not _DURATION.match(since):
        raise ValueError(f"--since: {since!r} is not a Prometheus duration such as 30m, 1h or 1h30m")
    match = f'experiment="{experiment}"'

    def summed(metric: str, by: str, extra: str = "") -> list[tuple[dict[str, str], int]]:
        return [(labels, int(round(value))) for labels, value in real(metric, by, extra)]

    def real(metric: str, by: str, extra: str = "") -> list[tuple[dict[str, str], float]]:
        selector = f"{metric}{{{match}{extra}}}"
        inner = f"increase({selector}[{since}])" if since else selector
        return query(f"sum by ({by}) ({inner})")

    counts = FleetCounts()
    for labels, value in summed("digits_experiment_labelled_predictions_total", "arm"):
        counts.labelled[labels["arm"]] = value
    for labels, value in summed("digits_experiment_correct_predictions_total", "arm"):
        counts.correct[labels["arm"]] = value
    most: dict[str, int] = {}
    for labels, value in summed("digits_requests_total", "arm, model, version, code"):
        arm = labels["arm"]
        counts.requests[arm] = counts.requests.get(arm, 0) + value
        if labels.get("code") != "OK":
            counts.errors[arm] = counts.errors.get(arm, 0) + value
        if value > most.get(arm, -1) and labels.get("version", "").isdigit():
            most[arm] = value
            counts.served[arm] = (labels.get("model", ""), int(labels["version"]))
    for labels, value in summed("digits_request_duration_seconds_bucket", "arm, le"):
        counts.buckets.setdefault(labels["arm"], []).append((float(labels["le"]), float(value)))
    for bucket in counts.buckets.values():
        bucket.sort()
    for labels, value in real("digits_request_duration_seconds_sum", "arm"):
        counts.latency_sum[labels["arm"]] = value
    for labels, value in summed("digits_shadow_agreement_total", "primary_arm, shadow_arm, agreement"):
        counts.agreement[(labels["primary_arm"], labels["shadow_arm"], labels["agreement"])] = value
    for labels, value in summed("digits_paired_outcomes_total", "arm_a, arm_b, outcome"):
        counts.paired[(labels["arm_a"], labels["arm_b"], labels["outcome"])] = value
    return counts


def build_fleet_report(
    experiment: digits_pb2.Experiment, counts: FleetCounts, source: str, verdict_basis: str = "always-valid",
    window: str | None = None,
) -> digits_pb2.ExperimentReport:
    """The ExperimentReport GetExperimentReport would give at its first look if one server had seen the
    whole fleet's traffic. `verdict_basis`: "always-valid" or "fixed-horizon"; `window`: the --since
    duration the counts cover, if any (said in `method`)."""
    comparison.check_basis(verdict_basis)
    method = f"{av.describe(av.ONE_LOOK)}. Fleet: one look at the counters summed over the replicas in Prometheus"
    if window:
        method += (f"; --since {window}: increase() over a sliding window, so repeated looks are different samples "
                   "and the always-valid guarantee across looks holds only without --since")
    traffic = counts.traffic()
    arms = [
        comparison.ArmTally(arm.name, *counts.served.get(arm.name, (arm.model.name, 0)),
                            counts.labelled.get(arm.name, 0), counts.correct.get(arm.name, 0),
                            traffic.get(arm.name, av.ArmTraffic()))
        for arm in experiment.arms
    ]
    names = [arm.name for arm in experiment.arms]
    pairs = {(a, b): counts.pair_tally(a, b) for a, b in combinations(names, 2)}
    found = comparison.compare(arms, pairs, verdict_basis)
    return digits_pb2.ExperimentReport(experiment=experiment, latency_source=source, method=method,
                                       **comparison_fields(found))


def fleet_report(
    prometheus: str | Query, experiment: digits_pb2.Experiment, since: str | None = None,
    verdict_basis: str = "always-valid",
) -> digits_pb2.ExperimentReport:
    """The fleet's report of `experiment` from Prometheus (a URL or a query function)."""
    query = prometheus_query(prometheus) if isinstance(prometheus, str) else prometheus
    counts = fetch_counts(query, experiment.name, since)
    window = f"increase over the last {since}" if since else "instant sums (since each replica began counting)"
    source = (f"fleet: server histograms digits_request_duration_seconds summed over instances in Prometheus, "
              f"{window}, interpolated within buckets like PromQL histogram_quantile")
    return build_fleet_report(experiment, counts, source, verdict_basis, since)
