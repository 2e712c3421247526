"""One loaded model version: the trainer's SavedModel behind a thread-safe `predict`.

TensorFlow is imported here, lazily, so that modules which only route or count do not pay
for it. The serving path calls the SavedModel's `serving_default` signature (never Keras'
`model.predict`, which costs ~80 ms per call).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

SIGNATURE = "serving_default"
INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"
METADATA_FILE = "metadata.json"


@dataclass(frozen=True)
class VersionInfo:
    """What metadata.json says about a version (empty fields when the file is missing)."""

    cell: str = ""
    recipe: str = ""
    parameters: int = 0
    test_accuracy: float = 0.0
    tensorflow_version: str = ""
    training_seconds: float = 0.0
    created_at: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def read(cls, version_dir: Path) -> "VersionInfo":
        """Read `metadata.json` from a version folder; a missing or unreadable file gives an empty info."""
        path = version_dir / METADATA_FILE
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls()
        return cls(
            cell=str(raw.get("cell", "")),
            recipe=str(raw.get("recipe", "")),
            parameters=int(raw.get("parameters", 0) or 0),
            test_accuracy=float(raw.get("test_accuracy", 0.0) or 0.0),
            tensorflow_version=str(raw.get("tensorflow_version", "")),
            training_seconds=float(raw.get("training_seconds", 0.0) or 0.0),
            created_at=str(raw.get("created_at", "")),
            raw=raw,
        )


class LoadedModel:
    """A SavedModel version ready to compute: `predict(uint8 [N,28,28]) -> float32 [N,10]`."""

    runtime = "savedmodel"

    def __init__(self, name: str, version: int, path: Path) -> None:
        self.name = name
        self.version = version
        self.path = path
        self.info = VersionInfo.read(path)
        self._fn: Any = None
        self.load_seconds = 0.0

    def load(self) -> None:
        """Load the SavedModel and check its signature; raises ValueError when it does not fit."""
        import tensorflow as tf

        started = time.perf_counter()
        loaded = tf.saved_model.load(str(self.path))
        signatures = getattr(loaded, "signatures", {})
        if SIGNATURE not in signatures:
            raise ValueError(f"no '{SIGNATURE}' signature (has: {sorted(signatures) or 'none'})")
        fn = signatures[SIGNATURE]
        inputs = fn.structured_input_signature[1]
        if set(inputs) != {INPUT_NAME} or inputs[INPUT_NAME].dtype != tf.uint8:
            raise ValueError(f"signature input must be '{INPUT_NAME}': uint8 [N,28,28], got {inputs}")
        if OUTPUT_NAME not in fn.structured_outputs:
            raise ValueError(f"signature output must include '{OUTPUT_NAME}', got {sorted(fn.structured_outputs)}")
        self._loaded = loaded  # keeps the variables alive
        self._fn = fn
        self.load_seconds = time.perf_counter() - started

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities for a uint8 batch [N,28,28]. Thread-safe; call it off the event loop."""
        import tensorflow as tf

        if self._fn is None:
            raise RuntimeError(f"{self.name}:{self.version} is not loaded")
        out = self._fn(**{INPUT_NAME: tf.constant(images, dtype=tf.uint8)})[OUTPUT_NAME]
        return out.numpy()

    def warm_up(self, batch_sizes: tuple[int, ...] = (1, 8, 64)) -> None:
        """Run a few inferences so that the first real request pays no tracing cost."""
        for size in batch_sizes:
            self.predict(np.zeros((size, 28, 28), dtype=np.uint8))

    def unload(self) -> None:
        """Drop the references to the graph so its memory can be freed."""
        self._fn = None
        self._loaded = None
