"""Label-free monitoring of every served version (docs/monitoring.md): an observer of live
predictions and feedback, and a `ModelManager.on_change` callback that loads each version's
reference profile when it becomes AVAILABLE and forgets it when it is unloaded.

Predictions are buffered and processed in batches (at most `flush_size` predictions, or after
`flush_seconds`): the statistics and the metrics cost a few numpy calls and counter increments
per batch, not per request. The buffer (`PredictionBuffer`) keeps each request's digits,
probabilities and at most `images_per_request` of its images for at most `flush_size`
predictions, so memory is bounded whatever the traffic.
Every read (`view`) flushes first, so the status RPC sees every prediction answered so far.
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np

from digits.monitoring.profile import PROFILE_FILE, SIGNALS, ProfileError, ReferenceProfile
from digits_server.core.domain import FeedbackEvent, PredictionEvent
from digits_server.core.manager import AVAILABLE, END, VersionSlot
from digits_server.observability.monitoring_metrics import MonitoringMetrics
from digits_server.observability.prediction_buffer import PredictionBuffer, confidence
from digits_server.observability.version_monitor import MonitoringView, VersionMonitor

log = logging.getLogger(__name__)
Key = tuple[str, int]


class LabelFreeMonitor:
    """Per version: CBPE sums, drift detectors, labelled counts; metrics published per batch."""

    observes_groups = True

    def __init__(
        self, metrics: MonitoringMetrics, flush_size: int = 4096, flush_seconds: float = 0.5, images_per_request: int = 8,
    ) -> None:
        self.metrics = metrics
        self.flush_size = flush_size
        # The input summaries cost ~1 us an image: a request's first `images_per_request` images
        # feed them (0: all); predictions, confidence and the estimate always use every image.
        self.images_per_request = images_per_request
        self.flush_seconds = flush_seconds
        self.versions: dict[Key, VersionMonitor] = {}
        self.missing: dict[Key, str] = {}  # versions served without a reference: why ("" = no file)
        self.buffer = PredictionBuffer(flush_size)
        self._timer: asyncio.TimerHandle | None = None

    @property
    def buffered(self) -> int:
        """Predictions waiting for the next flush."""
        return self.buffer.predictions

    # --- model lifecycle ---------------------------------------------------------------------

    def __call__(self, slot: VersionSlot) -> None:
        """ModelManager.on_change: load the reference of an AVAILABLE version, forget an unloaded one."""
        key = (slot.name, slot.version)
        if slot.state == AVAILABLE and key not in self.versions and key not in self.missing:
            self._load(key, slot)
        elif slot.state == END:
            self.flush()
            if self.versions.pop(key, None) is not None:
                self.metrics.forget_version(slot.name, str(slot.version), SIGNALS)
            elif self.missing.pop(key, None) is not None:
                self.metrics.forget_version(slot.name, str(slot.version), ())

    def _load(self, key: Key, slot: VersionSlot) -> None:
        path = slot.path / PROFILE_FILE
        try:
            profile = ReferenceProfile.loads(path.read_text())
        except FileNotFoundError:
            self.missing[key] = ""
        except (OSError, UnicodeDecodeError, ProfileError) as exc:
            self.missing[key] = f"{PROFILE_FILE}: {exc}"
            log.warning("model %s version %d: no label-free monitoring: %s", *key, self.missing[key])
        else:
            monitor = self.versions[key] = VersionMonitor(profile)
            self.metrics.start_version(slot.name, str(slot.version),
                                       [(n, len(profile.signals[n].counts)) for n in SIGNALS], profile.labelled_accuracy)
            log.debug("model %s version %d: monitoring against %s", *key, monitor.profile.held_out)
            return
        self.metrics.no_reference(slot.name, str(slot.version))

    # --- observers -----------------------------------------------------------------------------

    def observe(self, event: PredictionEvent) -> None:
        """PredictionObserver: buffer a live request's (or stream group's) predictions and images."""
        key = (event.served_by.model, event.served_by.version)
        monitor = self.versions.get(key)
        if monitor is None or event.shadow or event.images is None:
            return
        if event.true_labels.count(None) != len(event.true_labels):
            labelled = [(t, p) for t, p in zip(event.true_labels, event.digits.tolist()) if t is not None]
            monitor.count_labelled(len(labelled), sum(t == p for t, p in labelled))
        cap = self.images_per_request  # a group's event holds one image per request: all kept
        images = event.images[:cap] if cap and event.requests == 1 else event.images
        if not self.buffer.fits(len(event.digits)):
            self.flush()
            if not self.buffer.fits(len(event.digits)):  # larger than the whole buffer: at once
                self._process(key, monitor, images, event.digits, confidence(event.probabilities, event.digits))
                return
        self.buffer.add(key, event, images)
        if self.buffer.full:
            self.flush()
        elif self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(self.flush_seconds, self.flush)
            except RuntimeError:  # no event loop (a synchronous caller): at flush_size or on a read
                pass

    def observe_feedback(self, event: FeedbackEvent) -> None:
        """FeedbackObserver: a true digit for an earlier live prediction."""
        monitor = self.versions.get((event.served_by.model, event.served_by.version))
        if monitor is not None:
            monitor.count_labelled(1, int(event.correct))

    # --- batches and reads -----------------------------------------------------------------------

    def flush(self) -> None:
        """Process every buffered prediction and publish the metrics; never raises."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            for key, images, digits, confidences in self.buffer.drain():
                monitor = self.versions.get(key)
                if monitor is not None:
                    self._process(key, monitor, images, digits, confidences)
        except Exception:  # the buffer is empty again whatever happened: the next batches go on
            log.exception("label-free monitoring could not read its buffered predictions")

    def _process(self, key: Key, monitor: VersionMonitor, images: np.ndarray, digits: np.ndarray,
                 confidence: np.ndarray) -> None:
        try:
            update = monitor.observe(images, digits, confidence)
            model, version = key[0], str(key[1])
            self.metrics.count_batch(model, version, update.predictions, update.calibrated_sum, update.variance_sum)
            for d, name in enumerate(SIGNALS):
                self.metrics.count_bins(model, version, name, update.bin_counts[d])
                self.metrics.set_detector(model, version, name, monitor.log_statistic(d), monitor.alarm_on(d),
                                          int(update.alarms[d]))
        except Exception:
            log.exception("label-free monitoring of %s version %d failed on a batch", *key)

    def view(self, model: str, version: int) -> MonitoringView:
        """A version's monitoring now (every prediction so far included)."""
        self.flush()
        monitor = self.versions.get((model, version))
        if monitor is None:
            return MonitoringView(False, reference_error=self.missing.get((model, version), ""))
        return monitor.view()
