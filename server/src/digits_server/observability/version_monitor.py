"""One model version's label-free monitoring on this replica: the CBPE sums, the drift detectors
and the labelled counts, fed a batch of predictions at a time (docs/monitoring.md).

Transport-free and Prometheus-free: `monitor.py` feeds it and publishes what it returns. The
statistics themselves are the client package's `digits.monitoring` (shared with the trainer
and `digits monitor`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from digits.monitoring.detectors import DetectorBank
from digits.monitoring.estimate import AccuracyEstimate, LabelledAccuracy, disagree
from digits.monitoring.profile import SIGNALS, ReferenceProfile
from digits.monitoring.summaries import summarise

#: An alarm stays on while its detector fired within this many of its observations.
ALARM_HOLD = 5000
#: SIGNALS[:2] (predicted class, confidence) come from the probabilities; the rest from the images.
OUTPUT_SIGNALS = 2


@dataclass(frozen=True)
class SignalView:
    """One drift detector's state, as the status RPC and `digits monitor` show it."""

    signal: str
    log_statistic: float
    log_threshold: float
    alarm: bool
    alarms: int
    last_alarm_at: int  # observations of this detector when it last fired (-1 never)
    moved: str


@dataclass(frozen=True)
class MonitoringView:
    """A version's label-free monitoring on this replica; `has_reference` False: "no reference"."""

    has_reference: bool
    reference_held_out: str = ""
    reference_accuracy: float = 0.0
    estimate: AccuracyEstimate = field(default_factory=lambda: AccuracyEstimate(0, 0.0, 0.0))
    labelled: LabelledAccuracy = field(default_factory=lambda: LabelledAccuracy(0, 0))
    signals: tuple[SignalView, ...] = ()
    reference_error: str = ""

    @property
    def drifting(self) -> list[str]:
        """The signals whose alarm is on."""
        return [s.signal for s in self.signals if s.alarm]

    @property
    def calibration_drift(self) -> bool:
        """Estimated and labelled accuracy both known and their intervals apart."""
        return disagree(self.estimate, self.labelled)


@dataclass(frozen=True)
class BatchUpdate:
    """What one batch changed, for the metrics: bins per signal, CBPE sums, alarms raised."""

    predictions: int
    calibrated_sum: float
    variance_sum: float
    bin_counts: list[np.ndarray] = field(default_factory=list)  # per signal, counts per bin
    alarms: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


class VersionMonitor:
    """The state of one version with a reference profile; O(bins) memory whatever the traffic.

    Two detector banks: the prediction signals (class, confidence) see every prediction; the
    input summaries see the images `observe` is given, which may be a content-blind sample of
    them (the monitor keeps at most a few images per request: the summaries are the costly part).
    """

    def __init__(self, profile: ReferenceProfile, hold: int = ALARM_HOLD) -> None:
        self.profile = profile
        self.hold = hold
        self._signals = [profile.signals[name] for name in SIGNALS]
        self.outputs = DetectorBank([s.counts for s in self._signals[:OUTPUT_SIGNALS]])
        self.inputs = DetectorBank([s.counts for s in self._signals[OUTPUT_SIGNALS:]])
        self.estimate = AccuracyEstimate(0, 0.0, 0.0)
        self.labelled = LabelledAccuracy(0, 0)

    def _bank(self, detector: int) -> tuple[DetectorBank, int]:
        if detector < OUTPUT_SIGNALS:
            return self.outputs, detector
        return self.inputs, detector - OUTPUT_SIGNALS

    def observe(self, images: np.ndarray, digits: np.ndarray, confidence: np.ndarray) -> BatchUpdate:
        """A batch of live predictions (their digits [N] and winning probabilities [N]), and uint8
        images [M, 28, 28] of (a sample of) them, M <= N."""
        outputs = (digits, confidence)
        inputs = summarise(images) if len(images) else np.zeros((0, len(SIGNALS) - OUTPUT_SIGNALS))
        output_bins = np.column_stack([s.bins(outputs[d]) for d, s in enumerate(self._signals[:OUTPUT_SIGNALS])])
        input_bins = np.column_stack([s.bins(inputs[:, d]) for d, s in enumerate(self._signals[OUTPUT_SIGNALS:])])
        calibrated = self.profile.calibration.calibrated(confidence)
        counts = [np.bincount(output_bins[:, d], minlength=len(s.counts))
                  for d, s in enumerate(self._signals[:OUTPUT_SIGNALS])]
        counts += [np.bincount(input_bins[:, d], minlength=len(s.counts))
                   for d, s in enumerate(self._signals[OUTPUT_SIGNALS:])]
        update = BatchUpdate(
            len(digits), float(calibrated.sum()), float((calibrated * (1.0 - calibrated)).sum()), counts,
            np.concatenate([self.outputs.observe(output_bins), self.inputs.observe(input_bins)]),
        )
        self.estimate = self.estimate + AccuracyEstimate(update.predictions, update.calibrated_sum, update.variance_sum)
        return update

    def count_labelled(self, labelled: int, correct: int) -> None:
        """Live predictions whose true digit became known (request or feedback)."""
        self.labelled = LabelledAccuracy(self.labelled.labelled + labelled, self.labelled.correct + correct)

    def log_statistic(self, detector: int) -> float:
        """Detector d's log e-CUSUM statistic."""
        bank, index = self._bank(detector)
        return float(bank.log_statistic[index])

    def alarm_on(self, detector: int) -> bool:
        """Whether detector d fired within the last `hold` observations of its bank."""
        bank, index = self._bank(detector)
        last = int(bank.last_alarm_at[index])
        return last >= 0 and bank.observed - last < self.hold

    def view(self) -> MonitoringView:
        """The version's monitoring now."""
        signals = []
        for d, name in enumerate(SIGNALS):
            bank, index = self._bank(d)
            state = bank.state(index)
            signals.append(SignalView(
                name, state.log_statistic, bank.log_threshold, self.alarm_on(d), state.alarms,
                state.last_alarm_at, self._moved(d),
            ))
        return MonitoringView(
            True, self.profile.held_out, self.profile.labelled_accuracy, self.estimate, self.labelled, tuple(signals)
        )

    def _moved(self, detector: int) -> str:
        """The bin whose live share rose most, with its bounds: "[0.98, inf): 0.95 live vs 0.002 reference"."""
        bank, index = self._bank(detector)
        if not bank.observed:
            return ""
        k, live, reference = bank.moved(index)
        edges = (-math.inf, *self._signals[detector].edges, math.inf)
        return f"[{edges[k]:.4g}, {edges[k + 1]:.4g}): {live:.3g} live vs {reference:.3g} reference"
