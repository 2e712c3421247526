"""The always-valid half of the report: per pair of arms the mixture SPRT p-value (Holm-adjusted
over the pairs) and the confidence sequence of the accuracy difference; per candidate arm the
latency and error-rate guardrails against the baseline (the first arm).

Each report is a look: the running state (minimum p, intersected intervals) lives in the
experiment's counts, so the results are valid however often the report is read. Transport-free.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from digits_server.experiments import sequential as seq
from digits_server.experiments.observer import ArmTraffic, ExperimentCounts
from digits.experiments.statistics import PairedOutcomes

LATENCY_TOLERANCE = 0.5  # candidate mean latency <= 1.5 x the baseline's
ERROR_TOLERANCE = 0.01  # candidate error rate <= the baseline's + 1 point
LATENCY_TAU = 0.001  # seconds: the latency mixture is tuned for excesses of about a millisecond
MIN_LATENCY_REQUESTS = 30  # per arm, before the latency guardrail can decide
INDEPENDENT = "mSPRT (independent traffic)"
PAIRED = "mSPRT (paired, discordant pairs)"
METHOD = (
    f"always-valid: accuracy difference by the normal-mixture SPRT (Johari, Pekelis & Walsh 2017; "
    f"tau = {seq.TAU}, plug-in variance from add-one-smoothed proportions) on independent traffic, or by the "
    f"beta-binomial mixture SPRT on discordant pairs (Beta({seq.PAIRED_PRIOR:g}, {seq.PAIRED_PRIOR:g}) prior, exact) "
    "on paired traffic; p-values are running minima over the report's looks, Holm-adjusted over the pairs; "
    "confidence sequences (Howard et al. 2021 normal mixture) are running intersections at 1 - alpha/pairs. "
    f"Guardrails vs the first arm: mean latency <= (1 + {LATENCY_TOLERANCE:g}) x baseline (tau = "
    f"{LATENCY_TAU * 1e3:g} ms, variance from the histogram's buckets, from {MIN_LATENCY_REQUESTS} requests "
    f"per arm), error rate <= baseline + {ERROR_TOLERANCE:g}; breached when the excess's confidence sequence "
    "is above 0"
)


@dataclass(frozen=True)
class AlwaysValid:
    """A pair's always-valid comparison of accuracy(a) - accuracy(b)."""

    test: str  # INDEPENDENT, PAIRED or "" (no labelled traffic)
    p_value: float
    p_holm: float
    low: float
    high: float
    confidence: float
    alpha: float

    @property
    def significant(self) -> bool:
        """Whether the pair differs, at family-wise level alpha: the Holm-adjusted p-value is at most
        alpha AND the confidence sequence excludes 0. The two agree except on tiny samples (the test's
        pooled variance vs the sequence's unpooled one); asking for both only lowers the error rate,
        and costs no power at the simulated sizes (bench/ab_peeking.py)."""
        return bool(self.test) and self.p_holm <= self.alpha and (self.low > 0 or self.high < 0)


@dataclass(frozen=True)
class Guardrail:
    """One guardrail of a candidate arm against the baseline arm."""

    arm: str
    baseline_arm: str
    metric: str  # "latency" or "errors"
    value: float
    baseline_value: float
    tolerance: float
    excess: float
    low: float
    high: float

    @property
    def status(self) -> str:
        """'breached' (the excess is surely > 0), 'holds' (surely <= 0) or 'undecided'."""
        if self.low > 0:
            return "breached"
        return "holds" if self.high <= 0 else "undecided"


