"""Turns what the server does into metrics: prediction and feedback events, model lifecycle
changes, and the server's own build and configuration. Transport-free; the metric objects
themselves live in `metrics`.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from importlib import metadata

from digits_server import __version__
from digits_server.core.domain import FeedbackEvent, PredictionEvent
from digits_server.core.manager import AVAILABLE, FAILED, LOADING, VersionSlot
from digits_server.observability.metrics import ServerMetrics
from digits_server.settings import Settings

UNLOADED = "END"
# Distribution names to report in digits_build_info, first installed one wins.
LIBRARIES = {
    "tensorflow": ("tensorflow-cpu", "tensorflow"),
    "grpcio": ("grpcio",),
    "protobuf": ("protobuf",),
    "numpy": ("numpy",),
}
# Settings worth seeing next to the numbers they shape (digits_server_info).
CONFIG_FIELDS = (
    "default_model", "batching", "max_batch_size", "batch_timeout_us", "max_queued",
    "feedback_max_predictions", "feedback_max_age_seconds",
)


class MetricsObserver:
    """Counts predictions, confidence, live accuracy and timings from prediction and feedback events.

    Shadow (mirrored) predictions are counted with traffic="shadow": their timings are real
    model work and their request labels are real evidence of that version's accuracy, but no
    caller received them. A group's event (one stream's messages) is counted in one pass.
    """

    observes_groups = True

    def __init__(self, metrics: ServerMetrics) -> None:
        self.metrics = metrics

    def observe(self, event: PredictionEvent) -> None:
        """PredictionObserver: one request's predictions."""
        model, version = event.served_by.model, str(event.served_by.version)
        traffic = "shadow" if event.shadow else "live"
        self.metrics.observe_timings(model, version, event.timings, event.requests)
        self.metrics.count_predictions(model, version, traffic, event.digits, event.probabilities)
        labels = event.true_labels
        if labels.count(None) == len(labels):  # no true digit came with the request
            return
        labelled = [(t, p) for t, p in zip(event.true_labels, event.digits.tolist()) if t is not None]
        if labelled:
            truth, predicted = zip(*labelled)
            self.metrics.count_labelled(model, version, traffic, "request", truth, predicted)

    def observe_feedback(self, event: FeedbackEvent) -> None:
        """FeedbackObserver: a true digit that arrived after the prediction."""
        served = event.served_by
        self.metrics.count_labelled(
            served.model, str(served.version), "live", "feedback", [event.true_label], [event.predicted]
        )


class ModelStateObserver:
    """A `ModelManager.on_change` callback: state gauge, load duration, failures, model info."""

    def __init__(self, metrics: ServerMetrics, clock: Callable[[], float] = time.perf_counter) -> None:
        self.metrics = metrics
        self._clock = clock
        self._loading_since: dict[tuple[str, int], float] = {}

    def __call__(self, slot: VersionSlot) -> None:
        """Record a version's new state."""
        key, version = (slot.name, slot.version), str(slot.version)
        if slot.state == LOADING:
            self._loading_since[key] = self._clock()
        elif slot.state in (AVAILABLE, FAILED) and key in self._loading_since:
            self.metrics.observe_model_load(slot.name, self._clock() - self._loading_since.pop(key))
        if slot.state == UNLOADED:
            self.metrics.forget_model_version(slot.name, version)
            return
        self.metrics.set_model_state(slot.name, version, slot.state)
        if slot.state == FAILED:
            self.metrics.count_load_failure(slot.name, version)
        elif slot.state == AVAILABLE:
            info = slot.info
            facts = {
                "cell": info.cell,
                "recipe": info.recipe,
                "parameters": str(info.parameters),
                "test_accuracy": f"{info.test_accuracy:.6g}",
                "tensorflow_version": info.tensorflow_version,
                "created_at": info.created_at,
                "runtime": getattr(slot.model, "runtime", ""),
            }
            self.metrics.set_model_info(slot.name, version, facts, info.test_accuracy, info.parameters)


def build_facts() -> dict[str, str]:
    """The server's version, Python's, and those of the libraries that shape its behaviour."""
    facts = {"version": __version__, "python": platform.python_version()}
    for label, distributions in LIBRARIES.items():
        facts[label] = ""
        for distribution in distributions:
            try:
                facts[label] = metadata.version(distribution)
                break
            except metadata.PackageNotFoundError:
                continue
    return facts


def config_facts(settings: Settings) -> dict[str, str]:
    """The settings listed in CONFIG_FIELDS that this Settings has, as strings."""
    return {name: str(getattr(settings, name)) for name in CONFIG_FIELDS if hasattr(settings, name)}


def describe_server(metrics: ServerMetrics, settings: Settings) -> None:
    """Publish digits_build_info, digits_server_info and the start time."""
    metrics.set_server_info(build_facts(), config_facts(settings))
