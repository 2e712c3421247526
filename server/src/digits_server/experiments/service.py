"""The experiment operations behind the RPCs and the config file: one object that ties the
router (routing), the observer (counting) and the manager (which models exist) together.
Transport-free: servicers convert messages and call these methods.

With a model config file (`--model-config`) the file is the source of truth shared by every
replica: `sync` makes the live experiments match it on every reload, and create/update/delete
write it (atomically, through the reloader) and then apply it here at once; the other replicas
follow at their next poll. A file that cannot be written is FAILED_PRECONDITION naming it, and
nothing changes anywhere. Without a config file experiments live in this process's memory (one
server; a fleet needs the file).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from digits.experiments.sample_ratio import METRIC as SRM_METRIC
from digits_server.core.domain import ModelSelector
from digits_server.core.errors import AlreadyExists, InvalidInput, NotFound, ServingError
from digits_server.core.manager import ModelManager
from digits_server.core.model_config import ConfigError, ServingConfig
from digits_server.experiments.config_file import plan_sync, to_config
from digits_server.experiments.observer import ExperimentObserver
from digits_server.experiments.report import Report, RolloutDecision, build_report
from digits_server.experiments.router import (
    Experiment,
    ExperimentChange,
    ExperimentRouter,
    check_models,
    from_config,
    merged,
    validate,
)

log = logging.getLogger(__name__)
ROLLOUT_DECISIONS = ("start", "step", "hold", "promote", "rollback", "no-difference")

ConfigChanger = Callable[[Callable[[ServingConfig], ServingConfig]], Awaitable[ServingConfig]]


class ExperimentService:
    """Create, update, delete, list and report experiments; keep them in line with the config file."""

    def __init__(
        self, router: ExperimentRouter, observer: ExperimentObserver, manager: ModelManager,
        change_config: ConfigChanger | None = None,
    ) -> None:
        self.router = router
        self.observer = observer
        self.manager = manager
        self.decisions: dict[str, list[RolloutDecision]] = {}  # per experiment, while it lives
        self.change_config = change_config  # None: no config file, experiments live in memory
        # Who answers reports: a rollout controller that sees two identities talks to a fleet.
        self.server_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
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
            metrics.set_guardrail(name, "", SRM_METRIC, False)  # the experiment's, whichever arm strays
            metrics.start_rollout_series(name, ROLLOUT_DECISIONS)  # at 0, so increase() sees the first decision

    def list(self) -> list[Experiment]:
        """Every live experiment, by name."""
        return self.router.list()

    async def create(self, experiment: Experiment) -> Experiment:
        """Start a new experiment; its arms must name models the server has."""
        check_models(experiment, self.manager.resolve)
        validate(experiment)
        experiment = replace(experiment, created_unix_time=round(time.time(), 3))
        if self.change_config is None:
            return self.router.create(experiment)

        def add(entries: list[Experiment]) -> list[Experiment]:
            if any(e.name == experiment.name for e in entries):
                raise AlreadyExists(f"name: experiment '{experiment.name}' exists; update or delete it")
            return [*entries, experiment]

        await self._write(add)
        return self.router.get(experiment.name)

    async def update(self, change: ExperimentChange | Experiment) -> Experiment:
        """New weights, shadow percentage, paused flag: what `change` gives; counts are kept."""
        if self.change_config is None:
            return self.router.update(change)
        await self._write(lambda entries: [merged(e, change) if e.name == change.name else e
                                           for e in _present(entries, change.name)])
        return self.router.get(change.name)

    async def delete(self, name: str) -> Experiment:
        """Stop an experiment and forget its counts."""
        if self.change_config is None:
            return self.router.delete(name)
        gone = self.router.get(name)
        await self._write(lambda entries: [e for e in _present(entries, name) if e.name != name])
        return gone

    async def _write(self, change: Callable[[list[Experiment]], list[Experiment]]) -> None:
        """Change the file's experiments (read, change, write atomically) and apply the file here."""
        assert self.change_config is not None

        def edit(config: ServingConfig) -> ServingConfig:
            return replace(config, experiments=[to_config(e) for e in change(self._parse(config))])

        await self.change_config(edit)

    def sync(self, config: ServingConfig) -> None:
        """Make the live experiments match the config file's (a reloader listener).

        ConfigError naming the entry at fault, before anything changes. Weight, shadow and pause
        changes keep the counts; an experiment whose arms changed is re-created (counts restart)."""
        plan = plan_sync(self.router.list(), self._parse(config))
        for name in plan.delete:
            self.router.delete(name)
        for experiment in plan.update:
            self.router.update(experiment)
        for experiment in plan.create:
            try:
                check_models(experiment, self.manager.resolve, f"experiments[{experiment.name}].arms")
            except InvalidInput as exc:  # created anyway: its requests fail NOT_FOUND until the model appears
                log.warning("experiment %s: %s", experiment.name, exc)
            self.router.create(experiment)
        if plan:
            log.info("experiments from the model config: deleted %s, updated %s, created %s",
                     list(plan.delete) or "none", [e.name for e in plan.update] or "none",
                     [e.name for e in plan.create] or "none")

    @staticmethod
    def _parse(config: ServingConfig) -> list[Experiment]:
        try:
            return from_config(config.experiments)
        except InvalidInput as exc:
            raise ConfigError(f"model config: {exc}") from None

    def config_entries(self) -> list[dict]:
        """The live experiments as config file entries (for the config hash)."""
        return [to_config(e) for e in self.router.list()]

    def report(self, name: str, verdict_basis: str = "") -> Report:
        """The comparison report of a live experiment (NotFound otherwise). Every report is a look
        of the always-valid statistics; their latest values go to the gauges."""
        experiment = self.router.get(name)
        counts = self.observer.counts(name)
        if counts is None:  # cannot happen while the router and observer are wired together
            raise RuntimeError(f"experiment '{name}' has no counts")
        report = build_report(experiment, counts, self.observer.traffic(name), self.serving,
                              verdict_basis, self.decisions.get(name, ()), self.server_id)
        metrics = self.observer.metrics
        if metrics is not None:
            for pair in report.pairs:
                if pair.always_valid is not None and pair.always_valid.test:
                    valid = pair.always_valid
                    metrics.set_comparison(name, pair.arm_a, pair.arm_b, valid.low, valid.high, valid.p_holm)
            for guardrail in report.guardrails:
                arm = "" if guardrail.metric == SRM_METRIC else guardrail.arm
                metrics.set_guardrail(name, arm, guardrail.metric, guardrail.status == "breached")
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


def _present(entries: list[Experiment], name: str) -> list[Experiment]:
    """The entries, or NotFound when none is named `name`."""
    if not any(e.name == name for e in entries):
        known = ", ".join(sorted(e.name for e in entries)) or "none"
        raise NotFound(f"name: no experiment '{name}' in the model config (experiments: {known})")
    return entries
