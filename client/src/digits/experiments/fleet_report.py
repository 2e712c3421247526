"""The A/B report of a whole fleet, from Prometheus: the same numbers and statistics as the
server's GetExperimentReport, computed from every replica's counters summed over instances.

Without `since`, instant sums (counts since each replica started counting; a restarted replica's
counts restart from 0, so they can only be missing, never double). With `since` (a PromQL duration
such as `1h`), `increase(...[since])` summed over instances: counter resets are tolerated by
PromQL, and increase() extrapolates to the window's edges, so counts are rounded to integers.
The experiment's arms and their order (arm A is listed first) come from ListExperiments.
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
    agreement: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (primary, shadow, agree|disagree)
    paired: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (arm_a, arm_b, outcome)


def fetch_counts(query: Query, experiment: str, since: str | None = None) -> FleetCounts:
    """Sum the experiment's counters over every instance Prometheus scrapes."""
    if not _LABEL_VALUE.match(experiment):
        raise ValueError(f"name: {experiment!r} cannot be used in a PromQL label matcher")
    if since is not None and not _DURATION.match(since):
        raise ValueError(f"--since: {since!r} is not a Prometheus duration such as 30m, 1h or 1h30m")
    match = f'experiment="{experiment}"'

    def summed(metric: str, by: str, extra: str = "") -> list[tuple[dict[str, str], int]]:
        selector = f"{metric}{{{match}{extra}}}"
        inner = f"increase({selector}[{since}])" if since else selector
        return [(labels, int(round(value))) for labels, value in query(f"sum by ({by}) ({inner})")]

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
    for labels, value in summed("digits_shadow_agreement_total", "primary_arm, shadow_arm, agreement"):
        counts.agreement[(labels["primary_arm"], labels["shadow_arm"], labels["agreement"])] = value
    for labels, value in summed("digits_paired_outcomes_total", "arm_a, arm_b, outcome"):
        counts.paired[(labels["arm_a"], labels["arm_b"], labels["outcome"])] = value
    return counts


def build_fleet_report(experiment: digits_pb2.Experiment, counts: FleetCounts, source: str) -> digits_pb2.ExperimentReport:
    """The ExperimentReport GetExperimentReport would give if one server had seen the whole fleet's traffic."""
    from digits.experiments import statistics as stats
    from digits.experiments.verdict import ALPHA, POWER, verdict

    report = digits_pb2.ExperimentReport(experiment=experiment, latency_source=source)
    arms = {}
    for arm in experiment.arms:
        labelled, correct = counts.labelled.get(arm.name, 0), counts.correct.get(arm.name, 0)
        requests, errors = counts.requests.get(arm.name, 0), counts.errors.get(arm.name, 0)
        low, high = stats.wilson_interval(correct, labelled)
        buckets = counts.buckets.get(arm.name, [])
        model, version = counts.served.get(arm.name, (arm.model.name, 0))
        arms[arm.name] = report.arms.add(
            arm=arm.name, model=model, version=version, requests=requests, errors=errors,
            error_rate=errors / requests if requests else 0.0, labelled=labelled, correct=correct,
            accuracy=correct / labelled if labelled else 0.0, accuracy_low=low, accuracy_high=high,
            latency_p50_seconds=stats.histogram_quantile(0.50, buckets),
            latency_p95_seconds=stats.histogram_quantile(0.95, buckets),
            latency_p99_seconds=stats.histogram_quantile(0.99, buckets),
        )
    for name_a, name_b in combinations([arm.name for arm in experiment.arms], 2):
        a, b = arms[name_a], arms[name_b]
        paired = stats.PairedOutcomes(**{o: counts.paired.get((name_a, name_b, o), 0) for o in OUTCOMES})
        agree = sum(counts.agreement.get((p, s, "agree"), 0) for p, s in ((name_a, name_b), (name_b, name_a)))
        disagree = sum(counts.agreement.get((p, s, "disagree"), 0) for p, s in ((name_a, name_b), (name_b, name_a)))
        comparison = stats.compare(a.correct, a.labelled, b.correct, b.labelled, paired, alpha=ALPHA, power=POWER)
        report.pairs.add(
            arm_a=name_a, arm_b=name_b, accuracy_difference=comparison.difference,
            difference_low=comparison.difference_low, difference_high=comparison.difference_high,
            z_test_p_value=comparison.z_test_p, both_right=paired.both_right, only_a_right=paired.only_a_right,
            only_b_right=paired.only_b_right, both_wrong=paired.both_wrong, mcnemar_p_value=comparison.mcnemar_p,
            shadow_agree=agree, shadow_disagree=disagree, verdict=verdict(name_a, name_b, comparison),
            more_needed_per_arm=comparison.more_needed_per_arm,
        )
    return report


def fleet_report(
    prometheus: str | Query, experiment: digits_pb2.Experiment, since: str | None = None
) -> digits_pb2.ExperimentReport:
    """The fleet's report of `experiment` from Prometheus (a URL or a query function)."""
    query = prometheus_query(prometheus) if isinstance(prometheus, str) else prometheus
    counts = fetch_counts(query, experiment.name, since)
    window = f"increase over the last {since}" if since else "instant sums (since each replica began counting)"
    source = (f"fleet: server histograms digits_request_duration_seconds summed over instances in Prometheus, "
              f"{window}, interpolated within buckets like PromQL histogram_quantile")
    return build_fleet_report(experiment, counts, source)
