"""The ``metadata.json`` written beside every exported SavedModel.

Keys: ``cell``, ``recipe``, ``version``, ``architecture``, ``signature``, ``hyperparameters``,
``parameters``, ``trainable_parameters``, ``test_accuracy``, ``per_class_accuracy`` (10 floats,
``null`` for a digit absent from the test split), ``confusion_matrix`` (10x10, rows = true digit),
``accuracy_source``, ``data`` (``source``, ``path``, ``fell_back``, ``fingerprint``, ``n_train``,
``n_test``, ``n_fit``, ``n_validation``, ``train_limit``, ``test_limit``), ``training_seconds``,
``tensorflow_version``, ``keras_version``, ``python_version``, ``seed``, ``created_at``,
``history``, ``test_ece`` (expected calibration error, 15 bins, of the *served* probabilities on
x_test), ``temperature`` (inside the graph; ``null`` = none, the seed recipe) and ``calibration``
(``bins_count``, ``temperature``, ``fitted_on``, ``ece_before`` (plain softmax), ``ece``
(served), ``validation_nll_before``/``validation_nll_after``, ``bins_before``/``bins`` (per-bin
``lower``, ``upper``, ``count``, ``confidence``, ``accuracy``) and ``reliability_diagram``, the
PNG's path relative to the version folder). Accuracy figures come from the exported signature, not from ``model.evaluate``.
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
    "test_ece", "temperature", "calibration",
)


def hyperparameters(
    recipe: Recipe, outcome: FitOutcome, cell: str | None = None
) -> dict[str, Any]:
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
        "epochs_requested": recipe.epochs_for(cell),
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
        "loss": (
            "sparse_categorical_crossentropy(from_logits=True)" if not recipe.custom_loop
            else "softmax cross-entropy" + (
                f" with label smoothing {recipe.label_smoothing}" if recipe.label_smoothing
                else "") + (
                f"; (1 - {recipe.distill_alpha}) x that + {recipe.distill_alpha} x "
                f"T^2 KL(teacher || student) at T={recipe.distill_temperature}"
                if recipe.teacher else "")
        ),
        "recipe_description": recipe.description,
        **(_levers(recipe, outcome) if recipe.custom_loop else {}),
    }


def _levers(recipe: Recipe, outcome: FitOutcome) -> dict[str, Any]:
    """The tuned loop's settings (only for recipes that use it; the seed recipe has none)."""
    schedule: dict[str, Any] = {"type": recipe.lr_schedule}
    if recipe.lr_schedule == "cosine":
        schedule.update(peak_learning_rate=recipe.learning_rate,
                        warmup_epochs=recipe.warmup_epochs, final_fraction=0.01)
    return {
        "learning_rate_schedule": schedule,
        "early_stopping": (
            {"monitor": "val_loss (averaged weights)", "patience": recipe.early_stopping_patience,
             "restore_best_weights": recipe.final_weights == "best"}
            if recipe.early_stopping_patience is not None else None
        ),
        "weights_kept": recipe.final_weights,
        "augmentation": {
            "random_shift_pixels": recipe.augment_shift,
            "random_rotation_degrees": recipe.augment_rotation,
            "random_scale": recipe.augment_scale,
            **({"elastic_alpha": recipe.elastic_alpha, "elastic_sigma": recipe.elastic_sigma}
               if recipe.elastic_alpha else {}),
            **({"random_erasing": recipe.random_erasing} if recipe.random_erasing else {}),
        },
        "label_smoothing": recipe.label_smoothing,
        "weight_decay": recipe.weight_decay,
        "weight_averaging": (
            {"type": "ema", "decay": recipe.ema_decay,
             **({"swa_epochs": recipe.swa_epochs} if recipe.swa_epochs else {})}
            if recipe.ema_decay else None
        ),
        "distillation": (
            {"teacher": recipe.teacher, "alpha": recipe.distill_alpha,
             "temperature": recipe.distill_temperature, "teacher_epochs": recipe.teacher_epochs,
             "teacher_run": outcome.teacher}
            if recipe.teacher else None
        ),
        "temperature_scaling": recipe.calibrate,
        "temperature_min_nll_gain": recipe.calibrate_min_gain,
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
    calibration: dict[str, Any] | None = None,
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
            "preprocessing": (
                "pixels / 255 inside the graph; softmax inside the graph"
                if not calibration or calibration.get("temperature") is None
                else "pixels / 255 inside the graph; logits / temperature then softmax inside "
                "the graph"
            ),
        },
        "hyperparameters": hyperparameters(recipe, outcome, cell),
        "parameters": parameters,
        "trainable_parameters": trainable_parameters,
        "test_accuracy": evaluation.accuracy,
        "per_class_accuracy": evaluation.per_class_accuracy,
        "confusion_matrix": evaluation.confusion_matrix,
        "accuracy_source": f"argmax of the exported {SIGNATURE_NAME} signature on x_test",
        "test_ece": calibration["ece"] if calibration else None,
        "temperature": calibration["temperature"] if calibration else None,
        "calibration": calibration,
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