def compare_pairs(
    counts: ExperimentCounts,
    labelled: dict[str, tuple[int, int]],
    paired: dict[tuple[str, str], PairedOutcomes],
    alpha: float = seq.ALPHA,
) -> list[AlwaysValid]:
    """Every pair's always-valid comparison, in `paired`'s order. `labelled[arm]` = (correct,
    labelled). Paired traffic decides when there are at least as many paired outcomes as the
    smaller arm has labelled requests (the fixed-horizon report's rule), else independent traffic.
    Both designs' running states are updated at every look."""
    pairs = list(paired)
    level = alpha / max(len(pairs), 1)  # simultaneous confidence sequences over the pairs
    found: list[tuple[str, float, float, float]] = []
    for a, b in pairs:
        (ca, na), (cb, nb), table = labelled[a], labelled[b], paired[(a, b)]
        low, high = seq.independent_interval(ca, na, cb, nb, alpha=level)
        independent = counts.running("accuracy", a, b, "independent").update(
            seq.independent_p_value(ca, na, cb, nb), low, high)
        low, high = seq.paired_interval(table.only_a_right, table.only_b_right, table.total, alpha=level)
        paired_state = counts.running("accuracy", a, b, "paired").update(
            seq.paired_p_value(table.only_a_right, table.only_b_right), low, high)
        if na > 0 and nb > 0 and table.total < min(na, nb):
            found.append((INDEPENDENT, independent.p_value, independent.low, independent.high))
        elif table.total > 0:
            found.append((PAIRED, paired_state.p_value, paired_state.low, paired_state.high))
        else:
            found.append(("", 1.0, -1.0, 1.0))
    adjusted = seq.holm([p for _, p, _, _ in found])
    return [AlwaysValid(test, p, holm, low, high, 1 - level, alpha)
            for (test, p, low, high), holm in zip(found, adjusted)]


def latency_moments(traffic: ArmTraffic) -> tuple[float, float, float]:
    """(count, mean, variance) of an arm's in-server latency: the mean from the histogram's sum,
    the variance from bucket midpoints plus each bucket's own spread (width^2 / 12, as if uniform
    inside it; Sheppard), so requests that all fall in one bucket never give a variance of 0.
    The +Inf bucket counts at the highest finite bound, with that bound as its width."""
    if not traffic.buckets or traffic.buckets[-1][1] <= 0:
        return 0.0, 0.0, 0.0
    count = traffic.buckets[-1][1]
    lower, before, mids, widths, weights = 0.0, 0.0, [], [], []
    for bound, cumulative in traffic.buckets:
        mids.append(lower if math.isinf(bound) else (lower + bound) / 2)
        widths.append(lower if math.isinf(bound) else bound - lower)
        weights.append(cumulative - before)
        lower, before = (lower if math.isinf(bound) else bound), cumulative
    mid_mean = sum(m * w for m, w in zip(mids, weights)) / count
    variance = sum(w * ((m - mid_mean) ** 2 + h * h / 12) for m, h, w in zip(mids, widths, weights)) / count
    return count, traffic.latency_sum / count, variance


def guardrails(
    counts: ExperimentCounts,
    traffic: dict[str, ArmTraffic],
    latency_tolerance: float = LATENCY_TOLERANCE,
    error_tolerance: float = ERROR_TOLERANCE,
    alpha: float = seq.ALPHA,
) -> list[Guardrail]:
    """Latency and error-rate guardrails of every arm after the first against the first."""
    found = []
    base_name, *candidates = counts.arm_order
    base = traffic.get(base_name, ArmTraffic())
    nb, mean_b, var_b = latency_moments(base)
    for name in candidates:
        flow = traffic.get(name, ArmTraffic())
        nc, mean_c, var_c = latency_moments(flow)
        excess, low, high = seq.mean_excess_interval(mean_c, var_c, nc, mean_b, var_b, nb, latency_tolerance,
                                                     LATENCY_TAU, alpha)
        if min(nc, nb) < MIN_LATENCY_REQUESTS:  # too few for the normal approximation of a skewed mean
            low, high = -math.inf, math.inf
        state = counts.running("latency", name).update(1.0, low, high)
        found.append(Guardrail(name, base_name, "latency", mean_c, mean_b, latency_tolerance, excess,
                               state.low, state.high))
        rate_c = flow.errors / flow.requests if flow.requests else 0.0
        rate_b = base.errors / base.requests if base.requests else 0.0
        if flow.requests > 0 and base.requests > 0:
            low, high = seq.independent_interval(flow.errors, flow.requests, base.errors, base.requests, alpha=alpha)
            low, high = low - error_tolerance, high - error_tolerance
        else:
            low, high = -math.inf, math.inf
        state = counts.running("errors", name).update(1.0, low, high)
        found.append(Guardrail(name, base_name, "errors", rate_c, rate_b, error_tolerance,
                               rate_c - rate_b - error_tolerance, state.low, state.high))
    return found


def breaches(found: Sequence[Guardrail], arm: str) -> list[Guardrail]:
    """The guardrails of `arm` that are breached."""
    return [g for g in found if g.arm == arm and g.status == "breached"]
