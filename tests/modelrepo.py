"""Model repositories for the server's tests: private copies of the trainer-made repository that a
test may change, versions published the way the trainer publishes them, polling, and one version
loaded in-process the way the server loads it."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from digits_server.core.loaded_model import LoadedModel


def private_repo(model_repo: Path, dest: Path, cells: tuple[str, ...] = ("gru",)) -> Path:
    """A copy of `model_repo` holding only `cells` (the GRU alone loads fastest), safe to change."""
    dest.mkdir(parents=True, exist_ok=True)
    for cell in cells:
        shutil.copytree(model_repo / cell, dest / cell)
    return dest


def publish_version(repo: Path, cell: str, source: int, version: int) -> Path:
    """Publish a copy of version `source` as `version` like the trainer does: written into a
    hidden `.tmp-*` folder first, then renamed into place in one atomic step."""
    staging = repo / cell / f".tmp-{version}-copy"
    shutil.copytree(repo / cell / str(source), staging)
    target = repo / cell / str(version)
    os.rename(staging, target)
    return target


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    """Poll `predicate` every 0.1 s until it is true; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)


def loaded_version(path: Path, runtime: str = "auto", buckets: tuple[int, ...] = (1, 4, 16)) -> LoadedModel:
    """The version folder `path` loaded and warmed up as the server does, its XLA buckets (if any) compiled."""
    from digits_server.core.loaded_model import LoadedModel

    model = LoadedModel(path.parent.name, 1, path, runtime=runtime, xla_buckets=buckets)
    model.load()
    model.warm_up(batch_sizes=(1,))
    assert model.wait_compiled(timeout=300)
    return model


def two_version_repo(cells: dict[str, Path], cases: dict[str, tuple[str, str]], dest: Path) -> Path:
    """A repository with one model per case, version 1 (the stable one) and version 2 (the candidate)
    copied from the SavedModel folders `cells[first]` and `cells[second]` of `cases[name] = (first, second)`."""
    for name, (first, second) in cases.items():
        shutil.copytree(cells[first], dest / name / "1")
        shutil.copytree(cells[second], dest / name / "2")
    return dest
