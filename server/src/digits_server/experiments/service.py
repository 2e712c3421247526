"""The experiment operations behind the RPCs and the config file: one object that ties the
router (routing), the observer (counting) and the manager (which models exist) together.
Transport-free: servicers convert messages and call these methods.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from digits_server.core.domain import ModelSelector
from digits_server.core.errors import InvalidInput, ServingError
from digits_server.core.manager import ModelManager
from digits_server.core.model_config import ConfigError
from digits_server.experiments.observer import ExperimentObserver
from digits_server.experiments.report import Report, build_report
from digits_server.experiments.router import Experiment, ExperimentChange, ExperimentRouter, check_models, from_config

log = logging.getLogger(__name__)


class ExperimentService:
    """Create, update, delete, list and report experiments."""

    def __init__(self, router: ExperimentRouter, observer: ExperimentObserver, manager: ModelManager) -> None:
        self.router = router
        self.observer = observer
        self.manager = manager
        router.on_change.append(observer.experiment_changed)

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
