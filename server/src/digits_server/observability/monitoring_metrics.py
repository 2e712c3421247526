"""The label-free monitoring's Prometheus metrics (docs/monitoring.md), on the registry
ServerMetrics uses (injected), with the same conventions as metrics.py.

Counters sum across replicas, so the fleet's estimated accuracy is a PromQL expression:
    sum by (model, version) (digits_estimated_correct_total)
      / sum by (model, version) (digits_monitoring_predictions_total)
with the 95% half-width 1.96 * sqrt(sum(digits_estimated_correct_variance_total)) / sum(predictions).
Alarm state and detector statistics are per replica (gauges).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge

from digits.monitoring.detectors import THRESHOLD

VERSION = ["model", "version"]
SIGNAL = ["model", "version", "signal"]


class MonitoringMetrics:
    """Counters of the CBPE sums and signal bins, gauges of references and drift detectors."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.reference = Gauge(
            "digits_monitoring_reference",
            "1 when a loaded version has a usable reference profile (label-free monitoring), 0 when not.",
            VERSION, registry=r,
        )
        self.reference_accuracy = Gauge(
            "digits_monitoring_reference_accuracy",
            "Labelled accuracy of a version on the held-out digits of its reference profile.", VERSION, registry=r,
        )
        self.predictions = Counter(
            "digits_monitoring_predictions_total",
            "Live predictions watched by label-free monitoring (versions with a reference).", VERSION, registry=r,
        )
        self.estimated_correct = Counter(
            "digits_estimated_correct_total",
            "Sum of the calibrated probability that each monitored prediction is right (CBPE numerator).",
            VERSION, registry=r,
        )
        self.estimated_variance = Counter(
            "digits_estimated_correct_variance_total",
            "Sum of p (1 - p) over the calibrated probabilities of monitored predictions (CBPE variance).",
            VERSION, registry=r,
        )
        self.signal_bins = Counter(
            "digits_monitoring_signal_bin_total",
            "Monitored predictions per bin of each signal (the reference profile's bins).",
            [*SIGNAL, "bin"], registry=r,
        )
        self.alarms = Counter(
            "digits_drift_alarms_total", "Times a drift detector fired (it restarts after each).", SIGNAL, registry=r,
        )
        self.alarm = Gauge(
            "digits_drift_alarm",
            "1 while a drift detector has fired within its hold window on this replica, else 0.", SIGNAL, registry=r,
        )
        self.log_statistic = Gauge(
            "digits_drift_log_statistic", "log of a drift detector's e-CUSUM statistic on this replica.",
            SIGNAL, registry=r,
        )
        self.log_threshold = Gauge(
            "digits_drift_log_threshold", "log of the e-detectors' alarm threshold (expected false alarms <= n / e^x).",
            registry=r,
        )
        self.log_threshold.set(float(np.log(THRESHOLD)))
        self._bins: dict[tuple[str, str, str], list[Counter]] = {}
        # children looked up once per version (labels() costs more than the update itself)
        self._detectors: dict[tuple[str, str, str], tuple[Gauge, Gauge, Counter]] = {}
        self._sums: dict[tuple[str, str], tuple[Counter, Counter, Counter]] = {}

    def start_version(self, model: str, version: str, signals: Sequence[tuple[str, int]], accuracy: float) -> None:
        """A version with a reference: every series at 0 (signals: (name, bins))."""
        self.reference.labels(model, version).set(1)
        self.reference_accuracy.labels(model, version).set(accuracy)
        self._sums[(model, version)] = (self.predictions.labels(model, version),
                                        self.estimated_correct.labels(model, version),
                                        self.estimated_variance.labels(model, version))
        for name, bins in signals:
            self._bins[(model, version, name)] = [self.signal_bins.labels(model, version, name, str(b)) for b in range(bins)]
            self._detectors[(model, version, name)] = (self.log_statistic.labels(model, version, name),
                                                       self.alarm.labels(model, version, name),
                                                       self.alarms.labels(model, version, name))

    def no_reference(self, model: str, version: str) -> None:
        """A version served without monitoring."""
        self.reference.labels(model, version).set(0)

    def count_batch(self, model: str, version: str, predictions: int, calibrated: float, variance: float) -> None:
        """A monitored batch's CBPE sums."""
        children = self._sums.get((model, version))
        if children is not None:
            children[0].inc(predictions)
            children[1].inc(calibrated)
            children[2].inc(variance)

    def count_bins(self, model: str, version: str, signal: str, counts: np.ndarray) -> None:
        """A monitored batch's predictions per bin of one signal."""
        children = self._bins.get((model, version, signal), [])
        for b in np.flatnonzero(counts[: len(children)]):
            children[b].inc(int(counts[b]))

    def set_detector(self, model: str, version: str, signal: str, log_statistic: float, alarm: bool,
                     raised: int) -> None:
        """A detector's state after a batch, and the alarms it raised in it."""
        children = self._detectors.get((model, version, signal))
        if children is None:
            return
        children[0].set(log_statistic)
        children[1].set(1 if alarm else 0)
        if raised:
            children[2].inc(raised)

    def forget_version(self, model: str, version: str, signals: Sequence[str]) -> None:
        """Drop an unloaded version's series."""
        self._sums.pop((model, version), None)
        for metric in (self.reference, self.reference_accuracy, self.predictions, self.estimated_correct,
                       self.estimated_variance):
            try:
                metric.remove(model, version)
            except KeyError:
                pass
        for name in signals:
            self._detectors.pop((model, version, name), None)
            for bin_index in range(len(self._bins.pop((model, version, name), []))):
                self.signal_bins.remove(model, version, name, str(bin_index))
            for metric in (self.alarms, self.alarm, self.log_statistic):
                try:
                    metric.remove(model, version, name)
                except KeyError:
                    pass
