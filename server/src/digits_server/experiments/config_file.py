"""Experiments as entries of the model config file: back from Experiment values (`to_config`),
and the changes that bring the live experiments in line with the file (`plan_sync`).

The file's `experiments:` list is what every replica of a fleet agrees on; `from_config` (in
`router`) reads it, these write and compare it. Transport-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from digits_server.experiments.router import Experiment


def to_config(experiment: Experiment) -> dict[str, Any]:
    """An experiment as a config file entry (`from_config` reads it back equal)."""
    arms = []
    for arm in experiment.arms:
        entry: dict[str, Any] = {"name": arm.name, "model": arm.model.name}
        if arm.model.version is not None:
            entry["version"] = arm.model.version
        if arm.model.version_label:
            entry["version_label"] = arm.model.version_label
        entry["weight"] = int(arm.weight) if float(arm.weight).is_integer() else arm.weight
        arms.append(entry)
    shadow = experiment.shadow_percent
    entry = {
        "name": experiment.name,
        "shadow_percent": int(shadow) if float(shadow).is_integer() else shadow,
        "paused": experiment.paused,
        "arms": arms,
    }
    if experiment.created_unix_time:
        entry["created_unix_time"] = experiment.created_unix_time
    return entry


def same_arms(a: Experiment, b: Experiment) -> bool:
    """Whether two versions of an experiment have the same arms (names and models, in order) and the
    same creation time (a re-created experiment, even with the same arms, restarts its counts)."""
    return (a.created_unix_time == b.created_unix_time
            and [(arm.name, arm.model) for arm in a.arms] == [(arm.name, arm.model) for arm in b.arms])


@dataclass(frozen=True)
class SyncPlan:
    """What to do to the live experiments so they match the file."""

    delete: tuple[str, ...] = ()  # gone from the file, or arms changed (re-created: counts restart)
    update: tuple[Experiment, ...] = ()  # same arms; weights, shadow or pause changed (counts kept)
    create: tuple[Experiment, ...] = ()  # new in the file, or re-created

    def __bool__(self) -> bool:
        return bool(self.delete or self.update or self.create)


def plan_sync(live: list[Experiment], wanted: list[Experiment]) -> SyncPlan:
    """The deletions, updates and creations that turn `live` into `wanted` (by name)."""
    current = {e.name: e for e in live}
    names = {e.name for e in wanted}
    delete = [name for name in current if name not in names]
    update, create = [], []
    for experiment in wanted:
        old = current.get(experiment.name)
        if old == experiment:
            continue
        if old is not None and same_arms(old, experiment):
            update.append(experiment)
            continue
        if old is not None:
            delete.append(old.name)
        create.append(experiment)
    return SyncPlan(tuple(delete), tuple(update), tuple(create))
