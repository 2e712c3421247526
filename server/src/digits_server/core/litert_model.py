"""Serving a version without TensorFlow: the standalone LiteRT runtime (PyPI `ai-edge-litert`).

A version has a *LiteRT twin* when the trainer wrote, beside its SavedModel, the batch-1 and
dynamic-batch flatbuffers and the SavedModel's reference predictions
(`assets.extra/{model.tflite, model_batch.tflite, litert_reference.npz}`). Such a version is served
by `LiteRTModel`: two interpreters per serving thread, about 50 MiB for three cells, ready in well
under a second, and `tensorflow` is never imported.

Trust: at load both flatbuffers run on the reference images and must give the SavedModel's
probabilities (within `REFERENCE_TOLERANCE`); a twin that disagrees (damaged, another model's,
a stale export) is refused with the difference in the error, and the version never serves.

`model_for` picks the class for a version: `LiteRTModel` under the `auto` and `litert` runtimes
when the twin is there; else the TensorFlow-backed `LoadedModel` when TensorFlow is installed; else
`RuntimeMissing`, naming the version and what it lacks.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from digits_server.core.loaded_model import DEFAULT_BUCKETS, LoadedModel
from digits_server.core.runtimes import TFLITE_BATCH_FILE, TFLITE_FILE, LiteBatchInterpreters, LiteInterpreters

log = logging.getLogger(__name__)

REFERENCE_FILE = Path("assets.extra") / "litert_reference.npz"
TWIN_FILES = (TFLITE_FILE, TFLITE_BATCH_FILE, REFERENCE_FILE)
#: Largest |LiteRT - SavedModel| probability accepted on a reference image. Same weights, same ops:
#: the two agree to ~1e-6; a wrong or damaged flatbuffer misses by tenths.
REFERENCE_TOLERANCE = 1e-3
#: Runtimes that compute with TensorFlow, whatever files a version has.
TENSORFLOW_RUNTIMES = ("savedmodel", "xla", "tflite")
TENSORFLOW_EXTRA = "pip install 'digits-server[tensorflow]'"


class RuntimeMissing(Exception):
    """A version cannot be served by any runtime installed here (its error names what is missing)."""


class LiteRTDisagrees(Exception):
    """A version's LiteRT files do not give the SavedModel's reference predictions: refused."""


def missing_twin_files(path: Path) -> list[Path]:
    """The LiteRT twin's files a version folder lacks (empty: it has a twin)."""
    return [name for name in TWIN_FILES if not (path / name).is_file()]


def tensorflow_installed() -> bool:
    """Whether `import tensorflow` would succeed (found without importing it)."""
    return importlib.util.find_spec("tensorflow") is not None


def check_installed(runtime: str) -> str:
    """`runtime` if this installation can serve with it, else ValueError saying what to install."""
    if runtime in TENSORFLOW_RUNTIMES and not tensorflow_installed():
        raise ValueError(f"runtime: {runtime} needs TensorFlow, which is not installed ({TENSORFLOW_EXTRA}; "
                         "--runtime litert or auto serve the trainer's LiteRT files without it)")
    return runtime


def needs_tensorflow(runtime: str, version_dirs: Iterable[Path]) -> bool:
    """Whether serving these versions with `runtime` will import TensorFlow (so the server starts
    it up front, from a normal-priority thread)."""
    if runtime in TENSORFLOW_RUNTIMES:
        return True
    return tensorflow_installed() and any(missing_twin_files(path) for path in version_dirs)


def model_for(
    name: str, version: int, path: Path, runtime: str = "auto", xla_buckets: tuple[int, ...] = DEFAULT_BUCKETS
) -> LoadedModel:
    """The (not yet loaded) model that serves this version with `runtime` (see the module doc)."""
    if runtime in TENSORFLOW_RUNTIMES:
        if not tensorflow_installed():
            raise RuntimeMissing(f"{name}:{version}: the {runtime} runtime needs TensorFlow, which is not "
                                 f"installed ({TENSORFLOW_EXTRA}, or serve with --runtime litert)")
        return LoadedModel(name, version, path, runtime=runtime, xla_buckets=xla_buckets)
    missing = missing_twin_files(path)
    if not missing:
        return LiteRTModel(name, version, path)
    shown = ", ".join(str(p) for p in missing)
    if not tensorflow_installed():
        raise RuntimeMissing(f"{name}:{version}: has no LiteRT twin (missing {shown}) and TensorFlow is not "
                             f"installed: this SavedModel needs the TensorFlow runtime ({TENSORFLOW_EXTRA}, "
                             "or export it again with digits-train)")
    log.info("%s:%d has no LiteRT twin (missing %s): serving it with TensorFlow", name, version, shown)
    return LoadedModel(name, version, path, runtime="auto", xla_buckets=xla_buckets)


