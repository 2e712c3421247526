"""Counts what the comparison report needs per experiment: each arm's labelled and correct live
predictions, and for every pair of arms the shadow agreement and the paired outcomes (both
right / only A / only B / both wrong) of primary + shadow predictions of the same images.

Without labels, every live prediction of an arm adds its calibrated probability of being right
(`calibration(model, version)`: the version's reference-profile table, or the raw winning
probability where there is none) to the arm's CBPE sums (digits.experiments.label_free).

A PredictionObserver (and FeedbackObserver): quick, never raises. Counts live from an
experiment's creation to its deletion; a weight update keeps them. Pairs are oriented by arm
order (arm A is the one listed first), whichever of the two served the primary.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from digits.experiments.always_valid import ArmTraffic
from digits.experiments.label_free import ArmEstimate
from digits.experiments.sample_ratio import SampleRatio
from digits.experiments.sequential import Running
from digits.experiments.statistics import PairedOutcomes
from digits.monitoring.profile import CalibrationTable
from digits_server.core.domain import FeedbackEvent, PredictionEvent
from digits_server.experiments.router import Experiment
from digits_server.observability.experiment_metrics import PAIRED_OUTCOMES, ExperimentMetrics
from digits_server.observability.metrics import ServerMetrics

__all__ = ["ArmCounts", "ArmTraffic", "Calibration", "ExperimentCounts", "ExperimentObserver", "PairCounts",
           "arm_traffic", "paired_outcomes"]

#: (model, version) -> the version's calibration table, None without a reference profile.
Calibration = Callable[[str, int], CalibrationTable | None]


def arm_traffic(metrics: ServerMetrics, experiment: str) -> dict[str, ArmTraffic]:
    """Every arm's traffic so far in an experiment, summed over protocols, methods and models."""
    requests: dict[str, float] = {}
    errors: dict[str, float] = {}
    buckets: dict[str, dict[float, float]] = {}
    sums: dict[str, float] = {}
    for family in metrics.requests.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("experiment") == experiment:
                arm = sample.labels["arm"]
                requests[arm] = requests.get(arm, 0.0) + sample.value
                if sample.labels["code"] != "OK":
                    errors[arm] = errors.get(arm, 0.0) + sample.value
    for family in metrics.request_latency.collect():
        for sample in family.samples:
            if sample.name.endswith("_bucket") and sample.labels.get("experiment") == experiment:
                arm_buckets = buckets.setdefault(sample.labels["arm"], {})
                bound = float(sample.labels["le"])
                arm_buckets[bound] = arm_buckets.get(bound, 0.0) + sample.value
            elif sample.name.endswith("_sum") and sample.labels.get("experiment") == experiment:
                sums[sample.labels["arm"]] = sums.get(sample.labels["arm"], 0.0) + sample.value
    return {
        arm: ArmTraffic(count, errors.get(arm, 0.0), tuple(sorted(buckets.get(arm, {}).items())), sums.get(arm, 0.0))
        for arm, count in requests.items()
    }


@dataclass
class ArmCounts:
    """One arm's live labelled predictions and the shadow predictions it made for other arms."""

    labelled: int = 0
    correct: int = 0
    shadow_predictions: int = 0
    estimate: ArmEstimate = field(default_factory=ArmEstimate)  # label-free CBPE sums of its live predictions


@dataclass
class PairCounts:
    """Shadow agreement and paired outcomes of arms A and B (A listed first)."""

    agree: int = 0
    disagree: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PAIRED_OUTCOMES, 0))

    def paired(self) -> PairedOutcomes:
        """The paired outcomes as McNemar's table."""
        return PairedOutcomes(**self.outcomes)


@dataclass
class ExperimentCounts:
    """Everything counted for one experiment since it was created."""

    arm_order: tuple[str, ...]
    arms: dict[str, ArmCounts]
    pairs: dict[tuple[str, str], PairCounts]
    baseline: dict[str, ArmTraffic] = field(default_factory=dict)  # request metrics at creation
    # Always-valid state across the report's looks (running minimum p, running intersection),
    # by statistic: ("accuracy", a, b, design), ("latency", arm), ("errors", arm).
    sequential: dict[tuple[str, ...], Running] = field(default_factory=dict)
    # The sample-ratio test's e-process across looks and weight changes (sample_ratio.py).
    sample_ratio: SampleRatio = field(default_factory=SampleRatio)

    def running(self, *key: str) -> Running:
        """The running always-valid state of one statistic (created at the first look)."""
        return self.sequential.setdefault(key, Running())

    @classmethod
    def start(cls, experiment: Experiment, baseline: dict[str, ArmTraffic] | None = None) -> "ExperimentCounts":
        """Zero counts for an experiment's arms and pairs."""
        order = tuple(arm.name for arm in experiment.arms)
        pairs = {pair: PairCounts() for pair in combinations(order, 2)}
        return cls(order, {name: ArmCounts() for name in order}, pairs, dict(baseline or {}))

    def pair(self, first: str, second: str) -> tuple[PairCounts, bool]:
        """The pair's counts and whether `first` is its arm A."""
        if (first, second) in self.pairs:
            return self.pairs[(first, second)], True
        return self.pairs[(second, first)], False


