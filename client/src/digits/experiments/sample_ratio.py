"""Sample-ratio mismatch (SRM): are the arms' observed counts what their configured weights say?

An anytime-valid multinomial test (Lindon & Malek 2022, "Anytime-valid inference for multinomial
count data"): under H0 the counts are Multinomial(n, theta0) with theta0 the weights' shares; the
Dirichlet(k * theta0) mixture gives the Bayes factor

    BF = B(k theta0 + x) / B(k theta0) / prod theta0_i^x_i       (B the multivariate beta function)

a nonnegative martingale under H0, so p = 1 / max BF is valid at every look (Ville). The same formula
as the authors' package (PyPI `savvi`, `Multinomial(alpha, theta_0, k=100).odds`; the tests check it
against it), without its cvxpy/matplotlib imports.

Weights change during a rollout. Each period of constant weights is a fresh test on the counts since
the period's baseline, and the e-values of the periods multiply (a product of martingales each started
at a stopping time is a test martingale): `SampleRatio` keeps that product across looks. A period's
baseline is the first look at least `settle` seconds after the change was seen (a fleet's replicas
and Prometheus' scrapes catch up meanwhile; what falls between is left out, never misattributed).
Arms of weight 0 are left out; a paused experiment (all to the first arm) is not tested.
Pure (math only).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from digits.experiments.always_valid import Guardrail

CONCENTRATION = 100.0  # k of the Dirichlet(k * theta0) prior (savvi's default)
SRM_ALPHA = 0.01  # a breach only holds a rollout (never decides it): a stricter level, fewer stalls
METRIC = "sample-ratio"


def log_bayes_factor(counts: Sequence[float], shares: Sequence[float], k: float = CONCENTRATION) -> float:
    """log BF of the Dirichlet-multinomial mixture against Multinomial(shares) (shares > 0, sum 1)."""
    prior = [k * s for s in shares]

    def log_beta(values: Sequence[float]) -> float:
        return sum(math.lgamma(v) for v in values) - math.lgamma(sum(values))

    posterior = [a + x for a, x in zip(prior, counts)]
    return log_beta(posterior) - log_beta(prior) - sum(x * math.log(s) for x, s in zip(counts, shares))


@dataclass
class SampleRatio:
    """The running SRM test of one experiment across looks and weight changes."""

    settle: float = 0.0  # seconds after a weight change before the new period's baseline
    weights: tuple[tuple[str, float], ...] | None = None  # the current period's (arm, weight > 0)
    changed_at: float = 0.0
    baseline: dict[str, float] | None = None  # counts at the period's start; None while settling
    log_e_done: float = 0.0  # log of the product of the finished periods' e-values
    log_e_period: float = 0.0  # the current period's log BF at the last look
    max_log_e: float = 0.0  # the running maximum of the product
    period: dict[str, float] = field(default_factory=dict)  # the current period's counts at the last look

    def look(self, weights: Mapping[str, float], counts: Mapping[str, float], paused: bool, now: float) -> float:
        """Fold one look in; the always-valid p-value (1 / running max of the e-process, capped at 1)."""
        positive = tuple((arm, float(w)) for arm, w in weights.items() if w > 0)
        if paused or len(positive) < 2:
            positive = ()
        if positive != self.weights:
            self.log_e_done += self.log_e_period
            self.weights, self.changed_at, self.baseline = positive, now, None
            self.log_e_period, self.period = 0.0, {}
        if self.weights and self.baseline is None and now - self.changed_at >= self.settle:
            self.baseline = {arm: counts.get(arm, 0) for arm, _ in self.weights}
        if self.weights and self.baseline is not None:
            total = sum(w for _, w in self.weights)
            self.period = {arm: max(counts.get(arm, 0) - self.baseline[arm], 0) for arm, _ in self.weights}
            self.log_e_period = log_bayes_factor([self.period[arm] for arm, _ in self.weights],
                                                 [w / total for _, w in self.weights])
        self.max_log_e = max(self.max_log_e, self.log_e_done + self.log_e_period)
        return min(1.0, math.exp(-self.max_log_e))

    def worst_arm(self) -> tuple[str, float, float]:
        """(arm, observed share, configured share) of the arm furthest below its share in this period
        (relative to it): the arm losing requests or labels, the usual cause of a mismatch."""
        if not self.weights:
            return "", 0.0, 0.0
        total_w = sum(w for _, w in self.weights)
        total_n = sum(self.period.values())
        found = [(arm, self.period.get(arm, 0) / total_n if total_n else w / total_w, w / total_w)
                 for arm, w in self.weights]
        return min(found, key=lambda item: item[1] / item[2])


def guardrail(state: SampleRatio, baseline_arm: str, weights: Mapping[str, float], labelled: Mapping[str, float],
              paused: bool, now: float, alpha: float = SRM_ALPHA) -> Guardrail:
    """One look of the SRM test on the arms' labelled counts, as a guardrail of the experiment: `arm` the
    arm furthest below its share, `value` / `baseline_value` its observed / configured share in the current
    period, `excess` their difference; `excess_low` = log(max e) - log(1/alpha), above 0 when breached
    (p <= alpha), `excess_high` inf (a ratio that holds is never proven: 'undecided' at best)."""
    p_value = state.look(weights, labelled, paused, now)
    arm, observed, expected = state.worst_arm()
    margin = state.max_log_e - math.log(1 / alpha)
    if p_value > alpha:
        margin = min(margin, 0.0)
    return Guardrail(arm or baseline_arm, baseline_arm, METRIC, observed, expected, 0.0, observed - expected,
                     margin, math.inf)
