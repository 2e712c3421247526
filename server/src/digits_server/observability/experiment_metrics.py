"""The A/B experiments' Prometheus metrics: per-arm accuracy, shadow agreement, paired outcomes,
always-valid comparisons, guardrails and rollout decisions (fed by experiments/observer.py).

Declared on the registry ServerMetrics uses (injected), with the same conventions as metrics.py;
request counts and latencies per arm are ServerMetrics' (by the arm label), not repeated here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

PAIRED_OUTCOMES = ("both_right", "only_a_right", "only_b_right", "both_wrong")


class ExperimentMetrics:
    """Counters of experiment arms; request counts and latencies are ServerMetrics' (by arm label)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        arm = ["experiment", "arm"]
        self.labelled = Counter(
            "digits_experiment_labelled_predictions_total",
            "Predictions an experiment arm returned whose true digit is known (live traffic, request or feedback).",
            arm, registry=registry,
        )
        self.correct = Counter(
            "digits_experiment_correct_predictions_total",
            "Labelled predictions an experiment arm returned that were right.",
            arm, registry=registry,
        )
        # Estimated, no labels: each arm's CBPE sums (digits.experiments.label_free), counters so the
        # fleet's estimate is sum(calibrated) / sum(predictions) over every replica, exactly.
        self.estimated_predictions = Counter(
            "digits_experiment_estimated_predictions_total",
            "Live predictions of an experiment arm counted in its label-free accuracy estimate (CBPE).",
            arm, registry=registry,
        )
        self.calibrated_probability = Counter(
            "digits_experiment_calibrated_probability_sum_total",
            "Sum over an arm's live predictions of the calibrated probability that the prediction is right "
            "(estimated, no labels).",
            arm, registry=registry,
        )
        self.calibrated_variance = Counter(
            "digits_experiment_calibrated_variance_sum_total",
            "Sum over an arm's live predictions of p (1 - p), p the calibrated probability of being right.",
            arm, registry=registry,
        )
        self.uncalibrated_predictions = Counter(
            "digits_experiment_uncalibrated_predictions_total",
            "Live predictions of an arm estimated from the raw winning probability (no reference profile loaded).",
            arm, registry=registry,
        )
        self.shadow_agreement = Counter(
            "digits_shadow_agreement_total",
            "Shadow predictions by whether they agree with the primary prediction they mirror.",
            ["experiment", "primary_arm", "shadow_arm", "agreement"], registry=registry,
        )
        self.paired_outcomes = Counter(
            "digits_paired_outcomes_total",
            "Labelled images both arms of a pair predicted (primary + shadow), by outcome: McNemar's table.",
            ["experiment", "arm_a", "arm_b", "outcome"], registry=registry,
        )
        pair = ["experiment", "arm_a", "arm_b"]
        self.difference_bound = Gauge(
            "digits_experiment_accuracy_difference_bound",
            "Always-valid confidence sequence of accuracy(a) - accuracy(b) at the last look: bound=low|high.",
            [*pair, "bound"], registry=registry,
        )
        self.always_valid_p = Gauge(
            "digits_experiment_always_valid_p_value",
            "Always-valid p-value of accuracy(a) != accuracy(b) at the last look, Holm-adjusted over the pairs.",
            pair, registry=registry,
        )
        self.guardrail_breached = Gauge(
            "digits_experiment_guardrail_breached",
            "1 while a candidate arm's guardrail (metric=latency|errors) is breached against the first arm, else 0.",
            ["experiment", "arm", "metric"], registry=registry,
        )
        self.rollout_decisions = Counter(
            "digits_rollout_decisions_total",
            "Rollout steps and decisions recorded for an experiment "
            "(start, step, hold, promote, rollback, no-difference).",
            ["experiment", "decision"], registry=registry,
        )
        self._looked: dict[str, set[tuple[Any, tuple[str, ...]]]] = {}  # series to drop with the experiment

    def start_experiment(self, experiment: str, arms: Sequence[str]) -> None:
        """Create an experiment's series at 0 (arms in order: pairs are (earlier, later))."""
        for arm in arms:
            for counter in (self.labelled, self.correct, self.estimated_predictions, self.calibrated_probability,
                            self.calibrated_variance, self.uncalibrated_predictions):
                counter.labels(experiment, arm)
        for i, arm_a in enumerate(arms):
            for arm_b in arms[i + 1:]:
                for outcome in PAIRED_OUTCOMES:
                    self.paired_outcomes.labels(experiment, arm_a, arm_b, outcome)
                for primary, shadow in ((arm_a, arm_b), (arm_b, arm_a)):
                    for agreement in ("agree", "disagree"):
                        self.shadow_agreement.labels(experiment, primary, shadow, agreement)

    def count_labelled(self, experiment: str, arm: str, labelled: int, correct: int) -> None:
        """Labelled predictions an arm returned, and how many were right."""
        self.labelled.labels(experiment, arm).inc(labelled)
        self.correct.labels(experiment, arm).inc(correct)

    def count_estimate(self, experiment: str, arm: str, added: Any) -> None:
        """An arm's live predictions' CBPE sums (a label_free.ArmEstimate)."""
        self.estimated_predictions.labels(experiment, arm).inc(added.predictions)
        self.calibrated_probability.labels(experiment, arm).inc(added.calibrated_sum)
        self.calibrated_variance.labels(experiment, arm).inc(added.variance_sum)
        if added.uncalibrated:
            self.uncalibrated_predictions.labels(experiment, arm).inc(added.uncalibrated)

    def count_agreement(self, experiment: str, primary_arm: str, shadow_arm: str, agree: int, disagree: int) -> None:
        """Shadow predictions that agreed / disagreed with their primary."""
        self.shadow_agreement.labels(experiment, primary_arm, shadow_arm, "agree").inc(agree)
        self.shadow_agreement.labels(experiment, primary_arm, shadow_arm, "disagree").inc(disagree)

    def count_paired(self, experiment: str, arm_a: str, arm_b: str, outcomes: Mapping[str, int]) -> None:
        """Paired outcomes of arms a and b (keys of PAIRED_OUTCOMES)."""
        for outcome in PAIRED_OUTCOMES:
            self.paired_outcomes.labels(experiment, arm_a, arm_b, outcome).inc(outcomes.get(outcome, 0))

    def set_comparison(self, experiment: str, arm_a: str, arm_b: str, low: float, high: float, p_holm: float) -> None:
        """A pair's always-valid results at the latest look (for the dashboard's confidence sequence)."""
        self._set(self.difference_bound, (experiment, arm_a, arm_b, "low"), low)
        self._set(self.difference_bound, (experiment, arm_a, arm_b, "high"), high)
        self._set(self.always_valid_p, (experiment, arm_a, arm_b), p_holm)

    def set_guardrail(self, experiment: str, arm: str, metric: str, breached: bool) -> None:
        """Whether a candidate arm's guardrail is breached at the latest look."""
        self._set(self.guardrail_breached, (experiment, arm, metric), 1.0 if breached else 0.0)

    def count_rollout_decision(self, experiment: str, decision: str) -> None:
        """One recorded rollout step or decision."""
        self.rollout_decisions.labels(experiment, decision).inc()

    def start_rollout_series(self, experiment: str, decisions: Sequence[str]) -> None:
        """The decision counters of a new experiment, at 0."""
        for decision in decisions:
            self.rollout_decisions.labels(experiment, decision)

    def forget_experiment(self, experiment: str) -> None:
        """Drop the gauges of a deleted experiment (its counters stay, as counters do)."""
        for gauge, labels in self._looked.pop(experiment, set()):
            gauge.remove(*labels)

    def _set(self, gauge: Gauge, labels: tuple[str, ...], value: float) -> None:
        gauge.labels(*labels).set(value)
        self._looked.setdefault(labels[0], set()).add((gauge, labels))

