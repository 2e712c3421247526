"""The tuned recipe's training loop: the levers ``Model.fit`` does not give directly.

:func:`fit_loop` trains a model (the served recurrent student, or the CNN teacher) with

* random affine augmentation inside the graph: shifts (``augment_shift`` px), rotations
  (``augment_rotation`` degrees) and scaling (``1 +- augment_scale``), bilinear, zero fill,
  optionally composed with elastic distortion and followed by random erasing
  (:mod:`digits_trainer.augment`);
* label smoothing;
* knowledge distillation from a teacher (``distill_alpha`` weighs the KL term between the
  teacher's and the student's ``softmax(logits / distill_temperature)``, times ``T**2``);
* a cosine learning-rate schedule with linear warm-up (``lr_schedule="cosine"``);
* an exponential moving average of the weights (``ema_decay``), which is what is evaluated
  and kept;
* stochastic weight averaging (``swa_epochs``): the equal average of the weights after each of
  the last epochs, kept if its validation loss beats the best epoch's;
* early stopping on the held-out validation loss; the best epoch's weights are kept, or the
  last epoch's (averaged or raw) weights (``final_weights``).

The teacher (:func:`build_teacher`) is a small CNN, a training artefact only: it is never
exported or served.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from .augment import affine_augment, random_erase, warp_augment
from .data import Dataset
from .recipes import Recipe

if TYPE_CHECKING:
    import keras
    import tensorflow as tf


def build_teacher() -> keras.Model:
    """A small CNN (float ``[N, 28, 28]`` in ``[0, 1]`` -> 10 logits), trained, never served."""
    import keras

    inputs = keras.Input(shape=(28, 28), name="image")
    x = keras.layers.Reshape((28, 28, 1))(inputs)
    x = keras.layers.Conv2D(16, 3, activation="relu", padding="same")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, activation="relu", padding="same")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(64, 3, activation="relu")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.3)(x)
    x = keras.layers.Dense(128, activation="relu")(x)
    x = keras.layers.Dropout(0.3)(x)
    logits = keras.layers.Dense(10)(x)
    return keras.Model(inputs, logits, name="teacher_cnn")


def _uint8_batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int | None) -> Any:
    import tensorflow as tf

    stream = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int64)))
    if seed is not None:
        stream = stream.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return stream.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def predict_logits(model: keras.Model, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Logits of uint8 ``images`` (scaled ``/ 255`` as in the serving graph), inference mode."""
    import tensorflow as tf

    chunks = []
    for start in range(0, len(images), batch_size):
        x = tf.cast(tf.constant(images[start:start + batch_size]), tf.float32) / 255.0
        chunks.append(model(x, training=False).numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, 10), np.float32)


