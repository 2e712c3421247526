"""Shared fixtures of the digits test suite.

Data: ``MNIST_NPZ`` / ``mnist_npz`` is ``../shared/data/mnist-9k.npz`` (the repository is cloned
next to ``shared/``), or the sample shipped in the trainer package when that file is absent.

Models: ``tiny_npz`` is a small slice of it (first ``TINY_TRAIN`` train / ``TINY_TEST`` test
digits) written as a Keras-layout npz; ``model_repo`` is a model repository with the three cells
trained on exactly that slice (seed recipe, 1 epoch, seed ``TINY_SEED``): ``<repo>/<cell>/1/``
with a SavedModel and ``metadata.json``, whose ``test_accuracy`` was measured on
``tiny_npz``'s ``x_test``. Everything is session-scoped and trained once (~15 s).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:
    from digits_trainer import TrainResult

REPO_ROOT = Path(__file__).resolve().parents[1]
_SHARED_NPZ = Path(__file__).resolve().parents[2] / "shared/data/mnist-9k.npz"
_SHIPPED_SAMPLE = REPO_ROOT / "trainer/src/digits_trainer/data/mnist-sample.npz"

#: The labelled MNIST slice the tests train and measure on.
MNIST_NPZ: Path = _SHARED_NPZ if _SHARED_NPZ.is_file() else _SHIPPED_SAMPLE

TINY_TRAIN = 2000
TINY_TEST = 500
TINY_SEED = 0
CELLS = ("rnn", "lstm", "gru")


def pytest_configure(config: pytest.Config) -> None:
    """Register the suite's markers."""
    config.addinivalue_line("markers", "trainer: trains real (tiny) models with digits_trainer")


@pytest.fixture(scope="session")
def mnist_npz() -> Path:
    """Path of the labelled MNIST npz (Keras layout) used by the tests."""
    return MNIST_NPZ


@pytest.fixture(scope="session")
def tiny_npz(tmp_path_factory: pytest.TempPathFactory, mnist_npz: Path) -> Path:
    """The first TINY_TRAIN train / TINY_TEST test digits of ``mnist_npz``, as an npz file."""
    target = tmp_path_factory.mktemp("data") / "mnist-tiny.npz"
    with np.load(mnist_npz) as data:
        np.savez_compressed(
            target,
            x_train=data["x_train"][:TINY_TRAIN],
            y_train=data["y_train"][:TINY_TRAIN],
            x_test=data["x_test"][:TINY_TEST],
            y_test=data["y_test"][:TINY_TEST],
        )
    return target


@pytest.fixture(scope="session")
def trained_cells(
    tmp_path_factory: pytest.TempPathFactory, tiny_npz: Path
) -> list[TrainResult]:
    """The three cells trained (seed recipe, 1 epoch) on ``tiny_npz``; one TrainResult each."""
    from digits_trainer import train

    out = tmp_path_factory.mktemp("models")
    return train(
        cells=CELLS, recipe="seed", epochs=1, data=tiny_npz, out=out,
        seed=TINY_SEED, plot=False, quiet=True,
    )


@pytest.fixture(scope="session")
def model_repo(trained_cells: list[TrainResult]) -> Path:
    """Model repository ``<repo>/<cell>/1/`` holding the three cells of ``trained_cells``."""
    return trained_cells[0].path.parent.parent
