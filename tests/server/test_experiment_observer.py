"""The experiment observer: per-arm labelled counts, shadow agreement, paired outcomes, the
Prometheus counters they feed, and request traffic since creation from the request metrics."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from digits_server.core.domain import BatchOutcome, CallRecord, FeedbackEvent, ModelSelector, PredictionEvent, ServedBy
from digits_server.experiments.observer import ArmTraffic, ExperimentObserver, arm_traffic
from digits_server.experiments.router import Arm, Experiment
from digits_server.observability.experiment_metrics import ExperimentMetrics
from digits_server.observability.metrics import ServerMetrics

CELLS = Experiment("cells", (Arm("rnn", ModelSelector("rnn"), 1), Arm("lstm", ModelSelector("lstm"), 1)))


def outcome(arm: str, digits: list[int]) -> BatchOutcome:
    served = ServedBy(arm, 1, "cells", arm)
    return BatchOutcome(np.array(digits), np.zeros((len(digits), 10), np.float32), served, "req-1")


def live(arm: str, digits: list[int], labels: list[int | None]) -> PredictionEvent:
    primary = outcome(arm, digits)
    return PredictionEvent("Classify", primary.served_by, "req-1", primary.digits, primary.probabilities, labels)


def shadow(primary: BatchOutcome, arm: str, digits: list[int], labels: list[int | None]) -> PredictionEvent:
    served = ServedBy(arm, 1, "cells", arm)
    return PredictionEvent("Classify", served, "req-1", np.array(digits), primary.probabilities, labels,
                           shadow=True, mirrors=primary)


@pytest.fixture
def observed() -> tuple[ExperimentObserver, CollectorRegistry]:
    registry = CollectorRegistry()
    server_metrics = ServerMetrics(registry)
    observer = ExperimentObserver(ExperimentMetrics(registry), server_metrics)
    observer.experiment_changed("cells", CELLS)
    return observer, registry


def test_live_predictions_count_labelled_and_correct_per_arm(observed) -> None:
    observer, registry = observed
    observer.observe(live("rnn", [1, 2, 3], [1, 9, None]))
    observer.observe(live("lstm", [4], [4]))
    observer.observe(live("lstm", [5], [None]))
    counts = observer.counts("cells")
    assert (counts.arms["rnn"].labelled, counts.arms["rnn"].correct) == (2, 1)
    assert (counts.arms["lstm"].labelled, counts.arms["lstm"].correct) == (1, 1)
    sample = registry.get_sample_value
    assert sample("digits_experiment_labelled_predictions_total", {"experiment": "cells", "arm": "rnn"}) == 2
    assert sample("digits_experiment_correct_predictions_total", {"experiment": "cells", "arm": "rnn"}) == 1


def test_shadow_predictions_count_agreement_and_paired_outcomes_oriented_by_arm_order(observed) -> None:
    observer, registry = observed
    labels = [1, 2, 3, 4, None]
    # lstm (arm B) served, rnn (arm A) shadowed: image 0 both right, 1 only lstm, 2 only rnn, 3 both wrong.
    primary = outcome("lstm", [1, 2, 0, 0, 7])
    observer.observe(shadow(primary, "rnn", [1, 0, 3, 9, 7], labels))
    pair = observer.counts("cells").pairs[("rnn", "lstm")]
    assert pair.outcomes == {"both_right": 1, "only_a_right": 1, "only_b_right": 1, "both_wrong": 1}
    assert (pair.agree, pair.disagree) == (2, 3)  # images 0 and 4 agree
    assert observer.counts("cells").arms["rnn"].shadow_predictions == 5
    # A shadow is not live traffic: the arms' own accuracy counts do not move.
    assert observer.counts("cells").arms["rnn"].labelled == 0
    sample = registry.get_sample_value
    shadow_labels = {"experiment": "cells", "primary_arm": "lstm", "shadow_arm": "rnn"}
    assert sample("digits_shadow_agreement_total", {**shadow_labels, "agreement": "agree"}) == 2
    assert sample("digits_shadow_agreement_total", {**shadow_labels, "agreement": "disagree"}) == 3
    pair_labels = {"experiment": "cells", "arm_a": "rnn", "arm_b": "lstm"}
    assert sample("digits_paired_outcomes_total", {**pair_labels, "outcome": "only_a_right"}) == 1
    assert sample("digits_paired_outcomes_total", {**pair_labels, "outcome": "only_b_right"}) == 1


def test_feedback_counts_for_the_arm_that_served(observed) -> None:
    observer, _ = observed
    observer.observe_feedback(FeedbackEvent(ServedBy("rnn", 1, "cells", "rnn"), "r", 0, predicted=3, true_label=3))
    observer.observe_feedback(FeedbackEvent(ServedBy("rnn", 1, "cells", "rnn"), "s", 0, predicted=3, true_label=5))
    observer.observe_feedback(FeedbackEvent(ServedBy("rnn", 1), "t", 0, predicted=3, true_label=3))  # no experiment
    assert (observer.counts("cells").arms["rnn"].labelled, observer.counts("cells").arms["rnn"].correct) == (2, 1)


def test_other_traffic_and_deleted_experiments_are_ignored(observed) -> None:
    observer, _ = observed
    event = live("rnn", [1], [1])
    observer.observe(PredictionEvent("Classify", ServedBy("rnn", 1), "r", event.digits, event.probabilities, [1]))
    observer.observe(PredictionEvent("Classify", ServedBy("rnn", 1, "other", "rnn"), "r", event.digits,
                                     event.probabilities, [1]))
    assert observer.counts("cells").arms["rnn"].labelled == 0
    observer.experiment_changed("cells", None)
    observer.observe(event)  # in flight while the experiment was deleted: dropped, no error
    assert observer.counts("cells") is None
    observer.experiment_changed("cells", CELLS)  # re-created: starts from zero
    assert observer.counts("cells").arms["rnn"].labelled == 0


def test_weight_updates_keep_the_counts(observed) -> None:
    observer, _ = observed
    observer.observe(live("rnn", [1], [1]))
    observer.experiment_changed("cells", Experiment("cells", CELLS.arms, paused=True))
    assert observer.counts("cells").arms["rnn"].correct == 1


def test_traffic_is_read_from_the_request_metrics_since_creation() -> None:
    registry = CollectorRegistry()
    server_metrics = ServerMetrics(registry)

    def request(arm: str, code: str, seconds: float, method: str = "Classify") -> None:
        server_metrics.observe_request(CallRecord(method, model=arm, version="1", experiment="cells", arm=arm),
                                       code, seconds)

    request("rnn", "OK", 0.002)  # before the experiment (re-)started: not counted
    observer = ExperimentObserver(None, server_metrics)
    observer.experiment_changed("cells", CELLS)
    request("rnn", "OK", 0.002)
    request("rnn", "OK", 0.004, method="ClassifyBatch")
    request("rnn", "UNAVAILABLE", 0.0001)
    request("lstm", "OK", 0.02)
    server_metrics.observe_request(CallRecord("Classify", model="rnn", version="1"), "OK", 0.5)  # no experiment
    traffic = observer.traffic("cells")
    assert (traffic["rnn"].requests, traffic["rnn"].errors) == (3, 1)
    assert (traffic["lstm"].requests, traffic["lstm"].errors) == (1, 0)
    assert dict(traffic["rnn"].buckets)[0.0025] == 2  # 0.0001 and 0.002
    assert dict(traffic["rnn"].buckets)[float("inf")] == 3
    assert arm_traffic(server_metrics, "cells")["rnn"].requests == 4  # all time
    assert ArmTraffic(5, 1, ((1.0, 5),)).minus(ArmTraffic(2, 1, ((1.0, 2),))) == ArmTraffic(3, 0, ((1.0, 3),))