def fit_loop(
    model: keras.Model,
    recipe: Recipe,
    x_fit: np.ndarray,
    y_fit: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    seed: int,
    teacher: keras.Model | None = None,
    epochs: int | None = None,
    quiet: bool = True,
    label: str = "",
) -> tuple[dict[str, list[float]], int, int | None, float]:
    """Train ``model`` in place; returns ``(history, epochs_run, best_epoch, seconds)``.

    ``history`` has ``loss``, ``accuracy`` (training, on augmented digits, with the recipe's
    loss), ``val_loss``, ``val_accuracy`` (held-out digits, plain cross-entropy, evaluated with
    the averaged weights when ``ema_decay`` is set) and ``learning_rate`` per epoch.
    """
    import keras
    import tensorflow as tf

    epochs = epochs or recipe.epochs
    if recipe.final_weights not in ("best", "last-ema", "last"):
        raise ValueError(f"unknown final_weights {recipe.final_weights!r}")
    steps_per_epoch = math.ceil(len(x_fit) / recipe.batch_size)
    total_steps = max(epochs * steps_per_epoch, 1)
    if recipe.lr_schedule == "cosine":
        warmup = min(recipe.warmup_epochs * steps_per_epoch, total_steps - 1)
        schedule: Any = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=recipe.learning_rate * (0.1 if warmup else 1.0),
            decay_steps=max(total_steps - warmup, 1), alpha=0.01,
            warmup_target=recipe.learning_rate if warmup else None, warmup_steps=warmup,
        )
    elif recipe.lr_schedule in ("constant", "plateau"):
        schedule = recipe.learning_rate  # plateau is handled per epoch below
    else:
        raise ValueError(f"unknown learning-rate schedule {recipe.lr_schedule!r}")
    kwargs: dict[str, Any] = {"learning_rate": schedule}
    if recipe.clipnorm is not None:
        kwargs["clipnorm"] = recipe.clipnorm
    factories: dict[str, Any] = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}
    if recipe.weight_decay:
        factories["adam"] = keras.optimizers.AdamW
        kwargs["weight_decay"] = recipe.weight_decay
    optimizer = factories[recipe.optimizer](**kwargs)
    variables = model.trainable_variables
    optimizer.build(variables)
    generator = tf.random.Generator.from_seed(seed + 7919)
    smoothing = float(recipe.label_smoothing)
    alpha = float(recipe.distill_alpha) if teacher is not None else 0.0
    kd_t = float(recipe.distill_temperature)
    augmenting = bool(recipe.augment_shift or recipe.augment_rotation or recipe.augment_scale)

    # Weight averaging: shadow copies of every weight (BatchNorm statistics included).
    ema_decay = recipe.ema_decay
    weights = model.weights
    shadows = [tf.Variable(w, trainable=False) for w in weights] if ema_decay else []
    ema_step = tf.Variable(0.0, trainable=False, dtype=tf.float32)

    @tf.function(reduce_retracing=True)
    def train_step(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x = tf.cast(images, tf.float32) / 255.0
        if recipe.elastic_alpha:
            x = warp_augment(
                x, generator, max_shift=float(recipe.augment_shift),
                max_rotation_degrees=float(recipe.augment_rotation),
                max_scale=float(recipe.augment_scale), elastic_alpha=float(recipe.elastic_alpha),
                elastic_sigma=float(recipe.elastic_sigma),
            )
        elif augmenting:
            x = affine_augment(
                x, generator, max_shift=float(recipe.augment_shift),
                max_rotation_degrees=float(recipe.augment_rotation),
                max_scale=float(recipe.augment_scale),
            )
        if recipe.random_erasing:
            x = random_erase(x, generator, probability=float(recipe.random_erasing))
        onehot = tf.one_hot(labels, 10)
        targets = onehot * (1.0 - smoothing) + smoothing / 10.0
        if alpha:
            soft = tf.nn.softmax(teacher(x, training=False) / kd_t)
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_mean(
                tf.nn.softmax_cross_entropy_with_logits(labels=targets, logits=logits)
            )
            if alpha:
                # KL(teacher || student) at temperature kd_t (cross-entropy minus the teacher's
                # entropy, which has no gradient), scaled by kd_t**2 as in Hinton et al.
                kd = tf.reduce_mean(
                    tf.nn.softmax_cross_entropy_with_logits(labels=soft, logits=logits / kd_t)
                    + tf.reduce_sum(soft * tf.math.log(soft + 1e-12), axis=1)
                ) * (kd_t * kd_t)
                loss = (1.0 - alpha) * loss + alpha * kd
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        if ema_decay:
            ema_step.assign_add(1.0)
            decay = tf.minimum(ema_decay, (1.0 + ema_step) / (10.0 + ema_step))
            for shadow, weight in zip(shadows, weights):
                shadow.assign(decay * shadow + (1.0 - decay) * weight)
        correct = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), labels), tf.float32))
        return loss, correct

    def swap() -> None:
        """Exchange live weights and EMA shadows (so evaluation uses the averaged weights)."""
        for shadow, weight in zip(shadows, weights):
            live = weight.numpy()
            weight.assign(shadow)
            shadow.assign(live)

    def val_metrics() -> tuple[float, float]:
        logits = predict_logits(model, x_val)
        z = logits - logits.max(axis=1, keepdims=True)
        nll = np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y_val)), y_val.astype(np.int64)]
        return float(nll.mean()), float(np.mean(logits.argmax(axis=1) == y_val))

    train_stream = _uint8_batches(x_fit, y_fit, recipe.batch_size, seed)
    history: dict[str, list[float]] = {
        "loss": [], "accuracy": [], "val_loss": [], "val_accuracy": [], "learning_rate": [],
    }
    best_loss, best_epoch, best_weights = math.inf, None, None
    patience = recipe.early_stopping_patience
    plateau_wait, lr_now = 0, recipe.learning_rate
    swa: list[np.ndarray] = []
    swa_count = 0
    started = time.perf_counter()
    cpu_started = time.process_time()
    for epoch in range(1, epochs + 1):
        losses, accs = [], []
        for images, labels in train_stream:
            loss, acc = train_step(images, labels)
            losses.append(float(loss))
            accs.append(float(acc))
        if shadows:
            swap()
        val_loss, val_acc = val_metrics()
        lr_value = float(
            schedule(optimizer.iterations) if callable(schedule) else optimizer.learning_rate
        )
        history["loss"].append(float(np.mean(losses)))
        history["accuracy"].append(float(np.mean(accs)))
        history["val_loss"].append(val_loss)
        history["val_accuracy"].append(val_acc)
        history["learning_rate"].append(lr_value)
        if val_loss < best_loss:
            best_loss, best_epoch = val_loss, epoch
            best_weights = [w.numpy() for w in weights]
            plateau_wait = 0
        else:
            plateau_wait += 1
        if recipe.swa_epochs and epoch > epochs - recipe.swa_epochs:
            snapshot = [w.numpy() for w in weights]
            swa = [a + b for a, b in zip(swa, snapshot)] if swa else snapshot
            swa_count += 1
        if shadows:
            swap()
        if not quiet:
            print(f"{label} epoch {epoch}/{epochs}: loss {history['loss'][-1]:.4f} "
                  f"acc {history['accuracy'][-1]:.4f} val_loss {val_loss:.4f} "
                  f"val_acc {val_acc:.4f} lr {lr_value:.2e} "
                  f"({time.perf_counter() - started:.0f} s, cpu {time.process_time() - cpu_started:.0f} s)",
                  file=sys.stderr, flush=True)
        if recipe.lr_schedule == "plateau" and plateau_wait and plateau_wait % max(
            recipe.lr_patience, 1
        ) == 0:
            lr_now = max(lr_now * recipe.lr_factor, recipe.min_learning_rate)
            optimizer.learning_rate = lr_now
        if patience is not None and epoch - (best_epoch or 0) >= patience:
            break
    if swa_count:
        # SWA: the equal average of the last epochs' (averaged) weights, kept if it validates better.
        for weight, total in zip(weights, swa):
            weight.assign(total / swa_count)
        if val_metrics()[0] < best_loss:
            best_weights = None
    seconds = time.perf_counter() - started
    if recipe.final_weights == "last-ema" and shadows:
        swap()
    if best_weights is not None and recipe.final_weights == "best":
        for weight, value in zip(weights, best_weights):
            weight.assign(value)
    return history, len(history["loss"]), best_epoch, seconds


