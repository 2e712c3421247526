"""The rollout controller's looks over a 3-replica fleet, simulated: how often an A/A rollout (the
candidate is the stable model: same accuracy, errors and latency) ends in a decision other than
"no difference" — the false-decision rate, guardrails and the sample-ratio test included.

Usage (from the repository root):
    python bench/ab_fleet_rollout.py [--runs 2000] [--replicas 3] [--seed 0]

Each run is a rollout with the controller's own code (digits.experiments: comparison, fleet report,
`decide`): steps 10% -> 25% -> 50%, a step after 100 labelled candidate requests, the horizon at 1000.
Between looks `--batch` requests are spread at random over the replicas and routed by the current
weights; each is labelled (accuracy 90%), fails with probability 1%, and takes a log-normal time
counted in the server's latency buckets. Two controllers, each on its own runs of such traffic:

- fleet: every look is the fleet's totals (what `--prometheus` reads: the replicas' counters summed),
  folded into the controller's running state (running minimum p, intersected intervals);
- one replica per look (the old controller behind a balancer): every look lands on a random replica,
  which holds only its share and its own running state, and the step counter mixes replicas.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "client/src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ab_peeking import wilson
from digits.experiments import always_valid as av
from digits.experiments import sample_ratio
from digits.experiments.fleet_report import FleetCounts, build_fleet_report
from digits.experiments.rollout import FINAL, Policy, decide
from digits.experiments.sequential import Running
from digits.v1 import digits_pb2

BUCKETS = (0.0005, 0.001, 0.0015, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, math.inf)
POLICY = Policy(steps=(10, 25, 50), step_labelled=100, horizon=1000)
CONTROLLERS = ("fleet", "replica")


@dataclass
class Replica:
    """What one replica counted, and (for the one-replica controller) its running state."""

    counts: FleetCounts = field(default_factory=FleetCounts)
    running: dict[tuple[str, ...], Running] = field(default_factory=dict)
    srm: sample_ratio.SampleRatio = field(default_factory=sample_ratio.SampleRatio)


def fold_into(running: dict[tuple[str, ...], Running]) -> av.Fold:
    def fold(key: tuple[str, ...], p: float, low: float, high: float) -> tuple[float, float, float]:
        state = running.setdefault(key, Running()).update(p, low, high)
        return state.p_value, state.low, state.high

    return fold


def experiment(weight: float) -> digits_pb2.Experiment:
    message = digits_pb2.Experiment(name="aa", shadow_percent=0, paused=False)
    message.arms.add(name="stable", weight=100 - weight)
    message.arms.add(name="candidate", weight=weight)
    return message


def add_traffic(counts: FleetCounts, arm: str, rng: np.random.Generator, n: int, accuracy: float) -> None:
    """n labelled requests of one arm into the counts."""
    if n == 0:
        return
    counts.labelled[arm] = counts.labelled.get(arm, 0) + n
    counts.correct[arm] = counts.correct.get(arm, 0) + int(rng.binomial(n, accuracy))
    counts.requests[arm] = counts.requests.get(arm, 0) + n
    counts.errors[arm] = counts.errors.get(arm, 0) + int(rng.binomial(n, 0.01))
    seconds = rng.lognormal(math.log(0.002), 0.5, n)
    cumulative = np.searchsorted(np.sort(seconds), BUCKETS, side="right")
    before = dict(counts.buckets.get(arm, [(b, 0) for b in BUCKETS]))
    counts.buckets[arm] = [(b, before[b] + float(c)) for b, c in zip(BUCKETS, cumulative)]
    counts.latency_sum[arm] = counts.latency_sum.get(arm, 0.0) + float(seconds.sum())


def summed(replicas: list[Replica]) -> FleetCounts:
    total = FleetCounts()
    for replica in replicas:
        for name in ("labelled", "correct", "requests", "errors", "latency_sum"):
            for arm, value in getattr(replica.counts, name).items():
                getattr(total, name)[arm] = getattr(total, name).get(arm, 0) + value
        for arm, buckets in replica.counts.buckets.items():
            mine = dict(total.buckets.get(arm, [(b, 0) for b in BUCKETS]))
            total.buckets[arm] = [(b, mine[b] + c) for b, c in buckets]
    return total


def look(counts: FleetCounts, weight: float, running: dict, srm: sample_ratio.SampleRatio, clock: float):
    message = experiment(weight)
    guard = sample_ratio.guardrail(srm, "stable", {"stable": 100 - weight, "candidate": weight}, counts.labelled,
                                   False, clock)
    return build_fleet_report(message, counts, "simulation", fold=fold_into(running), extra_guardrails=[guard])


def one_run(rng: np.random.Generator, replicas: int, batch: int, controllers: tuple[str, ...] = CONTROLLERS,
            accuracy: float = 0.9, max_looks: int = 400) -> dict[str, str]:
    """{controller: its final decision} of an A/A rollout ("fleet" and/or "replica")."""
    fleet = [Replica() for _ in range(replicas)]
    outcomes = {}
    for who in controllers:
        step, at_step = 0, 0
        for replica in fleet:
            replica.counts, replica.running, replica.srm = FleetCounts(), {}, sample_ratio.SampleRatio()
        fleet_state, fleet_srm = {}, sample_ratio.SampleRatio()
        decision = "hold"
        for moment in range(max_looks):
            weight = POLICY.steps[step]
            per_replica = rng.multinomial(batch, [1 / replicas] * replicas)
            for replica, n in zip(fleet, per_replica):
                n_candidate = int(rng.binomial(n, weight / 100))
                add_traffic(replica.counts, "candidate", rng, n_candidate, accuracy)
                add_traffic(replica.counts, "stable", rng, n - n_candidate, accuracy)
            if who == "fleet":
                report = look(summed(fleet), weight, fleet_state, fleet_srm, moment)
            else:
                seen = fleet[int(rng.integers(replicas))]
                report = look(seen.counts, weight, seen.running, seen.srm, moment)
            made = decide(report, "stable", "candidate", POLICY, step, at_step)
            if made.decision == "step":
                step, at_step = step + 1, {a.arm: a.labelled for a in report.arms}["candidate"]
            elif made.decision in FINAL:
                decision = made.decision
                break
        outcomes[who] = decision
    return outcomes


@dataclass
class Rates:
    """Final decisions of A/A rollouts by controller."""

    runs: int
    fleet: dict[str, int]
    replica: dict[str, int]

    def false(self, who: str) -> int:
        """Runs that ended in promote or rollback (an A/A has no difference to find)."""
        found = getattr(self, who)
        return found.get("promote", 0) + found.get("rollback", 0)


def simulate(runs: int, replicas: int = 3, batch: int = 60, seed: int = 0,
             controllers: tuple[str, ...] = CONTROLLERS) -> Rates:
    """`runs` A/A rollouts with fixed-seed traffic; the final decisions' counts by controller."""
    rng = np.random.default_rng(seed)
    rates = Rates(runs, {}, {})
    for _ in range(runs):
        for who, decision in one_run(rng, replicas, batch, controllers).items():
            found = getattr(rates, who)
            found[decision] = found.get(decision, 0) + 1
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--batch", type=int, default=60, help="requests between looks (default 60)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rates = simulate(args.runs, args.replicas, args.batch, args.seed)
    print(f"A/A rollouts over {args.replicas} replicas: {rates.runs} runs, steps {list(POLICY.steps)}%, a step every "
          f"{POLICY.step_labelled} labelled candidate requests, horizon {POLICY.horizon}; {args.batch} requests "
          f"between looks; alpha {POLICY.alpha} (guardrails alpha/2 over {av.GUARDRAILS_PER_CANDIDATE} guardrails, sample ratio "
          f"{sample_ratio.SRM_ALPHA})")
    for who, label in (("fleet", "fleet totals (--prometheus), running state"),
                       ("replica", "one replica per look (the old controller behind a balancer)")):
        found = getattr(rates, who)
        false = rates.false(who)
        low, high = wilson(false, rates.runs)
        print(f"  {label}: false decisions {false}/{rates.runs} = {false / rates.runs:.2%} "
              f"(95% CI {low:.2%}-{high:.2%}); {dict(sorted(found.items()))}")
    print(f"({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
