"""The ``metadata.json`` written beside every exported SavedModel.

Keys: ``cell``, ``recipe``, ``version``, ``architecture``, ``signature``, ``hyperparameters``,
``parameters``, ``trainable_parameters``, ``test_accuracy``, ``per_class_accuracy`` (10 floats,
``null`` for a digit absent from the test split), ``confusion_matrix`` (10x10, rows = true digit),
``accuracy_source``, ``data`` (``source``, ``path``, ``fell_back``, ``fingerprint``, ``n_train``,
``n_test``, ``n_fit``, ``n_validation``, ``train_limit``, ``test_limit``), ``training_seconds``,
``tensorflow_version``, ``keras_version``, ``python_version``, ``seed``, ``created_at``,
``history``. Accuracy figures come from the exported signature, not from ``model.evaluate``.
"""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from typing import Any

from .data import Dataset
from .export import INPUT_NAME, OUTPUT_NAME, SIGNATURE_NAME, Evaluation
from .model import describe
from .recipes import Recipe
from .training import FitOutcome

SCHEMA_VERSION = 1

#: Keys every metadata.json has (tests and the server may rely on them).
REQUIRED_KEYS: tuple[str, ...] = (
    "cell", "recipe", "version", "hyperparameters", "parameters", "test_accuracy",
    "per_class_accuracy", "confusion_matrix", "data", "training_seconds",
    "tensorflow_version", "keras_version", "seed", "created_at", "history",
)


def hyperparameters(recipe: Recipe, outcome: FitOutcome) -> dict[str, Any]:
    """The training settings actually used, including what the run did (epochs run, best epoch)."""
    held_out = recipe.validation_split > 0
    # Schedule and early stopping watch the held-out split; without one they are off.
    schedule: dict[str, Any] = {"type": recipe.lr_schedule if held_out else "constant"}
    if schedule["type"] == "plateau":
        schedule.update(
            monitor="val_loss", factor=recipe.lr_factor, patience=recipe.lr_patience,
            min_learning_rate=recipe.min_learning_rate,
        )
    return {
        "optimizer": recipe.optimizer,
        "learning_rate": recipe.learning_rate,
        "learning_rate_schedule": schedule,
        "batch_size": recipe.batch_size,
        "epochs_requested": recipe.epochs,
        "epochs_run": outcome.epochs_run,
        "best_epoch": outcome.best_epoch,
        "validation_split": recipe.validation_split,
        "validation": outcome.validation,
        "early_stopping": (
            {"monitor": "val_loss", "patience": recipe.early_stopping_patience,
             "restore_best_weights": True}
            if recipe.early_stopping_patience is not None and held_out
            else None
        ),
        "augmentation": (
            {"random_shift_pixels": recipe.augment_shift} if recipe.augment_shift else None
        ),
        "clipnorm": recipe.clipnorm,
        "loss": "sparse_categorical_crossentropy(from_logits=True)",
        "recipe_description": recipe.description,
    }


def build_metadata(
    *,
    cell: str,
    recipe: Recipe,
    version: int,
    parameters: int,
    trainable_parameters: int,
    evaluation: Evaluation,
    data: Dataset,
    outcome: FitOutcome,
    seed: int,
) -> dict[str, Any]:
    """Assemble the JSON-ready metadata dict of one exported model."""
    import keras
    import tensorflow as tf

    return {
        "schema_version": SCHEMA_VERSION,
        "cell": cell,
        "recipe": recipe.name,
        "version": version,
        "architecture": describe(cell),
        "signature": {
            "name": SIGNATURE_NAME,
            "inputs": {INPUT_NAME: "uint8 [None, 28, 28]"},
            "outputs": {OUTPUT_NAME: "float32 [None, 10]"},
            "preprocessing": "pixels / 255 inside the graph; softmax inside the graph",
        },
        "hyperparameters": hyperparameters(recipe, outcome),
        "parameters": parameters,
        "trainable_parameters": trainable_parameters,
        "test_accuracy": evaluation.accuracy,
        "per_class_accuracy": evaluation.per_class_accuracy,
        "confusion_matrix": evaluation.confusion_matrix,
        "accuracy_source": f"argmax of the exported {SIGNATURE_NAME} signature on x_test",
        "data": {
            "source": data.source,
            "path": data.path,
            "fell_back": data.fell_back,
            "fingerprint": data.fingerprint(),
            "n_train": data.n_train,
            "n_test": data.n_test,
            "n_fit": outcome.n_train,
            "n_validation": outcome.n_validation,
            "train_limit": data.train_limit,
            "test_limit": data.test_limit,
        },
        "training_seconds": round(outcome.seconds, 3),
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "python_version": platform.python_version(),
        "seed": seed,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "history": outcome.history,
    }
