"""A/B experiments: named arms (model selectors with weights), sticky or random assignment,
pause and shadow mirroring. Transport-free: the data plane calls `ExperimentRouter.route`.

Sticky assignment uses weighted rendezvous hashing (Schindelhauer & Schomaker 2005; Resch,
"Weighted rendezvous hashing"): every arm scores a routing key as
`weight / -ln(u)` with `u` a uniform hash of (experiment, arm, key) in (0, 1), and the highest
score wins. Arm i then gets a share `w_i / sum(w)` of the keys, a key's arm never changes
while weights are unchanged, and raising one arm's weight only moves keys *to* that arm
(lowering it only moves keys away from it) — exactly the share the new weights call for.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from digits_server.core.domain import ModelSelector
from digits_server.core.errors import AlreadyExists, InvalidInput, ModelNotFound, ModelUnavailable, NotFound

_HASH_SCALE = float(2**64)


@dataclass(frozen=True)
class Arm:
    """One arm: a model selector (name with optional version or label) and its traffic weight."""

    name: str
    model: ModelSelector
    weight: float


@dataclass(frozen=True)
class Experiment:
    """A live experiment. Paused: all traffic to the first arm, no shadows.

    `shadow_percent` of the requests each arm serves are also mirrored to every other arm
    (weight 0 arms included: a shadow-only candidate).
    """

    name: str
    arms: tuple[Arm, ...]
    shadow_percent: float = 0.0
    paused: bool = False
    created_unix_time: float = 0.0  # when it was created (Unix seconds; in the config file); 0: unknown

    def arm(self, name: str) -> Arm:
        """The arm with that name; NotFound otherwise."""
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise NotFound(f"arm: experiment '{self.name}' has no arm '{name}' (arms: {self.arm_names()})")

    def arm_names(self) -> str:
        """Comma-separated arm names, for messages."""
        return ", ".join(a.name for a in self.arms)


@dataclass(frozen=True)
class ExperimentChange:
    """What an update gives: new weights of the listed arms; `shadow_percent` and `paused`
    change only when not None (the rest of the experiment is kept)."""

    name: str
    arms: tuple[Arm, ...] = ()
    shadow_percent: float | None = None
    paused: bool | None = None


def validate(experiment: Experiment, field: str = "experiment") -> Experiment:
    """Check an experiment's fields; InvalidInput naming the field at fault. Returns it unchanged."""
    if not experiment.name or experiment.name.strip() != experiment.name:
        raise InvalidInput(f"{field}.name: must be a non-empty name without surrounding spaces")
    if len(experiment.arms) < 2:
        raise InvalidInput(f"{field}.arms: an experiment needs at least two arms, got {len(experiment.arms)}")
    seen: set[str] = set()
    for i, arm in enumerate(experiment.arms):
        where = f"{field}.arms[{i}]"
        if not arm.name:
            raise InvalidInput(f"{where}.name: must not be empty")
        if arm.name in seen:
            raise InvalidInput(f"{where}.name: arm '{arm.name}' appears twice (name arms explicitly)")
        seen.add(arm.name)
        if not arm.model.name:
            raise InvalidInput(f"{where}.model.name: every arm names a model")
        if arm.model.experiment or arm.model.routing_key:
            raise InvalidInput(f"{where}.model: an arm is a model, not an experiment or routing key")
        if arm.model.version is not None and arm.model.version_label:
            raise InvalidInput(f"{where}.model: set version or version_label, not both")
        if arm.model.version is not None and arm.model.version <= 0:
            raise InvalidInput(f"{where}.model.version: must be a positive integer, got {arm.model.version}")
        if not math.isfinite(arm.weight) or arm.weight < 0:
            raise InvalidInput(f"{where}.weight: must be a finite number >= 0, got {arm.weight}")
    if sum(a.weight for a in experiment.arms) <= 0:
        raise InvalidInput(f"{field}.arms: at least one arm needs a weight > 0")
    if not 0 <= experiment.shadow_percent <= 100:
        raise InvalidInput(f"{field}.shadow_percent: must be between 0 and 100, got {experiment.shadow_percent}")
    return experiment


def key_score(experiment: str, arm: Arm, key: str) -> float:
    """The arm's rendezvous score for a routing key (higher wins; weight 0 never wins)."""
    if arm.weight <= 0:
        return -math.inf
    digest = hashlib.blake2b(f"{experiment}\0{arm.name}\0{key}".encode(), digest_size=8).digest()
    uniform = (int.from_bytes(digest, "big") + 0.5) / _HASH_SCALE  # in (0, 1)
    return arm.weight / -math.log(uniform)


