"""Faster ways to compute a SavedModel's `serving_default`, each checked against it.

- `XlaBuckets`: a `tf.function(jit_compile=True)` over the signature, traced and compiled once
  for each of a few fixed batch sizes ("buckets"), each called as its own concrete function. A
  batch is zero-padded up to the next bucket (bigger ones are cut into chunks of the largest), so
  after the warm-up no request ever pays a compile.
- `LiteInterpreters`: the LiteRT/TFLite flatbuffer the trainer exports beside the SavedModel
  (`<version>/assets.extra/model.tflite`, batch 1); one interpreter per thread, since an
  interpreter is not thread-safe. ~10x less overhead than a TF function call at batch 1.
- `LiteBatchInterpreters`: the trainer's dynamic-batch flatbuffer (`model_batch.tflite`, recurrent
  layer unrolled); one interpreter per thread, resized to each batch's exact size, batches cut into
  chunks of `LITE_MAX_BATCH`. About as fast as XLA or faster, without XLA's compiler memory (issue 14).

Both LiteRT classes take `standalone`: True runs the flatbuffer on the standalone LiteRT runtime
(PyPI `ai-edge-litert`, no TensorFlow in the process: the `litert` runtime, core/litert_model.py),
False on TensorFlow's own `tf.lite` interpreter (the `tflite` runtime, beside a loaded SavedModel).
TensorFlow is imported lazily, inside the methods, and only by the TensorFlow paths.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

TFLITE_FILE = Path("assets.extra") / "model.tflite"
TFLITE_BATCH_FILE = Path("assets.extra") / "model_batch.tflite"
IMAGE_SHAPE = (28, 28)


def in_buckets(
    images: np.ndarray, largest: int, bucket_for: Callable[[int], int], call: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """`call` on `images` zero-padded up to `bucket_for(len)`, cut into chunks of `largest` first."""
    count = len(images)
    if count > largest:
        return np.concatenate([in_buckets(images[i : i + largest], largest, bucket_for, call)
                               for i in range(0, count, largest)])
    size = bucket_for(count)
    if size == count:
        return call(images)
    padded = np.zeros((size, *images.shape[1:]), dtype=images.dtype)
    padded[:count] = images
    return call(padded)[:count]


def parse_buckets(text: str) -> tuple[int, ...]:
    """'1,8,64' -> (1, 8, 64): sorted, unique, positive."""
    try:
        sizes = sorted({int(part) for part in text.replace(" ", "").split(",") if part})
    except ValueError:
        raise ValueError(f"xla_buckets: expected comma-separated batch sizes such as 1,8,64, got {text!r}") from None
    if not sizes or sizes[0] < 1:
        raise ValueError(f"xla_buckets: batch sizes must be >= 1, got {text!r}")
    return tuple(sizes)


class XlaBuckets:
    """`signature(images=...)['probabilities']` compiled by XLA for fixed batch sizes."""

    def __init__(
        self, signature: Callable[..., dict[str, Any]], output: str, buckets: Sequence[int], keep_alive: Any = None
    ) -> None:
        import tensorflow as tf

        self.buckets = tuple(sorted(buckets))
        self._compiled: set[int] = set()
        self._keep_alive = keep_alive  # the loaded SavedModel: its variables must outlive a compile
        self._cancelled = False

        def probabilities(images: Any) -> Any:
            return signature(images=images)[output]

        # One concrete function per bucket, traced for its fixed shape at compile() and called directly:
        # a concrete function never retraces. (Calling one tf.function with each bucket's shape traced
        # on every new shape, and TensorFlow warned "5 out of the last 5 calls ... triggered
        # tf.function retracing" during the warm-up of the default 5 buckets.)
        self._function = tf.function(probabilities, jit_compile=True)
        self._bucket_fns: dict[int, Callable[[Any], Any]] = {}

    @property
    def ready(self) -> bool:
        """True once every bucket is compiled."""
        return len(self._compiled) == len(self.buckets)

    def compile(self) -> None:
        """Compile every bucket (one call on zeros each); ~0.3-2 s per bucket."""
        import tensorflow as tf

        for size in self.buckets:
            if self._cancelled:
                return
            spec = tf.TensorSpec((size, *IMAGE_SHAPE), tf.uint8, name="images")
            self._bucket_fns[size] = self._function.get_concrete_function(spec)  # traces this shape once
            self._call(np.zeros((size, *IMAGE_SHAPE), dtype=np.uint8))  # XLA compiles on the first call
            self._compiled.add(size)

    def cancel(self) -> None:
        """Stop compiling after the bucket in progress (the version is being unloaded)."""
        self._cancelled = True

    def _call(self, images: np.ndarray) -> np.ndarray:
        return self._bucket_fns[len(images)](images).numpy()

    def traces(self) -> int:
        """How many graphs have been traced: one per bucket once compiled, and never more."""
        return int(self._function.experimental_get_tracing_count())

    def bucket_for(self, count: int) -> int:
        """The smallest compiled bucket holding `count` images (the largest when none does)."""
        for size in self.buckets:
            if size >= count and size in self._compiled:
                return size
        return self.buckets[-1]

    def predict(self, images: np.ndarray) -> np.ndarray:
        """float32 [N,10] for uint8 [N,28,28], padded to a bucket (compile() first)."""
        return in_buckets(images, self.buckets[-1], self.bucket_for, self._call)


class LiteInterpreters:
    """A batch-1 LiteRT/TFLite model, one interpreter per calling thread."""

    def __init__(self, path: Path, threads: int = 1, standalone: bool = False) -> None:
        self.path = path
        self._content = path.read_bytes()
        self._threads = threads
        self._standalone = standalone
        self._local = threading.local()
        self._interpreter()  # fail at load time, not on the first request

    def _interpreter(self) -> tuple[Any, int, int]:
        state = getattr(self._local, "state", None)
        if state is None:
            interpreter = new_interpreter(self._content, self._threads, self._standalone)
            interpreter.allocate_tensors()
            (inp,) = interpreter.get_input_details()
            (out,) = interpreter.get_output_details()
            if tuple(inp["shape"]) != (1, *IMAGE_SHAPE) or inp["dtype"] != np.uint8 or tuple(out["shape"]) != (1, 10):
                raise ValueError(
                    f"{self.path}: expected uint8 [1,28,28] -> [1,10], got {inp['shape']} -> {out['shape']}"
                )
            state = self._local.state = (interpreter, inp["index"], out["index"])
        return state

    def predict_one(self, image: np.ndarray) -> np.ndarray:
        """float32 [1,10] for one uint8 image [1,28,28]."""
        interpreter, inp, out = self._interpreter()
        interpreter.set_tensor(inp, image)
        interpreter.invoke()
        return interpreter.get_tensor(out).copy()


#: Largest batch one LiteRT call computes; bigger ones are cut into chunks of it. An interpreter's
#: memory grows with its batch (LSTM ~6 MiB at 64, ~13 MiB at 256, with XNNPACK) while images/s
#: barely does past 64 (docs/server.md, "Runtimes: what computes a prediction").
LITE_MAX_BATCH = 64


class LiteBatchInterpreters:
    """A dynamic-batch LiteRT/TFLite model, one interpreter per calling thread.

    Each call resizes the thread's interpreter to the batch's exact size when it differs from the
    last (`resize_tensor_input` + `allocate_tensors`, ~20 us, no compile): no padding, and one
    interpreter per thread instead of one per bucket (each costs a few MiB with XNNPACK). Batches
    bigger than `max_batch` are cut into chunks of it.
    """

    def __init__(self, path: Path, max_batch: int = LITE_MAX_BATCH, threads: int = 1, standalone: bool = False) -> None:
        self.path = path
        self.max_batch = max_batch
        self._content = path.read_bytes()
        self._threads = threads
        self._standalone = standalone
        self._local = threading.local()
        self._new()  # fail at load time, not on the first request (then dropped: threads make their own)

    def _new(self) -> list[Any]:
        """[interpreter, input index, output index, batch it is sized for (0: none yet)]."""
        interpreter = new_interpreter(self._content, self._threads, self._standalone)
        (inp,) = interpreter.get_input_details()
        (out,) = interpreter.get_output_details()
        if (tuple(inp["shape_signature"]) != (-1, *IMAGE_SHAPE) or inp["dtype"] != np.uint8
                or tuple(out["shape_signature"]) != (-1, 10)):
            raise ValueError(f"{self.path}: expected uint8 [-1,28,28] -> [-1,10], "
                             f"got {inp['shape_signature']} -> {out['shape_signature']}")
        return [interpreter, inp["index"], out["index"], 0]

    def _sized(self, count: int) -> tuple[Any, int, int]:
        """This thread's interpreter, sized for `count` images."""
        state: list[Any] | None = getattr(self._local, "state", None)
        if state is None:
            state = self._local.state = self._new()
        interpreter, inp, out, size = state
        if size != count:
            interpreter.resize_tensor_input(inp, [count, *IMAGE_SHAPE], strict=True)
            interpreter.allocate_tensors()
            state[3] = count
        return interpreter, inp, out

    def _call(self, images: np.ndarray) -> np.ndarray:
        interpreter, inp, out = self._sized(len(images))
        interpreter.set_tensor(inp, images)
        interpreter.invoke()
        return interpreter.get_tensor(out).copy()

    def predict(self, images: np.ndarray) -> np.ndarray:
        """float32 [N,10] for uint8 [N,28,28], in chunks of at most `max_batch`."""
        if len(images) == 0:  # an interpreter cannot be sized for 0 images
            return np.zeros((0, 10), dtype=np.float32)
        return in_buckets(images, self.max_batch, unpadded_size, self._call)


def unpadded_size(count: int) -> int:
    """The bucket of a model that takes any batch size: `count` itself (no padding)."""
    return count


def new_interpreter(content: bytes, threads: int, standalone: bool = False) -> Any:
    """A LiteRT interpreter for a flatbuffer: the standalone runtime's (`ai_edge_litert`, which never
    imports TensorFlow) when `standalone`, else TensorFlow's own tf.lite interpreter."""
    if standalone:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter(model_content=content, num_threads=threads)
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's notice pointing at ai_edge_litert
        return tf.lite.Interpreter(model_content=content, num_threads=threads)
