"""Why peeking breaks the classical A/B tests, and what the always-valid ones cost: a simulation.

Usage (from the repository root):
    python bench/ab_peeking.py [--experiments 2000] [--step 50] [--horizon 5000] [--seed 0]

A/A: both arms at 95% accuracy, looked at after every `step` labelled requests per arm up to
`horizon` per arm. "False positive" = some look declared a difference: the fixed-horizon pooled
z-test at p < 0.05, or the always-valid mSPRT (digits.experiments.sequential) at p <= 0.05.
Also the paired design (shadowed requests; both arms see the same images) with McNemar's test
against the exact beta-binomial mixture SPRT on discordant pairs.

Power: arm a at 95%, arm b at 92% (a 3-point difference), same looks; reports the share of runs
the always-valid test detects (with the right sign) by the horizon, and the labelled requests per
arm by which 80% of runs have stopped, against the fixed-horizon z-test's sample size for 80%
power (Fleiss' formula, checked by simulation). Everything is vectorised with numpy.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "client/src"))

from digits.experiments import sequential  # noqa: E402

Z_95 = 1.959963984540054  # two-sided 5%


def wilson(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return centre - half, centre + half


def cumulative_counts(rng: np.random.Generator, experiments: int, looks: int, step: int, p: float) -> np.ndarray:
    """Correct predictions of one arm at each look: [experiments, looks]."""
    return rng.binomial(step, p, size=(experiments, looks)).cumsum(axis=1)


def z_rejects(ca: np.ndarray, cb: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Pooled two-proportion z-test at p < 0.05, equal n per arm, elementwise."""
    pooled = (ca + cb) / (2 * n)
    variance = pooled * (1 - pooled) * 2 / n
    z = np.divide(ca / n - cb / n, np.sqrt(variance), out=np.zeros_like(variance), where=variance > 0)
    return np.abs(z) > Z_95