def sticky_arm(experiment: Experiment, key: str) -> Arm:
    """The arm a routing key is assigned to (weighted rendezvous hashing)."""
    return max(experiment.arms, key=lambda arm: key_score(experiment.name, arm, key))


class ExperimentRouter:
    """The live experiments, and the data plane's Router: selector -> arm's model selector.

    Experiments are immutable values replaced whole on update, so a request that was routed
    before an update finishes with the arm it got and no request ever sees half an update.
    """

    def __init__(self, rng: random.Random | None = None) -> None:
        self._experiments: dict[str, Experiment] = {}
        self._rng = rng if rng is not None else random.Random()
        self.on_change: list[Callable[[str, Experiment | None], None]] = []

    def route(self, selector: ModelSelector) -> tuple[ModelSelector, str, str]:
        """(arm's model selector, experiment name, arm name) for an experiment selector."""
        experiment = self.get(selector.experiment, field="model_spec.experiment", error=ModelNotFound)
        arm = self.choose(experiment, selector.routing_key)
        return arm.model, experiment.name, arm.name

    def choose(self, experiment: Experiment, routing_key: str = "") -> Arm:
        """Paused: the first arm; with a key: its sticky arm; without: random by weight."""
        if experiment.paused:
            return experiment.arms[0]
        if routing_key:
            return sticky_arm(experiment, routing_key)
        return self._rng.choices(experiment.arms, weights=[a.weight for a in experiment.arms])[0]

    def shadows(self, experiment_name: str, arm_name: str) -> list[tuple[ModelSelector, str]]:
        """(model selector, arm name) of the arms a request served by `arm_name` is mirrored to:
        all others, for shadow_percent of requests; none when paused or the experiment is gone."""
        experiment = self._experiments.get(experiment_name)
        if experiment is None or experiment.paused or experiment.shadow_percent <= 0:
            return []
        if self._rng.random() * 100 >= experiment.shadow_percent:
            return []
        return [(arm.model, arm.name) for arm in experiment.arms if arm.name != arm_name]

    def get(self, name: str, field: str = "name", error: type[Exception] = NotFound) -> Experiment:
        """The experiment with that name; `error` (NOT_FOUND) naming the field otherwise."""
        experiment = self._experiments.get(name)
        if experiment is None:
            known = ", ".join(sorted(self._experiments)) or "none"
            raise error(f"{field}: no experiment '{name}' (experiments: {known})")
        return experiment

    def list(self) -> list[Experiment]:
        """Every experiment, by name."""
        return [self._experiments[name] for name in sorted(self._experiments)]

    def create(self, experiment: Experiment) -> Experiment:
        """Add a new experiment; AlreadyExists when the name is taken."""
        validate(experiment)
        if experiment.name in self._experiments:
            raise AlreadyExists(f"name: experiment '{experiment.name}' exists; update or delete it")
        return self._set(experiment)

    def update(self, change: ExperimentChange | Experiment) -> Experiment:
        """Change what `change` gives of an experiment; the rest is kept.

        `change.arms` lists arms by name with their new weights (unlisted arms keep theirs);
        an arm's model cannot change (delete and re-create the experiment for that).
        `shadow_percent` and `paused` change unless None (an `Experiment` sets both).
        """
        return self._set(merged(self.get(change.name), change))

    def delete(self, name: str) -> Experiment:
        """Remove an experiment; NotFound when there is none by that name."""
        experiment = self.get(name)
        del self._experiments[name]
        self._notify(name, None)
        return experiment

    def _set(self, experiment: Experiment) -> Experiment:
        self._experiments[experiment.name] = experiment
        self._notify(experiment.name, experiment)
        return experiment

    def _notify(self, name: str, experiment: Experiment | None) -> None:
        for callback in self.on_change:
            callback(name, experiment)


