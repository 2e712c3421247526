"""Fixtures shared by the server's fault and soak tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.modelrepo import private_repo


@pytest.fixture(scope="session")
def test_digit(tiny_npz: Path) -> np.ndarray:
    """One 28x28 uint8 test digit."""
    with np.load(tiny_npz) as data:
        return data["x_test"][0]


@pytest.fixture(scope="session")
def digits(tiny_npz: Path) -> np.ndarray:
    """The tiny data set's test digits, uint8 [N,28,28]."""
    with np.load(tiny_npz) as data:
        return data["x_test"]


@pytest.fixture()
def gru_repo(model_repo: Path, tmp_path: Path) -> Path:
    """A private model repository with the trainer's GRU version 1 only (fast to load), safe to change."""
    return private_repo(model_repo, tmp_path / "models")


@pytest.fixture(scope="session")
def xla_repo(model_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of `model_repo` as trained before the dynamic-batch LiteRT export: no
    `assets.extra/model_batch.tflite`, so the auto runtime serves batches with XLA."""
    from digits_server.core.runtimes import TFLITE_BATCH_FILE

    repo = private_repo(model_repo, tmp_path_factory.mktemp("xla-models"), ("rnn", "lstm", "gru"))
    for version in repo.glob("*/1"):
        (version / TFLITE_BATCH_FILE).unlink()
    return repo


@pytest.fixture(scope="session")
def tuned_lstm(tmp_path_factory: pytest.TempPathFactory, mnist_npz: Path) -> Path:
    """An LSTM trained with the tuned recipe (4 epochs on 4000 digits): ``<repo>/lstm/1``, clearly
    stronger than the seed-recipe 1-epoch cells of ``model_repo``. Returns the repository."""
    from digits_trainer import train

    repo = tmp_path_factory.mktemp("tuned")
    train("lstm", "tuned", epochs=4, data=mnist_npz, out=repo, seed=0, train_limit=4000, test_limit=500,
          plot=False, quiet=True)
    return repo
