"""The server's always-valid statistics: the shared computation (digits.experiments.always_valid,
called through digits.experiments.comparison) with each report's look folded into the running state
kept with the experiment's counts (running minimum p, intersected intervals), so the results are
valid however often the report is read and never forget an earlier look. Transport-free.
"""

from __future__ import annotations

from digits.experiments.always_valid import (
    ERROR_TOLERANCE,
    INDEPENDENT,
    LATENCY_TAU,
    LATENCY_TOLERANCE,
    METHOD,
    MIN_LATENCY_REQUESTS,
    PAIRED,
    AlwaysValid,
    Fold,
    Guardrail,
    breaches,
    latency_moments,
)
from digits_server.experiments.observer import ExperimentCounts

__all__ = ["ERROR_TOLERANCE", "INDEPENDENT", "LATENCY_TAU", "LATENCY_TOLERANCE", "METHOD", "MIN_LATENCY_REQUESTS",
           "PAIRED", "AlwaysValid", "Guardrail", "breaches", "latency_moments", "running_fold"]


def running_fold(counts: ExperimentCounts) -> Fold:
    """A Fold into the experiment's running always-valid state (created at the first look)."""

    def fold(key: tuple[str, ...], p_value: float, low: float, high: float) -> tuple[float, float, float]:
        state = counts.running(*key).update(p_value, low, high)
        return state.p_value, state.low, state.high

    return fold
