"""Prediction, feedback and model-lifecycle events turned into metrics."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from digits_server.app import DigitsServer
from digits_server.core.domain import FeedbackEvent, PredictionEvent, ServedBy, Timings
from digits_server.core.loaded_model import VersionInfo
from digits_server.core.manager import VersionSlot
from digits_server.observability.metrics import ServerMetrics
from digits_server.observability.observers import MetricsObserver, ModelStateObserver, build_facts, config_facts
from digits_server.settings import Settings

CELL = {"model": "gru", "version": "2"}


def prediction(digits: list[int], labels: list[int | None], shadow: bool = False) -> PredictionEvent:
    probabilities = np.full((len(digits), 10), 0.02, dtype=np.float32)
    probabilities[np.arange(len(digits)), digits] = 0.82
    return PredictionEvent(
        "ClassifyBatch", ServedBy("gru", 2), "r1", np.array(digits), probabilities, labels,
        Timings(queue_seconds=0.0003, compute_seconds=0.002, batch_size=len(digits)), shadow=shadow,
    )


def test_request_labels_count_at_once_and_shadows_are_kept_apart() -> None:
    registry = CollectorRegistry()
    observer = MetricsObserver(ServerMetrics(registry))
    observer.observe(prediction([3, 3, 5, 8], [3, 9, None, 8]))
    observer.observe(prediction([1], [7], shadow=True))
    value = registry.get_sample_value
    live = {**CELL, "traffic": "live", "source": "request"}
    assert value("digits_labelled_predictions_total", live) == 3
    assert value("digits_correct_predictions_total", live) == 2
    assert value("digits_confusion_total", {**CELL, "traffic": "live", "true_digit": "9", "predicted_digit": "3"}) == 1
    assert value("digits_predictions_total", {**CELL, "traffic": "live", "digit": "3"}) == 2
    assert value("digits_labelled_predictions_total", {**CELL, "traffic": "shadow", "source": "request"}) == 1
    assert value("digits_correct_predictions_total", {**CELL, "traffic": "shadow", "source": "request"}) == 0
    assert value("digits_prediction_confidence_bucket", {**CELL, "traffic": "live", "le": "0.8"}) == 0
    assert value("digits_prediction_confidence_bucket", {**CELL, "traffic": "live", "le": "0.9"}) == 4
    # timings are real model work either way
    assert value("digits_compute_duration_seconds_count", CELL) == 2
    assert value("digits_batch_size_sum", CELL) == 5


def test_feedback_counts_against_the_version_that_served() -> None:
    registry = CollectorRegistry()
    observer = MetricsObserver(ServerMetrics(registry))
    observer.observe_feedback(FeedbackEvent(ServedBy("gru", 2, "exp", "b"), "r1", 0, predicted=4, true_label=4))
    observer.observe_feedback(FeedbackEvent(ServedBy("gru", 2), "r2", 1, predicted=4, true_label=9))
    feedback = {**CELL, "traffic": "live", "source": "feedback"}
    assert registry.get_sample_value("digits_labelled_predictions_total", feedback) == 2
    assert registry.get_sample_value("digits_correct_predictions_total", feedback) == 1


def test_model_lifecycle(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    times = iter([10.0, 12.5, 20.0, 20.75])
    observer = ModelStateObserver(ServerMetrics(registry), clock=lambda: next(times))
    info = VersionInfo(cell="gru", recipe="tuned", parameters=18954, test_accuracy=0.9871)
    good = VersionSlot("gru", 2, tmp_path, info=info)
    for state in ("LOADING", "AVAILABLE"):
        good.state = state
        observer(good)
    bad = VersionSlot("gru", 3, tmp_path)
    for state in ("LOADING", "FAILED"):
        bad.state = state
        observer(bad)
    value = registry.get_sample_value
    assert value("digits_model_state", {**CELL, "state": "AVAILABLE"}) == 1
    assert value("digits_model_state", {"model": "gru", "version": "3", "state": "FAILED"}) == 1
    assert value("digits_model_load_failures_total", {"model": "gru", "version": "3"}) == 1
    assert value("digits_model_load_failures_total", CELL) == 0
    assert value("digits_model_load_duration_seconds_sum", {"model": "gru"}) == 2.5 + 0.75
    assert value("digits_model_test_accuracy_ratio", CELL) == 0.9871
    assert value("digits_model_parameters", CELL) == 18954
    assert value("digits_model_info", {**CELL, "cell": "gru", "recipe": "tuned", "test_accuracy": "0.9871",
                                       "parameters": "18954", "tensorflow_version": "", "created_at": "",
                                       "runtime": ""}) == 1
    for state in ("UNLOADING", "END"):
        good.state = state
        observer(good)
    assert value("digits_model_state", {**CELL, "state": "AVAILABLE"}) is None
    assert value("digits_model_test_accuracy_ratio", CELL) is None


def test_build_and_config_facts() -> None:
    facts = build_facts()
    assert facts["version"] and facts["python"].count(".") == 2
    assert facts["grpcio"] and facts["tensorflow"]
    config = config_facts(Settings(default_model="gru", feedback_max_predictions=7))
    assert config["default_model"] == "gru" and config["feedback_max_predictions"] == "7"


@pytest.mark.asyncio
async def test_a_real_version_swap_and_a_corrupt_version_in_the_metrics(model_repo: Path, tmp_path: Path) -> None:
    """In-process server on real SavedModels: v1 serves, v2 replaces it, a corrupt v3 fails."""
    repo = tmp_path / "models"
    shutil.copytree(model_repo / "rnn" / "1", repo / "rnn" / "1")
    settings = dataclasses.replace(Settings(), models=repo, port=0, metrics_port=-1, default_model="rnn",
                                   poll_seconds=0, batching=False)
    server = DigitsServer(settings)
    value = server.metrics.registry.get_sample_value
    v1, v2 = {"model": "rnn", "version": "1"}, {"model": "rnn", "version": "2"}
    await server.start()
    try:
        assert value("digits_model_state", {**v1, "state": "AVAILABLE"}) == 1
        offline = json.loads((model_repo / "rnn" / "1" / "metadata.json").read_text())["test_accuracy"]
        assert value("digits_model_test_accuracy_ratio", v1) == pytest.approx(offline)
        assert value("digits_requests_total", {"protocol": "digits.v1", "method": "Classify", **v1,
                                               "experiment": "", "arm": "", "code": "OK"}) == 0
        shutil.copytree(repo / "rnn" / "1", repo / "rnn" / "2")
        await server.manager.reload()
        for _ in range(200):  # the old version is unloaded once its in-flight requests are done
            if value("digits_model_state", {**v1, "state": "UNLOADING"}) is None:
                break
            await asyncio.sleep(0.05)
        (repo / "rnn" / "3").mkdir()
        (repo / "rnn" / "3" / "saved_model.pb").write_bytes(b"not a SavedModel")
        await server.manager.reload()  # v3 fails; v2 keeps serving
        v3 = {"model": "rnn", "version": "3"}
        assert value("digits_model_state", {**v3, "state": "FAILED"}) == 1
        assert value("digits_model_load_failures_total", v3) == 1
        assert value("digits_model_state", {**v2, "state": "AVAILABLE"}) == 1
        assert value("digits_model_state", {**v1, "state": "AVAILABLE"}) is None
        assert value("digits_model_test_accuracy_ratio", v1) is None and value("digits_model_parameters", v2) > 0
        assert value("digits_model_load_duration_seconds_count", {"model": "rnn"}) == 3
        assert value("digits_build_info", build_facts()) == 1
    finally:
        await server.stop(grace=1)
    assert value("digits_model_state", {**v2, "state": "AVAILABLE"}) is None  # shut down: nothing is loaded
