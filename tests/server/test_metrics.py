"""ServerMetrics: an injected registry, Prometheus conventions checked by the real promtool."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from digits_server.core.domain import CallRecord, Timings
from digits_server.observability.experiment_metrics import ExperimentMetrics
from digits_server.observability.metrics import ServerMetrics
from digits_server.observability.monitoring_metrics import MonitoringMetrics
from tests.serverproc import REPO
from tests.tools import require_tool


def exercise(metrics: ServerMetrics) -> None:
    """Touch every metric once, the way a serving server would."""
    call = CallRecord("Classify", model="lstm", version="3")
    with metrics.track_in_flight(call):
        metrics.observe_request(call, "OK", 0.0021)
    metrics.observe_timings("lstm", "3", Timings(0.0004, 0.0012, 8))
    metrics.set_queue_depth("lstm", "3", 5)
    metrics.count_rejected("lstm", "3")
    metrics.count_auth_rejection("/digits.v1.DigitsAdmin/ReloadModels", "PERMISSION_DENIED")
    probabilities = np.full((3, 10), 0.01, dtype=np.float32)
    probabilities[[0, 1, 2], [7, 7, 1]] = 0.91
    metrics.count_predictions("lstm", "3", "live", np.array([7, 7, 1]), probabilities)
    metrics.count_labelled("lstm", "3", "live", "request", [7], [7])
    metrics.count_labelled("lstm", "3", "live", "feedback", [2], [1])
    metrics.set_feedback_held(3)
    metrics.count_feedback_evicted("age", 2)
    metrics.count_feedback_rejected("forged")
    metrics.set_config_hash("0123456789abcdef")
    metrics.set_model_state("lstm", "3", "LOADING")
    metrics.set_model_state("lstm", "3", "AVAILABLE")
    metrics.observe_model_load("lstm", 1.25)
    metrics.count_load_failure("gru", "2")
    metrics.set_model_info("lstm", "3", {"cell": "lstm", "parameters": "24714"}, 0.981, 24714)
    metrics.set_server_info({"version": "0.1.0"}, {"default_model": "lstm"})
    experiments = ExperimentMetrics(metrics.registry)  # the A/B block, on the same registry
    experiments.start_experiment("cells", ["lstm", "gru"])  # every per-arm series at 0, label-free sums included
    experiments.count_labelled("cells", "lstm", 2, 1)
    experiments.count_agreement("cells", "lstm", "gru", 3, 1)
    experiments.count_paired("cells", "gru", "lstm", {"only_b_right": 1})
    experiments.set_comparison("cells", "gru", "lstm", -0.1, -0.02, 0.01)
    experiments.set_guardrail("cells", "lstm", "latency", False)
    experiments.count_rollout_decision("cells", "step")
    monitoring = MonitoringMetrics(metrics.registry)  # label-free monitoring, on the same registry
    monitoring.start_version("lstm", "3", [("background", 3)], 0.97)
    monitoring.count_batch("lstm", "3", 4, 3.6, 0.3)
    monitoring.count_bins("lstm", "3", "background", np.array([3, 0, 1]))
    monitoring.set_detector("lstm", "3", "background", 2.5, True, 1)


def test_each_server_gets_its_own_registry() -> None:
    first, second = ServerMetrics(), ServerMetrics()
    exercise(first)
    assert first.registry is not second.registry
    assert first.registry.get_sample_value("digits_rejected_total", {"model": "lstm", "version": "3"}) == 1
    assert second.registry.get_sample_value("digits_rejected_total", {"model": "lstm", "version": "3"}) is None


def test_values_land_where_the_readme_says() -> None:
    registry = CollectorRegistry()
    exercise(ServerMetrics(registry))
    cell = {"model": "lstm", "version": "3"}
    value = registry.get_sample_value
    assert value("digits_predictions_total", {**cell, "traffic": "live", "digit": "7"}) == 2
    assert value("digits_prediction_confidence_count", {**cell, "traffic": "live"}) == 3
    assert value("digits_labelled_predictions_total", {**cell, "traffic": "live", "source": "feedback"}) == 1
    assert value("digits_correct_predictions_total", {**cell, "traffic": "live", "source": "feedback"}) == 0
    assert value("digits_correct_predictions_total", {**cell, "traffic": "live", "source": "request"}) == 1
    # counters of every traffic/source start at 0 once the version is AVAILABLE
    assert value("digits_labelled_predictions_total", {**cell, "traffic": "shadow", "source": "request"}) == 0
    confusion = {**cell, "traffic": "live", "true_digit": "2", "predicted_digit": "1"}
    assert value("digits_confusion_total", confusion) == 1
    assert value("digits_batch_size_sum", cell) == 8
    assert value("digits_queue_depth", cell) == 5
    assert value("digits_model_state", {**cell, "state": "AVAILABLE"}) == 1
    assert value("digits_model_state", {**cell, "state": "LOADING"}) == 0
    assert value("digits_model_test_accuracy_ratio", cell) == pytest.approx(0.981)
    assert value("digits_model_info", {**cell, "cell": "lstm", "parameters": "24714"}) == 1
    assert value("digits_model_load_failures_total", {"model": "gru", "version": "2"}) == 1
    assert value("digits_requests_in_flight", {"protocol": "digits.v1", "method": "Classify"}) == 0
    assert value("digits_build_info", {"version": "0.1.0"}) == 1


def test_an_unloaded_version_leaves_no_state_behind() -> None:
    registry = CollectorRegistry()
    metrics = ServerMetrics(registry)
    exercise(metrics)
    metrics.forget_model_version("lstm", "3")
    text = generate_latest(registry).decode()
    for family in ("digits_model_state{", "digits_model_info{", "digits_model_test_accuracy_ratio{", "digits_queue_depth{"):
        assert not [line for line in text.splitlines() if line.startswith(family) and 'model="lstm"' in line]
    assert 'digits_predictions_total{digit="7",model="lstm"' in text  # history stays


def test_a_version_that_comes_back_exports_its_queue_again() -> None:
    registry = CollectorRegistry()
    metrics = ServerMetrics(registry)
    cell = {"model": "gru", "version": "4"}
    metrics.set_model_state("gru", "4", "AVAILABLE")
    assert registry.get_sample_value("digits_queue_depth", cell) == 0  # before any request queued
    metrics.set_queue_depth("gru", "4", 3)
    metrics.forget_model_version("gru", "4")
    assert registry.get_sample_value("digits_queue_depth", cell) is None
    metrics.set_model_state("gru", "4", "AVAILABLE")
    metrics.set_queue_depth("gru", "4", 2)
    assert registry.get_sample_value("digits_queue_depth", cell) == 2


def test_no_created_series_are_exported() -> None:
    registry = CollectorRegistry()
    exercise(ServerMetrics(registry))
    assert "_created" not in generate_latest(registry).decode()


def test_promtool_finds_nothing_to_lint() -> None:
    promtool = require_tool("promtool")
    registry = CollectorRegistry()
    exercise(ServerMetrics(registry))
    text = generate_latest(registry)
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.decode().strip() == "" and result.stderr.decode().strip() == ""


def readme_metrics() -> dict[str, set[str]]:
    """The metrics table of docs/observability.md: {metric name: label names}."""
    text = (REPO / "docs" / "observability.md").read_text()
    table = text.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(digits_\w+)` \|[^|]+\|([^|]*)\|", table, flags=re.MULTILINE)
    return {name: {label.strip() for label in labels.split(",") if label.strip()} for name, labels in rows}


def test_the_readme_documents_every_metric_with_its_labels() -> None:
    registry = CollectorRegistry()
    exercise(ServerMetrics(registry))
    documented = readme_metrics()
    exported: dict[str, set[str]] = {}
    for family in registry.collect():
        if not family.name.startswith("digits_"):
            continue
        name = family.name + {"counter": "_total", "info": "_info"}.get(family.type, "")
        exported[name] = {label for sample in family.samples for label in sample.labels if label != "le"}
    assert set(exported) == set(documented)
    for name, labels in exported.items():
        if name.endswith("_info"):
            assert labels <= documented[name], name
        else:
            assert labels == documented[name], name
