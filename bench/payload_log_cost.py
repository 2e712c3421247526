"""What payload logging costs a request: two servers on the same models, one with
`--payload-log` (every request logged, JSON Lines or CloudEvents to a local receiver) and one
without, driven in turns (off, on, on, off, ...) by the same closed loop of Classify calls. The
machine is shared, so only the ratios within a round are trusted: the server's CPU per request
(user + system, all threads, the writer's included), the client's median and p99 latency and the
requests/s, on / off, medians over the rounds.

Usage: ``python bench/payload_log_cost.py --models DIR [--rounds 6] [--seconds 5] [--callers 4]
[--sink jsonl|cloudevents] [--input pixels|png]``; prints one JSON document. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import grpc
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.servers import Running, cpu_seconds, start_ours
from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc
from tests.conftest import MNIST_NPZ
from tests.loadgen import percentile
from tests.serverproc import source_env


def requests_of(kind: str, count: int = 200) -> list[pb.ClassifyRequest]:
    """Classify requests for the first `count` test digits, as raw pixels or PNG files."""
    with np.load(MNIST_NPZ) as data:
        images = data["x_test"][:count]
    if kind == "pixels":
        return [pb.ClassifyRequest(image=pb.Image(pixels=image.tobytes())) for image in images]
    from PIL import Image

    out = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(255 - image).save(buffer, format="PNG")
        out.append(pb.ClassifyRequest(image=pb.Image(encoded=buffer.getvalue())))
    return out


async def closed_loop(target: str, requests: list[pb.ClassifyRequest], callers: int, seconds: float) -> list[float]:
    """`callers` loops sending Classify back to back for `seconds`; every call's latency."""
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.DigitClassifierStub(channel)
        for request in requests[:callers]:  # warm the channel and the model
            await stub.Classify(request, timeout=30)
        end = time.perf_counter() + seconds

        async def caller(offset: int) -> None:
            i = offset
            while time.perf_counter() < end:
                started = time.perf_counter()
                await stub.Classify(requests[i % len(requests)], timeout=30)
                latencies.append(time.perf_counter() - started)
                i += callers

        await asyncio.gather(*(caller(k) for k in range(callers)))
    return latencies


def measure(server: Running, requests: list[pb.ClassifyRequest], callers: int, seconds: float) -> dict[str, float]:
    """One turn against one server: requests/s, CPU per request, latency percentiles."""
    cpu = cpu_seconds(server.pid)
    started = time.perf_counter()
    latencies = asyncio.run(closed_loop(server.target, requests, callers, seconds))
    wall = time.perf_counter() - started
    used = cpu_seconds(server.pid) - cpu
    return {
        "requests_per_second": len(latencies) / wall,
        "cpu_ms_per_request": used / len(latencies) * 1e3,
        "p50_ms": percentile(latencies, 50) * 1e3,
        "p99_ms": percentile(latencies, 99) * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--callers", type=int, default=4)
    parser.add_argument("--sink", choices=("jsonl", "cloudevents"), default="jsonl")
    parser.add_argument("--input", choices=("pixels", "png"), default="pixels")
    args = parser.parse_args()
    requests = requests_of(args.input)
    workdir = Path(tempfile.mkdtemp(prefix="bench-payload-log-"))
    receiver = None
    if args.sink == "cloudevents":  # in its own process: not sharing this one's GIL with the callers
        receiver = subprocess.Popen([sys.executable, "-m", "tests.cloudevents_receiver"], stdout=subprocess.PIPE,
                                    text=True, cwd=REPO, env=source_env())
        target = receiver.stdout.readline().strip()
    else:
        target = str(workdir / "payloads")
    common = ["--runtime", "tflite", "--compute-threads", "1"]
    servers = {"off": start_ours(args.models, common), "on": start_ours(args.models, [*common, "--payload-log", target])}
    rounds: list[dict[str, dict[str, float]]] = []
    try:
        for number in range(args.rounds):
            order = ("off", "on") if number % 2 == 0 else ("on", "off")
            rounds.append({name: measure(servers[name], requests, args.callers, args.seconds) for name in order})
    finally:
        for server in servers.values():
            server.stop()
        if receiver is not None:
            with urllib.request.urlopen(target, timeout=10) as answer:
                logged = json.load(answer)["events"] // 2  # a request and a response event per record
            receiver.terminate()
            receiver.wait()
        else:
            logged = sum(1 for f in (workdir / "payloads").glob("*.jsonl") for _ in f.open("rb"))
    keys = rounds[0]["off"].keys()
    ratios = {key: statistics.median(r["on"][key] / r["off"][key] for r in rounds) for key in keys}
    print(json.dumps({
        "sink": args.sink, "input": args.input, "callers": args.callers, "rounds": args.rounds,
        "seconds_per_turn": args.seconds,
        "off": {key: statistics.median(r["off"][key] for r in rounds) for key in keys},
        "on": {key: statistics.median(r["on"][key] for r in rounds) for key in keys},
        "ratio_on_over_off": ratios, "records_logged": logged,
    }, indent=2))


if __name__ == "__main__":
    main()
