"""observability.monitor: the label-free monitor as the data plane and the manager drive it
(in process, a real profile from real digits, no TensorFlow): references loaded and forgotten
with the versions, buffered batches, metrics equal to the status view, bounded memory."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from digits.monitoring.profile import PROFILE_FILE, build_profile
from digits_server.core.domain import FeedbackEvent, PredictionEvent, ServedBy
from digits_server.core.manager import AVAILABLE, END, VersionSlot
from digits_server.observability.monitor import LabelFreeMonitor
from digits_server.observability.monitoring_metrics import MonitoringMetrics
from tests.conftest import MNIST_NPZ
from tests.shifts import shifted_stream


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    with np.load(MNIST_NPZ) as data:
        return data["x_test"], data["y_test"]


def oracle_probabilities(labels: np.ndarray, confidence: float = 0.9) -> np.ndarray:
    """A model that is right with the given confidence (every prediction the true digit)."""
    probabilities = np.full((len(labels), 10), (1 - confidence) / 9, dtype=np.float32)
    probabilities[np.arange(len(labels)), labels] = confidence
    return probabilities


@pytest.fixture()
def version_dir(tmp_path: Path, digits) -> Path:
    images, labels = digits[0][:800], digits[1][:800]
    folder = tmp_path / "lstm" / "3"
    folder.mkdir(parents=True)
    (folder / PROFILE_FILE).write_text(build_profile(images, oracle_probabilities(labels), labels, "test").dumps())
    return folder


def event(images: np.ndarray, labels: np.ndarray, version: int = 3, true_labels: bool = False) -> PredictionEvent:
    probabilities = oracle_probabilities(labels)
    given = labels.tolist() if true_labels else [None] * len(labels)
    return PredictionEvent("ClassifyBatch", ServedBy("lstm", version), "id", labels, probabilities, given,
                           images=images)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, {"model": "lstm", "version": "3", **labels})


def test_a_version_is_watched_from_available_to_unloaded(version_dir: Path, digits) -> None:
    registry = CollectorRegistry()
    monitor = LabelFreeMonitor(MonitoringMetrics(registry), flush_size=100)
    slot = VersionSlot("lstm", 3, version_dir, state=AVAILABLE)
    monitor(slot)
    assert sample(registry, "digits_monitoring_reference") == 1
    images, labels = digits[0][800:1100], digits[1][800:1100]
    for start in range(0, 300, 30):  # 10 requests of 30: flushed at 100, 200 (buffer bound), then on read
        monitor.observe(event(images[start:start + 30], labels[start:start + 30]))
        assert monitor.buffered < monitor.flush_size
    view = monitor.view("lstm", 3)
    assert view.estimate.predictions == 300 and view.labelled.labelled == 0
    assert sample(registry, "digits_monitoring_predictions_total") == 300
    assert sample(registry, "digits_estimated_correct_total") == pytest.approx(view.estimate.calibrated_sum)
    assert sample(registry, "digits_estimated_correct_variance_total") == pytest.approx(view.estimate.variance_sum)
    assert sum(sample(registry, "digits_monitoring_signal_bin_total", signal="predicted_class", bin=str(b))
               for b in range(10)) == 300
    assert view.drifting == [] and view.estimate.accuracy == pytest.approx(1.0, abs=0.02)
    watched = monitor.versions[("lstm", 3)]  # the input summaries: the first 8 images of each request
    assert (watched.outputs.observed, watched.inputs.observed) == (300, 10 * 8)
    assert sum(sample(registry, "digits_monitoring_signal_bin_total", signal="background", bin=str(b))
               for b in range(len(watched.profile.signals["background"].counts))) == 80
    slot.state = END
    monitor(slot)
    assert sample(registry, "digits_monitoring_reference") is None
    assert sample(registry, "digits_drift_alarm", signal="background") is None
    assert not monitor.view("lstm", 3).has_reference


def test_inverted_digits_alarm_on_background_and_labels_count(version_dir: Path, digits) -> None:
    registry = CollectorRegistry()
    monitor = LabelFreeMonitor(MonitoringMetrics(registry), flush_size=50)
    monitor(VersionSlot("lstm", 3, version_dir, state=AVAILABLE))
    images, labels = shifted_stream("inverted", digits[0][800:], digits[1][800:], 400, seed=0)
    for start in range(0, 400, 50):
        monitor.observe(event(images[start:start + 50], labels[start:start + 50], true_labels=True))
    monitor.observe_feedback(FeedbackEvent(ServedBy("lstm", 3), "id", 0, 1, 2))
    view = monitor.view("lstm", 3)
    assert "background" in view.drifting
    assert sample(registry, "digits_drift_alarm", signal="background") == 1
    assert sample(registry, "digits_drift_alarms_total", signal="background") >= 1
    assert view.labelled.labelled == 401 and view.labelled.correct == 400


def test_versions_without_a_usable_reference(tmp_path: Path, digits) -> None:
    registry = CollectorRegistry()
    monitor = LabelFreeMonitor(MonitoringMetrics(registry))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / PROFILE_FILE).write_text("{\"format\": \"digits-reference-profile/1\"}")
    monitor(VersionSlot("lstm", 1, tmp_path, state=AVAILABLE))
    monitor(VersionSlot("lstm", 2, tmp_path / "bad", state=AVAILABLE))
    monitor.observe(event(digits[0][:5], digits[1][:5], version=1))
    assert monitor.view("lstm", 1).has_reference is False and monitor.view("lstm", 1).reference_error == ""
    assert "signals" in monitor.view("lstm", 2).reference_error
    assert registry.get_sample_value("digits_monitoring_reference", {"model": "lstm", "version": "1"}) == 0
    assert monitor.buffered == 0  # nothing buffered for an unwatched version


def test_two_versions_share_the_buffer_and_keep_their_own_statistics(version_dir: Path, digits) -> None:
    """Requests of two versions interleaved in one buffer: each version's statistics equal those
    of a monitor that saw only its requests (all flushed at the read, so the batches are the same)."""
    other = version_dir.parent / "4"
    shutil.copytree(version_dir, other)

    def monitor() -> LabelFreeMonitor:
        return LabelFreeMonitor(MonitoringMetrics(CollectorRegistry()), flush_size=1000)

    shared, alone = monitor(), {3: monitor(), 4: monitor()}
    for version, folder in ((3, version_dir), (4, other)):
        shared(VersionSlot("lstm", version, folder, state=AVAILABLE))
        alone[version](VersionSlot("lstm", version, folder, state=AVAILABLE))
    images, labels = shifted_stream("inverted", digits[0][800:], digits[1][800:], 700, seed=1)
    start = 0
    for i, size in enumerate([30, 64, 1, 250, 17, 64, 64, 100, 40, 70]):
        request = event(images[start:start + size], labels[start:start + size], version=3 if i % 3 else 4)
        shared.observe(request)
        alone[request.served_by.version].observe(request)
        start += size
    assert shared.buffered == start
    for version in (3, 4):
        got, want = shared.view("lstm", version), alone[version].view("lstm", version)
        assert got == want and got.estimate.predictions > 0
        assert shared.versions[("lstm", version)].inputs.observed == alone[version].versions[("lstm", version)].inputs.observed
    assert shared.view("lstm", 3).estimate.predictions + shared.view("lstm", 4).estimate.predictions == start


def test_a_request_larger_than_the_buffer_is_taken_at_once(version_dir: Path, digits) -> None:
    small = LabelFreeMonitor(MonitoringMetrics(CollectorRegistry()), flush_size=100, images_per_request=0)
    large = LabelFreeMonitor(MonitoringMetrics(CollectorRegistry()), flush_size=1000, images_per_request=0)
    for monitor in (small, large):
        monitor(VersionSlot("lstm", 3, version_dir, state=AVAILABLE))
        monitor.observe(event(digits[0][800:1050], digits[1][800:1050]))
    assert small.buffered == 0 and large.buffered == 250
    assert small.view("lstm", 3) == large.view("lstm", 3)
    assert small.versions[("lstm", 3)].inputs.observed == 250


def test_a_batch_that_cannot_be_read_is_dropped_and_the_monitor_goes_on(version_dir: Path, digits, caplog) -> None:
    """Probabilities of another width than the digits' 10 cannot join the buffer's arrays: the
    flush logs it and drops that batch, never raises, and the next requests are watched."""
    monitor = LabelFreeMonitor(MonitoringMetrics(CollectorRegistry()), flush_size=1000)
    monitor(VersionSlot("lstm", 3, version_dir, state=AVAILABLE))
    images, labels = digits[0][800:900], digits[1][800:900]
    odd = event(images[:50], labels[:50])
    monitor.observe(PredictionEvent("ClassifyBatch", odd.served_by, "id", odd.digits, odd.probabilities[:, :9],
                                    odd.true_labels, images=odd.images))
    monitor.flush()
    assert monitor.buffered == 0 and "could not read its buffered predictions" in caplog.text
    monitor.observe(event(images[50:], labels[50:]))
    assert monitor.view("lstm", 3).estimate.predictions == 50
