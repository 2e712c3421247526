"""The experiment operations behind the RPCs and the config file: one object that ties the
router (routing), the observer (counting) and the manager (which models exist) together.
Transport-free: servicers convert messages and call these methods.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from digits_server.core.domain import ModelSelector
from digits_server.core.errors import InvalidInput, ServingError
from digits_server.core.manager import ModelManager
from digits_server.core.model_config import ConfigError
from digits_server.experiments.observer import ExperimentObserver
from digits_server.experiments.report import Report, RolloutDecision, build_report
from digits_server.experiments.router import Experiment, ExperimentChange, ExperimentRouter, check_models, from_config

log = logging.getLogger(__name__)
ROLLOUT_DECISIONS = ("start", "step", "hold", "promote", "rollback", "no-difference")


class ExperimentService:
    """Create, update, delete, list and report experiments."""

    def __init__(self, router: ExperimentRouter, observer: ExperimentObserver, manager: ModelManager) -> None:
        self.router = router
        self.observer = observer
        self.manager = manager
        self.decisions: dict[str, list[RolloutDecision]] = {}  # per experiment, while it lives
        router.on_change.append(observer.experiment_changed)
        router.on_change.append(self._experiment_changed)

    def _experiment_changed(self, name: str, experiment: Experiment | None) -> None:
        metrics = self.observer.metrics
        if experiment is None:
            self.decisions.pop(name, None)
            if metrics is not None:
                metrics.forget_experiment(name)
        elif metrics is not None and name not in self.decisions:  # created: nothing known yet
            self.decisions[name] = []
            arms = [arm.name for arm in experiment.arms]
            for i, arm_a in enumerate(arms):
                for arm_b in arms[i + 1:]:
                    metrics.set_comparison(name, arm_a, arm_b, -1.0, 1.0, 1.0)
            for arm in arms[1:]:
                for metric in ("latency", "errors"):
                    metrics.set_guardrail(name, arm, metric, False)
            metrics.start_rollout_series(name, ROLLOUT_DECISIONS)  # at 0, so increase() sees the first decision

    def list(self) -> list[Experiment]:
        """Every live experiment, by name."""
        return self.router.list()

    def create(self, experiment: Experiment) -> Experiment:
        """Start a new experiment; its arms must name models the server has."""
        check_models(experiment, self.manager.resolve)
        return self.router.create(experiment)

    def update(self, change: ExperimentChange | Experiment) -> Experiment:
        """New weights, shadow percentage, paused flag: what `change` gives; counts are kept."""
        return self.router.update(change)

    def delete(self, name: str) -> Experiment:
        """Stop an experiment and forget its counts."""
        return self.router.delete(name)

    def report(self, name: str, verdict_basis: str = "") -> Report:
        """The comparison report of a live experiment (NotFound otherwise). Every report is a look
        of the always-valid statistics; their latest values go to the gauges."""
        experiment = self.router.get(name)
        counts = self.observer.counts(name)
        if counts is None:  # cannot happen while the router and observer are wired together
            raise RuntimeError(f"experiment '{name}' has no counts")
        report = build_report(experiment, counts, self.observer.traffic(name), self.serving,
                              verdict_basis, self.decisions.get(name, ()))
        metrics = self.observer.metrics
        if metrics is not None:
            for pair in report.pairs:
                if pair.always_valid is not None and pair.always_valid.test:
                    valid = pair.always_valid
                    metrics.set_comparison(name, pair.arm_a, pair.arm_b, valid.low, valid.high, valid.p_holm)
            for guardrail in report.guardrails:
                metrics.set_guardrail(name, guardrail.arm, guardrail.metric, guardrail.status == "breached")
        return report

    def look_all(self) -> None:
        """One look at every live experiment (keeps the always-valid gauges current)."""
        for experiment in self.router.list():
            try:
                self.report(experiment.name)
            except ServingError:  # deleted meanwhile
                pass

    async def look_every(self, seconds: float) -> None:
        """Look at every experiment every `seconds`, until cancelled."""
        while True:
            await asyncio.sleep(seconds)
            try:
                self.look_all()
            except Exception:
                log.exception("experiment look failed")

    def record_decision(self, decision: RolloutDecision) -> RolloutDecision:
        """Record a rollout controller's step or decision: logged, counted, listed in the report."""
        experiment = self.router.get(decision.experiment, field="experiment")
        experiment.arm(decision.candidate_arm)
        if decision.decision not in ROLLOUT_DECISIONS:
            raise InvalidInput(f"decision: must be one of {', '.join(ROLLOUT_DECISIONS)}, got {decision.decision!r}")
        recorded = replace(decision, unix_time=time.time())
        self.decisions.setdefault(decision.experiment, []).append(recorded)
        if self.observer.metrics is not None:
            self.observer.metrics.count_rollout_decision(decision.experiment, decision.decision)
        log.info("rollout %s: %s %s (weight %g%%): %s", decision.experiment, decision.decision,
                 decision.candidate_arm, decision.weight, decision.reason)
        return recorded

    def serving(self, selector: ModelSelector) -> tuple[str, int]:
        """(model, version) a selector resolves to now; version 0 when none can serve."""
        try:
            model = self.manager.resolve(selector)
        except ServingError:
            return selector.name, 0
        return model.name, model.version

    def load_config(self, entries: Sequence[Mapping[str, Any]] | None) -> list[Experiment]:
        """Create the config file's experiments (ConfigError naming the key on a bad entry).

        An arm whose model the server lacks is created anyway (logged): its requests fail
        NOT_FOUND until the model appears. Experiments that exist already are left alone.
        """
        try:
            experiments = from_config(entries)
        except InvalidInput as exc:
            raise ConfigError(f"model config: {exc}") from None
        created = []
        for i, experiment in enumerate(experiments):
            if experiment.name in {e.name for e in self.router.list()}:
                continue
            try:
                check_models(experiment, self.manager.resolve, f"experiments[{i}].arms")
            except InvalidInput as exc:
                log.warning("experiment %s: %s", experiment.name, exc)
            created.append(self.router.create(experiment))
        return created
