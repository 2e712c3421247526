"""A progressive rollout controller (like Flagger's canary analysis, but on always-valid statistics):
a candidate arm starts at a small weight and steps up while its guardrails hold; it is promoted
when the server's sequential test shows it better (or, with a margin, not worse by more than the
margin), and rolled back when it is worse or breaks a guardrail.

It reads one report per look and acts through the admin RPCs (``UpdateExperiment``,
``SetVersionLabel``, ``RecordRolloutDecision``), so with replicas sharing one ``--model-config``
file every change goes through that file. ``decide`` is pure: one report in, one decision out.

Where the reports come from (`Looks`): `ServerLooks` reads one server's ``GetExperimentReport``,
which is the whole experiment only when one server serves it. Every report names the process
that answered (`server_id`): a controller that sees two is behind a balancer in front of a fleet
and refuses (FleetError) rather than decide on one replica's share. For a fleet, `FleetLooks`
(fleet_rollout.py, ``digits ab rollout --prometheus URL``) reads the fleet's exact totals.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from digits.client import DigitsClient
from digits.errors import UnavailableError
from digits.experiments import label_free
from digits.experiments.sample_ratio import METRIC as SAMPLE_RATIO
from digits.v1 import digits_pb2

__all__ = ["Decision", "FleetError", "Looks", "Policy", "Rollout", "ServerLooks", "decide"]

STEP, HOLD, PROMOTE, ROLLBACK, NO_DIFFERENCE = "step", "hold", "promote", "rollback", "no-difference"
FINAL = (PROMOTE, ROLLBACK, NO_DIFFERENCE)


@dataclass(frozen=True)
class Policy:
    """How a rollout proceeds. Weights are the candidate's percentages of traffic, in order."""

    steps: Sequence[float] = (5, 10, 25, 50)
    step_labelled: int = 200  # labelled candidate requests at a weight before the next step
    margin: float = 0.0  # non-inferiority margin (accuracy, e.g. 0.01); 0: the candidate must be better
    horizon: int = 5000  # labelled candidate requests after which it ends "no difference"
    alpha: float = 0.05  # family-wise level of the always-valid tests (Holm-adjusted p-values)
    # Label-free guardrail (0: off): roll back when the candidate's estimated accuracy (CBPE, no labels)
    # is surely more than this far below stable's, e.g. 0.05 for 5 points (label_free.py).
    max_estimated_drop: float = 0.0


@dataclass(frozen=True)
class Decision:
    """What to do now, and why."""

    decision: str  # STEP, HOLD, PROMOTE, ROLLBACK or NO_DIFFERENCE
    reason: str
    weight: float  # the candidate's weight after it


def _pair(report: digits_pb2.ExperimentReport, stable: str, candidate: str) -> tuple[digits_pb2.PairReport, int]:
    """The pair of the two arms and the sign that turns its a - b into candidate - stable."""
    for pair in report.pairs:
        if (pair.arm_a, pair.arm_b) == (stable, candidate):
            return pair, -1
        if (pair.arm_a, pair.arm_b) == (candidate, stable):
            return pair, 1
    raise ValueError(f"the report has no pair of arms {stable!r} and {candidate!r}")


def decide(report: digits_pb2.ExperimentReport, stable: str, candidate: str, policy: Policy,
           step: int, labelled_at_step: int) -> Decision:
    """The decision at this look. `step` indexes policy.steps (the current weight);
    `labelled_at_step` is the candidate's labelled count when that weight was set."""
    weight = float(policy.steps[step])
    breached = [g.metric for g in report.guardrails
                if g.arm == candidate and g.status == "breached" and g.metric != SAMPLE_RATIO]
    if breached:
        return Decision(ROLLBACK, f"guardrail breached: {', '.join(breached)}", 0.0)
    dropped = estimated_drop(report, stable, candidate, policy.max_estimated_drop)
    if dropped:
        return Decision(ROLLBACK, dropped, 0.0)
    mismatch = [g for g in report.guardrails if g.metric == SAMPLE_RATIO and g.status == "breached"]
    if mismatch:  # broken routing or lost labels: no comparison can be trusted, so no decision and no step
        g = mismatch[0]
        return Decision(HOLD, f"sample-ratio mismatch: {g.arm} has {g.value:.1%} of the labelled requests, "
                              f"its weight says {g.baseline_value:.1%}", weight)
    pair, sign = _pair(report, stable, candidate)
    low, high = sorted((sign * pair.sequence_low, sign * pair.sequence_high))  # of candidate - stable
    interval = f"candidate - stable in [{low * 100:+.1f}, {high * 100:+.1f}] points"
    p = f"always-valid p = {pair.always_valid_p_holm:.3g}"
    # As the server's verdict: the Holm-adjusted always-valid p at most alpha and the sequence excluding 0.
    significant = bool(pair.always_valid_test) and pair.always_valid_p_holm <= policy.alpha and (low > 0 or high < 0)
    if significant and low > 0:
        return Decision(PROMOTE, f"better: {p}, {interval}", 100.0)
    if policy.margin > 0 and pair.always_valid_test and low > -policy.margin:
        return Decision(PROMOTE, f"not worse than the {policy.margin * 100:g}-point margin: {interval}", 100.0)
    if significant and high < 0:
        return Decision(ROLLBACK, f"worse: {p}, {interval}", 0.0)
    labelled = {a.arm: a.labelled for a in report.arms}.get(candidate, 0)
    if labelled >= policy.horizon:
        return Decision(NO_DIFFERENCE, f"no difference within {labelled} labelled requests (horizon "
                                       f"{policy.horizon}): {p}, {interval}", 0.0)
    if step + 1 < len(policy.steps) and labelled - labelled_at_step >= policy.step_labelled:
        return Decision(STEP, f"no guardrail breached after {labelled - labelled_at_step} labelled requests at "
                              f"{weight:g}%", float(policy.steps[step + 1]))
    return Decision(HOLD, f"waiting: {p}, {interval}", weight)


