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


@pytest.fixture()
def gru_repo(model_repo: Path, tmp_path: Path) -> Path:
    """A private model repository with the trainer's GRU version 1 only (fast to load), safe to change."""
    return private_repo(model_repo, tmp_path / "models")
