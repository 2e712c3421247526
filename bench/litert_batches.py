"""LiteRT's dynamic-batch model against the XLA buckets, in process: images/s at each batch size,
A and B alternating in the same process (the machine is shared: only ratios within a round are
trusted), plus the numerical agreement of each with the SavedModel signature.

Usage: ``python bench/litert_batches.py --models DIR [--cells rnn,lstm,gru] [--rounds 5]
[--callers 1,2] [--lite 64x1,64x2,256x1] [--data mnist.npz]``; prints one JSON document: per cell,
batch size and caller count, the median images/s of each runtime over the rounds and the median
of the per-round ratios LiteRT / XLA.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

BUCKETS = (4, 16, 64, 256)  # the server's default --xla-buckets without 1 (LiteRT's batch-1 file serves 1)


def lite_variant(text: str) -> tuple[int, int, bool]:
    """'64x2' -> (largest batch of one call 64, interpreter threads 2, TensorFlow's tf.lite);
    '64x1s' -> (64, 1, the standalone LiteRT runtime, ai-edge-litert)."""
    standalone = text.endswith("s")
    largest, threads = text.removesuffix("s").split("x")
    return int(largest), int(threads), standalone


def images_per_second(predict: Callable[[np.ndarray], np.ndarray], images: np.ndarray, seconds: float,
                      callers: int) -> float:
    """`callers` threads calling `predict(images)` for about `seconds` (after one warm-up call
    each): images/s of all of them together."""
    calls = [0] * callers
    start = threading.Barrier(callers + 1)
    stop = threading.Event()

    def call(index: int) -> None:
        predict(images)
        start.wait()
        while not stop.is_set():
            predict(images)
            calls[index] += 1

    workers = [threading.Thread(target=call, args=(i,)) for i in range(callers)]
    for worker in workers:
        worker.start()
    start.wait()
    started = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    return sum(calls) * len(images) / (time.perf_counter() - started)


def agreement(reference: np.ndarray, got: np.ndarray) -> dict[str, float]:
    """Max abs difference of probabilities and how many argmaxes agree."""
    return {"max_abs_diff": float(np.abs(reference - got).max()),
            "argmax_agree": int((reference.argmax(axis=1) == got.argmax(axis=1)).sum()), "of": len(reference)}


def measure_cell(version_dir: Path, args: argparse.Namespace, digits: np.ndarray) -> dict:
    """Rates and ratios for one version folder."""
    from digits_server.core.loaded_model import OUTPUT_NAME, LoadedModel
    from digits_server.core.runtimes import TFLITE_BATCH_FILE, LiteBatchInterpreters, XlaBuckets

    model = LoadedModel(version_dir.parent.name, 1, version_dir, runtime="savedmodel")
    model.load()
    xla = XlaBuckets(model._fn, OUTPUT_NAME, BUCKETS, keep_alive=model._loaded)
    xla.compile()
    runtimes: dict[str, Callable[[np.ndarray], np.ndarray]] = {"xla": xla.predict}
    for largest, threads, standalone in args.lite:
        lite = LiteBatchInterpreters(version_dir / TFLITE_BATCH_FILE, max_batch=largest, threads=threads,
                                     standalone=standalone)
        runtimes[f"litert{largest}x{threads}{'s' if standalone else ''}"] = lite.predict
    reference = model.reference(digits)
    found: dict = {"agreement": {name: agreement(reference, predict(digits)) for name, predict in runtimes.items()}}
    rates: dict[str, dict[str, list[float]]] = {}
    for round_ in range(args.rounds):
        for size in args.batch_sizes:
            batch = np.resize(digits, (size, 28, 28))
            for callers in args.callers:
                names = list(runtimes) if round_ % 2 == 0 else list(runtimes)[::-1]  # alternate who goes first
                per = rates.setdefault(f"b{size}_c{callers}", {})
                for name in names:
                    per.setdefault(name, []).append(images_per_second(runtimes[name], batch, args.seconds, callers))
    found["rates"] = {
        key: {
            "median_images_per_second": {name: statistics.median(values) for name, values in per.items()},
            "median_ratio_vs_xla": {name: statistics.median(a / b for a, b in zip(values, per["xla"]))
                                    for name, values in per.items() if name != "xla"},
        }
        for key, per in rates.items()
    }
    return found


def main() -> None:
    """Measure and print the JSON document."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, required=True, help="repository whose <cell>/1 has model_batch.tflite")
    parser.add_argument("--cells", default="rnn,lstm,gru")
    parser.add_argument("--batch-sizes", default="4,16,64,256,512", type=lambda t: [int(s) for s in t.split(",")])
    parser.add_argument("--callers", default="1,2", type=lambda t: [int(s) for s in t.split(",")])
    parser.add_argument("--lite", default="64x1,64x2,256x1", type=lambda t: [lite_variant(s) for s in t.split(",")],
                        help="LiteRT variants: largest batch of one call x interpreter threads, "
                             "'s' at the end for the standalone runtime (ai-edge-litert) instead of tf.lite")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.5, help="measuring time per runtime, size and round")
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/mnist-9k.npz"))
    args = parser.parse_args()
    with np.load(args.data) as archive:
        digits = archive["x_test"]
    cells = {cell: measure_cell(args.models / cell / "1", args, digits) for cell in args.cells.split(",")}
    print(json.dumps({"buckets": BUCKETS, "rounds": args.rounds, "test_digits": len(digits), "cells": cells},
                     indent=1))


if __name__ == "__main__":
    main()
