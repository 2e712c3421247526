"""save_config writes the --model-config file atomically and parse_config reads back what it wrote;
with_label moves one label and keeps everything else (the SetVersionLabel admin RPC's file edit)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from digits_server.core.model_config import load_config, parse_config, save_config, with_label

TEXT = """
models:
  lstm:
    version_policy: {latest: 2}
    labels: {stable: 1, canary: 2}
  gru:
    version_policy: all
  rnn:
    version_policy: {specific: [1, 3]}
experiments:
  - name: cells
    shadow_percent: 10
    arms:
      - {model: lstm, version_label: stable, weight: 90}
      - {model: gru, weight: 10}
"""


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_save_then_load_gives_the_same_config(tmp_path: Path, suffix: str) -> None:
    config = parse_config(TEXT)
    path = tmp_path / f"models{suffix}"
    save_config(path, config)
    assert load_config(path) == config
    assert os.listdir(tmp_path) == [path.name]  # no temporary file left behind


def test_with_label_moves_one_label_and_keeps_the_rest(tmp_path: Path) -> None:
    config = parse_config(TEXT)
    moved = with_label(config, "lstm", "stable", 2)
    assert moved.labels() == {"lstm": {"stable": 2, "canary": 2}}
    assert moved.policies() == config.policies() and moved.experiments == config.experiments
    assert config.labels() == {"lstm": {"stable": 1, "canary": 2}}  # the original is unchanged
    assert with_label(config, "gru", "stable", 1).labels()["gru"] == {"stable": 1}
    path = tmp_path / "models.yaml"
    path.write_text(TEXT)
    save_config(path, moved)
    assert load_config(path).labels()["lstm"]["stable"] == 2


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(TEXT)
    bad = parse_config(TEXT)
    bad.experiments.append({"name": object()})  # not representable in YAML
    with pytest.raises(Exception):
        save_config(path, bad)
    assert path.read_text() == TEXT and os.listdir(tmp_path) == ["models.yaml"]
