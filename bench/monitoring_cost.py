"""Server CPU per request with label-free monitoring on against off (issue 22 target: at most
5% more), measured interleaved: two real servers on the same models (one `--monitoring`, one
`--no-monitoring`), each round sends the same requests to one then the other, and each server's
process CPU (user + system, all threads) is read from its CPU-time clock before and after its turn.

    python bench/monitoring_cost.py --models models/ [--model lstm] [--rounds 7] [--requests 2000]
        [--concurrency 8] [--batch 1] [--pin]

`--pin` runs both servers on CPU 1 and this load generator on CPU 0 (a one-core replica, the usual
Kubernetes limit): the rounds scatter less, and every thread of the server shares one core's caches.

Prints per round the CPU microseconds per request of each server, then the median ratio on/off.
The harness (bench/run.py, target M in bench/report.py) calls `measure`: the same rounds for
single-image Classify and 64-image ClassifyBatch, shorter in --quick mode.
The models need reference_profile.json (any version the trainer wrote since issue 22).

First, the monitor's own CPU per request measured in process (no server, no noise from other
processes): the data plane's events for single-image requests and for 64-image batches, fed to
`LabelFreeMonitor` on an event loop the way the server does, metrics included.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.servers import cpu_seconds
from digits import DigitsClient
from tests.conftest import MNIST_NPZ
from tests.serverproc import start_server


def send(target: str, model: str, images: np.ndarray, requests: int, concurrency: int, batch: int) -> None:
    """`requests` calls of `batch` images, `concurrency` at a time, without labels."""
    with DigitsClient(target, timeout=60) as client:
        def one(i: int) -> None:
            start = (i * batch) % (len(images) - batch)
            if batch == 1:
                client.classify(images[start], model)
            else:
                client.classify_batch(images[start:start + batch], model)

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(requests)))


def cpu_per_request_us(server, model: str, images: np.ndarray, requests: int, concurrency: int, batch: int) -> float:
    before = cpu_seconds(server.process.pid)
    send(server.target, model, images, requests, concurrency, batch)
    return 1e6 * (cpu_seconds(server.process.pid) - before) / requests


#: The harness' traffic (target M): name -> (images per request, concurrency, requests per round
#: in full mode, in --quick mode). A side of a round is ~0.5-1.5 s of server CPU: the rounds still
#: scatter by +-5% on this shared 2-core machine (batching and scheduling, not the clock's resolution).
TRAFFIC = {"classify_1": (1, 8, 3000, 1000), "batch_64": (64, 4, 600, 200)}
#: Interleaved rounds in full mode (3 in --quick); the target is their median ratio on/off.
ROUNDS = 11


def interleaved(servers: dict, model: str, images: np.ndarray, rounds: int, requests: int, concurrency: int,
                batch: int, log=print) -> dict:
    """`rounds` rounds, each sending the same requests to servers "on" and "off" (order alternating):
    CPU microseconds per request of each, per round, and the median ratio on/off."""
    for server in servers.values():  # warm-up: compile paths, fill caches
        send(server.target, model, images, max(requests // 4, 20), concurrency, batch)
    found = {"on_us": [], "off_us": [], "ratios": []}
    for round_number in range(rounds):
        order = ("on", "off") if round_number % 2 == 0 else ("off", "on")
        cost = {name: cpu_per_request_us(servers[name], model, images, requests, concurrency, batch) for name in order}
        found["on_us"].append(round(cost["on"], 1))
        found["off_us"].append(round(cost["off"], 1))
        found["ratios"].append(round(cost["on"] / cost["off"], 4))
        log(f"round {round_number + 1}: on {cost['on']:.0f} us/request, off {cost['off']:.0f} us/request, "
            f"ratio {found['ratios'][-1]:.3f}")
    found |= {"median_ratio": statistics.median(found["ratios"]), "rounds": rounds, "requests": requests,
              "concurrency": concurrency, "batch": batch}
    return found


def measure(models: Path, model: str, quick: bool, log=print, python: str = sys.executable) -> dict:
    """The harness' measurement (target M): each TRAFFIC interleaved on two real servers, monitoring on
    and `--no-monitoring` (3 rounds in quick mode, ROUNDS in full), and the monitor's own CPU in process."""
    with np.load(MNIST_NPZ) as data:
        images = data["x_test"]
    version = latest_version(models, model)
    found: dict = {"model": model, "in_process_us": {
        str(batch): round(in_process_us(version, images, batch, requests=1000 if quick else 6000), 1)
        for batch in (1, 64)}}
    servers = {"on": start_server(models, "--monitoring", "--default-model", model, python=python),
               "off": start_server(models, "--no-monitoring", "--default-model", model, python=python)}
    try:
        for name, (batch, concurrency, requests, quick_requests) in TRAFFIC.items():
            found[name] = interleaved(servers, model, images, 3 if quick else ROUNDS,
                                      quick_requests if quick else requests, concurrency, batch, log)
    finally:
        for server in servers.values():
            server.stop()
    return found


