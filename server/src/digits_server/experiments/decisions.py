"""The server's always-valid statistics: the shared computation (digits.experiments.always_valid)
with each report's look folded into the running state kept with the experiment's counts (running
minimum p, intersected intervals), so the results are valid however often the report is read and
never forget an earlier look. Transport-free.
"""

from __future__ import annotations

from collections.abc import Mapping

from digits.experiments import always_valid
from digits.experiments import sequential as seq
from digits.experiments.always_valid import (
    ERROR_TOLERANCE,
    INDEPENDENT,
    LATENCY_TAU,
    LATENCY_TOLERANCE,
    METHOD,
    MIN_LATENCY_REQUESTS,
    PAIRED,
    AlwaysValid,
    ArmTraffic,
    Fold,
    Guardrail,
    breaches,
    latency_moments,
)
from digits.experiments.statistics import PairedOutcomes
from digits_server.experiments.observer import ExperimentCounts

__all__ = ["ERROR_TOLERANCE", "INDEPENDENT", "LATENCY_TAU", "LATENCY_TOLERANCE", "METHOD", "MIN_LATENCY_REQUESTS",
           "PAIRED", "AlwaysValid", "Guardrail", "breaches", "compare_pairs", "guardrails", "latency_moments",
           "running_fold"]


def running_fold(counts: ExperimentCounts) -> Fold:
    """A Fold into the experiment's running always-valid state (created at the first look)."""

    def fold(key: tuple[str, ...], p_value: float, low: float, high: float) -> tuple[float, float, float]:
        state = counts.running(*key).update(p_value, low, high)
        return state.p_value, state.low, state.high

    return fold


def compare_pairs(
    counts: ExperimentCounts,
    labelled: dict[str, tuple[int, int]],
    paired: dict[tuple[str, str], PairedOutcomes],
    alpha: float = seq.ALPHA,
) -> list[AlwaysValid]:
    """Every pair's always-valid comparison at this look, folded into the running state."""
    return always_valid.compare_pairs(labelled, paired, alpha, fold=running_fold(counts))


def guardrails(
    counts: ExperimentCounts,
    traffic: Mapping[str, ArmTraffic],
    latency_tolerance: float = LATENCY_TOLERANCE,
    error_tolerance: float = ERROR_TOLERANCE,
    alpha: float = seq.ALPHA,
) -> list[Guardrail]:
    """Latency and error-rate guardrails of every arm after the first, folded into the running state."""
    return always_valid.guardrails(counts.arm_order, traffic, latency_tolerance, error_tolerance, alpha,
                                   fold=running_fold(counts))
