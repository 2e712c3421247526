"""Resized per batch or fixed shapes? The standalone LiteRT runtime's batch interpreter at a batch
size it is already sized for (what a fixed-shape flatbuffer would give: no resize ever) against the
same sizes alternating, so every call resizes (`resize_tensor_input` + `allocate_tensors`), which is
the most the server's per-batch resizing can cost. Runs without TensorFlow (.venv-lite).

    .venv-lite/bin/python bench/litert_resize.py --models DIR [--cells rnn,lstm,gru] [--sizes 8,64]

Prints JSON: per cell and size, microseconds per call both ways (median of --rounds, alternating
which goes first) and the resize's share of a call.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server" / "src"))

from digits_server.core.runtimes import TFLITE_BATCH_FILE, LiteBatchInterpreters


def microseconds_per_call(lite: LiteBatchInterpreters, batches: list[np.ndarray], calls: int) -> float:
    """Mean wall time of `lite.predict` over `calls` calls cycling through `batches`."""
    lite.predict(batches[0])
    started = time.perf_counter()
    for index in range(calls):
        lite.predict(batches[index % len(batches)])
    return 1e6 * (time.perf_counter() - started) / calls


def measure(version: Path, size: int, rounds: int, calls: int) -> dict:
    """Fixed (always `size`) against resized (`size` and `size - 1` alternating) for one version."""
    lite = LiteBatchInterpreters(version / TFLITE_BATCH_FILE, standalone=True)
    images = np.random.default_rng(0).integers(0, 256, (size, 28, 28), dtype=np.uint8)
    fixed, resized = [], []
    for round_ in range(rounds):
        order = [("fixed", [images]), ("resized", [images, images[:-1]])]
        for name, batches in order if round_ % 2 == 0 else order[::-1]:
            (fixed if name == "fixed" else resized).append(microseconds_per_call(lite, batches, calls))
    fixed_us, resized_us = statistics.median(fixed), statistics.median(resized)
    return {"fixed_us": round(fixed_us, 1), "resized_every_call_us": round(resized_us, 1),
            "resize_share": round((resized_us - fixed_us) / resized_us, 3)}


def main() -> None:
    """Measure and print the JSON document."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--cells", default="rnn,lstm,gru")
    parser.add_argument("--sizes", default="8,64", type=lambda t: [int(s) for s in t.split(",")])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps({cell: {str(size): measure(args.models / cell / "1", size, args.rounds, args.calls)
                             for size in args.sizes} for cell in args.cells.split(",")}, indent=1))


if __name__ == "__main__":
    main()