def estimated_drop(report: digits_pb2.ExperimentReport, stable: str, candidate: str, max_drop: float) -> str:
    """The label-free guardrail's breach in words, "" when off or not breached: the always-valid
    sequence of stable - candidate estimated accuracy (the pair's, at the guardrail level) lies above
    `max_drop`."""
    if max_drop <= 0:
        return ""
    pair, sign = _pair(report, stable, candidate)
    low, high = sorted((-sign * pair.estimated_sequence_low, -sign * pair.estimated_sequence_high))
    if not label_free.drop_breached(low, max_drop):
        return ""
    arms = {a.arm: a for a in report.arms}
    return (f"guardrail breached: estimated accuracy (estimated, no labels): {candidate} "
            f"{arms[candidate].estimated_accuracy:.1%} vs {stable} {arms[stable].estimated_accuracy:.1%}, "
            f"stable - candidate in [{low * 100:+.1f}, {high * 100:+.1f}] points, more than the allowed "
            f"{max_drop * 100:g}")


class FleetError(Exception):
    """The reports come from more than one server: one replica's view is not the fleet's."""


class Looks(Protocol):
    """Where a rollout's reports come from: one report of the whole experiment per look."""

    def look(self) -> digits_pb2.ExperimentReport:
        """The experiment's report now."""


@dataclass
class ServerLooks:
    """Looks at one server's GetExperimentReport, refusing a fleet: FleetError as soon as two
    different processes (`server_id`) have answered. `probe` reports are read before the first
    decision, so a balancer spreading them over replicas is caught before anything changes."""

    client: DigitsClient
    experiment: str
    probe: int = 8
    seen: set[str] = field(default_factory=set)

    def look(self) -> digits_pb2.ExperimentReport:
        report = self.client.experiment_report(self.experiment)
        if report.server_id:
            self.seen.add(report.server_id)
        if len(self.seen) > 1:
            raise FleetError(
                f"--target {self.client.target} reaches {len(self.seen)} different servers "
                f"({', '.join(sorted(self.seen))}): each holds only its share of the experiment's traffic, and a "
                "rollout must decide on the whole fleet's; give --prometheus URL (the fleet's counters), or "
                "point --target at the only server")
        return report

    def start(self) -> digits_pb2.ExperimentReport:
        """The first report, after `probe` looks that would reveal a fleet."""
        for _ in range(self.probe):
            self.look()
        return self.look()


