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

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

from digits_server.core.domain import ModelSelector
from digits_server.core.errors import AlreadyExists, InvalidInput, NotFound, ServingError
from digits_server.core.manager import ModelManager
from digits_server.core.model_config import ConfigError, ServingConfig
from digits_server.experiments.config_file import plan_sync, to_config
from digits_server.experiments.observer import ExperimentObserver
from digits_server.experiments.report import Report, build_report
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
        self.change_config = change_config  # None: no config file, experiments live in memory
        router.on_change.append(observer.experiment_changed)

    def list(self) -> list[Experiment]:
        """Every live experiment, by name."""
        return self.router.list()

    async def create(self, experiment: Experiment) -> Experiment:
        """Start a new experiment; its arms must name models the server has."""
        check_models(experiment, self.manager.resolve)
        validate(experiment)
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

    def report(self, name: str) -> Report:
        """The comparison report of a live experiment (NotFound otherwise)."""
        experiment = self.router.get(name)
        counts = self.observer.counts(name)
        if counts is None:  # cannot happen while the router and observer are wired together
            raise RuntimeError(f"experiment '{name}' has no counts")
        return build_report(experiment, counts, self.observer.traffic(name), self.serving)

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
