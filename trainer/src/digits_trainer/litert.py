"""A LiteRT (TFLite) copy of a trained model for fast single-image serving.

The SavedModel's signature has a dynamic batch, which TFLite cannot convert with builtin ops
(`TensorListReserve` needs a static element shape). A batch-1 rebuild of the same Keras model
with the same weights, frozen to constants, converts with builtin ops only. It is written to
``<version>/assets.extra/model.tflite`` and takes uint8 ``[1, 28, 28]`` to probabilities
``[1, 10]``, exactly like the signature (scaling, temperature and softmax inside). The server prefers it for
single images; the SavedModel stays the source of truth (the server's tests compare the two).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

#: Where the flatbuffer lives inside a version folder (TF Serving ignores assets.extra/).
TFLITE_PATH = Path("assets.extra") / "model.tflite"


def tflite_bytes(model: keras.Model, *, temperature: float | None = None) -> bytes:
    """Convert ``model`` (float [N,28,28] scaled rows in, logits out) to a batch-1 uint8 flatbuffer."""
    import keras
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    single = keras.models.clone_model(model, input_tensors=keras.Input(batch_shape=(1, 28, 28)))
    single.set_weights(model.get_weights())

    @tf.function(input_signature=[tf.TensorSpec([1, 28, 28], tf.uint8, name="images")])
    def serve(images: tf.Tensor) -> dict[str, tf.Tensor]:
        logits = single(tf.cast(images, tf.float32) / 255.0, training=False)
        if temperature is not None:  # the same temperature scaling as the SavedModel
            logits = logits / tf.constant(temperature, tf.float32, name="temperature")
        return {"probabilities": tf.nn.softmax(logits, axis=-1)}

    frozen = convert_variables_to_constants_v2(serve.get_concrete_function())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen], trackable_obj=single)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        return converter.convert()


def write_tflite(
    model: keras.Model, version_dir: str | os.PathLike[str], *, temperature: float | None = None
) -> Path:
    """Write ``<version_dir>/assets.extra/model.tflite``; returns its path."""
    path = Path(version_dir) / TFLITE_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tflite_bytes(model, temperature=temperature))
    return path
