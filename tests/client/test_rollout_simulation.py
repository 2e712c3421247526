"""A fixed-seed simulation of the rollout controller's looks over a 3-replica fleet (the small version of
bench/ab_fleet_rollout.py, which prints the full one for docs/ab-decisions.md): with every look at the
fleet's totals (`--prometheus`), A/A rollouts — guardrails and the sample-ratio test included — end in
a decision other than "no difference" in at most 5% of the runs."""

from __future__ import annotations

from bench.ab_fleet_rollout import simulate


def test_a_a_rollouts_on_the_fleets_totals_rarely_decide() -> None:
    rates = simulate(runs=120, replicas=3, batch=100, seed=0, controllers=("fleet",))
    assert sum(rates.fleet.values()) == 120
    assert rates.false("fleet") / rates.runs <= 0.05, rates.fleet
    assert rates.fleet.get("no-difference", 0) >= 114  # the rest: promote or rollback, never stuck holding