def latest_version(models: Path, model: str) -> Path:
    """The newest version directory of a model."""
    return max((p for p in (models / model).iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def in_process_us(version_dir: Path, images: np.ndarray, batch: int, requests: int = 6000,
                  images_per_request: int = 8) -> float:
    """CPU microseconds per request of LabelFreeMonitor (observe + its batched flushes), in process."""
    import asyncio
    import time

    from prometheus_client import CollectorRegistry

    from digits_server.core.domain import PredictionEvent, ServedBy
    from digits_server.core.manager import AVAILABLE, VersionSlot
    from digits_server.observability.monitor import LabelFreeMonitor
    from digits_server.observability.monitoring_metrics import MonitoringMetrics

    served = ServedBy(version_dir.parent.name, int(version_dir.name))
    # clean traffic for this version: each image's class and confidence drawn from its reference
    from digits.monitoring.profile import CONFIDENCE_EDGES, ReferenceProfile

    profile = ReferenceProfile.loads((version_dir / "reference_profile.json").read_text())
    rng = np.random.default_rng(0)
    classes = profile.signals["predicted_class"].counts
    counts = np.asarray(profile.signals["confidence"].counts, dtype=float)
    edges = np.array((0.1, *CONFIDENCE_EDGES, 1.0))
    which = rng.choice(len(counts), len(images), p=counts / counts.sum())
    confidence = rng.uniform(edges[which], edges[which + 1])
    digit = rng.choice(10, len(images), p=np.asarray(classes) / sum(classes))
    probabilities = np.tile(((1 - confidence) / 9)[:, None], (1, 10)).astype(np.float32)
    probabilities[np.arange(len(images)), digit] = confidence
    events = []
    for i in range(requests):
        start = (i * batch) % (len(images) - batch)
        p = probabilities[start:start + batch]
        events.append(PredictionEvent("Classify", served, "", p.argmax(axis=1), p, [None] * batch,
                                      images=images[start:start + batch]))

    async def run() -> float:
        monitor = LabelFreeMonitor(MonitoringMetrics(CollectorRegistry()), images_per_request=images_per_request)
        monitor(VersionSlot(served.model, served.version, version_dir, state=AVAILABLE))
        started = time.process_time()
        for event in events:
            monitor.observe(event)
        monitor.flush()
        return 1e6 * (time.process_time() - started) / requests

    return statistics.median(asyncio.run(run()) for _ in range(3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--model", default="lstm")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--pin", action="store_true", help="servers on CPU 1, this load generator on CPU 0")
    args = parser.parse_args()
    with np.load(MNIST_NPZ) as data:
        images = data["x_test"]
    version = latest_version(args.models, args.model)
    for batch, cap in ((1, 8), (64, 8), (64, 0)):
        print(f"monitor in process: {in_process_us(version, images, batch, images_per_request=cap):.1f} CPU us "
              f"per request of {batch} image(s), input summaries of {cap or 'all'} per request", flush=True)
    prefix = ["taskset", "-c", "1"] if args.pin else None
    if args.pin:
        os.sched_setaffinity(0, {0})
    servers = {
        "on": start_server(args.models, "--monitoring", "--default-model", args.model, command_prefix=prefix),
        "off": start_server(args.models, "--no-monitoring", "--default-model", args.model, command_prefix=prefix),
    }
    try:
        found = interleaved(servers, args.model, images, args.rounds, args.requests, args.concurrency, args.batch,
                            log=lambda text: print(text, flush=True))
        print(f"median ratio on/off over {args.rounds} rounds ({args.requests} requests of {args.batch} image(s), "
              f"concurrency {args.concurrency}{', pinned' if args.pin else ''}): {found['median_ratio']:.3f} "
              f"(ratio of the sums {sum(found['on_us']) / sum(found['off_us']):.3f})")
    finally:
        for server in servers.values():
            server.stop()

if __name__ == "__main__":
    main()
