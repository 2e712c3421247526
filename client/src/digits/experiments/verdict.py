"""The verdict of an A/B pair in plain words, shared by the server's report (GetExperimentReport)
and the client's fleet report (`digits ab report --prometheus`) so both say the same thing:
the fixed-horizon one (z-test or McNemar, valid for one look at a planned sample size) and the
always-valid one (mSPRT, Holm-adjusted, guardrails first; valid at every look)."""

from __future__ import annotations

from collections.abc import Sequence

from digits.experiments.always_valid import AlwaysValid, Guardrail, breaches
from digits.experiments.statistics import Comparison

ALPHA = 0.05  # significance level of every pair's test
POWER = 0.8  # the power "more labelled requests needed" is computed for
ALWAYS_VALID = "always-valid"
FIXED_HORIZON = "fixed-horizon"


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


def always_valid_verdict(arm_a: str, arm_b: str, valid: AlwaysValid, breached: Sequence[Guardrail]) -> str:
    """The always-valid verdict: a guardrail breach first (never reported as an accuracy loss),
    then a difference at family-wise level alpha (Holm), else 'no difference shown yet'."""
    if breached:
        return f"guardrail breached: {', '.join(g.metric for g in breached)} ({arm_b} vs {arm_a})"
    if not valid.test:
        return "no labelled traffic yet: send true labels (or Feedback) to compare accuracy"
    interval = f"[{valid.low * 100:+.1f}, {valid.high * 100:+.1f}] points"
    if valid.significant:
        winner, loser = (arm_a, arm_b) if valid.low > 0 else (arm_b, arm_a)
        return (f"{winner} beats {loser}: a - b in {interval}, always-valid {format_p(valid.p_holm)} "
                f"(Holm-adjusted, {valid.test})")
    return f"no difference shown yet (always-valid {format_p(valid.p_holm)}, {valid.test}); a - b in {interval}"


def pair_verdicts(
    arm_a: str, arm_b: str, baseline_arm: str, comparison: Comparison, valid: AlwaysValid,
    guards: Sequence[Guardrail], basis: str = ALWAYS_VALID,
) -> tuple[str, str]:
    """(the verdict on `basis`, the fixed-horizon verdict) of a pair; a guardrail breach of arm b
    counts only in pairs with the baseline (the first arm) as arm a."""
    fixed = verdict(arm_a, arm_b, comparison)
    if basis != ALWAYS_VALID:
        return fixed, fixed
    breached = breaches(guards, arm_b) if arm_a == baseline_arm else []
    return always_valid_verdict(arm_a, arm_b, valid, breached), fixed
