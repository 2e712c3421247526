"""The trainer writes each version's reference profile (label-free monitoring, docs/monitoring.md)
beside metadata.json, on held-out digits only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from digits.monitoring.profile import PROFILE_FILE, ReferenceProfile, signal_values
from digits.monitoring.summaries import SUMMARY_NAMES, summarise
from tests.conftest import TINY_SEED, TINY_TEST

pytestmark = pytest.mark.trainer


def test_every_version_has_a_profile_of_its_test_digits(trained_cells: list, tiny_npz: Path) -> None:
    """The seed recipe has no validation split: the profile is the test split's, so its labelled
    accuracy is exactly metadata.json's test accuracy and its class counts the model's predictions."""
    from digits_trainer import export

    with np.load(tiny_npz) as data:
        x_test = data["x_test"]
    for result in trained_cells:
        profile = ReferenceProfile.loads((result.path / PROFILE_FILE).read_text())
        assert profile.examples == TINY_TEST and profile.held_out.startswith("test split")
        assert profile.labelled_accuracy == pytest.approx(result.metadata["test_accuracy"])
        metadata = json.loads((result.path / "metadata.json").read_text())
        assert metadata["reference_profile"]["file"] == PROFILE_FILE
        probabilities = export.predict_probabilities(export.load_signature(result.path), x_test)
        values = signal_values(x_test, probabilities)
        assert profile.signals["predicted_class"].counts == tuple(np.bincount(values[:, 0].astype(int), minlength=10))
        assert sum(profile.calibration.correct) == round(profile.labelled_accuracy * TINY_TEST)


def test_a_recipe_with_a_validation_split_profiles_the_validation_digits(tmp_path: Path, tiny_npz: Path) -> None:
    """Held out means never trained on: the validation digits, not the training ones nor the test ones."""
    from digits_trainer import train
    from digits_trainer.training import split_validation

    (result,) = train(cells=["rnn"], recipe="seed", epochs=1, data=tiny_npz, out=tmp_path, seed=TINY_SEED,
                      validation_split=0.1, plot=False, quiet=True)
    profile = ReferenceProfile.loads((result.path / PROFILE_FILE).read_text())
    assert profile.examples == 200 and profile.held_out.startswith("validation split")
    with np.load(tiny_npz) as data:
        _, _, x_val, _ = split_validation(data["x_train"], data["y_train"], 0.1, TINY_SEED)
    box_height = profile.signals["box_height"]
    heights = summarise(x_val)[:, SUMMARY_NAMES.index("box_height")]
    assert box_height.counts == tuple(np.bincount(box_height.bins(heights), minlength=len(box_height.counts)))
