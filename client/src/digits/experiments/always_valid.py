"""The always-valid half of an A/B report, shared by the server's GetExperimentReport and the client's
fleet report (`digits ab report --prometheus`): per pair of arms the mixture SPRT p-value
(Holm-adjusted over the pairs) and the confidence sequence of the accuracy difference; per
candidate arm the latency and error-rate guardrails against the baseline (the first arm).

Pure (numpy + math through sequential.py; no scipy, no gRPC). One call is one look: `fold`
receives every statistic's value at this look under a key — ("accuracy", a, b, design),
("latency", arm), ("errors", arm) — and returns what to report. The server folds them into running
state kept with the experiment's counts (running minimum p, intersected intervals); the default,
`one_look`, reports the look as it is, which is valid at any look too, only never narrower.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from digits.experiments import sequential as seq

if TYPE_CHECKING:
    from digits.experiments.statistics import PairedOutcomes

LATENCY_TOLERANCE = 0.5  # candidate mean latency <= 1.5 x the baseline's
ERROR_TOLERANCE = 0.01  # candidate error rate <= the baseline's + 1 point
LATENCY_TAU = 0.001  # seconds: the latency mixture is tuned for excesses of about a millisecond
MIN_LATENCY_REQUESTS = 30  # per arm, before the latency guardrail can decide
GUARDRAIL_SHARE = 0.5  # of alpha, for all guardrails together (Bonferroni over them): see guardrail_level
# Per candidate: latency, errors, and the label-free estimated accuracy (label_free.py; used by a rollout
# only with --max-estimated-drop, but its share is always set aside so enabling it keeps the bound).
GUARDRAILS_PER_CANDIDATE = 3
INDEPENDENT = "mSPRT (independent traffic)"
PAIRED = "mSPRT (paired, discordant pairs)"
RUNNING_LOOKS = (
    "p-values are running minima over the report's looks, Holm-adjusted over the pairs; confidence sequences "
    "(Howard et al. 2021 normal mixture) are running intersections at 1 - alpha/pairs"
)
ONE_LOOK = (
    "p-values are this look's (no state kept between looks: valid at every look, never below a running minimum), "
    "Holm-adjusted over the pairs; confidence sequences (Howard et al. 2021 normal mixture) are this look's "
    "interval at 1 - alpha/pairs (never narrower than a running intersection)"
)


def describe(looks: str = RUNNING_LOOKS) -> str:
    """The report's `method`: the always-valid tests and parameters in words; `looks` says how looks combine."""
    return (
        f"always-valid: accuracy difference by the normal-mixture SPRT (Johari, Pekelis & Walsh 2017; "
        f"tau = {seq.TAU}, plug-in variance from add-one-smoothed proportions) on independent traffic, or by the "
        f"beta-binomial mixture SPRT on discordant pairs (Beta({seq.PAIRED_PRIOR:g}, {seq.PAIRED_PRIOR:g}) prior, "
        f"exact) on paired traffic; {looks}. "
        f"Guardrails vs the first arm: mean latency <= (1 + {LATENCY_TOLERANCE:g}) x baseline (tau = "
        f"{LATENCY_TAU * 1e3:g} ms, variance from the histogram's buckets, from {MIN_LATENCY_REQUESTS} requests "
        f"per arm), error rate <= baseline + {ERROR_TOLERANCE:g}; breached when the excess's confidence sequence "
        f"(at 1 - {GUARDRAIL_SHARE:g} alpha / guardrails: Bonferroni over the {GUARDRAILS_PER_CANDIDATE} x candidates "
        f"guardrails, the third the estimated-accuracy one a rollout may use without labels) is above 0"
    )


METHOD = describe(RUNNING_LOOKS)  # the server's report (GetExperimentReport)
Fold = Callable[[tuple[str, ...], float, float, float], tuple[float, float, float]]


def one_look(key: tuple[str, ...], p_value: float, low: float, high: float) -> tuple[float, float, float]:
    """The Fold of a report that keeps no state between looks: this look's values as they are."""
    return p_value, low, high