def mcnemar_rejects(b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """McNemar's chi-square (continuity corrected) at p < 0.05 (chi2_1 quantile 3.841)."""
    m = b + c
    statistic = np.divide((np.abs(b - c) - 1.0) ** 2, m, out=np.zeros(m.shape), where=m > 0)
    return statistic > Z_95**2


@dataclass(frozen=True)
class Peeking:
    """Share of experiments declared different at some look, per test."""

    experiments: int
    always_valid: int
    z_peeking: int
    z_once: int  # the z-test looked at once, at the horizon
    paired_always_valid: int
    mcnemar_peeking: int


def simulate_aa(rng: np.random.Generator, experiments: int, step: int = 50, horizon: int = 5000,
                p: float = 0.95, discordant: float = 0.04) -> Peeking:
    """A/A experiments: independent arms at accuracy p, and paired ones with `discordant` share of
    pairs split evenly between only-a-right and only-b-right."""
    looks = horizon // step
    n = np.arange(1, looks + 1) * step
    ca, cb = cumulative_counts(rng, experiments, looks, step, p), cumulative_counts(rng, experiments, looks, step, p)
    always = np.minimum.accumulate(sequential.independent_p_value(ca, n, cb, n), axis=1) <= sequential.ALPHA
    z = z_rejects(ca, cb, n)
    outcomes = rng.multinomial(step, [discordant / 2, discordant / 2, 1 - discordant], size=(experiments, looks))
    b, c = outcomes[..., 0].cumsum(axis=1), outcomes[..., 1].cumsum(axis=1)
    paired = np.minimum.accumulate(sequential.paired_p_value(b, c), axis=1) <= sequential.ALPHA
    return Peeking(experiments, int(always.any(axis=1).sum()), int(z.any(axis=1).sum()), int(z[:, -1].sum()),
                   int(paired.any(axis=1).sum()), int(mcnemar_rejects(b, c).any(axis=1).sum()))


def simulate_rollout_aa(rng: np.random.Generator, experiments: int, p: float = 0.95) -> int:
    """A/A under a rollout's changing allocation: the candidate gets 5% of 100 requests per look for
    20 looks, then 20% for 20, then 50% for 60 (10,000 requests); how many runs falsely decide."""
    share = np.r_[np.full(20, 0.05), np.full(20, 0.2), np.full(60, 0.5)]
    candidate = (100 * share).astype(int)
    stable = 100 - candidate
    ca = rng.binomial(stable, p, size=(experiments, len(share))).cumsum(axis=1)
    cb = rng.binomial(candidate, p, size=(experiments, len(share))).cumsum(axis=1)
    p_values = sequential.independent_p_value(ca, stable.cumsum(), cb, candidate.cumsum())
    return int((np.minimum.accumulate(p_values, axis=1)[:, -1] <= sequential.ALPHA).sum())


@dataclass(frozen=True)
class Power:
    """How often and how soon a real difference is found."""

    experiments: int
    detected: int  # by the always-valid test, right sign, by the horizon
    wrong_sign: int
    n_80: float  # labelled requests per arm by which 80% of runs stopped (inf if fewer than 80% ever did)
    median_n: float
    fixed_n: int  # fixed-horizon z-test sample size per arm for 80% power (Fleiss)
    fixed_power: float  # simulated power of the z-test looked at once at the look nearest fixed_n


def fleiss_n(p_a: float, p_b: float, power_z: float = 0.8416212335729143) -> int:
    """Per-arm sample size of the two-sided 5% two-proportion test for 80% power (Fleiss et al. 2003)."""
    mean = (p_a + p_b) / 2
    root = Z_95 * math.sqrt(2 * mean * (1 - mean)) + power_z * math.sqrt(p_a * (1 - p_a) + p_b * (1 - p_b))
    return math.ceil(root**2 / (p_a - p_b) ** 2)


def simulate_power(rng: np.random.Generator, experiments: int, step: int = 50, horizon: int = 5000,
                   p_a: float = 0.95, p_b: float = 0.92) -> Power:
    """Arms at p_a and p_b, looked at every `step` labelled requests per arm."""
    looks = horizon // step
    n = np.arange(1, looks + 1) * step
    ca = cumulative_counts(rng, experiments, looks, step, p_a)
    cb = cumulative_counts(rng, experiments, looks, step, p_b)
    rejects = np.minimum.accumulate(sequential.independent_p_value(ca, n, cb, n), axis=1) <= sequential.ALPHA
    first = np.where(rejects.any(axis=1), rejects.argmax(axis=1), -1)
    rows = np.arange(experiments)
    sign = np.where(first >= 0, np.sign(ca[rows, first] - cb[rows, first]), 0)
    stop = np.where(first >= 0, n[np.maximum(first, 0)], np.inf)
    fixed = fleiss_n(p_a, p_b)
    at = min(int(round(fixed / step)), looks) - 1
    fixed_power = float(z_rejects(ca[:, at], cb[:, at], n[at]).mean())
    return Power(experiments, int((sign > 0).sum()), int((sign < 0).sum()), float(np.quantile(stop, 0.8)),
                 float(np.quantile(stop, 0.5)), fixed, fixed_power)


def _rate(label: str, hits: int, total: int) -> str:
    low, high = wilson(hits, total)
    return f"  {label:<58} {hits / total:6.1%}  (95% Wilson [{low:.1%}, {high:.1%}], {hits}/{total})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", type=int, default=2000)
    parser.add_argument("--step", type=int, default=50)
    parser.add_argument("--horizon", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    aa = simulate_aa(rng, args.experiments, args.step, args.horizon)
    power = simulate_power(rng, args.experiments, args.step, args.horizon)
    looks = args.horizon // args.step
    print(f"A/A: {aa.experiments} experiments at 95% accuracy, {looks} looks (every {args.step} labelled "
          f"requests per arm up to {args.horizon}); tau = {sequential.TAU}, "
          f"paired prior Beta({sequential.PAIRED_PRIOR:g}, {sequential.PAIRED_PRIOR:g})")
    print("false-positive rate (some look said 'different'):")
    print(_rate("always-valid mSPRT, independent traffic, every look", aa.always_valid, aa.experiments))
    print(_rate("fixed-horizon z-test, independent traffic, every look", aa.z_peeking, aa.experiments))
    print(_rate("fixed-horizon z-test, looked at once (at the horizon)", aa.z_once, aa.experiments))
    print(_rate("always-valid beta-binomial mSPRT, paired (4% discordant)", aa.paired_always_valid, aa.experiments))
    print(_rate("fixed-horizon McNemar test, paired, every look", aa.mcnemar_peeking, aa.experiments))
    print(f"power: 95% vs 92% accuracy, {power.experiments} experiments, same looks")
    print(_rate("always-valid mSPRT detects it (right sign) by the horizon", power.detected, power.experiments))
    print(f"  wrong-sign detections: {power.wrong_sign}")
    print(f"  labelled requests per arm by which 80% of runs stopped: {power.n_80:,.0f} (median {power.median_n:,.0f})")
    print(f"  fixed-horizon z-test at 80% power needs {power.fixed_n:,} per arm (Fleiss); simulated power "
          f"at that n, looked at once: {power.fixed_power:.1%}")
    print(f"  ratio always-valid / fixed-horizon at 80% power: {power.n_80 / power.fixed_n:.2f}")
    print("robustness of the plug-in variance: A/A false-positive rate at other accuracies "
          "(always-valid vs z-test, every look)")
    for accuracy in (0.5, 0.8, 0.99):
        other = simulate_aa(rng, args.experiments, args.step, args.horizon, p=accuracy)
        print(_rate(f"always-valid at {accuracy:.0%} (z-test: {other.z_peeking / other.experiments:.1%})",
                    other.always_valid, other.experiments))
    print(_rate("always-valid at 95%, rollout allocation 5% -> 20% -> 50%, every 100 requests",
                simulate_rollout_aa(rng, args.experiments), args.experiments))
    print(f"({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
