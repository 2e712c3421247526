"""The verdict of an A/B pair in plain words, shared by the server's report (GetExperimentReport)
and the client's fleet report (`digits ab report --prometheus`) so both say the same thing."""

from __future__ import annotations

from digits.experiments.statistics import Comparison

ALPHA = 0.05  # significance level of every pair's test
POWER = 0.8  # the power "more labelled requests needed" is computed for


def format_p(p: float) -> str:
    """'p < 0.001' or 'p = 0.042'."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def verdict(arm_a: str, arm_b: str, comparison: Comparison) -> str:
    """The comparison in plain words, e.g. 'lstm beats rnn by 4.1 points, p < 0.001 (z-test)'."""
    if not comparison.test:
        return "no labelled traffic yet: send true labels (or Feedback) to compare accuracy"
    if comparison.significant:
        winner, loser = (arm_a, arm_b) if comparison.difference > 0 else (arm_b, arm_a)
        points = abs(comparison.difference) * 100
        return f"{winner} beats {loser} by {points:.1f} points, {format_p(comparison.p_value)} ({comparison.test})"
    return (
        f"no significant difference yet ({format_p(comparison.p_value)}, {comparison.test}); about "
        f"{comparison.more_needed_per_arm:,} more labelled requests per arm needed for {POWER:.0%} power"
    )
