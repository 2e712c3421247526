"""Clean traffic through the drift detectors, vectorised over many simulated streams.

Each stream draws its own reference sample of `reference_size` predictions from the true bin
distribution (the reference is a sample, as the trainer's is), builds its detector from it,
then watches `length` live predictions drawn from that same truth in batches of `batch` (the
server's flush size). Every alarm is a false alarm. Used by the suite (small, fixed seed) and
by bench/monitoring_false_alarms.py (a day of traffic).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from digits.monitoring.detectors import THRESHOLD, DetectorBank


@dataclass(frozen=True)
class FalseAlarms:
    """False alarms of `streams` clean streams of `length` predictions each, and the guarantee's bound."""

    streams: int
    length: int
    threshold: float
    alarms: np.ndarray  # per stream
    first_alarm: np.ndarray | None = None  # per stream: predictions before the batch of the first alarm (-1 none)

    @property
    def per_stream(self) -> float:
        """Mean false alarms per stream."""
        return float(self.alarms.mean())

    @property
    def bound(self) -> float:
        """The guarantee: expected false alarms per stream <= length / threshold."""
        return self.length / self.threshold


def simulate_clean(
    truth: np.ndarray, reference_size: int, streams: int, length: int, *, threshold: float = THRESHOLD,
    batch: int = 256, seed: int = 0, bounded: bool = True, shifted: np.ndarray | None = None,
    first_alarm: bool = False,
) -> FalseAlarms:
    """Run `streams` detectors on traffic drawn from `truth` (or from `shifted`, to see power);
    `first_alarm`: stop once every stream alarmed, and say when each first did."""
    rng = np.random.default_rng(seed)
    truth = np.asarray(truth, dtype=np.float64) / np.sum(truth)
    live = truth if shifted is None else np.asarray(shifted, dtype=np.float64) / np.sum(shifted)
    references = rng.multinomial(reference_size, truth, size=streams)
    bank = DetectorBank(references, threshold=threshold, bounded=bounded)
    cumulative = np.cumsum(live)
    done, first = 0, np.full(streams, -1, dtype=np.int64)
    while done < length:
        size = min(batch, length - done)
        bins = np.searchsorted(cumulative, rng.random((size, streams)), side="right")
        raised = bank.observe(np.minimum(bins, len(truth) - 1))
        first[(first < 0) & (raised > 0)] = done + size
        done += size
        if first_alarm and (first >= 0).all():
            break
    return FalseAlarms(streams, length, threshold, bank.alarms.copy(), first if first_alarm else None)
