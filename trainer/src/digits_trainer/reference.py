"""The reference profile of a freshly exported version (docs/monitoring.md): its predictions and
input summaries on held-out digits, written beside metadata.json for the server's label-free
monitoring. Held-out means the recipe's validation split when it has one, else the test split;
never the digits the model was trained on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from digits.monitoring.profile import PROFILE_FILE, ReferenceProfile, build_profile

from .data import Dataset
from .recipes import Recipe


def held_out_digits(recipe: Recipe, data: Dataset, seed: int) -> tuple[Any, Any, str]:
    """(images, labels, description) of the digits the model never trained on."""
    from .training import split_validation

    if recipe.validation_split > 0:
        _, _, x_val, y_val = split_validation(data.x_train, data.y_train, recipe.validation_split, seed)
        return x_val, y_val, f"validation split ({len(y_val)} digits held out of training)"
    return data.x_test, data.y_test, f"test split ({len(data.y_test)} digits; the recipe has no validation split)"


def write_reference_profile(
    signature: Callable[..., dict[str, Any]], recipe: Recipe, data: Dataset, seed: int, folder: Path
) -> ReferenceProfile:
    """Compute the profile with the exported serving signature and write `folder/reference_profile.json`."""
    from .export import predict_probabilities

    images, labels, held_out = held_out_digits(recipe, data, seed)
    profile = build_profile(images, predict_probabilities(signature, images), labels, held_out)
    (folder / PROFILE_FILE).write_text(profile.dumps())
    return profile


def profile_facts(profile: ReferenceProfile) -> dict[str, Any]:
    """What metadata.json says about the profile."""
    return {"file": PROFILE_FILE, "held_out": profile.held_out, "examples": profile.examples,
            "labelled_accuracy": profile.labelled_accuracy}
