"""What `digits monitor` shows per model version: the estimate, labelled accuracy and drift, read
from one server's status RPC or summed over a fleet from Prometheus (docs/monitoring.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from digits.monitoring.estimate import AccuracyEstimate, LabelledAccuracy, intervals_apart

Query = Callable[[str], list[tuple[dict[str, str], float]]]


@dataclass(frozen=True)
class SignalState:
    """One drift detector: alarm on now, times fired, statistic (one server), bin that moved."""

    signal: str
    alarm: bool
    alarms: int
    log_statistic: float | None = None
    moved: str = ""


@dataclass(frozen=True)
class VersionReport:
    """One version's label-free monitoring (one replica, or a fleet's sums)."""

    model: str
    version: int
    has_reference: bool
    reference_accuracy: float = 0.0
    predictions: int = 0
    estimated: float | None = None
    estimated_interval: tuple[float, float] | None = None
    labelled: int = 0
    labelled_accuracy: float | None = None
    labelled_interval: tuple[float, float] | None = None
    signals: list[SignalState] = field(default_factory=list)
    reference_error: str = ""

    @property
    def drifting(self) -> list[str]:
        """The signals whose alarm is on."""
        return [s.signal for s in self.signals if s.alarm]

    @property
    def calibration_drift(self) -> bool:
        """Both intervals known and apart (as `estimate.disagree` decides it in the server)."""
        return intervals_apart(self.estimated_interval, self.labelled_interval)


def from_status(status: Any) -> list[VersionReport]:
    """The versions of a digits.v1 ModelStatus that carry monitoring."""
    reports = []
    for v in status.versions:
        if not v.HasField("monitoring"):
            continue
        m = v.monitoring
        if not m.has_reference:
            reports.append(VersionReport(status.name, int(v.version), False, reference_error=m.reference_error))
            continue
        reports.append(VersionReport(
            status.name, int(v.version), True, m.reference_accuracy, int(m.predictions),
            m.estimated_accuracy if m.predictions else None,
            (m.estimated_low, m.estimated_high) if m.predictions else None,
            int(m.labelled), m.labelled_accuracy if m.labelled else None,
            (m.labelled_low, m.labelled_high) if m.labelled else None,
            [SignalState(s.signal, s.alarm, int(s.alarms), s.log_statistic, s.moved) for s in m.signals],
        ))
    return reports


def _by_version(rows: list[tuple[dict[str, str], float]], *keys: str) -> dict[tuple[str, ...], float]:
    return {tuple(labels.get(k, "") for k in ("model", "version", *keys)): value for labels, value in rows}


def from_prometheus(query: Query, model: str | None = None) -> list[VersionReport]:
    """Every monitored version of the fleet: the counters summed over replicas, alarms from any."""
    where = f'{{model="{model}"}}' if model else ""
    by = "model, version"
    reference = _by_version(query(f"max by ({by}) (digits_monitoring_reference{where})"))
    accuracy = _by_version(query(f"max by ({by}) (digits_monitoring_reference_accuracy{where})"))
    n = _by_version(query(f"sum by ({by}) (digits_monitoring_predictions_total{where})"))
    correct = _by_version(query(f"sum by ({by}) (digits_estimated_correct_total{where})"))
    variance = _by_version(query(f"sum by ({by}) (digits_estimated_correct_variance_total{where})"))
    live = f'{{traffic="live"{"," + where[1:-1] if where else ""}}}'
    labelled = _by_version(query(f"sum by ({by}) (digits_labelled_predictions_total{live})"))
    right = _by_version(query(f"sum by ({by}) (digits_correct_predictions_total{live})"))
    alarm = _by_version(query(f"max by ({by}, signal) (digits_drift_alarm{where})"), "signal")
    alarms = _by_version(query(f"sum by ({by}, signal) (digits_drift_alarms_total{where})"), "signal")
    reports = []
    for key in sorted(reference, key=lambda k: (k[0], -int(k[1] or 0))):
        name, version = key
        if not reference[key]:
            reports.append(VersionReport(name, int(version), False))
            continue
        estimate = AccuracyEstimate(int(n.get(key, 0)), correct.get(key, 0.0), variance.get(key, 0.0))
        truth = LabelledAccuracy(int(labelled.get(key, 0)), int(right.get(key, 0)))
        signals = sorted({k[2] for k in alarm if k[:2] == key} | {k[2] for k in alarms if k[:2] == key})
        reports.append(VersionReport(
            name, int(version), True, accuracy.get(key, 0.0), estimate.predictions, estimate.accuracy,
            estimate.interval(), truth.labelled, truth.accuracy, truth.interval(),
            [SignalState(s, bool(alarm.get((*key, s), 0)), int(alarms.get((*key, s), 0))) for s in signals],
        ))
    return reports
