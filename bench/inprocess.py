"""In-process model throughput, no server involved: each runtime of the server's LoadedModel
at the harness' batch sizes, plus this machine's matmul peak and the compute ceiling it implies.

Usage: ``python bench/inprocess.py --models DIR --cells lstm --batch-sizes 1,512 [--seconds S]``;
prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

UNITS, STEPS, FEATURES, CLASSES = 64, 28, 28, 10
GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def flops_per_image(cell: str) -> int:
    """Multiply-adds x2 of one image: `STEPS` recurrent steps of `GATES` matmuls, then the dense layer."""
    return STEPS * GATES[cell] * (FEATURES + UNITS) * UNITS * 2 + UNITS * CLASSES * 2


def images_per_second(predict, images: np.ndarray, seconds: float) -> float:
    """Calls `predict(images)` for about `seconds` after two warm-up calls; images/s."""
    predict(images)
    predict(images)
    calls, started = 0, time.perf_counter()
    while True:
        predict(images)
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds and calls >= 3:
            return calls * len(images) / elapsed


def matmul_gflops(seconds: float) -> float:
    """Float32 GEMM rate of TensorFlow on this machine (1024x1024, best of a few runs)."""
    import tensorflow as tf

    a = tf.random.uniform((1024, 1024))
    b = tf.random.uniform((1024, 1024))
    best = 0.0
    for _ in range(3):
        calls, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds / 3:
            tf.matmul(a, b).numpy()
            calls += 1
        best = max(best, calls * 2 * 1024**3 / (time.perf_counter() - started) / 1e9)
    return best


def measure_cell(version_dir: Path, cell: str, sizes: list[int], digits: np.ndarray, seconds: float) -> dict:
    """images/s per runtime and batch size for one version folder."""
    from digits_server.core.loaded_model import OUTPUT_NAME, LoadedModel
    from digits_server.core.runtimes import (
        TFLITE_BATCH_FILE,
        TFLITE_FILE,
        LiteBatchInterpreters,
        LiteInterpreters,
        XlaBuckets,
    )

    model = LoadedModel(cell, 1, version_dir, runtime="savedmodel")
    model.load()
    batches = {size: np.resize(digits, (size, 28, 28)) for size in sizes}
    runtimes: dict[str, dict[str, float]] = {"savedmodel": {}, "xla": {}}
    xla = XlaBuckets(model._fn, OUTPUT_NAME, sizes)  # exact buckets: no padding in this measurement
    xla.compile()
    lite_batch = None
    if (version_dir / TFLITE_BATCH_FILE).is_file():  # the dynamic-batch LiteRT export, as the server runs it
        lite_batch = LiteBatchInterpreters(version_dir / TFLITE_BATCH_FILE)
        runtimes["tflite-batch"] = {}
    for size, batch in batches.items():
        runtimes["savedmodel"][str(size)] = images_per_second(model.reference, batch, seconds)
        runtimes["xla"][str(size)] = images_per_second(xla.predict, batch, seconds)
        if lite_batch is not None:
            runtimes["tflite-batch"][str(size)] = images_per_second(lite_batch.predict, batch, seconds)
    if (version_dir / TFLITE_FILE).is_file() and 1 in batches:
        lite = LiteInterpreters(version_dir / TFLITE_FILE)
        runtimes["tflite"] = {"1": images_per_second(lite.predict_one, batches[1], seconds)}
    return {"path": str(version_dir), "flops_per_image": flops_per_image(cell), "runtimes": runtimes}


def newest_version(models: Path, cell: str) -> Path:
    """The highest-numbered version folder of a model."""
    versions = [p for p in (models / cell).iterdir() if p.name.isdigit()]
    return max(versions, key=lambda p: int(p.name))


def main() -> None:
    """Measure and print the JSON document."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--cells", default="lstm")
    parser.add_argument("--batch-sizes", default="1,512")
    parser.add_argument("--seconds", type=float, default=1.0, help="measuring time per runtime and batch size")
    parser.add_argument("--data", type=Path, help="Keras-layout .npz whose x_test digits are fed (default: random)")
    args = parser.parse_args()
    sizes = sorted({int(s) for s in args.batch_sizes.split(",")})
    if args.data:
        with np.load(args.data) as archive:
            digits = archive["x_test"][:1024]
    else:
        digits = np.random.default_rng(0).integers(0, 256, (1024, 28, 28), dtype=np.uint8)
    peak = matmul_gflops(max(args.seconds, 0.6))
    cells = {}
    for cell in args.cells.split(","):
        found = measure_cell(newest_version(args.models, cell), cell, sizes, digits, args.seconds)
        found["ceiling_images_per_second"] = peak * 1e9 / found["flops_per_image"]
        cells[cell] = found
    print(json.dumps({"matmul_gflops": peak, "batch_sizes": sizes, "cells": cells}, indent=2))


if __name__ == "__main__":
    main()
