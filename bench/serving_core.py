"""Serving-core measurements on a real server: batching throughput, and the latency of one model
while another model's new version loads (TensorFlow Serving issue #1866).

Usage: python bench/serving_core.py --models MODELS [--seconds 10] [--concurrency 32]

Starts `digits-server` twice (batching on, then off) on free loopback ports and prints one
JSON document. It needs two cells in MODELS (e.g. rnn and gru); it copies the repository to a
temporary folder, so MODELS is never changed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from digits.v1 import digits_pb2 as pb  # noqa: E402
from digits.v1 import digits_pb2_grpc as pb_grpc  # noqa: E402
from tests.serverproc import start_server  # noqa: E402


def hammer(target: str, model: str, seconds: float, concurrency: int) -> list[float]:
    """Closed-loop Classify calls from `concurrency` threads for `seconds`; returns latencies."""
    image = pb.Image(pixels=np.random.default_rng(0).integers(0, 255, 784, dtype=np.uint8).tobytes())
    request = pb.ClassifyRequest(model_spec=pb.ModelSpec(name=model), image=image)
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    def worker() -> None:
        with grpc.insecure_channel(target) as channel:
            stub = pb_grpc.DigitClassifierStub(channel)
            while time.monotonic() < stop:
                started = time.perf_counter()
                stub.Classify(request, timeout=30)
                latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies


def summary(latencies: list[float], seconds: float) -> dict[str, float]:
    values = np.array(latencies) * 1000
    return {
        "requests_per_second": round(len(values) / seconds, 1),
        "p50_ms": round(float(np.percentile(values, 50)), 2),
        "p99_ms": round(float(np.percentile(values, 99)), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    cells = sorted(p.name for p in args.models.iterdir() if (p / "1").is_dir())[:2]
    served, loading = cells[0], cells[-1]
    results: dict[str, object] = {"served": served, "loading": loading}
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "models"
        for cell in cells:
            shutil.copytree(args.models / cell / "1", repo / cell / "1")
        for batching in ("--batching", "--no-batching"):
            proc = start_server(repo, batching, "--poll-seconds", "0")
            try:
                hammer(proc.target, served, 2, args.concurrency)  # warm
                results[batching.strip("-")] = summary(
                    hammer(proc.target, served, args.seconds, args.concurrency), args.seconds)
                if batching == "--batching":
                    results["during_reload"] = during_reload(proc.target, repo, served, loading, args)
            finally:
                proc.stop()
    print(json.dumps(results, indent=2))
    return 0


def during_reload(target: str, repo: Path, served: str, loading: str, args: argparse.Namespace) -> dict:
    """Latency of `served` while new versions of `loading` are loaded back to back."""
    stop = threading.Event()
    loads = 0

    def reload_loop() -> None:
        nonlocal loads
        with grpc.insecure_channel(target) as channel:
            admin = pb_grpc.DigitsAdminStub(channel)
            while not stop.is_set():
                shutil.copytree(repo / loading / "1", repo / loading / f"{loads + 2}")
                admin.ReloadModels(pb.ReloadModelsRequest(), timeout=120)
                loads += 1

    reloader = threading.Thread(target=reload_loop)
    reloader.start()
    try:
        latencies = hammer(target, served, args.seconds, args.concurrency)
    finally:
        stop.set()
        reloader.join()
    return {**summary(latencies, args.seconds), "versions_loaded": loads}


if __name__ == "__main__":
    sys.exit(main())