def merged(current: Experiment, change: ExperimentChange | Experiment) -> Experiment:
    """`current` with `change`'s weights (by arm name), shadow percentage and paused flag (unless
    None: kept); validated.

    InvalidInput for an arm `current` lacks or an attempt to change an arm's model."""
    weights = {a.name: a.weight for a in current.arms}
    for i, arm in enumerate(change.arms):
        old = current.arm(arm.name) if arm.name in weights else None
        if old is None:
            raise InvalidInput(f"arms[{i}].name: experiment '{current.name}' has no arm '{arm.name}' "
                               f"(arms: {current.arm_names()}); arms cannot be added by an update")
        if arm.model.name and arm.model != old.model:
            raise InvalidInput(f"arms[{i}].model: an update cannot change an arm's model; "
                               "leave it empty, or delete and re-create the experiment")
        weights[arm.name] = arm.weight
    updated = replace(
        current,
        arms=tuple(replace(a, weight=weights[a.name]) for a in current.arms),
        shadow_percent=current.shadow_percent if change.shadow_percent is None else change.shadow_percent,
        paused=current.paused if change.paused is None else change.paused,
    )
    return validate(updated)


def check_models(experiment: Experiment, resolve: Callable[[ModelSelector], Any], field: str = "arms") -> None:
    """Fail with InvalidInput when an arm names a model, version or label the server lacks.

    `resolve` is the manager's; a version that exists but is still loading is accepted.
    """
    for i, arm in enumerate(experiment.arms):
        try:
            resolve(arm.model)
        except ModelNotFound as exc:
            raise InvalidInput(f"{field}[{i}].model: {exc}") from None
        except ModelUnavailable:  # exists, not loaded yet: accepted
            pass


# --- the `experiments:` list of the model config file -------------------------------------------


def from_config(entries: Sequence[Mapping[str, Any]] | None, field: str = "experiments") -> list[Experiment]:
    """Experiments from the config file's `experiments:` list. Each entry:

        name: cells
        shadow_percent: 10        # optional, default 0
        paused: false             # optional
        created_unix_time: 1.8e9  # written by CreateExperiment; fleet reports count from it
        arms:
          - {model: lstm, weight: 50}                          # arm name defaults to the model
          - {name: gru-v1, model: gru, version: 1, weight: 50} # or version_label: stable
    """
    if entries is None:
        return []
    if not isinstance(entries, Sequence) or isinstance(entries, (str, bytes)):
        raise InvalidInput(f"{field}: must be a list of experiments")
    found = [_experiment_from_config(entry, f"{field}[{i}]") for i, entry in enumerate(entries)]
    names = [e.name for e in found]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise InvalidInput(f"{field}[{i}].name: experiment '{name}' is defined twice")
    return found


def _experiment_from_config(entry: Any, field: str) -> Experiment:
    if not isinstance(entry, Mapping):
        raise InvalidInput(f"{field}: must be a mapping with name and arms")
    _only(entry, {"name", "arms", "shadow_percent", "paused", "created_unix_time"}, field)
    arms = entry.get("arms")
    if not isinstance(arms, Sequence) or isinstance(arms, (str, bytes)):
        raise InvalidInput(f"{field}.arms: must be a list of arms")
    experiment = Experiment(
        name=str(entry.get("name", "")),
        arms=tuple(_arm_from_config(arm, f"{field}.arms[{i}]") for i, arm in enumerate(arms)),
        shadow_percent=_number(entry.get("shadow_percent", 0), f"{field}.shadow_percent"),
        paused=_flag(entry.get("paused", False), f"{field}.paused"),
        created_unix_time=_number(entry.get("created_unix_time", 0), f"{field}.created_unix_time"),
    )
    if experiment.created_unix_time < 0:
        raise InvalidInput(f"{field}.created_unix_time: must be a Unix time >= 0, got {experiment.created_unix_time}")
    return validate(experiment, field)


def _arm_from_config(entry: Any, field: str) -> Arm:
    if not isinstance(entry, Mapping):
        raise InvalidInput(f"{field}: must be a mapping with model and weight")
    _only(entry, {"name", "model", "version", "version_label", "weight"}, field)
    model = str(entry.get("model", ""))
    version = entry.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise InvalidInput(f"{field}.version: must be an integer, got {version!r}")
    selector = ModelSelector(model, version, str(entry.get("version_label", "")))
    return Arm(str(entry.get("name") or model), selector, _number(entry.get("weight", 1), f"{field}.weight"))


def _only(entry: Mapping[str, Any], allowed: set[str], field: str) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise InvalidInput(f"{field}: unknown key(s) {', '.join(map(str, unknown))} (allowed: {', '.join(sorted(allowed))})")


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"{field}: must be a number, got {value!r}")
    return float(value)


def _flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{field}: must be true or false, got {value!r}")
    return value