class LiteRTModel(LoadedModel):
    """A version served by the standalone LiteRT runtime: `model.tflite` for single images,
    `model_batch.tflite` (resized to each batch) for batches, TensorFlow never imported.

    Same interface as LoadedModel (what the manager, batchers and runners use); `runtime` is
    "litert". There is no SavedModel signature in the process, so `reference` answers with the
    trainer's stored reference only for the images it holds.
    """

    def __init__(self, name: str, version: int, path: Path) -> None:
        super().__init__(name, version, path, runtime="auto")
        self.requested_runtime = "litert"
        self.runtime = "litert"
        self.max_difference = float("nan")  # |LiteRT - SavedModel| on the reference images, once loaded

    def load(self) -> None:
        """Open both flatbuffers and check them against the reference predictions; raises
        LiteRTDisagrees (or ValueError for a wrong shape) instead of serving a wrong model."""
        started = time.perf_counter()
        single = LiteInterpreters(self.path / TFLITE_FILE, standalone=True)
        batch = LiteBatchInterpreters(self.path / TFLITE_BATCH_FILE, standalone=True)
        images, expected = read_reference(self.path / REFERENCE_FILE)
        answers = {
            TFLITE_FILE: np.concatenate([single.predict_one(images[i : i + 1]) for i in range(len(images))]),
            TFLITE_BATCH_FILE: batch.predict(images),
        }
        differences = {file: float(np.max(np.abs(got - expected))) for file, got in answers.items()}
        for file, difference in differences.items():
            if not difference <= REFERENCE_TOLERANCE:  # also refuses NaN
                raise LiteRTDisagrees(
                    f"refused: {file} disagrees with the SavedModel's reference predictions ({REFERENCE_FILE}): "
                    f"max |difference| {difference:.3g} over {len(images)} images, tolerance {REFERENCE_TOLERANCE:g}"
                )
        self.max_difference = max(differences.values())
        self._lite, self._lite_batch = single, batch
        self.load_seconds = time.perf_counter() - started

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities for a uint8 batch [N,28,28]. Thread-safe; call it off the event loop."""
        single, batch = self._lite, self._lite_batch
        if single is None or batch is None:
            raise RuntimeError(f"{self.name}:{self.version} is not loaded")
        if len(images) == 1:
            return single.predict_one(images)
        return batch.predict(images)

    def reference(self, images: np.ndarray) -> np.ndarray:
        """No SavedModel signature without TensorFlow: the LiteRT answer (checked at load)."""
        return self.predict(images)

    def warm_up(self, batch_sizes: tuple[int, ...] = (1, 8, 64)) -> None:
        """Nothing to trace or compile: the load check already ran both interpreters, and each
        serving thread sizes its own when it first needs one."""
        self._warm_sizes = batch_sizes

    def wait_compiled(self, timeout: float | None = None) -> bool:
        """Nothing compiles: True at once."""
        return True

    def unload(self) -> None:
        """Drop the interpreters."""
        self._lite = None
        self._lite_batch = None


def read_reference(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images [K,28,28], float32 probabilities [K,10]) from a reference file; ValueError
    naming the file when it is not one."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            images, probabilities = stored["images"], stored["probabilities"]
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path}: not a LiteRT reference file (images, probabilities): {exc}") from None
    if (images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) == 0
            or probabilities.shape != (len(images), 10)):
        raise ValueError(f"{path}: expected images uint8 [K,28,28] and probabilities [K,10], "
                         f"got {images.dtype} {images.shape} and {probabilities.shape}")
    return images, probabilities.astype(np.float32)
