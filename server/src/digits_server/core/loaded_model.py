"""One loaded model version: the trainer's SavedModel behind a thread-safe `predict`.

TensorFlow is imported here, lazily, so that modules which only route or count do not pay
for it. The serving path calls the SavedModel's `serving_default` signature (never Keras'
`model.predict`, which costs ~80 ms per call).
"""

from __future__ import annotations

import ctypes
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from digits_server.core.runtimes import (
    TFLITE_BATCH_FILE,
    TFLITE_FILE,
    LiteBatchInterpreters,
    LiteInterpreters,
    XlaBuckets,
)

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
    test_ece: float = 0.0
    temperature: float = 0.0
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
            test_ece=float(raw.get("test_ece", 0.0) or 0.0),
            temperature=float(raw.get("temperature", 0.0) or 0.0),
            raw=raw,
        )


def return_free_heap() -> bool:
    """Give the C heap's free pages back to the system (glibc `malloc_trim(0)`); False where unavailable.

    Compiling the XLA buckets of three cells leaves ~80 MiB of freed scratch memory in glibc's
    arenas, still counted as resident until trimmed. Cheap (a few ms) and thread-safe.
    """
    try:
        return bool(ctypes.CDLL(None).malloc_trim(0))  # the process' own symbols include libc's
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return False


RUNTIMES = ("auto", "savedmodel", "xla", "tflite", "litert")
DEFAULT_BUCKETS = (1, 4, 16, 64, 256)