@dataclass
class Rollout:
    """Runs a rollout of `candidate` against `stable` (the experiment's first arm) to a decision."""

    client: DigitsClient
    experiment: str
    candidate: str
    policy: Policy = field(default_factory=Policy)
    interval: float = 2.0  # seconds between looks
    max_seconds: float = 0.0  # 0: no limit
    log: Callable[[str], None] = print
    looks: Looks | None = None  # default: ServerLooks of `client` (refuses a fleet)
    last_report: digits_pb2.ExperimentReport | None = field(default=None, init=False)  # behind the last decision

    def run(self) -> Decision:
        """Start at the first weight, look every `interval` seconds, act on each decision; the final one."""
        self.begin()
        while True:
            time.sleep(self.interval)
            decision = self.advance()
            if decision.decision == HOLD:
                if self.max_seconds and time.monotonic() - self._started > self.max_seconds:
                    return self._act(Decision(HOLD, f"stopped after {self.max_seconds:g} s without a decision",
                                              decision.weight), self._stable)
                continue
            if decision.decision != STEP:
                return decision

    def begin(self) -> Decision:
        """Check the arms, take the first look and set the first weight."""
        current = self._experiment()
        self._stable = stable = current.arms[0].name
        if self.candidate == stable or self.candidate not in [a.name for a in current.arms]:
            raise ValueError(f"--candidate must name an arm other than the first ({stable}): "
                             f"arms are {', '.join(a.name for a in current.arms)}")
        self._looks = self.looks or ServerLooks(self.client, self.experiment)
        self._step, self._started = 0, time.monotonic()
        first = self._looks.start() if isinstance(self._looks, ServerLooks) else self._looks.look()
        self._labelled_at_step = self._labelled(first)
        weight = float(self.policy.steps[0])
        return self._act(Decision("start", f"rollout of {self.candidate} against {stable}", weight), stable, first)

    def advance(self) -> Decision:
        """One look: decide, and act unless the decision is to hold. FleetError (after pausing the
        experiment) when the reports turn out to come from several servers."""
        try:
            report = self._looks.look()
        except FleetError:
            self._weights(self._stable, 100, 0, paused=True)  # nothing more on one replica's word
            raise
        except UnavailableError as exc:  # a missed look changes nothing: the next one sees the same sample
            self.log(f"{self.experiment}: look failed, holding: {exc}")
            return Decision(HOLD, f"look failed: {exc}", float(self.policy.steps[self._step]))
        decision = decide(report, self._stable, self.candidate, self.policy, self._step, self._labelled_at_step)
        self.last_report = report
        if decision.decision == HOLD:
            return decision
        self._act(decision, self._stable, report)
        if decision.decision == STEP:
            self._step, self._labelled_at_step = self._step + 1, self._labelled(report)
        return decision

    def _experiment(self) -> digits_pb2.Experiment:
        for experiment in self.client.list_experiments():
            if experiment.name == self.experiment:
                return experiment
        raise ValueError(f"no experiment {self.experiment!r} on the server")

    def _labelled(self, report: digits_pb2.ExperimentReport) -> int:
        return {a.arm: a.labelled for a in report.arms}.get(self.candidate, 0)

    def _act(self, decision: Decision, stable: str, report: digits_pb2.ExperimentReport | None = None) -> Decision:
        """Apply a decision through the admin RPCs, then record it on the server and log it."""
        if decision.decision in ("start", STEP):
            self._weights(stable, 100 - decision.weight, decision.weight, paused=False)
        elif decision.decision in (ROLLBACK, NO_DIFFERENCE):
            self._weights(stable, 100, 0, paused=True)  # the experiment ends: all traffic to the stable arm
        elif decision.decision == PROMOTE:
            self._promote(stable, report)
        self.client.record_rollout_decision(digits_pb2.RolloutDecision(
            experiment=self.experiment, candidate_arm=self.candidate, decision=decision.decision,
            reason=decision.reason, weight=decision.weight))
        counted = "" if report is None else "; labelled " + ", ".join(f"{a.arm} {a.labelled}" for a in report.arms)
        self.log(f"{self.experiment}: {decision.decision} {self.candidate} "
                 f"(weight {decision.weight:g}%): {decision.reason}{counted}")
        return decision

    def _weights(self, stable: str, stable_weight: float, candidate_weight: float, paused: bool) -> None:
        current = self._experiment()
        change = digits_pb2.Experiment(name=self.experiment, shadow_percent=current.shadow_percent, paused=paused)
        change.arms.add(name=stable, weight=stable_weight)
        change.arms.add(name=self.candidate, weight=candidate_weight)
        self.client.update_experiment(change)

    def _promote(self, stable: str, report: digits_pb2.ExperimentReport | None) -> None:
        """Move the stable arm's label to the candidate's version when both are versions of one
        model (then pause: everything goes to the stable label, now the candidate); otherwise
        give the candidate all the traffic."""
        current = self._experiment()
        arms = {a.name: a for a in current.arms}
        stable_spec, candidate_spec = arms[stable].model, arms[self.candidate].model
        served = {a.arm: a.version for a in report.arms} if report is not None else {}
        version = candidate_spec.version if candidate_spec.HasField("version") else served.get(self.candidate, 0)
        if stable_spec.version_label and stable_spec.name == candidate_spec.name and version:
            self.client.set_version_label(stable_spec.name, stable_spec.version_label, version)
            self._weights(stable, 100, 0, paused=True)
        else:
            self._weights(stable, 0, 100, paused=False)