def train_teacher(
    recipe: Recipe, data: Dataset, *, seed: int, quiet: bool = True
) -> tuple[keras.Model, dict[str, Any]]:
    """Train the CNN teacher on the recipe's fit split (same split as the student)."""
    from dataclasses import replace

    import keras

    from .data import split_validation

    x_fit, y_fit, x_val, y_val = split_validation(
        data.x_train, data.y_train, recipe.validation_split, seed
    )
    keras.utils.set_random_seed(seed + 1)
    teacher = build_teacher()
    teacher_recipe = replace(
        recipe, teacher=None, distill_alpha=0.0, label_smoothing=0.0, ema_decay=None,
        early_stopping_patience=None, epochs=recipe.teacher_epochs, lr_schedule="cosine",
        warmup_epochs=1,
    )
    history, epochs_run, best_epoch, seconds = fit_loop(
        teacher, teacher_recipe, x_fit, y_fit, x_val, y_val, seed=seed + 1, quiet=quiet,
        label="teacher",
    )
    test_logits = predict_logits(teacher, data.x_test)
    info = {
        "architecture": "CNN: conv16-pool-conv32-pool-conv64-dense128-dense10 (never served)",
        "parameters": int(teacher.count_params()),
        "epochs": epochs_run,
        "best_epoch": best_epoch,
        "val_accuracy": history["val_accuracy"][best_epoch - 1] if best_epoch else None,
        "test_accuracy": float(np.mean(test_logits.argmax(axis=1) == data.y_test)),
        "seconds": round(seconds, 3),
    }
    return teacher, info