@dataclass(frozen=True)
class ArmTraffic:
    """An arm's RPCs from the request metrics: count, errors, cumulative latency buckets and sum."""

    requests: float = 0.0
    errors: float = 0.0
    buckets: tuple[tuple[float, float], ...] = ()  # (upper bound, cumulative count), +Inf last
    latency_sum: float = 0.0  # seconds, the histogram's _sum

    def minus(self, earlier: "ArmTraffic") -> "ArmTraffic":
        """The traffic since an earlier snapshot."""
        before = dict(earlier.buckets)
        return ArmTraffic(
            self.requests - earlier.requests,
            self.errors - earlier.errors,
            tuple((bound, count - before.get(bound, 0.0)) for bound, count in self.buckets),
            self.latency_sum - earlier.latency_sum,
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
    labelled: Mapping[str, tuple[int, int]],
    paired: Mapping[tuple[str, str], PairedOutcomes],
    alpha: float = seq.ALPHA,
    fold: Fold = one_look,
) -> list[AlwaysValid]:
    """Every pair's always-valid comparison, in `paired`'s order. `labelled[arm]` = (correct,
    labelled). Paired traffic decides when there are at least as many paired outcomes as the
    smaller arm has labelled requests (the fixed-horizon report's rule), else independent traffic.
    Both designs are folded at every look."""
    pairs = list(paired)
    level = alpha / max(len(pairs), 1)  # simultaneous confidence sequences over the pairs
    found: list[tuple[str, float, float, float]] = []
    for a, b in pairs:
        (ca, na), (cb, nb), table = labelled[a], labelled[b], paired[(a, b)]
        low, high = seq.independent_interval(ca, na, cb, nb, alpha=level)
        independent = fold(("accuracy", a, b, "independent"), seq.independent_p_value(ca, na, cb, nb), low, high)
        low, high = seq.paired_interval(table.only_a_right, table.only_b_right, table.total, alpha=level)
        paired_look = fold(("accuracy", a, b, "paired"),
                           seq.paired_p_value(table.only_a_right, table.only_b_right), low, high)
        if na > 0 and nb > 0 and table.total < min(na, nb):
            found.append((INDEPENDENT, *independent))
        elif table.total > 0:
            found.append((PAIRED, *paired_look))
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


def guardrail_level(alpha: float, candidates: int) -> float:
    """The level of each guardrail (latency, error rate, estimated accuracy without labels): GUARDRAIL_SHARE
    of alpha split over the GUARDRAILS_PER_CANDIDATE x candidates guardrails, so all of them together
    breach falsely with probability <= alpha / 2. With the
    accuracy test's false "worse" (<= alpha / 2 in an A/A: half of its two-sided alpha, by symmetry), a
    false rollback has probability <= alpha."""
    return GUARDRAIL_SHARE * alpha / max(GUARDRAILS_PER_CANDIDATE * candidates, 1)


def guardrails(
    arm_order: Sequence[str],
    traffic: Mapping[str, ArmTraffic],
    latency_tolerance: float = LATENCY_TOLERANCE,
    error_tolerance: float = ERROR_TOLERANCE,
    alpha: float = seq.ALPHA,
    fold: Fold = one_look,
) -> list[Guardrail]:
    """Latency and error-rate guardrails of every arm after the first against the first, each at
    `guardrail_level(alpha, candidates)`."""
    found = []
    base_name, *candidates = arm_order
    alpha = guardrail_level(alpha, len(candidates))
    base = traffic.get(base_name, ArmTraffic())
    nb, mean_b, var_b = latency_moments(base)
    for name in candidates:
        flow = traffic.get(name, ArmTraffic())
        nc, mean_c, var_c = latency_moments(flow)
        excess, low, high = seq.mean_excess_interval(mean_c, var_c, nc, mean_b, var_b, nb, latency_tolerance,
                                                     LATENCY_TAU, alpha)
        if min(nc, nb) < MIN_LATENCY_REQUESTS:  # too few for the normal approximation of a skewed mean
            low, high = -math.inf, math.inf
        _, low, high = fold(("latency", name), 1.0, low, high)
        found.append(Guardrail(name, base_name, "latency", mean_c, mean_b, latency_tolerance, excess, low, high))
        rate_c = flow.errors / flow.requests if flow.requests else 0.0
        rate_b = base.errors / base.requests if base.requests else 0.0
        if flow.requests > 0 and base.requests > 0:
            low, high = seq.independent_interval(flow.errors, flow.requests, base.errors, base.requests, alpha=alpha)
            low, high = low - error_tolerance, high - error_tolerance
        else:
            low, high = -math.inf, math.inf
        _, low, high = fold(("errors", name), 1.0, low, high)
        found.append(Guardrail(name, base_name, "errors", rate_c, rate_b, error_tolerance,
                               rate_c - rate_b - error_tolerance, low, high))
    return found


def breaches(found: Sequence[Guardrail], arm: str) -> list[Guardrail]:
    """The guardrails of `arm` that are breached."""
    return [g for g in found if g.arm == arm and g.status == "breached"]
