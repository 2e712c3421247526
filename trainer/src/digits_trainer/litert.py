"""LiteRT (TFLite) copies of a trained model, for fast serving without TensorFlow's runtime.

The SavedModel's signature has a dynamic batch, which TFLite cannot convert with builtin ops
(`TensorListReserve` needs a static element shape). Two rebuilds of the same Keras model with the
same weights, frozen to constants, convert with builtin ops only:

- ``<version>/assets.extra/model.tflite``: batch 1 (the recurrent loop kept as a ``WHILE``), for
  single images;
- ``<version>/assets.extra/model_batch.tflite``: any batch (input shape ``[-1, 28, 28]``), the
  recurrent layer unrolled over the 28 rows so that no TensorList is needed; the server resizes
  one interpreter per serving thread to each batch's size.

Both take uint8 ``[N, 28, 28]`` to probabilities ``[N, 10]``, exactly like the signature (scaling,
temperature and softmax inside). The SavedModel stays the source of truth:
``<version>/assets.extra/litert_reference.npz`` holds reference inputs (``images``, uint8
``[K, 28, 28]``: the first test digits) and the SavedModel signature's ``probabilities`` for them
(float32 ``[K, 10]``). A server without TensorFlow (the ``litert`` runtime) runs both flatbuffers on
these inputs at load and refuses a version whose LiteRT files disagree.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .tensorflow_startup import converter_notices_dropped

if TYPE_CHECKING:
    import keras

#: Where the batch-1 flatbuffer lives inside a version folder (TF Serving ignores assets.extra/).
TFLITE_PATH = Path("assets.extra") / "model.tflite"
#: Where the dynamic-batch (unrolled) flatbuffer lives inside a version folder.
TFLITE_BATCH_PATH = Path("assets.extra") / "model_batch.tflite"
#: The SavedModel's reference predictions the LiteRT files are checked against at load.
REFERENCE_PATH = Path("assets.extra") / "litert_reference.npz"
#: How many reference digits: enough that a wrong or damaged flatbuffer cannot agree by chance,
#: few enough to check in a few milliseconds at every load.
REFERENCE_IMAGES = 64


def _unrolled(layer: Any) -> Any:
    """A fresh copy of ``layer`` (clone_model's default), recurrent layers with ``unroll=True``."""
    config = layer.get_config()
    if "unroll" in config:
        config["unroll"] = True
    return layer.__class__.from_config(config)


def _convert(model: keras.Model, batch: int | None, *, unroll: bool, temperature: float | None) -> bytes:
    """Clone ``model`` for input batch ``batch`` (None: dynamic), freeze it and convert it to a
    uint8-in, probabilities-out flatbuffer with builtin ops only."""
    import keras
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    clone = keras.models.clone_model(
        model, input_tensors=keras.Input(batch_shape=(batch, 28, 28)), clone_function=_unrolled if unroll else None
    )
    clone.set_weights(model.get_weights())

    @tf.function(input_signature=[tf.TensorSpec([batch, 28, 28], tf.uint8, name="images")])
    def serve(images: tf.Tensor) -> dict[str, tf.Tensor]:
        logits = clone(tf.cast(images, tf.float32) / 255.0, training=False)
        if temperature is not None:  # the same temperature scaling as the SavedModel
            logits = logits / tf.constant(temperature, tf.float32, name="temperature")
        return {"probabilities": tf.nn.softmax(logits, axis=-1)}

    frozen = convert_variables_to_constants_v2(serve.get_concrete_function())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen], trackable_obj=clone)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        with converter_notices_dropped():  # its C++ warnings about ignored options (tensorflow_startup)
            return converter.convert()


def tflite_bytes(model: keras.Model, *, temperature: float | None = None) -> bytes:
    """Convert ``model`` (float [N,28,28] scaled rows in, logits out) to a batch-1 uint8 flatbuffer."""
    return _convert(model, 1, unroll=False, temperature=temperature)


def tflite_batch_bytes(model: keras.Model, *, temperature: float | None = None) -> bytes:
    """Convert ``model`` to a dynamic-batch uint8 flatbuffer (recurrent layer unrolled)."""
    return _convert(model, None, unroll=True, temperature=temperature)


def write_tflite(
    model: keras.Model, version_dir: str | os.PathLike[str], *, temperature: float | None = None
) -> Path:
    """Write ``<version_dir>/assets.extra/model.tflite`` and ``model_batch.tflite`` beside it;
    returns the batch-1 file's path."""
    path = Path(version_dir) / TFLITE_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tflite_bytes(model, temperature=temperature))
    (Path(version_dir) / TFLITE_BATCH_PATH).write_bytes(tflite_batch_bytes(model, temperature=temperature))
    return path


def write_reference(
    version_dir: str | os.PathLike[str], images: np.ndarray, probabilities: np.ndarray
) -> Path:
    """Write ``<version_dir>/assets.extra/litert_reference.npz``: the first ``REFERENCE_IMAGES``
    uint8 images and the SavedModel signature's probabilities for them; returns its path."""
    path = Path(version_dir) / REFERENCE_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    count = min(REFERENCE_IMAGES, len(images))
    with path.open("wb") as stream:
        np.savez(stream, images=np.asarray(images[:count], dtype=np.uint8),
                 probabilities=np.asarray(probabilities[:count], dtype=np.float32))
    return path
