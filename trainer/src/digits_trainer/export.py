"""Exporting a trained model in TensorFlow Serving's layout: ``<out>/<cell>/<version>/``.

A version folder is written as a hidden ``.tmp-<version>-<random>`` sibling first and renamed to
``<version>`` only when complete, so a reader that ignores non-integer names (the server, TF
Serving) never sees a half-written model. The SavedModel's ``serving_default`` signature takes
``images``: uint8 ``[None, 28, 28]`` and returns ``{"probabilities": float32 [None, 10]}``; the
``/ 255`` scaling, the temperature (if the recipe fitted one) and the softmax live inside the
graph. Beside it, ``assets.extra/model.tflite`` is a batch-1 LiteRT copy of the same model and
``assets.extra/model_batch.tflite`` a dynamic-batch one (see :mod:`digits_trainer.litert`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras

SIGNATURE_NAME = "serving_default"
INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"
METADATA_FILE = "metadata.json"
TMP_PREFIX = ".tmp-"


def existing_versions(cell_dir: str | os.PathLike[str]) -> list[int]:
    """Sorted integer version folders under ``cell_dir`` (hidden and other names ignored)."""
    folder = Path(cell_dir)
    if not folder.is_dir():
        return []
    return sorted(
        int(entry.name)
        for entry in folder.iterdir()
        if entry.is_dir() and entry.name.isdigit() and entry.name.isascii()
    )


def next_version(cell_dir: str | os.PathLike[str]) -> int:
    """The version after the highest existing integer folder, 1 if there is none."""
    versions = existing_versions(cell_dir)
    return versions[-1] + 1 if versions else 1


def write_saved_model(
    model: keras.Model, path: str | os.PathLike[str], *, temperature: float | None = None
) -> None:
    """Write ``model`` as a SavedModel whose ``serving_default`` maps uint8 images to probabilities.

    With a ``temperature`` the graph computes ``softmax(logits / temperature)`` (temperature
    scaling: calibrated probabilities, same argmax); without one, ``softmax(logits)`` exactly as
    the reference graph does.
    """
    import keras
    import tensorflow as tf

    def serve(images: tf.Tensor) -> dict[str, tf.Tensor]:
        scaled = tf.cast(images, tf.float32) / 255.0
        logits = model(scaled, training=False)
        if temperature is not None:
            logits = logits / tf.constant(temperature, tf.float32, name="temperature")
        return {OUTPUT_NAME: tf.nn.softmax(logits, axis=-1)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=SIGNATURE_NAME,
        fn=serve,
        input_signature=[tf.TensorSpec(shape=[None, 28, 28], dtype=tf.uint8, name=INPUT_NAME)],
    )
    archive.write_out(os.fspath(path), verbose=False)


def load_signature(path: str | os.PathLike[str]) -> Callable[..., dict[str, Any]]:
    """Load a version folder exactly as the server does and return its serving signature."""
    import tensorflow as tf

    return tf.saved_model.load(os.fspath(path)).signatures[SIGNATURE_NAME]


def predict_probabilities(
    signature: Callable[..., dict[str, Any]], images: np.ndarray, *, batch_size: int = 256
) -> np.ndarray:
    """Run uint8 ``images`` through the serving signature in batches; float32 ``[N, 10]``."""
    import tensorflow as tf

    chunks = [
        signature(**{INPUT_NAME: tf.constant(images[start : start + batch_size], dtype=tf.uint8)})[
            OUTPUT_NAME
        ].numpy()
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(chunks) if chunks else np.zeros((0, 10), np.float32)


@dataclass(frozen=True)
class Evaluation:
    """Accuracy figures computed from the exported graph's argmax."""

    accuracy: float
    per_class_accuracy: list[float | None]
    confusion_matrix: list[list[int]]
    predictions: np.ndarray


def evaluate(predictions: np.ndarray, labels: np.ndarray) -> Evaluation:
    """Accuracy, per-class accuracy (``None`` for absent classes) and confusion (rows = truth)."""
    labels = np.asarray(labels).astype(np.int64)
    predictions = np.asarray(predictions).astype(np.int64)
    confusion = np.zeros((10, 10), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    support = confusion.sum(axis=1)
    per_class = [
        float(confusion[k, k] / support[k]) if support[k] else None for k in range(10)
    ]
    accuracy = float(np.mean(predictions == labels)) if len(labels) else 0.0
    return Evaluation(accuracy, per_class, confusion.tolist(), predictions)


def write_json(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write ``payload`` as indented UTF-8 JSON (through a temp file + ``os.replace``)."""
    target = Path(path)
    temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}")
    temp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(temp, target)


@contextlib.contextmanager
def staging_dir(cell_dir: str | os.PathLike[str], version: int) -> Iterator[Path]:
    """Create ``<cell_dir>/.tmp-<version>-<random>/``; remove it on exit if still there."""
    parent = Path(cell_dir)
    parent.mkdir(parents=True, exist_ok=True)
    temp = parent / f"{TMP_PREFIX}{version}-{secrets.token_hex(4)}"
    temp.mkdir()
    try:
        yield temp
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)


def publish(
    temp: Path,
    cell_dir: str | os.PathLike[str],
    version: int,
    *,
    on_renumber: Callable[[Path, int], None] | None = None,
) -> tuple[int, Path]:
    """Rename the complete ``temp`` folder to ``<cell_dir>/<version>``; the atomic "done" step.

    If another trainer published that version meanwhile, the next free number is taken instead
    (``on_renumber(temp, new_version)`` runs first so the folder's metadata can follow).
    Returns the final ``(version, path)``.
    """
    parent = Path(cell_dir)
    while True:
        target = parent / str(version)
        if not target.exists():
            try:
                os.rename(temp, target)
                return version, target
            except OSError as error:
                if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
        version = max(version, next_version(parent) - 1) + 1
        if on_renumber is not None:
            on_renumber(temp, version)
