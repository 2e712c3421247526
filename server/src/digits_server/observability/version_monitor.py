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
from digits.monitoring.profile import SIGNALS, ReferenceProfile, signal_values

#: An alarm stays on while its detector fired within this many predictions.
ALARM_HOLD = 5000


@dataclass(frozen=True)
class SignalView:
    """One drift detector's state, as the status RPC and `digits monitor` show it."""

    signal: str
    log_statistic: float
    log_threshold: float
    alarm: bool
    alarms: int
    last_alarm_at: int
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
    """The state of one version with a reference profile; O(bins) memory whatever the traffic."""

    def __init__(self, profile: ReferenceProfile, hold: int = ALARM_HOLD) -> None:
        self.profile = profile
        self.hold = hold
        self.bank = DetectorBank([profile.signals[name].counts for name in SIGNALS])
        self._signals = [profile.signals[name] for name in SIGNALS]
        self.estimate = AccuracyEstimate(0, 0.0, 0.0)
        self.labelled = LabelledAccuracy(0, 0)

    def observe(self, images: np.ndarray, probabilities: np.ndarray) -> BatchUpdate:
        """A batch of live predictions: uint8 images [N, 28, 28] and their probabilities [N, 10]."""
        values = signal_values(images, probabilities)
        bins = np.column_stack([signal.bins(values[:, d]) for d, signal in enumerate(self._signals)])
        calibrated = self.profile.calibration.calibrated(values[:, 1])
        update = BatchUpdate(
            len(values), float(calibrated.sum()), float((calibrated * (1.0 - calibrated)).sum()),
            [np.bincount(bins[:, d], minlength=len(s.counts)) for d, s in enumerate(self._signals)],
            self.bank.observe(bins),
        )
        self.estimate = self.estimate + AccuracyEstimate(update.predictions, update.calibrated_sum, update.variance_sum)
        return update

    def count_labelled(self, labelled: int, correct: int) -> None:
        """Live predictions whose true digit became known (request or feedback)."""
        self.labelled = LabelledAccuracy(self.labelled.labelled + labelled, self.labelled.correct + correct)

    def alarm_on(self, detector: int) -> bool:
        """Whether detector d fired within the last `hold` predictions."""
        last = int(self.bank.last_alarm_at[detector])
        return last >= 0 and self.bank.observed - last < self.hold

    def view(self) -> MonitoringView:
        """The version's monitoring now."""
        signals = []
        for d, name in enumerate(SIGNALS):
            state = self.bank.state(d)
            signals.append(SignalView(
                name, state.log_statistic, self.bank.log_threshold, self.alarm_on(d), state.alarms,
                state.last_alarm_at, self._moved(d),
            ))
        return MonitoringView(
            True, self.profile.held_out, self.profile.labelled_accuracy, self.estimate, self.labelled, tuple(signals)
        )

    def _moved(self, detector: int) -> str:
        """The bin whose live share rose most, with its bounds: "[0.98, inf): 0.95 live vs 0.002 reference"."""
        if not self.bank.observed:
            return ""
        k, live, reference = self.bank.moved(detector)
        edges = (-math.inf, *self._signals[detector].edges, math.inf)
        return f"[{edges[k]:.4g}, {edges[k + 1]:.4g}): {live:.3g} live vs {reference:.3g} reference"