def check_runtime(runtime: str) -> str:
    """`runtime` if it is a known runtime name, else ValueError naming the choices."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime: expected one of {', '.join(RUNTIMES)}, got {runtime!r}")
    return runtime


class LoadedModel:
    """A SavedModel version ready to compute: `predict(uint8 [N,28,28]) -> float32 [N,10]`.

    The SavedModel signature is the source of truth and always loaded. `runtime` picks what
    computes: "savedmodel" (the signature), "xla" (the signature XLA-compiled per batch-size
    bucket), "tflite" (the trainer's LiteRT models: batch-1 `model.tflite` for single images,
    dynamic-batch `model_batch.tflite` for batches, the signature for what has no file) or "auto"
    (tflite where the files exist; XLA for batches when the version has no `model_batch.tflite`).
    `self.runtime` names what serves now, e.g. "savedmodel+tflite+tflite-batch", or
    "savedmodel+tflite+xla" (+xla once compiled).

    Memory (issue 14): with LiteRT serving batches no XLA compiler runs at all (~80 MiB for three
    cells). With LiteRT serving single images only, XLA compiles no batch-1 bucket, and the
    signature is not warmed up (its first call costs ~5 MiB per version, for nothing once XLA
    serves): until the buckets are compiled, LiteRT answers batches image by image, and the
    signature is warmed up only if the compile fails. So no request ever pays a trace.
    """

    def __init__(
        self,
        name: str,
        version: int,
        path: Path,
        runtime: str = "savedmodel",
        xla_buckets: tuple[int, ...] = DEFAULT_BUCKETS,
    ) -> None:
        self.name = name
        self.version = version
        self.path = path
        self.info = VersionInfo.read(path)
        self.requested_runtime = check_runtime(runtime)
        self.xla_buckets = xla_buckets
        self.runtime = "savedmodel"
        self._fn: Any = None
        self._xla: XlaBuckets | None = None
        self._lite: LiteInterpreters | None = None
        self._lite_batch: LiteBatchInterpreters | None = None
        self._xla_settled = threading.Event()  # set once the XLA compile thread finished, whatever happened
        self._signature_warm = False  # whether batches may go to the signature (it has been called once)
        self._warm_sizes: tuple[int, ...] = (1,)
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
        self._load_lite()
        buckets = self.xla_buckets
        if self._lite is not None:  # LiteRT serves every single image: a batch-1 bucket would never run
            buckets = tuple(size for size in buckets if size > 1) or buckets
        batch_path = self.path / TFLITE_BATCH_FILE
        if self.requested_runtime in ("auto", "tflite") and batch_path.is_file():
            self._lite_batch = LiteBatchInterpreters(batch_path)
        if self.requested_runtime == "xla" or (self.requested_runtime == "auto" and self._lite_batch is None):
            self._xla = XlaBuckets(fn, OUTPUT_NAME, buckets, keep_alive=loaded)
        self.load_seconds = time.perf_counter() - started

    def _load_lite(self) -> None:
        lite_path = self.path / TFLITE_FILE
        if self.requested_runtime in ("auto", "tflite") and lite_path.is_file():
            self._lite = LiteInterpreters(lite_path)
        elif self.requested_runtime == "tflite":
            log.warning("%s:%d has no %s: serving with the SavedModel signature", self.name, self.version, TFLITE_FILE)

    def _signature(self, images: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        return self._fn(**{INPUT_NAME: tf.constant(images, dtype=tf.uint8)})[OUTPUT_NAME].numpy()

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities for a uint8 batch [N,28,28]. Thread-safe; call it off the event loop."""
        if self._fn is None:
            raise RuntimeError(f"{self.name}:{self.version} is not loaded")
        if self._lite is not None and len(images) == 1:
            return self._lite.predict_one(images)
        if self._lite_batch is not None:
            return self._lite_batch.predict(images)
        if self._xla is not None and self._xla.ready:
            return self._xla.predict(images)
        if self._lite is not None and self._xla is not None and not self._signature_warm:  # XLA compiling: no trace
            return np.concatenate([self._lite.predict_one(images[i : i + 1]) for i in range(len(images))])
        return self._signature(images)

    @property
    def cheap_single(self) -> bool:
        """Whether one image costs well under a thread hop (the LiteRT runtime serves it)."""
        return self._lite is not None

    def reference(self, images: np.ndarray) -> np.ndarray:
        """The SavedModel signature's own answer (the source of truth the other runtimes match)."""
        return self._signature(images)

    def warm_up(self, batch_sizes: tuple[int, ...] = (1, 8, 64)) -> None:
        """Trace the signature, then compile the XLA buckets in a background thread: the model
        serves at once (signature) and switches to XLA when every bucket is compiled, so no
        request pays for a trace or a compile, and loading stays as fast as before. With LiteRT
        and XLA both there, LiteRT serves in the meantime and the signature is not traced; with
        LiteRT serving batches too, nothing is traced or compiled (each serving thread resizes its
        own interpreters when it first needs a bucket)."""
        self._warm_sizes = batch_sizes
        if self._lite_batch is None and (self._lite is None or self._xla is None):
            self._warm_signature()
        if self._lite is not None:
            self._lite.predict_one(np.zeros((1, 28, 28), dtype=np.uint8))
        self._name_runtime()
        if self._xla is None:
            return_free_heap()  # tracing's scratch memory (with XLA, trimmed once compiled)
        else:
            # not a daemon (explicitly: the loader thread that starts it is one), so the interpreter waits
            # for it at exit instead of tearing TensorFlow down under a running compile (a crash);
            # unload() cancels it after the bucket in progress
            threading.Thread(target=self._compile_xla, args=(self._xla,), name=f"xla-{self.name}", daemon=False).start()

    def _warm_signature(self) -> None:
        for size in self._warm_sizes:
            self._signature(np.zeros((size, 28, 28), dtype=np.uint8))
        self._signature_warm = True

    def _compile_xla(self, xla: XlaBuckets) -> None:
        started = time.perf_counter()
        try:
            xla.compile()
            if xla.ready:  # else cancelled: the version was unloaded meanwhile
                log.info("%s:%d: XLA buckets %s compiled in %.1f s", self.name, self.version,
                         ",".join(map(str, xla.buckets)), time.perf_counter() - started)
                self._name_runtime()
        except Exception:  # the signature serves batches instead, once warmed up
            log.exception("%s:%d: XLA compilation failed; serving with the signature", self.name, self.version)
            if self._fn is not None and not self._signature_warm:
                self._warm_signature()
        finally:
            return_free_heap()  # the compiler's scratch memory, freed but still resident until trimmed
            self._xla_settled.set()

    def _name_runtime(self) -> None:
        xla_ready = self._xla is not None and self._xla.ready
        self.runtime = ("savedmodel" + ("+tflite" if self._lite is not None else "")
                        + ("+tflite-batch" if self._lite_batch is not None else "") + ("+xla" if xla_ready else ""))

    def wait_compiled(self, timeout: float | None = None) -> bool:
        """Block until the XLA buckets are compiled (True at once without XLA); False on timeout."""
        return self._xla is None or self._xla_settled.wait(timeout)

    def unload(self) -> None:
        """Drop the references to the graph so its memory can be freed."""
        self._fn = None
        self._loaded = None
        if self._xla is not None:
            self._xla.cancel()
        self._xla = None
        self._lite = None
        self._lite_batch = None
