"""What shadow mirroring costs the caller: latency of the same primary arm with and without
100% shadowing, interleaved request by request on one real server (so both see the same noise).

Usage (from the repository root, with models trained by digits-train):
    python bench/ab_shadow.py --models models [--requests 1000] [--concurrency 4]

Two experiments share the primary arm `lstm`: `plain` (no shadow) and `mirrored` (every request
also computed by `gru`, weight 0). Prints client-measured p50/p95/p99 per experiment.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from digits import AsyncDigitsClient  # noqa: E402
from tests.serverproc import start_server  # noqa: E402


async def measure(target: str, requests: int, concurrency: int) -> dict[str, np.ndarray]:
    """Client latencies (seconds) per experiment, requests alternating between the two."""
    image = np.zeros((28, 28), np.uint8)
    image[6:22, 13:15] = 255
    latencies: dict[str, list[float]] = {"plain": [], "mirrored": []}
    async with AsyncDigitsClient(target, timeout=30) as client:
        for name, shadow in (("plain", 0.0), ("mirrored", 100.0)):
            await client.create_experiment(name, [("lstm", 1), ("gru", 0)], shadow_percent=shadow)
        for name in latencies:  # warm both paths
            for _ in range(20):
                await client.classify(image, experiment=name)
        queue = asyncio.Queue()
        for i in range(requests):
            queue.put_nowait("plain" if i % 2 == 0 else "mirrored")

        async def worker() -> None:
            while not queue.empty():
                name = queue.get_nowait()
                started = time.perf_counter()
                await client.classify(image, experiment=name)
                latencies[name].append(time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {name: np.asarray(values) for name, values in latencies.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, required=True, help="model repository with lstm and gru")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    server = start_server(args.models, "--poll-seconds", "0")
    try:
        result = asyncio.run(measure(server.target, args.requests, args.concurrency))
    finally:
        server.stop()
    print(f"{args.requests} requests, concurrency {args.concurrency}, client-measured latency (ms):")
    for name, values in result.items():
        p50, p95, p99 = np.percentile(values, [50, 95, 99]) * 1e3
        print(f"  {name:9s} p50 {p50:6.2f}  p95 {p95:6.2f}  p99 {p99:6.2f}  (n={len(values)})")
    ratio = np.median(result["mirrored"]) / np.median(result["plain"])
    print(f"  median with 100% shadow / without: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
