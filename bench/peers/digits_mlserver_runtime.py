"""The peer's model runtime: MLServer 1.7.1 serving the trainer's SavedModel with TensorFlow, the
way a team would wrap it for MLServer (an `mlserver.MLModel` subclass; MLServer ships no
TensorFlow runtime). Input "images" uint8 [N,28,28], output "probabilities" float32 [N,10], the
same tensors as digits-server's v2 endpoint, so `digits bench --protocol v2` drives both.
Runs in .venv-mlserver only (bench/peers/setup.sh); the model-settings.json that
bench/peers/mlserver.py writes turns on MLServer's adaptive batching.
"""

from __future__ import annotations

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class SavedModelRuntime(MLModel):
    """One SavedModel's serving_default signature per model; parameters.uri is its directory."""

    async def load(self) -> bool:
        """Load the SavedModel and trace its signature once."""
        import tensorflow as tf

        self._tf = tf
        self._loaded = tf.saved_model.load(str(self.settings.parameters.uri))
        self._signature = self._loaded.signatures["serving_default"]
        self._signature(images=tf.zeros((1, 28, 28), tf.uint8))
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        """Probabilities for the request's images (adaptive batching may have merged several requests)."""
        images = NumpyCodec.decode_input(payload.inputs[0]).astype(np.uint8).reshape(-1, 28, 28)
        probabilities = self._signature(images=self._tf.constant(images))["probabilities"].numpy()
        return InferenceResponse(
            model_name=self.name, id=payload.id,
            outputs=[NumpyCodec.encode_output("probabilities", probabilities.astype(np.float32))],
        )
