"""Fitting one model with a :class:`~digits_trainer.recipes.Recipe`.

:func:`seed_everything` (``keras.utils.set_random_seed`` + TensorFlow op determinism) is called
once per model, before it is built, so a cell trained alone reproduces the same cell trained
among others.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .data import Dataset, split_validation
from .recipes import Recipe

if TYPE_CHECKING:
    import keras
    import tensorflow as tf


@dataclass
class FitOutcome:
    """What a training run produced besides the weights (which stay in the model)."""

    history: dict[str, list[float]]
    epochs_run: int
    best_epoch: int | None
    seconds: float
    n_train: int
    n_validation: int
    validation: str
    teacher: dict[str, Any] | None = None


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy, TensorFlow and Keras, and make TensorFlow ops deterministic."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def make_optimizer(recipe: Recipe) -> keras.optimizers.Optimizer:
    """Instantiate the recipe's optimizer with its learning rate (and clipping, if any)."""
    import keras

    kwargs: dict[str, Any] = {"learning_rate": recipe.learning_rate}
    if recipe.clipnorm is not None:
        kwargs["clipnorm"] = recipe.clipnorm
    factories = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam}
    if recipe.optimizer not in factories:
        raise ValueError(f"unknown optimizer {recipe.optimizer!r}")
    return factories[recipe.optimizer](**kwargs)


def make_callbacks(recipe: Recipe, *, has_validation: bool) -> list[keras.callbacks.Callback]:
    """Schedule and early-stopping callbacks (both watch the held-out validation loss)."""
    import keras

    callbacks: list[keras.callbacks.Callback] = []
    if not has_validation:
        return callbacks
    if recipe.lr_schedule == "plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss",
                factor=recipe.lr_factor,
                patience=recipe.lr_patience,
                min_lr=recipe.min_learning_rate,
            )
        )
    elif recipe.lr_schedule != "constant":
        raise ValueError(f"unknown learning-rate schedule {recipe.lr_schedule!r}")
    if recipe.early_stopping_patience is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=recipe.early_stopping_patience,
                restore_best_weights=True,
            )
        )
    return callbacks


def batches(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int,
    seed: int | None = None,
    max_shift: int = 0,
) -> tf.data.Dataset:
    """uint8 digits -> batches of ``(images / 255, labels)`` as a ``tf.data`` pipeline.

    With a ``seed`` the digits are reshuffled every pass (like ``fit(shuffle=True)``); with
    ``max_shift > 0`` the stream is also endless (use ``steps_per_epoch``) and every digit is
    shifted at random by up to ``max_shift`` pixels each pass: the image is padded with zeros
    and a random 28x28 window is cropped. The ``/ 255`` scaling matches the serving graph.
    """
    import tensorflow as tf

    pad = max_shift

    def shift(image: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        padded = tf.pad(image, [[pad, pad], [pad, pad]])
        return tf.image.random_crop(padded, [28, 28], seed=seed), label

    def scale(batch: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return tf.cast(batch, tf.float32) / 255.0, label

    stream = tf.data.Dataset.from_tensor_slices((images, labels))
    if seed is not None:
        stream = stream.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    if max_shift > 0:
        # Endless, so the random shifts keep drawing new values instead of restarting per epoch.
        stream = stream.repeat().map(shift)
    return stream.batch(batch_size).map(scale).prefetch(tf.data.AUTOTUNE)


def fit(
    model: keras.Model,
    recipe: Recipe,
    data: Dataset,
    *,
    seed: int,
    quiet: bool = False,
    teacher: keras.Model | None = None,
    teacher_info: dict[str, Any] | None = None,
    cell: str | None = None,
) -> FitOutcome:
    """Compile ``model`` and train it on ``data`` following ``recipe``; return the history.

    ``seed`` drives the validation split and the augmentation stream; call
    :func:`seed_everything` before building the model so its initial weights are seeded too.
    Recipes using the custom loop's levers (:attr:`Recipe.custom_loop`, e.g. ``tuned``) are
    trained by :func:`digits_trainer.loop.fit_loop` (with ``teacher`` for distillation); the
    others (``seed``) by ``Model.fit`` exactly as before.
    """
    import keras

    if recipe.custom_loop:
        from .loop import fit_loop

        if recipe.validation_split <= 0:
            raise ValueError(f"recipe {recipe.name!r} needs a held-out validation split")
        x_fit, y_fit, x_val, y_val = split_validation(
            data.x_train, data.y_train, recipe.validation_split, seed
        )
        history, epochs_run, best_epoch, seconds = fit_loop(
            model, recipe, x_fit, y_fit, x_val, y_val, seed=seed, teacher=teacher,
            quiet=quiet, label=model.name, epochs=recipe.epochs_for(cell),
        )
        return FitOutcome(
            history=history, epochs_run=epochs_run, best_epoch=best_epoch, seconds=seconds,
            n_train=len(x_fit), n_validation=len(x_val),
            validation=f"held-out {recipe.validation_split:.0%} of the training digits",
            teacher=teacher_info,
        )

    model.compile(
        optimizer=make_optimizer(recipe),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    if recipe.validation_split > 0:
        x_fit, y_fit, x_val, y_val = split_validation(
            data.x_train, data.y_train, recipe.validation_split, seed
        )
        validation = f"held-out {recipe.validation_split:.0%} of the training digits"
    else:
        x_fit, y_fit, x_val, y_val = data.x_train, data.y_train, data.x_test, data.y_test
        validation = "test split (monitoring only, as in the reference)"
    y_fit, y_val = y_fit.astype(np.int64), y_val.astype(np.int64)
    callbacks = make_callbacks(recipe, has_validation=recipe.validation_split > 0)
    verbose = 0 if quiet else (1 if sys.stdout.isatty() else 2)
    # Our own tf.data pipelines (same batches as fit(x, y, batch_size, shuffle=True)); they
    # also avoid a spurious TF error log from Keras' array adapter under op determinism.
    train_stream = batches(
        x_fit, y_fit, batch_size=recipe.batch_size, seed=seed, max_shift=recipe.augment_shift
    )
    steps = math.ceil(len(x_fit) / recipe.batch_size) if recipe.augment_shift > 0 else None
    started = time.perf_counter()
    history = model.fit(
        train_stream,
        epochs=recipe.epochs,
        steps_per_epoch=steps,
        shuffle=False,  # the stream shuffles itself
        validation_data=batches(x_val, y_val, batch_size=256),
        callbacks=callbacks,
        verbose=verbose,
    )
    seconds = time.perf_counter() - started
    curves = {key: [float(v) for v in values] for key, values in history.history.items()}
    epochs_run = len(curves.get("loss", []))
    best_epoch = None
    for callback in callbacks:
        if isinstance(callback, keras.callbacks.EarlyStopping) and epochs_run:
            best_epoch = int(np.argmin(curves["val_loss"])) + 1
    return FitOutcome(
        history=curves,
        epochs_run=epochs_run,
        best_epoch=best_epoch,
        seconds=seconds,
        n_train=len(x_fit),
        n_validation=len(x_val) if recipe.validation_split > 0 else 0,
        validation=validation,
    )
