"""The model config file as a fleet's source of truth: atomic writes, read-modify-write under a
lock across processes, a stable hash, and the plan that brings live experiments in line with it."""

from __future__ import annotations

import json
import multiprocessing
import os
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from digits_server.core.domain import ModelSelector
from digits_server.core.model_config import (
    ConfigError,
    ServingConfig,
    config_hash,
    load_config,
    parse_config,
    save_config,
    update_config,
)
from digits_server.experiments.config_file import plan_sync, to_config
from digits_server.experiments.router import Arm, Experiment, from_config

TEXT = """
models:
  lstm: {version_policy: {latest: 2}, labels: {stable: 1, canary: 2}}
  gru: {version_policy: all}
  rnn: {version_policy: {specific: [1, 3]}}
experiments:
  - name: cells
    shadow_percent: 12.5
    arms:
      - {model: lstm, version_label: stable, weight: 70}
      - {name: gru-v1, model: gru, version: 1, weight: 30}
"""


@pytest.mark.parametrize("name", ["models.yaml", "models.json"])
def test_a_saved_config_reads_back_equal(tmp_path: Path, name: str) -> None:
    config = parse_config(TEXT)
    path = tmp_path / name
    save_config(path, config)
    assert load_config(path) == config
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left behind


def test_the_hash_ignores_formatting_and_sees_every_change(tmp_path: Path) -> None:
    config = parse_config(TEXT)
    as_json = json.dumps(yaml.safe_load(TEXT), indent=4)
    assert config_hash(config) == config_hash(parse_config("# a comment\n" + TEXT))
    assert config_hash(config) == config_hash(parse_config(as_json, json_syntax=True))
    assert config_hash(config) != config_hash(replace(config, experiments=[]))
    changed = TEXT.replace("weight: 70", "weight: 71")
    assert config_hash(config) != config_hash(parse_config(changed))


def test_a_symlinked_file_is_written_through_its_link(tmp_path: Path) -> None:
    (tmp_path / "..data").mkdir()
    real = tmp_path / "..data" / "models.yaml"
    real.write_text(TEXT)
    link = tmp_path / "models.yaml"
    link.symlink_to(Path("..data") / "models.yaml")
    update_config(link, lambda c: replace(c, experiments=[]))
    assert link.is_symlink() and load_config(link).experiments == [] and load_config(real).experiments == []


def test_an_unwritable_directory_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "missing-dir" / "models.yaml"
    with pytest.raises(ConfigError, match=r"missing-dir/models.yaml: cannot write the model config \(No such file"):
        update_config(path, lambda c: c)
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "models.yaml").write_text(TEXT)
    (blocked / ".models.yaml.lock").mkdir()  # the lock cannot be opened: nothing is written
    with pytest.raises(ConfigError, match="cannot write the model config .* no replica was changed"):
        update_config(blocked / "models.yaml", lambda c: replace(c, experiments=[]))
    assert load_config(blocked / "models.yaml") == parse_config(TEXT)


def _append_experiments(path: str, worker: int, count: int) -> None:
    for i in range(count):
        entry = {"name": f"w{worker}-{i}", "arms": [{"model": "a"}, {"model": "b"}]}
        update_config(Path(path), lambda c, e=entry: replace(c, experiments=[*c.experiments, e]))


def test_concurrent_writers_in_several_processes_lose_no_change(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text("experiments: []\n")
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_experiments, args=(str(path), w, 15)) for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    names = sorted(e["name"] for e in load_config(path).experiments)
    assert names == sorted(f"w{w}-{i}" for w in range(4) for i in range(15))
    assert sorted(os.listdir(tmp_path)) == [".models.yaml.lock", "models.yaml"]  # no temporary file left


def test_to_config_reads_back_as_the_same_experiment() -> None:
    (experiment,) = from_config(parse_config(TEXT).experiments)
    assert from_config([to_config(experiment)]) == [experiment]


def experiment(name: str, weights: tuple[float, float] = (1, 1), models: tuple[str, str] = ("a", "b"),
               shadow: float = 0) -> Experiment:
    arms = tuple(Arm(m, ModelSelector(m), w) for m, w in zip(models, weights))
    return Experiment(name, arms, shadow_percent=shadow)


def test_the_sync_plan_creates_updates_recreates_and_deletes() -> None:
    live = [experiment("same"), experiment("weights"), experiment("arms"), experiment("gone")]
    wanted = [experiment("same"), experiment("weights", (3, 1), shadow=5), experiment("arms", models=("a", "c")),
              experiment("new")]
    plan = plan_sync(live, wanted)
    assert plan.update == (wanted[1],)  # counts kept
    assert sorted(plan.delete) == ["arms", "gone"] and [e.name for e in plan.create] == ["arms", "new"]
    assert not plan_sync(wanted, wanted)
    assert ServingConfig() == parse_config("")