class ExperimentObserver:
    """Per-experiment counters for the report, mirrored to Prometheus for the dashboard."""

    def __init__(self, metrics: ExperimentMetrics | None = None, requests: ServerMetrics | None = None,
                 calibration: Calibration | None = None) -> None:
        self.metrics = metrics
        self.requests = requests  # the request metrics whose arm-labelled series give requests/errors/latency
        self.calibration = calibration or (lambda model, version: None)
        self._counts: dict[str, ExperimentCounts] = {}

    def experiment_changed(self, name: str, experiment: Experiment | None) -> None:
        """ExperimentRouter.on_change callback: start counting new experiments, forget deleted ones."""
        if experiment is None:
            self._counts.pop(name, None)
            return
        if name not in self._counts:
            baseline = arm_traffic(self.requests, name) if self.requests is not None else {}
            self._counts[name] = ExperimentCounts.start(experiment, baseline)
            if self.metrics is not None:  # series at 0 from creation: the fleet's increase() sees the first counts
                self.metrics.start_experiment(name, self._counts[name].arm_order)
        counts = self._counts[name]  # the sample-ratio test's period starts now, with these weights
        counts.sample_ratio.look({arm.name: arm.weight for arm in experiment.arms},
                                 {arm: seen.labelled for arm, seen in counts.arms.items()}, experiment.paused,
                                 time.monotonic())

    def counts(self, name: str) -> ExperimentCounts | None:
        """What has been counted for an experiment (None when it is not live)."""
        return self._counts.get(name)

    def traffic(self, name: str) -> dict[str, ArmTraffic]:
        """Each arm's requests, errors and latency buckets since the experiment was created."""
        counts = self._counts.get(name)
        if counts is None or self.requests is None:
            return {}
        now = arm_traffic(self.requests, name)
        return {arm: now[arm].minus(counts.baseline.get(arm, ArmTraffic())) for arm in counts.arm_order if arm in now}

    def observe(self, event: PredictionEvent) -> None:
        """Count a live prediction of an arm, or a shadow one against the primary it mirrors."""
        served = event.served_by
        counts = self._counts.get(served.experiment) if served.experiment else None
        if counts is None or served.arm not in counts.arms:
            return
        if event.shadow and event.mirrors is not None:
            self._observe_shadow(counts, event)
            return
        self._estimate(served.experiment, served.arm, counts.arms[served.arm], event)
        known = [(i, label) for i, label in enumerate(event.true_labels) if label is not None]
        if known:
            correct = sum(int(event.digits[i]) == label for i, label in known)
            self._count_labelled(served.experiment, counts.arms[served.arm], served.arm, len(known), correct)

    def observe_feedback(self, event: FeedbackEvent) -> None:
        """A true digit learned later (Feedback RPC) for a live prediction of an arm."""
        served = event.served_by
        counts = self._counts.get(served.experiment) if served.experiment else None
        if counts is not None and served.arm in counts.arms:
            self._count_labelled(served.experiment, counts.arms[served.arm], served.arm, 1, int(event.correct))

    def _count_labelled(self, experiment: str, arm: ArmCounts, arm_name: str, labelled: int, correct: int) -> None:
        arm.labelled += labelled
        arm.correct += correct
        if self.metrics is not None:
            self.metrics.count_labelled(experiment, arm_name, labelled, correct)

    def _estimate(self, experiment: str, arm_name: str, arm: ArmCounts, event: PredictionEvent) -> None:
        """Add a live prediction's calibrated probabilities of being right to the arm's CBPE sums."""
        if event.probabilities is None or not len(event.probabilities):
            return
        confidence = np.asarray(event.probabilities, dtype=np.float64).max(axis=1)
        table = self.calibration(event.served_by.model, event.served_by.version)
        calibrated = table.calibrated(confidence) if table is not None else np.clip(confidence, 0.0, 1.0)
        added = ArmEstimate(len(calibrated), float(calibrated.sum()), float((calibrated * (1 - calibrated)).sum()),
                            0 if table is not None else len(calibrated))
        arm.estimate = arm.estimate + added
        if self.metrics is not None:
            self.metrics.count_estimate(experiment, arm_name, added)

    def _observe_shadow(self, counts: ExperimentCounts, event: PredictionEvent) -> None:
        primary = event.mirrors
        assert primary is not None
        shadow_arm, primary_arm = event.served_by.arm, primary.served_by.arm
        if primary_arm not in counts.arms or primary_arm == shadow_arm:
            return
        counts.arms[shadow_arm].shadow_predictions += len(event.digits)
        pair, primary_is_a = counts.pair(primary_arm, shadow_arm)
        primary_digits, shadow_digits = np.asarray(primary.digits), np.asarray(event.digits)
        agree = int(np.sum(primary_digits == shadow_digits))
        disagree = len(shadow_digits) - agree
        pair.agree += agree
        pair.disagree += disagree
        outcomes = paired_outcomes(primary_digits, shadow_digits, event.true_labels, primary_is_a)
        for outcome, count in outcomes.items():
            pair.outcomes[outcome] += count
        if self.metrics is not None:
            experiment = event.served_by.experiment
            self.metrics.count_agreement(experiment, primary_arm, shadow_arm, agree, disagree)
            arm_a, arm_b = (primary_arm, shadow_arm) if primary_is_a else (shadow_arm, primary_arm)
            self.metrics.count_paired(experiment, arm_a, arm_b, outcomes)


def paired_outcomes(
    primary: np.ndarray, shadow: np.ndarray, true_labels: list[int | None], primary_is_a: bool
) -> Mapping[str, int]:
    """McNemar's table of the labelled images: {both_right, only_a_right, only_b_right, both_wrong}."""
    table = dict.fromkeys(PAIRED_OUTCOMES, 0)
    for i, label in enumerate(true_labels):
        if label is None:
            continue
        primary_right, shadow_right = int(primary[i]) == label, int(shadow[i]) == label
        a_right, b_right = (primary_right, shadow_right) if primary_is_a else (shadow_right, primary_right)
        if a_right and b_right:
            table["both_right"] += 1
        elif a_right:
            table["only_a_right"] += 1
        elif b_right:
            table["only_b_right"] += 1
        else:
            table["both_wrong"] += 1
    return table
